package faulttest_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/internal/testredis"
)

// readPaths are the cached read endpoints of one user.
func readPaths(f fixture) []struct{ path, token string } {
	return []struct{ path, token string }{
		{"/api/models", ""},
		{"/api/models", f.token},
		{"/api/servers/status", f.token},
		{f.analytics, f.token},
	}
}

// TestRedisKilledMidLoad kills the Redis that two instances share while
// hundreds of concurrent clients read (and a few write), brings it back
// empty, and checks that no request failed, that both instances use Redis
// again, and that a write on one is seen on the other afterwards.
func TestRedisKilledMidLoad(t *testing.T) {
	t.Parallel()
	rs := testredis.Start(t)
	dbURL := testpg.URL(t)
	prefix := "fault:" + randHex(4) + ":"
	a := newInstance(t, instOpts{dbURL: dbURL, redisURL: rs.URL(), prefix: prefix, redisTimeout: 200 * time.Millisecond})
	b := newInstance(t, instOpts{dbURL: dbURL, redisURL: rs.URL(), prefix: prefix, redisTimeout: 200 * time.Millisecond, disableLocal: true})
	insts := []*instance{a, b}
	var fx []fixture
	for i := 0; i < 8; i++ {
		fx = append(fx, seedFixture(t, a, fmt.Sprintf("u%d", i)))
	}

	workers := scale(200, 5)
	stop := make(chan struct{})
	ty := newTally()
	wg := load(workers, stop, func(w, i int) {
		f := fx[(w+i)%len(fx)]
		in := insts[(w+i)%2]
		if w < 4 { // a few writers: invalidations go to Redis too
			r := in.do("PATCH", "/api/models/"+f.private, f.token, map[string]any{"description": fmt.Sprintf("w%d-%d", w, i)})
			ty.add("PATCH model", r, r.err == nil && r.status == 200)
			return
		}
		p := readPaths(f)[i%4]
		r := in.do("GET", p.path, p.token, nil)
		ty.add("GET "+p.path, r, r.err == nil && r.status == 200)
	})
	waitCount := func(n int64) {
		waitFor(t, 120*time.Second, "load progress", func() bool { return ty.total.Load() >= n })
	}
	waitCount(int64(workers) * 2)
	rs.Kill()
	killedAt := ty.total.Load()
	waitFor(t, 10*time.Second, "breaker open on both", func() bool { return a.cache.RedisState() == "down" && b.cache.RedisState() == "down" })
	waitCount(killedAt + int64(workers)*3)
	rs.Restart()
	waitCount(ty.total.Load() + int64(workers)*2) // load goes on while Redis is back
	close(stop)
	wg.Wait()
	if n := ty.failed(); n != 0 {
		t.Fatalf("%d failed requests (%s): %v", n, ty.summary(), ty.failures)
	}
	// Recovery. Under 200 in-process clients on -race the process is CPU
	// starved and even a healthy Redis misses deadlines (the breaker flaps,
	// harmlessly), so recovery is checked once the storm is over.
	waitFor(t, 20*time.Second, "redis up again on both", func() bool { return a.cache.RedisState() == "up" && b.cache.RedisState() == "up" })
	record(t, "%s (Redis killed after %d requests, restarted empty; 2 instances, %d workers)", ty.summary(), killedAt, workers)

	// Both instances write to the restarted Redis again, and stay coherent.
	waitFor(t, 10*time.Second, "keys in the restarted redis", func() bool {
		b.do("GET", "/api/models", fx[0].token, nil)
		n, err := rs.Do("DBSIZE")
		k, _ := strconv.Atoi(n)
		return err == nil && k > 0
	})
	a.must(200, "PATCH", "/api/models/"+fx[0].private, fx[0].token, map[string]any{"description": "after-restart"})
	waitFor(t, 2*time.Second, "write on A visible on B", func() bool {
		r := b.do("GET", "/api/models", fx[0].token, nil)
		return strings.Contains(string(r.body), "after-restart")
	})
}

// TestRedisStalled freezes Redis (SIGSTOP) and slows it past its deadline
// (toxiproxy latency), with every read going to Redis (no local tier): no
// request fails; until the breaker opens a request pays at most the Redis
// deadline; once it is open Redis adds nothing; when Redis answers again
// the breaker closes by itself.
func TestRedisStalled(t *testing.T) {
	for _, tc := range []struct {
		name string
		slow bool // toxiproxy latency instead of SIGSTOP
	}{
		{"frozen", false},
		{"slowed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := testredis.Start(t)
			redisURL := rs.URL()
			var px *proxy
			if tc.slow {
				px = newProxy(t, rs.Addr())
				redisURL = "redis://" + px.Addr()
			}
			const deadline = 50 * time.Millisecond
			in := newInstance(t, instOpts{dbURL: sqliteURL(t), redisURL: redisURL, prefix: "fault:" + randHex(4) + ":",
				disableLocal: true, redisTimeout: deadline})
			var fx []fixture
			for i := 0; i < 4; i++ {
				fx = append(fx, seedFixture(t, in, fmt.Sprintf("u%d", i)))
			}
			workers := 8
			phase := func(name string, until func() bool, minReq int) *tally {
				ty := newTally()
				stop := make(chan struct{})
				wg := load(workers, stop, func(w, i int) {
					f := fx[(w+i)%len(fx)]
					p := readPaths(f)[i%4]
					r := in.do("GET", p.path, p.token, nil)
					ty.add(name+" GET "+p.path, r, r.err == nil && r.status == 200)
				})
				waitFor(t, 120*time.Second, name, func() bool { return until() && ty.total.Load() >= int64(minReq) })
				close(stop)
				wg.Wait()
				if n := ty.failed(); n != 0 {
					t.Fatalf("%s: %d failed requests (%s): %v", name, n, ty.summary(), ty.failures)
				}
				return ty
			}
			always := func() bool { return true }
			base := phase("baseline", always, 150)

			if tc.slow {
				px.Toxic("slow", "latency", "downstream", map[string]any{"latency": 300})
			} else {
				rs.Freeze()
			}
			opening := phase("until breaker opens", func() bool { return in.cache.RedisState() == "down" }, 1)
			open := phase("breaker open", always, 150)
			if tc.slow {
				px.RemoveToxic("slow")
			} else {
				rs.Thaw()
			}
			waitFor(t, 20*time.Second, "breaker closes", func() bool { return in.cache.RedisState() == "up" })
			after := phase("recovered", always, 100)

			bp, op, pp := percentiles(base.lat), percentiles(opening.lat), percentiles(open.lat)
			// Until the breaker opens a request waits for at most one Redis
			// deadline (no further call after a failed one). The bound is
			// generous for -race on a busy 2-core machine (baseline p99 there
			// is ~1s); a client without deadlines would hang for as long as
			// Redis stalls (here seconds).
			if op.max > 2*time.Second {
				t.Errorf("until the breaker opened: worst latency %s, want < 2s (deadline %s)", op.max, deadline)
			}
			// The typical request pays about one deadline, not more: the
			// medians are robust to a starved scheduler where maxima are not.
			if added := op.p50 - bp.p50; added > deadline+250*time.Millisecond {
				t.Errorf("until the breaker opened: median latency %s over a baseline of %s, want at most the deadline %s (+250ms slack)", added, bp.p50, deadline)
			}
			if pp.max > 3*time.Second {
				t.Errorf("breaker open: worst latency %s, want < 3s", pp.max)
			}
			record(t, "baseline{%s} opening{%s} open{%s} recovered{%s}; worst while opening %s",
				base.summary(), opening.summary(), open.summary(), after.summary(), op.max)
		})
	}
}
