package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modellab/modellab/internal/testpg"
)

// modelCount is the number of models anonymous callers see.
func modelCount(t *testing.T, url string) int {
	t.Helper()
	res, body := get(t, url+"/api/models", "")
	if res.StatusCode != 200 {
		t.Fatalf("GET /api/models: %d %s", res.StatusCode, body)
	}
	var m struct {
		Models []json.RawMessage `json:"models"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return len(m.Models)
}

// --demo is a boolean flag: alone, =false, before other flags; its default
// depends on the engine.
func TestDemoFlag(t *testing.T) {
	quiet := map[string]string{"DISABLE_REDIS_CACHE": "true", "ACCESS_LOG": "false", "LOG_LEVEL": "warn", "DB_TIMEOUT_MS": "30000"}
	env := func(db string) map[string]string {
		e := map[string]string{"DATABASE_URL": db}
		for k, v := range quiet {
			e[k] = v
		}
		return e
	}
	t.Run("sqlite --demo before --addr", func(t *testing.T) {
		p := startServeArgs(t, env("sqlite://"+filepath.Join(t.TempDir(), "a.db")), "--demo", "--addr", "127.0.0.1:0")
		if p.token == "" || modelCount(t, p.url) == 0 {
			t.Errorf("--demo: token %q, %d models; want a token and demo models", p.token, modelCount(t, p.url))
		}
	})
	t.Run("sqlite with ADMIN_TOKEN", func(t *testing.T) {
		// The admin user that ADMIN_TOKEN creates does not count as data.
		e := env("sqlite://" + filepath.Join(t.TempDir(), "adm.db"))
		e["ADMIN_TOKEN"] = "admin-secret-for-the-test"
		p := startServe(t, e)
		if p.token == "" || modelCount(t, p.url) == 0 {
			t.Errorf("with ADMIN_TOKEN: token %q, %d models; want a token and demo models", p.token, modelCount(t, p.url))
		}
		if res, body := get(t, p.url+"/api/cache/stats", e["ADMIN_TOKEN"]); res.StatusCode != 200 {
			t.Errorf("the admin token: %d %s", res.StatusCode, body)
		}
	})
	t.Run("sqlite --demo=false", func(t *testing.T) {
		p := startServe(t, env("sqlite://"+filepath.Join(t.TempDir(), "b.db")), "--demo=false")
		if p.token != "" || modelCount(t, p.url) != 0 {
			t.Errorf("--demo=false: token %q, %d models; want neither", p.token, modelCount(t, p.url))
		}
	})
	if testing.Short() {
		t.Skip("PostgreSQL cases skipped in -short mode")
	}
	t.Run("postgres default off", func(t *testing.T) {
		p := startServe(t, env(testpg.URL(t)))
		if p.token != "" || modelCount(t, p.url) != 0 {
			t.Errorf("PostgreSQL without --demo: token %q, %d models; want neither", p.token, modelCount(t, p.url))
		}
	})
	t.Run("postgres --demo", func(t *testing.T) {
		p := startServe(t, env(testpg.URL(t)), "--demo")
		if p.token == "" || modelCount(t, p.url) == 0 {
			t.Errorf("PostgreSQL --demo: token %q; want a token and demo models", p.token)
		}
	})
}

// modellab_build_info is on /metrics with the build's labels.
func TestBuildInfoMetric(t *testing.T) {
	p := startServe(t, map[string]string{
		"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "m.db"), "DISABLE_REDIS_CACHE": "true", "LOG_LEVEL": "warn",
	}, "--demo=false")
	_, body := get(t, p.url+"/metrics", "")
	b := readBuildInfo()
	want := `modellab_build_info{commit="` + b.Commit + `",goversion="` + b.GoVersion + `",version="` + b.Version + `"} 1`
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func TestMigrate(t *testing.T) {
	urls := map[string]string{"sqlite": "sqlite://" + filepath.Join(t.TempDir(), "mig.db")}
	if !testing.Short() {
		urls["postgres"] = testpg.URL(t)
	}
	for engine, url := range urls {
		t.Run(engine, func(t *testing.T) {
			code, out, errs := runCLI(nil, "migrate", "status", "--database", url)
			if code != 0 || !strings.Contains(out, "pending") || strings.Contains(out, "applied") || !strings.Contains(out, "00001_init.sql") {
				t.Fatalf("status before: exit %d\n%s%s", code, out, errs)
			}
			// DATABASE_URL, and up as the default action.
			code, out, errs = runCLI(map[string]string{"DATABASE_URL": url, "LOG_LEVEL": "warn"}, "migrate")
			if code != 0 || !strings.Contains(out, "applied 1 00001_init.sql") || !strings.Contains(out, "is at version") {
				t.Fatalf("up: exit %d\n%s%s", code, out, errs)
			}
			code, out, errs = runCLI(nil, "migrate", "up", "--database", url)
			if code != 0 || strings.Contains(out, "applied ") {
				t.Fatalf("second up applied something: exit %d\n%s%s", code, out, errs)
			}
			code, out, errs = runCLI(nil, "migrate", "--database", url, "status")
			if code != 0 || strings.Contains(out, "pending") || !strings.Contains(out, "applied") {
				t.Fatalf("status after: exit %d\n%s%s", code, out, errs)
			}
		})
	}
	code, _, errs := runCLI(nil, "migrate", "--database", "sqlite:///nonexistent-dir/x/y.db")
	if code != 1 || errs == "" {
		t.Errorf("unopenable database: exit %d, stderr %q; want 1 with a message", code, errs)
	}
}

func TestProbe(t *testing.T) {
	p := startServe(t, map[string]string{
		"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "p.db"), "DISABLE_REDIS_CACHE": "true", "LOG_LEVEL": "warn",
	}, "--demo=false")
	if code, out, errs := runCLI(nil, "probe", p.url+"/healthz"); code != 0 || !strings.Contains(out, "200") {
		t.Errorf("probe /healthz: exit %d, %q %q", code, out, errs)
	}
	// Without a URL: /healthz on the port that ADDR names.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(p.url, "http://"))
	if code, out, errs := runCLI(map[string]string{"ADDR": ":" + port}, "probe"); code != 0 || !strings.Contains(out, "127.0.0.1:"+port+"/healthz") {
		t.Errorf("probe via ADDR: exit %d, %q %q", code, out, errs)
	}
	if code, _, _ := runCLI(map[string]string{"PORT": port}, "probe"); code != 0 {
		t.Errorf("probe via PORT: exit %d", code)
	}
	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer unhealthy.Close()
	if code, _, errs := runCLI(nil, "probe", unhealthy.URL); code != 1 || !strings.Contains(errs, "503") {
		t.Errorf("probe of a 503: exit %d, %q; want 1 naming the status", code, errs)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if code, _, _ := runCLI(nil, "probe", "http://"+closed+"/healthz"); code != 1 {
		t.Errorf("probe of a closed port: exit %d, want 1", code)
	}
}

func TestProbeAddr(t *testing.T) {
	for in, want := range map[string]string{":8080": "127.0.0.1:8080", "0.0.0.0:9": "127.0.0.1:9", "[::]:7": "[::1]:7", "10.0.0.1:80": "10.0.0.1:80"} {
		if got := probeAddr(in); got != want {
			t.Errorf("probeAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// bench runs both halves over one seeded database and prints them as JSON.
func TestBenchJSON(t *testing.T) {
	code, out, errs := runCLI(map[string]string{"DB_TIMEOUT_MS": "30000"},
		"bench", "--size", "demo", "--duration", "500ms", "--connections", "2", "--targets", "api-models,api-servers", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var cmp struct {
		Before, After struct {
			Targets []struct {
				Name     string `json:"name"`
				Requests int    `json:"requests"`
				Failures int    `json:"failures"`
			} `json:"targets"`
		}
	}
	if err := json.Unmarshal([]byte(out), &cmp); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for half, ts := range map[string]int{"before": len(cmp.Before.Targets), "after": len(cmp.After.Targets)} {
		if ts != 2 {
			t.Errorf("%s: %d targets, want 2: %s", half, ts, out)
		}
	}
	// The uncached half may complete nothing in so short a run on a loaded
	// machine (under -race a miss takes longer than the run); the cached
	// half must have served, without failures.
	for i, tg := range cmp.After.Targets {
		if tg.Requests == 0 || tg.Failures != 0 {
			t.Errorf("cache on, %s: %d requests, %d failures; want some and none", tg.Name, tg.Requests, tg.Failures)
		}
		if i < len(cmp.Before.Targets) && cmp.Before.Targets[i].Name != tg.Name {
			t.Errorf("before and after list different targets: %s, %s", cmp.Before.Targets[i].Name, tg.Name)
		}
	}
}

// TestTokenCommand: bad input is a usage error (2), an unknown user a
// failure (1) that says so; nothing reaches stdout but a secret.
func TestTokenCommand(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "t.db")
	env := map[string]string{"DATABASE_URL": db}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"token"}, 2, "--user is required"},
		{[]string{"token", "--user", "demo", "--expires-in", "-1h"}, 2, "--expires-in"},
		{[]string{"token", "--user", "demo", "--expires-in", "soon"}, 2, "expires-in"},
		{[]string{"token", "--user", "demo", "extra"}, 2, "unexpected"},
		{[]string{"token", "--user", "nobody"}, 1, `no user named "nobody"`},
		{[]string{"token", "--user", "demo", "--database", "mysql://x"}, 2, "--database"},
	} {
		code, stdout, stderr := runCLI(env, c.args...)
		if code != c.code || stdout != "" || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and %q", c.args, code, stdout, stderr, c.code, c.msg)
		}
	}
}
