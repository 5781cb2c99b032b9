package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/gateway"
	"github.com/modellab/modellab/internal/testenv"
	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/server"
	"github.com/modellab/modellab/service"
	"github.com/modellab/modellab/store"
)

const adminToken = "test-admin-token-0123456789"

// env is one server under test with its real store and cache.
type env struct {
	t     testing.TB
	srv   *server.Server
	svc   *service.Service
	h     http.Handler // the instance's whole handler, middleware included
	http  *httptest.Server
	db    *store.DB
	cache *cache.Cache
	url   string
	dbu   string
	pfx   string
}

func (e *env) dbURL() string { return e.dbu }

type envOpts struct {
	engine   string // "sqlite" (default) or "postgres"
	redis    bool   // use the machine's Redis with a unique prefix
	disabled bool   // DISABLE_CACHE
	dbURL    string // share a database with another env
	prefix   string // share a Redis prefix with another env
	now      func() time.Time
	ttl      time.Duration
	maxDB    int
	// maxDBPerUser and dbQueueWait: MAX_DB_IN_FLIGHT_PER_USER and the
	// wait for a slot (0: the service's defaults).
	maxDBPerUser int
	dbQueueWait  time.Duration
	// wrap, when set, wraps the store the service uses (to slow or break
	// one call).
	wrap func(service.Store) service.Store
	// logs, when set, receives the server's log lines.
	logs io.Writer
	// gateway, when set, is the service's chat gateway.
	gateway *gateway.Gateway
	// httpTimeout, when set, is the test server's ReadTimeout and
	// WriteTimeout (serve sets them too).
	httpTimeout time.Duration
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.logs != nil {
		log = slog.New(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else if testing.Verbose() && os.Getenv("MODELLAB_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	metrics := server.NewMetrics()
	dbURL := o.dbURL
	if dbURL == "" {
		if o.engine == "postgres" {
			dbURL = testpg.URL(t)
		} else {
			dbURL = "sqlite://" + filepath.Join(t.TempDir(), "test.db")
		}
	}
	// A generous statement deadline: 1,000 concurrent requests under the
	// race detector on 2 cores starve the one loader for seconds, and these
	// tests are about what happens, not how fast (faulttest covers timing).
	db, err := testenv.OpenStore(ctx, t, dbURL, store.Options{OnQuery: metrics.DBQuery, Logger: log, QueryTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	copts := cache.Options{Logger: log, Now: o.now, Disabled: o.disabled, DisableRedis: !o.redis}
	if o.redis {
		copts.RedisURL = "redis://127.0.0.1:6379"
		// These tests are about correctness, not Redis latency: on a
		// loaded 2-core machine a 50 ms deadline trips the breaker and
		// turns a lease test into a breaker test (the fault tests cover
		// that on their own Redis).
		copts.RedisTimeout = time.Second
		copts.LeaseTTL = 10 * time.Second
		copts.Prefix = o.prefix
		if copts.Prefix == "" {
			copts.Prefix = "test:" + randHex(6) + ":"
		}
	}
	c, err := cache.New(copts)
	if err != nil {
		t.Fatalf("cache: %v", err)
	}
	t.Cleanup(c.Close)
	if o.redis {
		waitFor(t, 5*time.Second, func() bool { return c.RedisState() == "up" })
	}
	ttl := o.ttl
	var st0 service.Store = db
	if o.wrap != nil {
		st0 = o.wrap(db)
	}
	st := testenv.NewStack(t, testenv.StackConfig{
		Service: service.Config{
			Store: st0, Cache: c, Logger: log, AdminToken: adminToken, Now: o.now,
			ModelsTTL: ttl, ServersTTL: ttl, AnalyticsTTL: ttl, MaxDBInFlight: o.maxDB, OnShed: metrics.Shed,
			MaxDBInFlightPerUser: o.maxDBPerUser, DBQueueWait: o.dbQueueWait,
			Gateway: o.gateway,
		},
		Server: server.Config{Metrics: metrics, Logger: log},
	})
	hs := httptest.NewUnstartedServer(st.Handler)
	hs.Config.ReadTimeout, hs.Config.WriteTimeout = o.httpTimeout, o.httpTimeout
	hs.Start()
	t.Cleanup(hs.Close)
	return &env{t: t, srv: st.API, svc: st.Service, h: st.Handler, http: hs, db: db, cache: c, url: hs.URL, dbu: dbURL, pfx: copts.Prefix}
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resp is a response read whole.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	testenv.DecodeJSON(t, r.body, v)
}

func (r resp) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.json(t, &e)
	if e.Error.Message == "" {
		t.Errorf("error without a message: %s", r.body)
	}
	return e.Error.Code
}

func (e *env) apiClient() *testenv.Client {
	return &testenv.Client{T: e.t, URL: e.url, AdminToken: adminToken}
}

// do sends a request; body may be a string, []byte or any JSON value.
func (e *env) do(method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	return fromTestenv(e.apiClient().Do(method, path, token, body, hdr...))
}

func (e *env) must(want int, method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	return fromTestenv(e.apiClient().Must(want, method, path, token, body, hdr...))
}

// fromTestenv keeps the lower-case resp that the tests of this package use.
func fromTestenv(r testenv.Response) resp {
	return resp{status: r.Status, header: r.Header, body: r.Body}
}

// user creates a user through the API and returns its token and ID.
func (e *env) user(name string) (token, id string) {
	e.t.Helper()
	return e.apiClient().User(name)
}

func (e *env) model(token string, body map[string]any) modellab.Model {
	e.t.Helper()
	return e.apiClient().Model(token, body)
}

func (e *env) models(token string) []modellab.Model {
	e.t.Helper()
	var out struct {
		Models []modellab.Model `json:"models"`
	}
	e.must(200, "GET", "/api/models", token, nil).json(e.t, &out)
	return out.Models
}

func names(ms []modellab.Model) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

type statusBody struct {
	Servers []struct {
		modellab.Server
		Model *modellab.Model `json:"model"`
	} `json:"servers"`
	Summary service.ServerSummary `json:"summary"`
}

func (e *env) status(token string) statusBody {
	e.t.Helper()
	var out statusBody
	e.must(200, "GET", "/api/servers/status", token, nil).json(e.t, &out)
	return out
}

func (e *env) metric(name string, labels map[string]string) float64 {
	return e.srv.Metrics().Gather(name, labels)
}

func (e *env) server(token string, body map[string]any) modellab.Server {
	e.t.Helper()
	var s modellab.Server
	e.must(201, "POST", "/api/servers", token, body).json(e.t, &s)
	return s
}
