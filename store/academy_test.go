package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/modellab/modellab/store"
)

// TestLessonProgress runs on both engines: completing is idempotent (the
// first time stays), progress is per user, sorted, and goes with its user.
func TestLessonProgress(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.opener(t)(t, store.Options{})
			ctx := context.Background()
			alice, bob := mustUser(t, db, "alice"), mustUser(t, db, "bob")
			at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			for _, slug := range []string{"tokens", "welcome", "tokens"} {
				if err := db.CompleteLesson(ctx, alice.ID, slug, at); err != nil {
					t.Fatalf("CompleteLesson(%s): %v", slug, err)
				}
			}
			got, err := db.CompletedLessons(ctx, alice.ID)
			if want := []string{"tokens", "welcome"}; err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("alice's lessons = %v, %v; want %v", got, err, want)
			}
			if got, err := db.CompletedLessons(ctx, bob.ID); err != nil || got == nil || len(got) != 0 {
				t.Fatalf("bob's lessons = %#v, %v; want an empty list", got, err)
			}
			if err := db.CompleteLesson(ctx, "usr_nobody0000000000000", "welcome", at); code(err) != "invalid_argument" {
				t.Errorf("CompleteLesson for an unknown user: %v, want invalid_argument", err)
			}
			if err := db.CompleteLesson(ctx, bob.ID, "", at); code(err) != "invalid_argument" {
				t.Errorf("CompleteLesson with an empty slug: %v, want invalid_argument", err)
			}
		})
	}
}
