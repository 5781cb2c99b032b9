// Package faulttest_test proves the guarantees listed in docs/RELIABILITY.md under faults and
// hostile clients: Redis killed, frozen and slowed; the database cut; load
// past the shedding bound; many users on two instances; SIGTERM and kill -9.
//
// Instances are built the way cmd/modellab's newApp builds them (store.Open,
// cache.New, server.New) and served on 127.0.0.1 by httptest, so that two of
// them share one PostgreSQL and one Redis the test owns, and the race
// detector sees their code. The process-level properties (SIGTERM, kill -9)
// run the real binary, built once into a temporary directory.
//
// Faults are injected only into things the test owns: a redis-server started
// by internal/testredis, and a toxiproxy proxy (in-process) in front of a
// fresh PostgreSQL database or of that redis-server. The machine's shared
// Redis and PostgreSQL are never stopped, frozen or flushed.
//
// MODELLAB_SOAK=1 (make soak) makes the load phases longer and larger.
package faulttest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/internal/testenv"
	"github.com/modellab/modellab/server"
	"github.com/modellab/modellab/service"
	"github.com/modellab/modellab/store"
)

const adminToken = "fault-admin-token-0123456789abcdef"

// soak reports whether the long variants were asked for (make soak).
func soak() bool { return os.Getenv("MODELLAB_SOAK") != "" }

// scale returns n, or n*factor under MODELLAB_SOAK.
func scale(n, factor int) int {
	if soak() {
		return n * factor
	}
	return n
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// instOpts configures one instance, as the environment of `modellab serve` would.
type instOpts struct {
	dbURL        string        // DATABASE_URL (required)
	redisURL     string        // REDIS_URL; "" = DISABLE_REDIS_CACHE
	prefix       string        // CACHE_PREFIX
	ttl          time.Duration // every *_CACHE_TTL_MS (default 60s)
	stale        time.Duration // CACHE_STALE_MS (default 10m)
	redisTimeout time.Duration // REDIS_TIMEOUT_MS (default 50ms)
	disableLocal bool          // DISABLE_LOCAL_CACHE: every read goes to Redis
	maxInFlight  int           // MAX_IN_FLIGHT
	maxDB        int           // MAX_DB_IN_FLIGHT
	maxDBPerUser int           // MAX_DB_IN_FLIGHT_PER_USER
	dbTimeout    time.Duration // DB_TIMEOUT_MS
	dbQueueWait  time.Duration
}

// instance is one modellab server: its own store pool, cache and HTTP
// listener, like one `modellab serve` process.
type instance struct {
	t     *testing.T
	url   string
	srv   *server.Server
	cache *cache.Cache
	db    *store.DB
	hs    *httptest.Server
}

func testLogger() *slog.Logger {
	if testing.Verbose() && os.Getenv("MODELLAB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newInstance(t *testing.T, o instOpts) *instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := testLogger()
	metrics := server.NewMetrics()
	if o.dbTimeout == 0 {
		o.dbTimeout = 2 * time.Second
	}
	db, err := testenv.OpenStore(ctx, t, o.dbURL, store.Options{OnQuery: metrics.DBQuery, QueryTimeout: o.dbTimeout, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if o.stale == 0 {
		o.stale = 10 * time.Minute
	}
	copts := cache.Options{
		Prefix:       o.prefix,
		RedisURL:     o.redisURL,
		DisableRedis: o.redisURL == "",
		DisableLocal: o.disableLocal,
		KeepLocal:    []string{service.TokenKeyPrefix},
		Stale:        o.stale,
		RedisTimeout: o.redisTimeout,
		Logger:       log,
	}
	c, err := cache.New(copts)
	if err != nil {
		t.Fatalf("cache: %v", err)
	}
	t.Cleanup(c.Close)
	if o.ttl == 0 {
		o.ttl = time.Minute
	}
	st := testenv.NewStack(t, testenv.StackConfig{
		Service: service.Config{
			Store: db, Cache: c, Logger: log, AdminToken: adminToken, OnShed: metrics.Shed,
			ModelsTTL: o.ttl, ServersTTL: o.ttl, AnalyticsTTL: o.ttl,
			MaxDBInFlight: o.maxDB, MaxDBInFlightPerUser: o.maxDBPerUser, DBQueueWait: o.dbQueueWait,
		},
		Server: server.Config{Metrics: metrics, Logger: log, MaxInFlight: o.maxInFlight},
	})
	srv := st.API
	hs := httptest.NewUnstartedServer(st.Handler)
	hs.Config.ReadHeaderTimeout = 5 * time.Second
	hs.Start()
	t.Cleanup(hs.Close)
	in := &instance{t: t, url: hs.URL, srv: srv, cache: c, db: db, hs: hs}
	if o.redisURL != "" {
		waitFor(t, 10*time.Second, "redis up", func() bool { return c.RedisState() == "up" })
	}
	return in
}

// metric reads one series of the instance's /metrics registry.
func (in *instance) metric(name string, labels map[string]string) float64 {
	return in.srv.Metrics().Gather(name, labels)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is shared by the tests: many idle connections so that load phases
// reuse them instead of exhausting ephemeral ports.
var client = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     30 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	},
}

// resp is a response read whole, with the time it took.
type resp struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
	err    error
}

func (r resp) String() string {
	if r.err != nil {
		return "transport error: " + r.err.Error()
	}
	b := r.body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%d %s (%s)", r.status, b, r.took.Round(time.Millisecond))
}

func (r resp) errorCode() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

// send performs one request; it never fails the test, so that load
// goroutines can use it. hdr is name, value pairs.
func send(method, url, token string, body any, hdr ...string) resp {
	req, err := testenv.NewRequest(method, url, token, body, hdr...)
	if err != nil {
		return resp{err: err}
	}
	start := time.Now()
	r, err := testenv.Send(client, req)
	return resp{status: r.Status, header: r.Header, body: r.Body, took: time.Since(start), err: err}
}

func (in *instance) do(method, path, token string, body any, hdr ...string) resp {
	return send(method, in.url+path, token, body, hdr...)
}

func (in *instance) must(want int, method, path, token string, body any, hdr ...string) resp {
	in.t.Helper()
	r := in.do(method, path, token, body, hdr...)
	if r.err != nil || r.status != want {
		in.t.Fatalf("%s %s: %s, want status %d", method, path, r, want)
	}
	return r
}

func decode(t *testing.T, r resp, v any) {
	t.Helper()
	testenv.DecodeJSON(t, r.body, v)
}

// apiClient sets up users and models; the load phases use send, which
// times requests and never fails the test.
func (in *instance) apiClient() *testenv.Client {
	return &testenv.Client{T: in.t, URL: in.url, HTTP: client, AdminToken: adminToken}
}

// user creates a user through the API and returns its token and ID.
func (in *instance) user(name string) (token, id string) {
	in.t.Helper()
	return in.apiClient().User(name)
}

func (in *instance) model(token string, body map[string]any) modellab.Model {
	in.t.Helper()
	return in.apiClient().Model(token, body)
}

// ---- toxiproxy ----

// proxy is a toxiproxy proxy, in-process, owned by the test.
type proxy struct {
	t *testing.T
	p *toxiproxy.Proxy
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "p"+randHex(4), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &proxy{t: t, p: p}
}

// Addr is where clients connect.
func (p *proxy) Addr() string { return p.p.Listen }

// Cut closes the listener and every connection: the dependency is gone.
func (p *proxy) Cut() { p.p.Stop() }

// Restore listens again on the same address.
func (p *proxy) Restore() {
	p.t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		if err = p.p.Start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("toxiproxy restore: %v", err)
}

// Toxic adds a toxic, e.g. ("latency", "downstream", {"latency": 200}).
func (p *proxy) Toxic(name, typ, stream string, attrs map[string]any) {
	p.t.Helper()
	j, _ := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if _, err := p.p.Toxics.AddToxicJson(bytes.NewReader(j)); err != nil {
		p.t.Fatalf("add toxic %s: %v", name, err)
	}
}

func (p *proxy) RemoveToxic(name string) {
	p.t.Helper()
	if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		p.t.Fatalf("remove toxic %s: %v", name, err)
	}
}

// viaProxy rewrites the host:port of a database URL to the proxy's.
func viaProxy(t *testing.T, dbURL, addr string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return u.String()
}

func sqliteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "test.db")
}

// ---- load ----

// tally counts outcomes of a load phase, safe for concurrent use.
type tally struct {
	mu       sync.Mutex
	n        int
	failures []string
	byStatus map[int]int
	lat      []time.Duration
	total    atomic.Int64
}

func newTally() *tally { return &tally{byStatus: map[int]int{}} }

// add records r; ok decides whether it is a success.
func (ty *tally) add(what string, r resp, ok bool) {
	ty.total.Add(1)
	ty.mu.Lock()
	defer ty.mu.Unlock()
	ty.n++
	if r.err == nil {
		ty.byStatus[r.status]++
	}
	ty.lat = append(ty.lat, r.took)
	if !ok && len(ty.failures) < 20 {
		ty.failures = append(ty.failures, what+": "+r.String())
	}
	if !ok {
		ty.byStatus[-1]++
	}
}

func (ty *tally) failed() int {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	return ty.byStatus[-1]
}

func (ty *tally) summary() string {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	p := percentiles(ty.lat)
	return fmt.Sprintf("requests=%d failures=%d statuses=%v p50=%s p99=%s max=%s",
		ty.n, ty.byStatus[-1], ty.byStatus, p.p50, p.p99, p.max)
}

type pct struct{ p50, p99, max time.Duration }

func percentiles(d []time.Duration) pct {
	if len(d) == 0 {
		return pct{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.5) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return pct{p50: at(0.50).Round(10 * time.Microsecond), p99: at(0.99).Round(10 * time.Microsecond), max: s[len(s)-1].Round(10 * time.Microsecond)}
}

// load runs workers goroutines calling fn until stop is closed.
func load(workers int, stop <-chan struct{}, fn func(worker, i int)) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				fn(w, i)
			}
		}()
	}
	return &wg
}

// record appends a line to the figures log when MODELLAB_FIGURES names a
// file; docs/RELIABILITY.md is filled from it.
func record(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("%s: %s", t.Name(), fmt.Sprintf(format, args...))
	t.Log(line)
	if p := os.Getenv("MODELLAB_FIGURES"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
