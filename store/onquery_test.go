package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/store"
)

// OnQuery hears each statement once, when it has finished, with its
// duration: one-row reads (whose rows are closed twice), writes, and the
// BEGIN, statements and COMMIT of a transaction.
func TestOnQueryDurations(t *testing.T) {
	var mu sync.Mutex
	var durations []time.Duration
	db := openSQLite(t, store.Options{OnQuery: func(d time.Duration) {
		mu.Lock()
		durations = append(durations, d)
		mu.Unlock()
	}})
	ctx := context.Background()
	count := func(f func()) []time.Duration {
		mu.Lock()
		before := len(durations)
		mu.Unlock()
		f()
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), durations[before:]...)
	}
	if got := count(func() {
		if err := db.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}); len(got) != 1 || got[0] <= 0 {
		t.Errorf("Ping: OnQuery heard %v, want one positive duration", got)
	}
	if got := count(func() { mustUser(t, db, "d") }); len(got) == 0 {
		t.Errorf("creating a user: OnQuery heard nothing")
	} else {
		for _, d := range got {
			if d <= 0 {
				t.Errorf("creating a user: durations %v, want all positive", got)
				break
			}
		}
	}
}

// Empty and Seed can disregard users that exist before the demo data (the
// admin user of ADMIN_TOKEN); any other row still counts.
func TestEmptyIgnoringUsers(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t, store.Options{})
	admin := modellab.User{ID: "usr_admin", Name: "admin", Admin: true}
	if err := db.EnsureUser(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if empty, err := db.Empty(ctx); err != nil || empty {
		t.Fatalf("Empty() with the admin = %v, %v; want false", empty, err)
	}
	if empty, err := db.Empty(ctx, admin.ID); err != nil || !empty {
		t.Fatalf("Empty(admin) = %v, %v; want true", empty, err)
	}
	opts := store.SeedOptions{Users: 2, Models: 3, Servers: 2, Events: 10, Days: 1, RandSeed: 1}
	if _, err := store.Seed(ctx, db, opts); modellab.ErrorCode(err) != modellab.ECONFLICT {
		t.Fatalf("Seed over the admin without IgnoreUsers: %v, want conflict", err)
	}
	opts.IgnoreUsers = []string{admin.ID}
	if _, err := store.Seed(ctx, db, opts); err != nil {
		t.Fatalf("Seed ignoring the admin: %v", err)
	}
	if empty, err := db.Empty(ctx, admin.ID); err != nil || empty {
		t.Fatalf("Empty(admin) after the seed = %v, %v; want false", empty, err)
	}
}
