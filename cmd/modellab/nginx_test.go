package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testbin"
	"github.com/modellab/modellab/internal/testenv"
	"github.com/modellab/modellab/internal/testnginx"
)

// findTool returns the path of a checking tool: on PATH, or unpacked by
// scripts/tools.sh under .cache/tools (which the test runs once when the
// tool is missing). It skips the test, saying why, when the tool cannot be
// had.
func findTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	script := repoPath("scripts", "tools.sh")
	if out, err := exec.Command(script, name).CombinedOutput(); err != nil {
		t.Skipf("%s is not installed and could not be fetched (%v): %s", name, err, out)
	}
	out, err := exec.Command(script, "--path", name).Output()
	if err != nil {
		t.Skipf("%s: scripts/tools.sh --path: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// nginx -t accepts the configuration.
func TestNginxConfigSyntax(t *testing.T) {
	nginx := findTool(t, "nginx")
	dir := t.TempDir()
	conf := testnginx.Conf(t, dir, []string{"127.0.0.1:18001", "127.0.0.1:18002"}, "")
	out, err := exec.Command(nginx, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf, "-t").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// nginx with this configuration in front of two instances, one of them
// sick (it sheds everything with 503, then goes away): GETs are retried on
// the healthy one (proxy_next_upstream http_503, then error), a POST is
// never retried, and request IDs reach modellab.
func TestNginxInFrontOfTwoInstances(t *testing.T) {
	nginx := findTool(t, "nginx")
	healthy := startServe(t, map[string]string{
		"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "n.db"), "DISABLE_REDIS_CACHE": "true", "ACCESS_LOG": "false", "LOG_LEVEL": "warn",
	}, "--demo=false")
	var sickGets, sickPosts atomic.Int64
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			sickPosts.Add(1)
		} else {
			sickGets.Add(1)
		}
		w.Header().Set("Retry-After", "1")
		http.Error(w, "sick instance", http.StatusServiceUnavailable)
	}))
	defer sick.Close()
	dir := t.TempDir()
	front := testenv.FreeAddr(t)
	conf := testnginx.Conf(t, dir, []string{strings.TrimPrefix(sick.URL, "http://"), strings.TrimPrefix(healthy.url, "http://")}, front)
	cmd := exec.Command(nginx, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf)
	testbin.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + front
	waitHTTP(t, base+"/healthz", filepath.Join(dir, "error.log"))

	// A POST that nginx sends to the sick instance comes back as its 503:
	// retrying it could apply a write twice. (Sent before the GETs, which
	// make nginx mark the sick instance down.)
	for i := 0; i < 10 && sickPosts.Load() == 0; i++ {
		before := sickPosts.Load()
		res, err := http.Post(base+"/api/models", "application/json", strings.NewReader(`{"name":"x","provider":"y"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if sickPosts.Load() > before && (res.StatusCode != 503 || !strings.Contains(string(b), "sick")) {
			t.Errorf("a POST the sick instance refused came back %d %q: nginx retried a non-idempotent request", res.StatusCode, b)
		}
	}
	if sickPosts.Load() == 0 {
		t.Errorf("round robin never sent a POST to the sick instance")
	}

	res, body := get(t, base+"/api/models", "")
	if res.StatusCode != 200 || res.Header.Get("X-Cache") == "" {
		t.Fatalf("GET /api/models through nginx: %d, X-Cache %q: %s", res.StatusCode, res.Header.Get("X-Cache"), body)
	}
	if id := res.Header.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("X-Request-Id %q, want nginx's $request_id passed to modellab and echoed", id)
	}
	req, _ := http.NewRequest("GET", base+"/healthz", nil)
	req.Header.Set("X-Request-Id", "client-chosen-1")
	if res, err := http.DefaultClient.Do(req); err != nil || res.Header.Get("X-Request-Id") != "client-chosen-1" {
		t.Errorf("the caller's X-Request-Id was not kept: %v %v", err, res.Header)
	} else {
		res.Body.Close()
	}
	for i := 0; i < 20; i++ {
		if res, body := get(t, base+"/api/models", ""); res.StatusCode != 200 {
			t.Fatalf("GET %d with one instance shedding: %d %s", i, res.StatusCode, body)
		}
	}
	if sickGets.Load() == 0 {
		t.Errorf("no GET reached the sick instance: the retries were not exercised")
	}
	// The sick instance goes away: connections refused, GETs still answered.
	sick.Close()
	for i := 0; i < 20; i++ {
		if res, body := get(t, base+"/api/models", ""); res.StatusCode != 200 {
			t.Fatalf("GET %d with one instance gone: %d %s", i, res.StatusCode, body)
		}
	}
}

func waitHTTP(t *testing.T, url, errorLog string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v\n%s", url, err, readFileOr(errorLog))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readFileOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
