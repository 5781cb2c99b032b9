package faulttest_test

import (
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testpg"
)

// TestLoadShedding slows PostgreSQL (toxiproxy latency) and sends more
// concurrent database-bound requests than the bounds allow. Past
// MAX_DB_IN_FLIGHT (and past MAX_IN_FLIGHT) the server answers 503
// unavailable with Retry-After, quickly, never 500 and never a transport
// error; cache hits are not shed by the database bound.
func TestLoadShedding(t *testing.T) {
	t.Parallel()
	px := newProxy(t, "127.0.0.1:5432")
	dbURL := viaProxy(t, testpg.URL(t), px.Addr())
	setup := newInstance(t, instOpts{dbURL: dbURL})
	f := seedFixture(t, setup, "shed")
	setup.model(adminToken, map[string]any{"name": "global-shed", "provider": "acme", "visibility": "global"})
	px.Toxic("slow", "latency", "downstream", map[string]any{"latency": 100})

	for _, tc := range []struct {
		name        string
		maxInFlight int
		maxDB       int
	}{
		{"db_bound", 0, 2},
		{"in_flight", 8, 64}, // more slots than requests in flight
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One user sends the load: its share is the whole bound, so
			// that this is the global bound's shedding (503), not the
			// per-user one (429, TestNoisyNeighbour).
			in := newInstance(t, instOpts{dbURL: dbURL, maxInFlight: tc.maxInFlight, maxDB: tc.maxDB, maxDBPerUser: tc.maxDB,
				dbQueueWait: 200 * time.Millisecond, dbTimeout: 5 * time.Second})
			in.must(200, "GET", "/api/models", "", nil)      // warm the global list
			in.must(200, "GET", "/api/models", f.token, nil) // and the token cache
			dbTy, hitTy, shedTy := newTally(), newTally(), newTally()
			stop := make(chan struct{})
			wg := load(64, stop, func(w, i int) {
				if w < 8 && tc.name == "db_bound" {
					r := in.do("GET", "/api/models", "", nil)
					hitTy.add("cached GET /api/models", r, r.err == nil && r.status == 200 && r.header.Get("X-Cache") == "HIT")
					return
				}
				r := in.do("GET", "/api/models/"+f.private, f.token, nil)
				ok := r.err == nil && (r.status == 200 ||
					(r.status == 503 && r.errorCode() == "unavailable" && r.header.Get("Retry-After") != ""))
				dbTy.add("GET /api/models/{id}", r, ok)
				if r.status == 503 {
					shedTy.add("shed", r, true)
				}
			})
			waitFor(t, 120*time.Second, "load", func() bool { return dbTy.total.Load() >= 300 && shedTy.total.Load() >= 20 })
			close(stop)
			wg.Wait()
			if n := dbTy.failed(); n != 0 {
				t.Errorf("%d database-bound requests neither 200 nor 503+Retry-After: %v", n, dbTy.failures)
			}
			if n := hitTy.failed(); n != 0 {
				t.Errorf("%d cache hits failed or shed: %v", n, hitTy.failures)
			}
			if got := in.metric("modellab_http_requests_total", map[string]string{"code": "500"}); got != 0 {
				t.Errorf("%v responses with status 500", got)
			}
			sp := percentiles(shedTy.lat)
			// A shed request is answered at once (in_flight) or after the
			// queue wait (db_bound, 200 ms): never queued without limit.
			if sp.max > 3*time.Second {
				t.Errorf("a shed request took %s: queued too long", sp.max)
			}
			record(t, "db-bound{%s} shed{%s} hits{%s}", dbTy.summary(), shedTy.summary(), hitTy.summary())
		})
	}
}
