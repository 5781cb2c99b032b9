package faulttest_test

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testpg"
)

// Sizes of the noisy-neighbour experiment: one user floods uncached
// analytics with noisyConns connections while another runs victimConns.
const (
	noisyConns  = 150
	victimConns = 10
)

// TestNoisyNeighbour is the fairness guarantee, measured: one user floods
// database-bound requests (uncached analytics, a new range per request so
// that each one misses the cache) with 150 connections while another user
// runs 10 connections of the same kind. The victim sees no failure and a
// P99 within 3× (+50 ms) of its P99 without the flood, measured first in
// the same run; the noisy user's excess is answered 429 rate_limited with
// Retry-After, never 500 (nor 503: the database is not saturated by
// everyone, only one user's share of it is).
//
// The latency bound holds where the slots are what the database can run at
// once, as by default (MAX_DB_IN_FLIGHT at the pool's size, PostgreSQL's
// 20, a share of 5): with 64, the default before, one user's share (16
// operations, several queries each for analytics) can fill the pool by
// itself, and the victim then queues for connections behind it. Both are
// measured and recorded; the bound is asserted for the first, and only
// without the race detector (it slows the flood's goroutines and the
// victim's alike, and the ratio then measures the machine). A fast
// database may clear the noisy user's queue within the wait: held to its
// share by queueing alone, it then sees no 429, but every answer within
// the wait; that, or 429s, is required of the first only.
func TestNoisyNeighbour(t *testing.T) {
	for _, tc := range []struct {
		name   string
		maxDB  int  // MAX_DB_IN_FLIGHT; 0: the default (the pool's 20)
		strict bool // assert the P99 bound (without -race) and the 429s
	}{
		{"defaults", 0, true},
		{"slots_64", 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := instOpts{dbURL: testpg.URL(t), maxDB: tc.maxDB, dbTimeout: 5 * time.Second}
			noisyNeighbour(t, o, tc.strict)
		})
	}
}

// noisyPhases are the durations of the experiment (longer under make soak).
func noisyPhases() (baseline, warmup, flood time.Duration) {
	if soak() {
		return 20 * time.Second, 2 * time.Second, 60 * time.Second
	}
	return 3 * time.Second, time.Second, 5 * time.Second
}

func noisyNeighbour(t *testing.T, o instOpts, strict bool) {
	in := newInstance(t, o)
	victim := seedAnalyticsUser(t, in, "victim")
	noisy := seedAnalyticsUser(t, in, "noisy")
	baseline, warmup, flood := noisyPhases()

	var seq atomic.Int64 // a new range per request: every one misses
	run := func(token string, ty *tally, ok func(resp) bool) func(w, i int) {
		return func(w, i int) {
			r := in.do("GET", uncachedAnalytics(seq.Add(1)), token, nil)
			ty.add("analytics", r, ok(r))
		}
	}
	victimOK := func(r resp) bool { return r.err == nil && r.status == 200 && r.header.Get("X-Cache") != "HIT" }
	noisyOK := func(r resp) bool {
		return r.err == nil && (r.status == 200 ||
			r.status == 429 && r.errorCode() == "rate_limited" && r.header.Get("Retry-After") != "")
	}

	// Baseline: the victim alone.
	base := newTally()
	stop := make(chan struct{})
	wg := load(victimConns, stop, run(victim, base, victimOK))
	time.Sleep(baseline)
	close(stop)
	wg.Wait()

	// The flood, and the victim measured once it is in full swing.
	noisyTy, during := newTally(), newTally()
	stopNoisy := make(chan struct{})
	wgNoisy := load(noisyConns, stopNoisy, run(noisy, noisyTy, noisyOK))
	time.Sleep(warmup)
	stop = make(chan struct{})
	wg = load(victimConns, stop, run(victim, during, victimOK))
	time.Sleep(flood)
	close(stop)
	wg.Wait()
	close(stopNoisy)
	wgNoisy.Wait()

	bp, dp := percentiles(base.lat), percentiles(during.lat)
	loadAvg, _ := os.ReadFile("/proc/loadavg")
	record(t, "race=%v victim alone{%s} victim during flood{%s} noisy{%s} p99 ratio %.2f shed_user=%v loadavg %s",
		raceEnabled, base.summary(), during.summary(), noisyTy.summary(), float64(dp.p99)/float64(max(bp.p99, 1)),
		in.metric("modellab_load_shed_total", map[string]string{"reason": "user"}), strings.TrimSpace(string(loadAvg)))

	if n := base.failed(); n != 0 {
		t.Errorf("victim alone: %d failures: %v", n, base.failures)
	}
	if n := during.failed(); n != 0 {
		t.Errorf("victim during the flood: %d failures: %v", n, during.failures)
	}
	if bound := 3*bp.p99 + 50*time.Millisecond; strict && !raceEnabled && dp.p99 > bound {
		t.Errorf("victim P99 %s during the flood, %s alone: more than 3× + 50 ms (%s)", dp.p99, bp.p99, bound)
	}
	if n := noisyTy.failed(); n != 0 {
		t.Errorf("noisy user: %d answers neither 200 nor 429 rate_limited with Retry-After: %v", n, noisyTy.failures)
	}
	noisyTy.mu.Lock()
	shed := noisyTy.byStatus[429]
	noisyTy.mu.Unlock()
	// Held to its share, the flood's excess waits; what waits past the
	// bound is shed. A database fast enough to clear the queue within the
	// bound sheds nothing, and then every answer came within it.
	if np := percentiles(noisyTy.lat); strict && shed == 0 && np.max > time.Second+250*time.Millisecond {
		t.Errorf("noisy user: no 429 in %d requests, slowest answer %s: the flood was not held to its share", noisyTy.n, np.max)
	}
	if got := in.metric("modellab_load_shed_total", map[string]string{"reason": "user"}); got != float64(shed) {
		t.Errorf("modellab_load_shed_total{reason=user} = %v, want the %d answers 429", got, shed)
	}
	if got := in.metric("modellab_http_requests_total", map[string]string{"code": "500"}); got != 0 {
		t.Errorf("%v responses with status 500", got)
	}
}

// seedAnalyticsUser creates a user with a model and a few thousand events
// over the last 90 days, so that an uncached analytics read has work to do.
func seedAnalyticsUser(t *testing.T, in *instance, name string) string {
	t.Helper()
	token, _ := in.user(name + "-" + randHex(3))
	m := in.model(token, map[string]any{"name": "m-" + name, "provider": "acme"})
	now := time.Now().UTC()
	for b := 0; b < 5; b++ {
		events := make([]map[string]any, 1000)
		for i := range events {
			n := b*len(events) + i
			status := "ok"
			if n%17 == 0 {
				status = "error"
			}
			events[i] = map[string]any{"model_id": m.ID, "timestamp": now.Add(-time.Duration(n) * 26 * time.Minute),
				"input_tokens": 100 + n%50, "output_tokens": 200 + n%70, "latency_ms": 20 + n%90, "status": status}
		}
		in.must(202, "POST", "/api/analytics/events", token, map[string]any{"events": events})
	}
	return token
}

// uncachedAnalytics is the analytics path of a range that no earlier
// request asked for: its end moves back one millisecond per n (the cache
// key's precision).
func uncachedAnalytics(n int64) string {
	to := time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(n) * time.Millisecond)
	from := to.Add(-30 * 24 * time.Hour)
	return fmt.Sprintf("/api/analytics/data?from=%s&to=%s&interval=day",
		url.QueryEscape(from.Format(time.RFC3339Nano)), url.QueryEscape(to.Format(time.RFC3339Nano)))
}
