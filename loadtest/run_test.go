package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testenv"
)

// closedPortURL returns the URL of a port on 127.0.0.1 that nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestRunClosedLoopCounts(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared-runtime=%v", shared), func(t *testing.T) {
			var served atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				w.Write([]byte(`{"models":[]}`))
			}))
			defer srv.Close()

			const conns = 4
			rep, err := Run(context.Background(), Config{
				URL: srv.URL, Connections: conns, Duration: 300 * time.Millisecond,
				Targets:       []Target{{Name: "api-models", Path: "/api/models"}},
				SharedRuntime: shared,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(rep.Targets) != 1 {
				t.Fatalf("targets: got %d, want 1", len(rep.Targets))
			}
			tr := rep.Targets[0]
			// Requests still in flight when the duration ends are served but not
			// counted: at most one per connection.
			got, n := tr.Requests, served.Load()
			if got == 0 || got > n || n > got+conns {
				t.Fatalf("report requests %d, server served %d (connections %d)", got, n, conns)
			}
			if tr.StatusCounts["200"] != got || tr.Failures != 0 {
				t.Fatalf("status counts %v failures %d, want 200:%d and no failures", tr.StatusCounts, tr.Failures, got)
			}
			if want := float64(got) / 0.3; !near(tr.RPS, want, want*0.1) {
				t.Fatalf("rps: got %v, want about %v", tr.RPS, want)
			}
			if tr.P50MS <= 0 || tr.P50MS > tr.P99MS || tr.P99MS > tr.MaxMS || tr.AvgMS <= 0 {
				t.Fatalf("latencies not ordered: %+v", tr)
			}
		})
	}
}

func TestRunOpenLoopRate(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
	}))
	defer srv.Close()

	rep, err := Run(context.Background(), Config{
		URL: srv.URL, Connections: 8, Duration: 500 * time.Millisecond, Rate: 200,
		Targets: []Target{{Name: "x", Path: "/"}},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// 200 req/s for 0.5 s: 100 intended sends, the last one at 495 ms.
	tr := rep.Targets[0]
	if tr.Requests < 70 || tr.Requests > 100 {
		t.Fatalf("requests: got %d, want about 100", tr.Requests)
	}
	if tr.RPS < 140 || tr.RPS > 201 {
		t.Fatalf("rps: got %v, want about 200", tr.RPS)
	}
}

// TestRunOpenLoopNoCoordinatedOmission: one connection to a server taking
// 50 ms per request, asked for 100 req/s. The requests queue behind each
// other; their latency counts from their intended send time, so it grows far
// beyond the 50 ms service time.
func TestRunOpenLoopNoCoordinatedOmission(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
	}))
	defer srv.Close()

	rep, err := Run(context.Background(), Config{
		URL: srv.URL, Connections: 1, Duration: 600 * time.Millisecond, Rate: 100,
		Targets: []Target{{Name: "x", Path: "/"}},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	tr := rep.Targets[0]
	if tr.Requests < 5 || tr.Requests > 12 {
		t.Fatalf("requests: got %d, want about 11 (one per 50 ms)", tr.Requests)
	}
	if tr.MaxMS < 200 {
		t.Fatalf("max latency %v ms: queueing hidden (coordinated omission)", tr.MaxMS)
	}
	if tr.P50MS < 100 {
		t.Fatalf("p50 %v ms: want well above the 50 ms service time", tr.P50MS)
	}
}

func TestRunFailuresByStatus(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/login", http.StatusSeeOther) })
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/boom", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	mux.HandleFunc("/hangup", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		path        string
		code        string
		allFailures bool
	}{
		{"/ok", "200", false},
		{"/redirect", "303", false},
		{"/missing", "404", true},
		{"/boom", "500", true},
		{"/hangup", "error", true},
	}
	var targets []Target
	for _, tc := range tests {
		targets = append(targets, Target{Name: tc.path, Path: tc.path})
	}
	rep, err := Run(context.Background(), Config{URL: srv.URL, Connections: 2, Duration: 500 * time.Millisecond, Targets: targets})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, tc := range tests {
		tr := rep.Targets[i]
		if tr.Name != tc.path {
			t.Fatalf("target %d: name %q, want %q", i, tr.Name, tc.path)
		}
		if tr.Requests == 0 || tr.StatusCounts[tc.code] != tr.Requests || len(tr.StatusCounts) != 1 {
			t.Fatalf("%s: requests %d, status counts %v, want all %s", tc.path, tr.Requests, tr.StatusCounts, tc.code)
		}
		want := int64(0)
		if tc.allFailures {
			want = tr.Requests
		}
		if tr.Failures != want {
			t.Fatalf("%s: failures %d, want %d", tc.path, tr.Failures, want)
		}
	}
}

func TestRunSendsTokenAndPaths(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // path?query -> Authorization
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.RequestURI()] = r.Header.Get("Authorization") + "|" + r.Header.Get("Accept-Encoding") + "|" + r.Header.Get("Cookie")
		mu.Unlock()
	}))
	defer srv.Close()
	_, err := Run(context.Background(), Config{
		URL: srv.URL + "/prefix/", Connections: 1, Duration: 300 * time.Millisecond, Token: "s3cret",
		Headers: []string{"Cookie: modellab_session=abc"},
		Targets: []Target{{Name: "a", Path: "/api/models"}, {Name: "b", Path: "/x?y=1"}},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := map[string]string{"/prefix/api/models": "Bearer s3cret||modellab_session=abc", "/prefix/x?y=1": "Bearer s3cret||modellab_session=abc"}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("seen %v, want %v", seen, want)
	}
	for k, v := range want {
		if seen[k] != v {
			t.Fatalf("seen %v, want %v", seen, want)
		}
	}
}

func TestRunUnreachable(t *testing.T) {
	start := time.Now()
	_, err := Run(context.Background(), Config{URL: closedPortURL(t), Duration: time.Second,
		Targets: []Target{{Name: "x", Path: "/"}}})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("took %v to give up on a closed port", d)
	}
}

func TestRunServerGoesAway(t *testing.T) {
	// Reachable at first, then gone: the run completes and reports failures.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	time.AfterFunc(100*time.Millisecond, func() { srv.CloseClientConnections(); srv.Close() })
	rep, err := Run(context.Background(), Config{URL: url, Connections: 2, Duration: 400 * time.Millisecond,
		Targets: []Target{{Name: "x", Path: "/"}}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	tr := rep.Targets[0]
	if tr.StatusCounts["200"] == 0 || tr.StatusCounts["error"] == 0 || tr.Failures != tr.StatusCounts["error"] {
		t.Fatalf("got %+v, want some 200s, then errors counted as failures", tr)
	}
	// Refused connections back off instead of spinning.
	if tr.StatusCounts["error"] > 2*400 {
		t.Fatalf("%d errors in 400ms over 2 connections: no backoff", tr.StatusCounts["error"])
	}
}

func TestRunContextCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Config{URL: srv.URL, Connections: 2, Duration: 10 * time.Second,
		Targets: []Target{{Name: "a", Path: "/"}, {Name: "b", Path: "/"}}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	if len(rep.Targets) != 1 || rep.Targets[0].Requests == 0 {
		t.Fatalf("got %+v, want the partial report of the first target", rep)
	}
	if want := float64(rep.Targets[0].Requests) / 0.2; !near(rep.Targets[0].RPS, want, want*0.25) {
		t.Fatalf("rps %v computed over the wrong time, want about %v", rep.Targets[0].RPS, want)
	}
}

func TestRunProgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	var buf testenv.SyncBuffer
	_, err := Run(context.Background(), Config{URL: srv.URL, Connections: 1, Duration: 1500 * time.Millisecond,
		Targets: []Target{{Name: "api-models", Path: "/"}}, Progress: &buf})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\r")
	if len(lines) != 3 || !strings.HasSuffix(out, "\n") { // "", the 1 s tick, the final line
		t.Fatalf("progress %q: want a tick and a final line", out)
	}
	for _, l := range lines[1:] {
		for _, part := range []string{"api-models", "requests", "req/s", "failures 0"} {
			if !strings.Contains(l, part) {
				t.Fatalf("progress line %q lacks %q", l, part)
			}
		}
	}
}

func TestRunBadConfig(t *testing.T) {
	tests := []Config{
		{URL: "ftp://x", Targets: []Target{{Name: "x", Path: "/"}}},
		{URL: "http://127.0.0.1:1"},
		{URL: "http://127.0.0.1:1", Targets: []Target{{Name: "x", Path: "nope"}}},
		{URL: "http://127.0.0.1:1", Rate: -1, Targets: []Target{{Name: "x", Path: "/"}}},
		{URL: "http://127.0.0.1:1", Headers: []string{"Bad\r\nX: y"}, Targets: []Target{{Name: "x", Path: "/"}}},
		{URL: "http://127.0.0.1:1", Headers: []string{"Transfer-Encoding: chunked"}, Targets: []Target{{Name: "x", Path: "/"}}},
	}
	for _, cfg := range tests {
		if _, err := Run(context.Background(), cfg); err == nil || errors.Is(err, ErrUnreachable) {
			t.Fatalf("Run(%+v): got %v, want a config error", cfg, err)
		}
	}
}

func TestNamedTarget(t *testing.T) {
	want := map[string]string{
		"home": "/", "models": "/models", "monitor": "/monitor", "analytics": "/analytics", "docs": "/docs",
		"academy": "/academy", "chat": "/chat",
		"api-models": "/api/models", "api-servers": "/api/servers/status", "api-analytics": "/api/analytics/data",
		"api-runs": "/api/runs",
	}
	for name, path := range want {
		got, ok := NamedTarget(name)
		if !ok || got != (Target{Name: name, Path: path}) {
			t.Fatalf("NamedTarget(%q) = %v, %v; want path %q", name, got, ok, path)
		}
	}
	if _, ok := NamedTarget("nope"); ok {
		t.Fatalf("NamedTarget(nope) found")
	}
	if got := len(TargetNames()); got != len(want) {
		t.Fatalf("TargetNames: %d names, want %d", got, len(want))
	}
}
