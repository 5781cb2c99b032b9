package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

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
