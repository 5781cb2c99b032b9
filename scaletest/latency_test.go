package scaletest_test

import (
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/internal/testredis"
)

// delayLink is a TCP forwarder in front of one dependency that delays
// every answer by rtt (±10 %): the dependency is rtt away.
func delayLink(t *testing.T, upstream string, rtt time.Duration) string {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "lat"+randHex(4), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	if rtt > 0 {
		// All of it on the answers: toxiproxy's latency is whole
		// milliseconds, and a round trip is what a request pays.
		jitter := rtt.Milliseconds() / 10
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(
			`{"name":"lat","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":%d,"jitter":%d}}`,
			rtt.Milliseconds(), jitter))); err != nil {
			t.Fatalf("latency toxic: %v", err)
		}
	}
	return p.Listen
}

// netemAvailable reports whether the kernel can delay packets with
// tc netem in a network namespace this test makes (root, ip netns, veth,
// sch_netem); why not, otherwise.
func netemAvailable() (bool, string) {
	ns := "mlt" + randHex(3)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return false, fmt.Sprintf("ip netns add: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	out, err := exec.Command("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").CombinedOutput()
	if err != nil {
		return false, fmt.Sprintf("tc qdisc add … netem: %v %s", err, strings.TrimSpace(string(out)))
	}
	return true, ""
}

// latencyRow is one line of the table in RELIABILITY.md.
type latencyRow struct {
	rtt                       time.Duration
	localP50, localP99        time.Duration
	redisP50, redisP99        time.Duration
	redisNotHit               int
	missP50, missP99          time.Duration
	leaseP50, leaseMax        time.Duration
	leaseLoads                float64
	staleP50, staleMax        time.Duration
	loadRedisP99              time.Duration
	loadN, loadFailed, errors int
	breakerOpens              int
}

// TestLatencyTiers puts Redis and PostgreSQL 0, 1 and 20 ms (round trip)
// away and measures what the cache costs and guarantees there: hit P99
// (local tier, and Redis tier alone), the cost of a miss, the wait of a
// second instance on a first one's fill lease, cross-instance staleness,
// and whether Redis deadlines trip the breaker under load. Production
// defaults: REDIS_TIMEOUT_MS 100, LeaseTTL 3 s.
//
// The kernel of the machine this was written on has no sch_netem (tc
// qdisc … netem: "Specified qdisc kind is unknown"), so the delay is a TCP
// forwarder (toxiproxy, in-process) on each dependency's route, which delays
// every answer by the round trip; the test says which it used.
// Long: runs under MODELLAB_SOAK (make soak).
func TestLatencyTiers(t *testing.T) {
	if !soak() {
		t.Skip("long (about a minute): set MODELLAB_SOAK=1 (make soak)")
	}
	if ok, why := netemAvailable(); !ok {
		t.Logf("tc netem unavailable (%s): delaying with a TCP forwarder on each route instead", why)
	}
	var rows []latencyRow
	for _, rtt := range []time.Duration{0, time.Millisecond, 20 * time.Millisecond} {
		t.Run(rtt.String(), func(t *testing.T) { rows = append(rows, measureLatency(t, rtt)) })
	}
	t.Log("| RTT | local hit p50/p99 | Redis hit p50/p99 (not HIT of 300) | miss p50/p99 | lease wait p50/max (loads per round) | staleness p50/max | Redis-tier load p99, n, failed, Redis errors | breaker opens |")
	for _, r := range rows {
		ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
		t.Logf("| %s | %s / %s | %s / %s (%d) | %s / %s | %s / %s (%.1f) | %s / %s | %s, %d, %d, %d | %d |", r.rtt,
			ms(r.localP50), ms(r.localP99), ms(r.redisP50), ms(r.redisP99), r.redisNotHit, ms(r.missP50), ms(r.missP99),
			ms(r.leaseP50), ms(r.leaseMax), r.leaseLoads, ms(r.staleP50), ms(r.staleMax),
			ms(r.loadRedisP99), r.loadN, r.loadFailed, r.errors, r.breakerOpens)
	}
}

func measureLatency(t *testing.T, rtt time.Duration) latencyRow {
	row := latencyRow{rtt: rtt}
	r := testredis.Start(t)
	redisURL := "redis://" + delayLink(t, r.Addr(), rtt)
	u, err := url.Parse(testpg.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = delayLink(t, u.Host, rtt)
	prefix := "lat:" + randHex(4) + ":"
	prod := instOpts{dbURL: u.String(), redisURL: redisURL, prefix: prefix, redisTimeout: 100 * time.Millisecond, leaseTTL: 3 * time.Second}
	a := newInstance(t, "A", prod)
	b := newInstance(t, "B", prod)
	c := prod
	c.disableLocal = true
	rc := newInstance(t, "C", c) // every hit from Redis
	for _, in := range []*inst{a, b, rc} {
		in.waitRedisUp()
	}
	tok, _ := a.user("lat")
	a.model(tok, map[string]any{"name": "m0", "provider": "p"})

	row.localP50, row.localP99, _ = timeGets(t, a, tok, 300, "HIT")
	row.redisP50, row.redisP99, row.redisNotHit = timeGets(t, rc, tok, 300, "HIT")
	row.missP50, row.missP99 = timeMisses(t, a, tok, 30)
	row.leaseP50, row.leaseMax, row.leaseLoads = timeLease(t, a, b, tok, 10)
	row.staleP50, row.staleMax = crossStaleness(t, a, b, tok, 20, 5*time.Second)
	row.loadRedisP99, row.loadN, row.loadFailed = redisTierLoad(t, rc, tok, 32, 3*time.Second)
	for _, in := range []*inst{a, b, rc} {
		row.errors += int(in.cache.Stats().Tiers.Redis.Errors)
		row.breakerOpens += strings.Count(in.logs.String(), "redis unavailable")
	}
	return row
}

// timeGets times n sequential GET /api/models, each of which must answer
// X-Cache want.
func timeGets(t *testing.T, in *inst, tok string, n int, want string) (p50, p99 time.Duration, other int) {
	t.Helper()
	in.modelNames(tok) // fill
	var lat []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		_, xc := in.modelNames(tok)
		lat = append(lat, time.Since(start))
		if xc != want {
			other++
		}
	}
	if other > n/10 {
		t.Errorf("%s: %d of %d GETs not %s", in.name, other, n, want)
	}
	return percentile(lat, 0.5), percentile(lat, 0.99), other
}

// timeMisses times a GET right after a write invalidated the list: a MISS,
// i.e. a load from the database and a fill of both tiers.
func timeMisses(t *testing.T, in *inst, tok string, n int) (p50, p99 time.Duration) {
	t.Helper()
	var lat []time.Duration
	for i := 0; i < n; i++ {
		in.model(tok, map[string]any{"name": fmt.Sprintf("miss-%d", i), "provider": "p"})
		start := time.Now()
		_, xc := in.modelNames(tok)
		lat = append(lat, time.Since(start))
		if xc != "MISS" {
			t.Fatalf("GET after write %d: X-Cache %q, want MISS", i, xc)
		}
	}
	return percentile(lat, 0.5), percentile(lat, 0.99)
}

// timeLease invalidates the list and reads it on A and B at once: one of
// them loads under the fill lease, the other waits for its fill. It returns
// the slower answer's p50 and max over the rounds, and loads per round
// (1 = the lease held).
func timeLease(t *testing.T, a, b *inst, tok string, rounds int) (p50, worst time.Duration, loadsPerRound float64) {
	t.Helper()
	var lat []time.Duration
	before := a.loads("models") + b.loads("models")
	for i := 0; i < rounds; i++ {
		a.model(tok, map[string]any{"name": fmt.Sprintf("lease-%d", i), "provider": "p"})
		var wg sync.WaitGroup
		var d [2]time.Duration
		for k, in := range []*inst{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				in.modelNames(tok)
				d[k] = time.Since(start)
			}()
		}
		wg.Wait()
		lat = append(lat, max(d[0], d[1]))
	}
	loads := a.loads("models") + b.loads("models") - before
	return percentile(lat, 0.5), percentile(lat, 1), loads / float64(rounds)
}

// redisTierLoad runs clients closed-loop GETs on an instance without its
// local tier for d: every answer is a Redis round trip under the deadline.
func redisTierLoad(t *testing.T, in *inst, tok string, clients int, d time.Duration) (p99 time.Duration, n, failed int) {
	t.Helper()
	ts := &tallies{kinds: map[string]*outcome{}}
	lc := &loadClient{base: in.url, token: tok, hc: client, ts: ts}
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				lc.do("redis hit", "GET", "/api/models", nil, 200)
			}
		}()
	}
	wg.Wait()
	o := ts.kinds["redis hit"]
	return percentile(o.lat, 0.99), o.ok + o.failed + o.sockErr, o.failed + o.sockErr
}
