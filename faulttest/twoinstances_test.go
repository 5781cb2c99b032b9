package faulttest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/internal/testredis"
)

// pair is two instances sharing one PostgreSQL (behind a proxy the test
// owns) and one Redis the test owns, with the same cache prefix.
type pair struct {
	a, b *instance
	px   *proxy
	rs   *testredis.Server
}

func newPair(t *testing.T) pair {
	t.Helper()
	rs := testredis.Start(t)
	px := newProxy(t, "127.0.0.1:5432")
	dbURL := viaProxy(t, testpg.URL(t), px.Addr())
	prefix := "fault:" + randHex(4) + ":"
	// Deadlines a saturated -race machine keeps: these tests are about
	// coherence and load counts, not about deadlines.
	o := instOpts{dbURL: dbURL, redisURL: rs.URL(), prefix: prefix, redisTimeout: 500 * time.Millisecond, dbTimeout: 10 * time.Second}
	a := newInstance(t, o)
	b := newInstance(t, o)
	return pair{a: a, b: b, px: px, rs: rs}
}

// TestTwoInstancesStaleness writes on one instance and polls the other
// until the write shows, over ≥1,000 writes in both directions, and reports
// p99 and max of the time from the write's 2xx to the first read that has
// it (which includes one read's own latency). The guarantee: within 50 ms.
func TestTwoInstancesStaleness(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	tok, _ := p.a.user("writer")
	m := p.a.model(tok, map[string]any{"name": "stale-probe", "provider": "acme"})
	glob := p.a.model(adminToken, map[string]any{"name": "stale-global", "provider": "acme", "visibility": "global"})
	p.a.must(200, "GET", "/api/models", tok, nil)
	p.b.must(200, "GET", "/api/models", tok, nil)

	n := scale(1000, 10)
	var lags []time.Duration
	for i := 0; i < n; i++ {
		w, r := p.a, p.b
		if i%2 == 1 {
			w, r = r, w
		}
		// Alternate private writes (the owner's list) and global writes
		// (every list, through the generation tag).
		id, token := m.ID, tok
		if i%4 >= 2 {
			id, token = glob.ID, adminToken
		}
		want := fmt.Sprintf(`"description":"v%d"`, i)
		w.must(200, "PATCH", "/api/models/"+id, token, map[string]any{"description": fmt.Sprintf("v%d", i)})
		acked := time.Now()
		for {
			res := r.do("GET", "/api/models", tok, nil)
			if res.err != nil || res.status != 200 {
				t.Fatalf("write %d: read: %s", i, res)
			}
			if strings.Contains(string(res.body), want) {
				lags = append(lags, time.Since(acked))
				break
			}
			if time.Since(acked) > 5*time.Second {
				t.Fatalf("write %d on one instance not visible on the other after 5s", i)
			}
		}
	}
	pc := percentiles(lags)
	// The contract is 50 ms; under -race on a busy 2-core machine one read
	// alone can take that long, and go test runs other packages beside
	// this one (a 2.1 s outlier was seen in CI-like runs), so the hard
	// bound is looser: it still fails a lost invalidation, which would
	// last until the entry's TTL. The figure is what RELIABILITY.md reports.
	if pc.p99 > 500*time.Millisecond || pc.max > 5*time.Second {
		t.Errorf("write→read staleness over %d writes: p50 %s p99 %s max %s", n, pc.p50, pc.p99, pc.max)
	}
	record(t, "writes=%d staleness p50=%s p99=%s max=%s", n, pc.p50, pc.p99, pc.max)
}

// TestTwoInstancesStampede sends concurrent misses of one cold analytics
// key, split over both instances, while the database is slow (so that they
// all overlap the load): exactly one database load, and every caller gets
// the same bytes.
func TestTwoInstancesStampede(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	f := seedFixture(t, p.a, "stampede")
	p.b.must(200, "GET", "/api/models", f.token, nil) // token known on both
	p.a.must(200, "GET", "/api/models", f.token, nil)
	loads := func() float64 {
		return p.a.metric("modellab_cache_loads_total", map[string]string{"endpoint": "analytics"}) +
			p.b.metric("modellab_cache_loads_total", map[string]string{"endpoint": "analytics"})
	}
	p.px.Toxic("slow", "latency", "downstream", map[string]any{"latency": 150})
	for round := 0; round < 3; round++ {
		path := fmt.Sprintf("/api/analytics/data?from=2025-0%d-01&to=2025-0%d-20&interval=hour", round+1, round+1)
		before := loads()
		const callers = 40
		start := make(chan struct{})
		res := make([]resp, callers)
		var wg sync.WaitGroup
		for i := 0; i < callers; i++ {
			in := p.a
			if i%2 == 1 {
				in = p.b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res[i] = in.do("GET", path, f.token, nil)
			}()
		}
		close(start)
		wg.Wait()
		for i, r := range res {
			if r.err != nil || r.status != 200 {
				t.Fatalf("round %d caller %d: %s", round, i, r)
			}
			if string(r.body) != string(res[0].body) {
				t.Errorf("round %d caller %d: body differs from caller 0", round, i)
			}
		}
		if got := loads() - before; got != 1 {
			t.Errorf("round %d: %d concurrent misses over 2 instances caused %v database loads, want 1", round, callers, got)
		}
	}
	record(t, "3 rounds x 40 concurrent misses split over 2 instances: 1 load each")
}
