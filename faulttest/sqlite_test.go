package faulttest_test

import (
	"fmt"
	"testing"
	"time"
)

// TestConcurrentAnalyticsSQLiteNeverCanceled is the regression test of a
// bug found by TestRedisStalled: concurrent uncached analytics on SQLite
// randomly answered 503 "the database is unavailable (analytics p95):
// context canceled" (8 of 3,010 requests), because store.get read Rows.Err
// after canceling the statement's context. Every read must succeed.
func TestConcurrentAnalyticsSQLiteNeverCanceled(t *testing.T) {
	t.Parallel()
	in := newInstance(t, instOpts{dbURL: sqliteURL(t), disableLocal: true}) // no tier: every request loads
	var fx []fixture
	for i := 0; i < 4; i++ {
		fx = append(fx, seedFixture(t, in, fmt.Sprintf("u%d", i)))
	}
	ty := newTally()
	stop := make(chan struct{})
	wg := load(8, stop, func(w, i int) {
		f := fx[(w+i)%4]
		r := in.do("GET", f.analytics, f.token, nil)
		ty.add("GET "+f.analytics, r, r.err == nil && r.status == 200)
	})
	waitFor(t, 120*time.Second, "requests", func() bool { return ty.total.Load() >= int64(scale(1500, 10)) })
	close(stop)
	wg.Wait()
	if n := ty.failed(); n != 0 {
		t.Fatalf("%d failed: %v", n, ty.failures)
	}
	record(t, "%s", ty.summary())
}
