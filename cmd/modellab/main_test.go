package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

// proc is one `modellab serve` started through run() on :0.
type proc struct {
	url    string
	token  string // the demo token, when one was printed
	cancel context.CancelFunc
	done   chan int
	mu     sync.Mutex
	stderr strings.Builder
	out    strings.Builder // stdout, line by line
}

func (p *proc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

var (
	listenRE = regexp.MustCompile(`listening on (http://\S+)`)
	tokenRE  = regexp.MustCompile(`token: (\S+)`)
)

// startServe runs `modellab serve --addr 127.0.0.1:0` with env and waits until
// it listens.
func startServe(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	return startServeArgs(t, env, append([]string{"--addr", "127.0.0.1:0"}, args...)...)
}

// startServeArgs runs `modellab serve ARGS` with env and waits until it
// listens.
// listenWithin bounds how long serve may take to listen. Seeding the demo
// set takes under a second in a normal build but 15–30 s under -race on
// two loaded cores (the SQLite driver is translated C, which the race
// detector instruments line by line), so the bound is generous: it catches
// a serve that hangs, not a slow one.
const listenWithin = 2 * time.Minute

func startServeArgs(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{cancel: cancel, done: make(chan int, 1)}
	pr, pw := io.Pipe()
	getenv := func(k string) string {
		if v, ok := env[k]; ok || k != "SHUTDOWN_DELAY_MS" {
			return v
		}
		// Tests stop serve by cancelling it; the readiness delay before
		// the drain is for load balancers and has its own test.
		return "0"
	}
	argv := append([]string{"modellab", "serve"}, args...)
	go func() {
		code := run(ctx, argv, getenv, strings.NewReader(""), pw, lockedWriter{&p.mu, &p.stderr})
		pw.Close()
		p.done <- code
	}()
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			if m := tokenRE.FindStringSubmatch(line); m != nil {
				p.token = m[1]
			}
			if m := listenRE.FindStringSubmatch(line); m != nil {
				p.url = m[1]
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case code := <-p.done:
		t.Fatalf("serve exited with %d before listening: %s", code, p.logs())
	case <-time.After(listenWithin):
		t.Fatalf("serve did not listen within %s: %s", listenWithin, p.logs())
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) stop(t *testing.T) int {
	p.cancel()
	select {
	case code := <-p.done:
		p.done <- code
		return code
	case <-time.After(30 * time.Second):
		t.Errorf("serve did not stop within 30s")
		return -1
	}
}

func get(t *testing.T, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// TestServeDemoEndToEnd is the newcomer's path: serve on an empty SQLite
// database, demo data seeded, a token printed, the API answering.
func TestServeDemoEndToEnd(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	p := startServe(t, map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(dir, "demo.db"),
		"DISABLE_REDIS_CACHE": "true",
		// Slow statements under the race detector are not what this tests.
		"DB_TIMEOUT_MS": "30000",
	})
	res, body := get(t, p.url+"/api/models", "")
	if res.StatusCode != 200 {
		t.Fatalf("GET /api/models: %d %s", res.StatusCode, body)
	}
	// The README promises an answer within 10 s; the race detector makes
	// the seed 5-10x slower, so it gets a looser bound.
	bound := 10 * time.Second
	if raceEnabled {
		bound = 60 * time.Second
	}
	if took := time.Since(start); took > bound {
		t.Errorf("first answer after %s, want < %s", took, bound)
	}
	var models struct {
		Models []json.RawMessage `json:"models"`
	}
	if err := json.Unmarshal(body, &models); err != nil || len(models.Models) == 0 {
		t.Fatalf("models: %v, %d", err, len(models.Models))
	}
	if p.token == "" {
		t.Fatalf("no demo token printed")
	}
	for _, path := range []string{"/api/servers/status", "/api/analytics/data", "/api/models", "/api/runs"} {
		res, body := get(t, p.url+path, p.token)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s as demo: %d %s", path, res.StatusCode, body)
		}
	}
	var runs struct {
		Runs []struct{ Status string } `json:"runs"`
	}
	if _, body := get(t, p.url+"/api/runs", p.token); json.Unmarshal(body, &runs) != nil || len(runs.Runs) < 6 {
		t.Errorf("the demo user has %d training runs, want at least 6: %s", len(runs.Runs), body)
	}
	_, body = get(t, p.url+"/readyz", "")
	if !strings.Contains(string(body), `"mode":"memory"`) || !strings.Contains(string(body), `"redis":"disabled"`) {
		t.Errorf("readyz: %s", body)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM-like cancel", code)
	}

	// A second start on the same database seeds nothing and mints nothing:
	// it says how to mint a token, and `modellab token` does.
	db := "sqlite://" + filepath.Join(dir, "demo.db")
	p2 := startServe(t, map[string]string{"DATABASE_URL": db, "DISABLE_REDIS_CACHE": "true"})
	if p2.token != "" {
		t.Fatalf("a token printed on restart: %s", p2.token)
	}
	if !strings.Contains(p2.stdout(), "modellab token --user demo") {
		t.Errorf("the restart does not say how to mint a token:\n%s", p2.stdout())
	}
	code, stdout, stderr := runCLI(map[string]string{"DATABASE_URL": db}, "token", "--user", "demo", "--name", "ops", "--expires-in", "1h")
	tok := strings.TrimSpace(stdout)
	if code != 0 || !strings.HasPrefix(tok, modellab.TokenPrefix) || strings.Contains(tok, "\n") {
		t.Fatalf("modellab token: exit %d, stdout %q, stderr %q; want the secret alone", code, stdout, stderr)
	}
	if res, body := get(t, p2.url+"/api/servers/status", tok); res.StatusCode != 200 {
		t.Fatalf("the minted token: %d %s", res.StatusCode, body)
	}
	var list struct {
		Tokens []modellab.Token `json:"tokens"`
	}
	if _, body := get(t, p2.url+"/api/tokens", tok); json.Unmarshal(body, &list) != nil || len(list.Tokens) != 2 ||
		list.Tokens[0].Name != "ops" || list.Tokens[0].ExpiresAt == nil {
		t.Errorf("demo's tokens after a restart: %s, want the seed's and ops (expiring), nothing more", body)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"MODELS_CACHE_TTL_MS": "soon"}, nil, "MODELS_CACHE_TTL_MS"},
		{map[string]string{"CACHE_STALE_MS": "-5"}, nil, "CACHE_STALE_MS"},
		{map[string]string{"DISABLE_CACHE": "maybe"}, nil, "DISABLE_CACHE"},
		{map[string]string{"REDIS_URL": "http://x"}, nil, "REDIS_URL"},
		{map[string]string{"UPSTASH_REDIS_URL": "memcache://x"}, nil, "UPSTASH_REDIS_URL"},
		{map[string]string{"DATABASE_URL": "mysql://x"}, nil, "DATABASE_URL"},
		{map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
		{map[string]string{"MAX_DB_IN_FLIGHT_PER_USER": "0"}, nil, "MAX_DB_IN_FLIGHT_PER_USER"},
		{map[string]string{"MAX_DB_IN_FLIGHT_PER_USER": "some"}, nil, "MAX_DB_IN_FLIGHT_PER_USER"},
		{map[string]string{"MAX_DB_IN_FLIGHT": "8", "MAX_DB_IN_FLIGHT_PER_USER": "9"}, nil, "MAX_DB_IN_FLIGHT_PER_USER"},
		{nil, []string{"--nope"}, "flag provided but not defined"},
	}
	for _, c := range cases {
		var stderr strings.Builder
		getenv := func(k string) string { return c.env[k] }
		code := run(context.Background(), append([]string{"modellab", "serve"}, c.args...), getenv, nil, io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("env %v args %v: exit %d, stderr %q; want exit 2 naming %s", c.env, c.args, code, stderr.String(), c.want)
		}
	}
	var stderr strings.Builder
	if code := run(context.Background(), []string{"modellab", "frobnicate"}, func(string) string { return "" }, nil, io.Discard, &stderr); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
}

func TestRedisURLPrecedence(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "redis://localhost:6379"},
		{map[string]string{"REDIS_HOST": "cache", "REDIS_PORT": "7000"}, "redis://cache:7000"},
		{map[string]string{"REDIS_URL": "redis://a:1", "REDIS_HOST": "b"}, "redis://a:1"},
		{map[string]string{"REDIS_URL": "redis://a:1", "UPSTASH_REDIS_URL": "rediss://u:2"}, "rediss://u:2"},
	}
	for _, c := range cases {
		e := &envReader{getenv: func(k string) string { return c.env[k] }, scope: inServe}
		got, err := redisURL(e.str)
		if err != nil || got != c.want {
			t.Errorf("%v: %q, %v; want %q", c.env, got, err, c.want)
		}
	}
	cfg, err := loadConfig(func(k string) string { return map[string]string{"PORT": "9999"}[k] })
	if err != nil || cfg.Addr != ":9999" {
		t.Errorf("PORT: %q %v", cfg.Addr, err)
	}
}

// MAX_DB_IN_FLIGHT defaults to the pool's size (DB_MAX_CONNS, or 20);
// MAX_DB_IN_FLIGHT_PER_USER defaults to a quarter of it, rounded up, and
// takes any value from 1 to it.
func TestPerUserConfig(t *testing.T) {
	cases := []struct {
		env           map[string]string
		total, wantPU int
	}{
		{map[string]string{}, 20, 5},
		{map[string]string{"DB_MAX_CONNS": "40"}, 40, 10},
		{map[string]string{"DB_MAX_CONNS": "40", "MAX_DB_IN_FLIGHT": "10"}, 10, 3},
		{map[string]string{"MAX_DB_IN_FLIGHT": "1"}, 1, 1},
		{map[string]string{"MAX_DB_IN_FLIGHT": "64", "MAX_DB_IN_FLIGHT_PER_USER": "64"}, 64, 64},
		{map[string]string{"MAX_DB_IN_FLIGHT": "8", "MAX_DB_IN_FLIGHT_PER_USER": " 2 "}, 8, 2},
	}
	for _, c := range cases {
		cfg, err := loadConfig(func(k string) string { return c.env[k] })
		if err != nil || cfg.MaxDBInFlight != c.total || cfg.MaxDBPerUser != c.wantPU {
			t.Errorf("%v: %d in flight, per user %d, %v; want %d, %d", c.env, cfg.MaxDBInFlight, cfg.MaxDBPerUser, err, c.total, c.wantPU)
		}
	}
}

// GC_HEAP_FLOOR_MB is a size in MB (0: none) and gives way to GOGC, which
// the operator sets for the runtime itself.
func TestHeapFloorConfig(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want uint64
		bad  bool
	}{
		{env: map[string]string{}, want: 64 << 20},
		{env: map[string]string{"GC_HEAP_FLOOR_MB": "256"}, want: 256 << 20},
		{env: map[string]string{"GC_HEAP_FLOOR_MB": "0"}, want: 0},
		{env: map[string]string{"GOGC": "200"}, want: 0},
		{env: map[string]string{"GOGC": "off", "GC_HEAP_FLOOR_MB": "256"}, want: 0},
		{env: map[string]string{"GC_HEAP_FLOOR_MB": "-1"}, bad: true},
		{env: map[string]string{"GC_HEAP_FLOOR_MB": "64MB"}, bad: true},
	} {
		cfg, err := loadConfig(func(k string) string { return c.env[k] })
		if c.bad {
			if err == nil || !strings.Contains(err.Error(), "GC_HEAP_FLOOR_MB") {
				t.Errorf("%v: error %v, want one naming GC_HEAP_FLOOR_MB", c.env, err)
			}
			continue
		}
		if err != nil || cfg.HeapFloor != c.want {
			t.Errorf("%v: floor %d, %v; want %d", c.env, cfg.HeapFloor, err, c.want)
		}
	}
}

// DEBUG_ADDR serves the profiles on their own listener, and only there.
func TestDebugListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := ln.Addr().String()
	ln.Close()
	p := startServe(t, map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "d.db"),
		"DISABLE_REDIS_CACHE": "true", "DEBUG_ADDR": debugAddr, "LOG_LEVEL": "warn",
	}, "--demo=false")
	res, body := get(t, "http://"+debugAddr+"/debug/pprof/", "")
	if res.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Errorf("GET /debug/pprof/ on DEBUG_ADDR = %d, want 200 with the profile index", res.StatusCode)
	}
	if res, _ := get(t, p.url+"/debug/pprof/", ""); res.StatusCode != 404 {
		t.Errorf("GET /debug/pprof/ on the API address = %d, want 404", res.StatusCode)
	}
}
