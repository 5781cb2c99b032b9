package store

import (
	"context"
	"time"
)

// CompleteLesson records that userID completed lesson at at. Completing a
// lesson twice keeps the first time: the call is idempotent.
func (db *DB) CompleteLesson(ctx context.Context, userID, lesson string, at time.Time) error {
	_, err := db.exec(ctx, `INSERT INTO lesson_progress (user_id, lesson, completed_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id, lesson) DO NOTHING`, userID, lesson, micros(at))
	if err != nil {
		return fail(err, "complete lesson")
	}
	return nil
}

// CompletedLessons returns the slugs of the lessons userID completed, in
// byte order.
func (db *DB) CompletedLessons(ctx context.Context, userID string) ([]string, error) {
	r, err := db.query(ctx, `SELECT lesson FROM lesson_progress WHERE user_id = ? ORDER BY lesson COLLATE "C"`, userID)
	if err != nil {
		return nil, fail(err, "list completed lessons")
	}
	defer r.Close()
	out := []string{}
	for r.Next() {
		var s string
		if err := r.Scan(&s); err != nil {
			return nil, fail(err, "list completed lessons")
		}
		out = append(out, s)
	}
	if err := r.Err(); err != nil {
		return nil, fail(err, "list completed lessons")
	}
	return out, nil
}
