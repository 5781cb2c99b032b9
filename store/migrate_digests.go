package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"
)

// digestsVersion is the migration that adds the daily digests and fills
// them from the daily rollups. It is written in Go because the blobs are
// packed by the same code as ingest's.
const digestsVersion = 8

func (db *DB) digestsMigration() *goose.Migration {
	return goose.NewGoMigration(digestsVersion,
		&goose.GoFunc{RunTx: db.digestsUp},
		&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "DROP TABLE usage_daily_digest")
			return err
		}})
}

func (db *DB) digestsUp(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE usage_daily_digest (
		user_id TEXT NOT NULL,
		period  BIGINT NOT NULL,
		models  %[1]s NOT NULL,
		latency %[1]s NOT NULL,
		PRIMARY KEY (user_id, period))`, db.blobType()))
	if err != nil {
		return err
	}
	users, err := migrateDistinct(ctx, tx, "user_id", "usage_daily")
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := db.digestUser(ctx, tx, u); err != nil {
			return fmt.Errorf("daily digests of %s: %w", u, err)
		}
	}
	return nil
}

// digestUser writes one user's digests from their daily rollups, each
// read to the end before the next statement (a connection serves one at
// a time).
func (db *DB) digestUser(ctx context.Context, tx *sql.Tx, user string) error {
	r := newRollups()
	uid, all := r.id(user), r.id(allModels)
	err := migrateScan(ctx, tx, db.sqlFor(`SELECT model_id, period, requests, errors, input_tokens, output_tokens, cost_nanos, latency_us
		FROM usage_daily WHERE user_id = ?`), []any{user}, func(scan func(...any) error) error {
		var model string
		var period int64
		var s rollupSums
		if err := scan(&model, &period, &s.requests, &s.errors, &s.input, &s.output, &s.costNanos, &s.latencyUS); err != nil {
			return err
		}
		r.daily.sums[rollupKey{uid, r.id(model), period}] = &s
		return nil
	})
	if err != nil {
		return err
	}
	err = migrateScan(ctx, tx, db.sqlFor(`SELECT period, bucket, n FROM latency_daily WHERE user_id = ? AND model_id = ?`),
		[]any{user, allModels}, func(scan func(...any) error) error {
			var period, bucket, n int64
			if err := scan(&period, &bucket, &n); err != nil {
				return err
			}
			r.daily.latency[latencyKey{rollupKey{uid, all, period}, bucket}] = n
			return nil
		})
	if err != nil {
		return err
	}
	tb := r.digestTable()
	rows := make([][]any, tb.n)
	for i := range rows {
		rows[i] = tb.row(i)
	}
	return db.migrateInsert(ctx, tx, tb.name, tb.cols, rows)
}

// migrateScan calls each with every row of a query.
func migrateScan(ctx context.Context, tx *sql.Tx, q string, args []any, each func(scan func(...any) error) error) error {
	r, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer r.Close()
	for r.Next() {
		if err := each(r.Scan); err != nil {
			return err
		}
	}
	return r.Err()
}
