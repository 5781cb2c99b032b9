package scaletest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testbin"
	"github.com/modellab/modellab/internal/testenv"
	"github.com/modellab/modellab/internal/testnginx"
	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/internal/testredis"
)

// soak reports whether the long variants were asked for (make soak).
func soak() bool { return os.Getenv("MODELLAB_SOAK") != "" }

func repoPath(parts ...string) string {
	return filepath.Join(append([]string{".."}, parts...)...)
}

// findNginx returns nginx: on PATH, or unpacked under .cache/tools by
// scripts/tools.sh (the way scripts/deps.sh fetches it), which the test runs
// when it is missing. It skips, saying why, when nginx cannot be had.
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	script := repoPath("scripts", "tools.sh")
	if out, err := exec.Command(script, "nginx").CombinedOutput(); err != nil {
		t.Skipf("nginx is not installed and could not be fetched with apt-get (%v): %s", err, out)
	}
	out, err := exec.Command(script, "--path", "nginx").Output()
	if err != nil {
		t.Skipf("nginx: scripts/tools.sh --path: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// startNginx runs nginx, unprivileged, with deploy/nginx/modellab.conf as
// shipped except for its upstream addresses and its listen line, on
// 127.0.0.1 only. It returns the front's base URL.
func startNginx(t *testing.T, upstreams []string) string {
	t.Helper()
	nginx := findNginx(t)
	dir := t.TempDir()
	front := testenv.FreeAddr(t)
	conf := testnginx.Conf(t, dir, upstreams, front)
	cmd := exec.Command(nginx, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf)
	testbin.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + front
	waitFor(t, 10*time.Second, "nginx answering", func() bool {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx error.log:\n%s", mustReadFile(t, filepath.Join(dir, "error.log")))
		}
	})
	return base
}

func mustReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// member is one `modellab serve` process on a fixed address that the test
// stops with SIGTERM and starts again on the same address, as an
// orchestrator replaces an instance behind a static upstream list.
type member struct {
	t    *testing.T
	addr string
	env  []string
	cmd  *exec.Cmd
	logs *logBuf
	done chan struct{}
	// sock, when set, is the listening socket on addr that the test holds
	// for the member's whole life, as systemd's socket unit does: every
	// process of the member gets it by socket activation.
	sock *os.File
}

func startMember(t *testing.T, addr string, env map[string]string) *member {
	return startMemberOn(t, addr, nil, env)
}

// startSocketMember is startMember with the listening socket held by the
// test and passed to each process by socket activation.
func startSocketMember(t *testing.T, env map[string]string) *member {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // f is a duplicate: the socket stays open
	t.Cleanup(func() { f.Close() })
	return startMemberOn(t, ln.Addr().String(), f, env)
}

func startMemberOn(t *testing.T, addr string, sock *os.File, env map[string]string) *member {
	m := &member{t: t, addr: addr, sock: sock}
	m.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		m.env = append(m.env, k+"="+v)
	}
	slices.Sort(m.env)
	m.start()
	t.Cleanup(func() {
		if m.cmd.ProcessState == nil {
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	})
	return m
}

func (m *member) start() {
	t := m.t
	t.Helper()
	m.cmd = exec.Command(modellabBinary(t), "serve", "--addr", m.addr, "--demo=false")
	m.cmd.Env = m.env
	if m.sock != nil {
		// LISTEN_PID must name the server's process, which the shell
		// becomes by exec, as systemd sets it between fork and exec.
		m.cmd = exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve --demo=false`, modellabBinary(t))
		m.cmd.Env = m.env
		m.cmd.ExtraFiles = []*os.File{m.sock}
	}
	if m.logs == nil {
		// One buffer for all the member's processes, for the failure report.
		m.logs = &logBuf{}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("modellab on %s logged:\n%s", m.addr, m.logs)
			}
		})
	}
	m.cmd.Stderr = m.logs
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	testbin.DieWithParent(m.cmd)
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start modellab: %v", err)
	}
	m.done = make(chan struct{})
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if listenRE.MatchString(sc.Text()) {
				close(listening)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	select {
	case <-listening:
	case <-m.done:
		t.Fatalf("modellab on %s exited before listening: %s", m.addr, m.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("modellab on %s did not listen within 60s: %s", m.addr, m.logs)
	}
	waitFor(t, 30*time.Second, m.addr+" ready", func() bool {
		res, err := http.Get("http://" + m.addr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
}

// term sends SIGTERM, checks that /readyz turns 503 while the instance
// still serves, and waits for the exit, which must be 0.
func (m *member) term(within time.Duration) {
	t := m.t
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, m.addr+" readyz 503 after SIGTERM", func() bool {
		res, err := http.Get("http://" + m.addr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 503
	})
	select {
	case <-m.done:
	case <-time.After(within):
		t.Fatalf("modellab on %s did not exit within %s of SIGTERM: %s", m.addr, within, m.logs)
	}
	if code := m.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("modellab on %s exited %d after SIGTERM, want 0: %s", m.addr, code, m.logs)
	}
}

// waitTraffic waits until nginx sends the instance API requests again.
func (m *member) waitTraffic(within time.Duration) {
	m.t.Helper()
	first := m.apiRequests()
	waitFor(m.t, within, m.addr+" taking traffic from nginx", func() bool { return m.apiRequests() > first+20 })
}

// apiRequests is the instance's count of /api/ requests, from its metrics.
func (m *member) apiRequests() float64 {
	res, err := http.Get("http://" + m.addr + "/metrics")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	var n float64
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "modellab_http_requests_total{") && strings.Contains(line, `route="/api/`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				n += v
			}
		}
	}
	return n
}

// closedLoop runs clients closed-loop clients of the request mix (step)
// against base until stop is called.
func closedLoop(base string, tokens []string, clients int) (ts *tallies, stop func()) {
	ts = &tallies{kinds: map[string]*outcome{}}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, IdleConnTimeout: time.Minute}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &loadClient{base: base, token: tokens[w%len(tokens)], hc: hc, ts: ts}
			for i := 0; ctx.Err() == nil; i++ {
				c.step(w, i)
			}
		}()
	}
	return ts, func() { cancel(); wg.Wait(); tr.CloseIdleConnections() }
}

// checkTallies logs every kind's outcome, fails the test on any failed
// request or socket error, and returns the number of requests.
func checkTallies(t *testing.T, ts *tallies) (total int) {
	t.Helper()
	for _, kind := range slices.Sorted(maps.Keys(ts.kinds)) {
		o := ts.kinds[kind]
		total += o.ok + o.failed + o.sockErr
		t.Logf("%-14s ok=%d failed=%d socket errors=%d p50=%s p99=%s max=%s", kind, o.ok, o.failed, o.sockErr,
			percentile(o.lat, 0.5).Round(10*time.Microsecond), percentile(o.lat, 0.99).Round(10*time.Microsecond), percentile(o.lat, 1).Round(time.Millisecond))
		if o.failed+o.sockErr > 0 {
			t.Errorf("%s: %d failed, %d socket errors during the rolling restart; first: %q", kind, o.failed, o.sockErr, o.firstFailures)
		}
		if o.ok == 0 {
			t.Errorf("%s: none succeeded", kind)
		}
	}
	return total
}

// outcome counts the results of one kind of request.
type outcome struct {
	ok, failed, sockErr int
	lat                 []time.Duration
	firstFailures       []string
}

type tallies struct {
	mu    sync.Mutex
	kinds map[string]*outcome
}

func (ts *tallies) add(kind string, d time.Duration, status int, want int, err error, body []byte) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	o := ts.kinds[kind]
	if o == nil {
		o = &outcome{}
		ts.kinds[kind] = o
	}
	switch {
	case err != nil:
		o.sockErr++
		if len(o.firstFailures) < 5 {
			o.firstFailures = append(o.firstFailures, err.Error())
		}
	case status != want:
		o.failed++
		if len(o.firstFailures) < 5 {
			o.firstFailures = append(o.firstFailures, fmt.Sprintf("%d %.200s", status, body))
		}
	default:
		o.ok++
		o.lat = append(o.lat, d)
	}
}

func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// loadClient is one closed-loop client through the front.
type loadClient struct {
	base, token string
	hc          *http.Client
	models      []string
	ts          *tallies
}

func (c *loadClient) do(kind, method, path string, body any, want int) []byte {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	res, err := c.hc.Do(req)
	var b []byte
	status := 0
	if err == nil {
		b, err = io.ReadAll(res.Body)
		res.Body.Close()
		status = res.StatusCode
	}
	c.ts.add(kind, time.Since(start), status, want, err, b)
	return b
}

// step is one request of the mix: 6 cached reads, 2 uncached reads (a
// model by ID: the database every time), 1 create and 1 update.
func (c *loadClient) step(w, i int) {
	switch i % 10 {
	case 0:
		var m struct{ ID string }
		b := c.do("write (POST)", "POST", "/api/models", map[string]any{"name": fmt.Sprintf("roll-%d-%d", w, i), "provider": "acme"}, 201)
		if json.Unmarshal(b, &m) == nil && m.ID != "" {
			c.models = append(c.models, m.ID)
		}
	case 5:
		if len(c.models) > 0 {
			c.do("write (PATCH)", "PATCH", "/api/models/"+c.models[len(c.models)-1], map[string]any{"description": fmt.Sprint("step ", i)}, 200)
		}
	case 3, 7:
		if len(c.models) > 0 {
			c.do("uncached read", "GET", "/api/models/"+c.models[i%len(c.models)], nil, 200)
		}
	default:
		c.do("cached read", "GET", "/api/models", nil, 200)
	}
}

// TestNginxRollingRestart runs nginx with the shipped configuration in
// front of instances of the real binary sharing PostgreSQL and a Redis the
// test owns, and replaces every instance in turn (SIGTERM, wait for the
// exit, start it again, wait for /readyz) under a closed loop of cached
// reads, uncached reads and writes through nginx, the way DEPLOYMENT.md
// says to restart instances behind nginx: each instance's listening socket
// is held by its supervisor (here the test, as systemd's socket unit does)
// and passed to every process by socket activation, so that nginx never
// meets a refused or reset connection: what arrives between two processes
// waits in the socket. Not one request may fail, not one socket error.
// (SIGTERM with a socket of the process's own loses a write now and then:
// RELIABILITY.md, "Graceful handover and rolling restart behind nginx".)
func TestNginxRollingRestart(t *testing.T) {
	nInst, clients, rounds := 2, 16, 1
	if soak() {
		nInst, clients, rounds = 3, 48, 3
	}
	env := map[string]string{
		"DATABASE_URL": testpg.URL(t), "REDIS_URL": testredis.Start(t).URL(), "CACHE_PREFIX": "roll:" + randHex(4) + ":",
		"ADMIN_TOKEN": adminToken, "ACCESS_LOG": "false", "LOG_LEVEL": "warn",
		// Generous on this shared machine: a timed-out statement is a 503.
		"DB_TIMEOUT_MS": "10000", "REDIS_TIMEOUT_MS": "1000",
		// SHUTDOWN_DELAY_MS is the default (5 s): longer than the shipped
		// upstream keepalive_timeout, so nginx has closed its idle
		// connections to an instance before the instance drains.
		"SHUTDOWN_TIMEOUT_MS": "10000",
	}
	var addrs []string
	var members []*member
	for i := 0; i < nInst; i++ {
		m := startSocketMember(t, env)
		addrs = append(addrs, m.addr)
		members = append(members, m)
	}
	base := startNginx(t, addrs)
	admin := &loadClient{base: base, token: adminToken, hc: http.DefaultClient, ts: &tallies{kinds: map[string]*outcome{}}}
	// Four clients per user: a crowd, each user well within its share of
	// the database (MAX_DB_IN_FLIGHT_PER_USER) even when every request of
	// theirs is slow.
	var tokens []string
	for i := 0; i < clients/4; i++ {
		var u struct{ Token string }
		if err := json.Unmarshal(admin.do("setup", "POST", "/api/users", map[string]any{"name": fmt.Sprint("roller-", i)}, 201), &u); err != nil || u.Token == "" {
			t.Fatalf("create user: %v %+v", err, admin.ts.kinds["setup"])
		}
		tokens = append(tokens, u.Token)
	}

	ts, stop := closedLoop(base, tokens, clients)
	start := time.Now()
	time.Sleep(2 * time.Second) // steady state first
	var restarts []string
	for round := 0; round < rounds; round++ {
		for _, m := range members {
			t0 := time.Now()
			m.term(20 * time.Second)
			down := time.Now()
			m.start()
			restarts = append(restarts, fmt.Sprintf("%s: exit %s after SIGTERM, back %s later",
				m.addr, down.Sub(t0).Round(time.Millisecond), time.Since(down).Round(time.Millisecond)))
			// An orchestrator waits for the replacement to take traffic
			// before it stops the next one.
			m.waitTraffic(10 * time.Second)
			time.Sleep(500 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second)
	stop()
	elapsed := time.Since(start)
	total := checkTallies(t, ts)
	t.Logf("rolling restart of %d instances x %d rounds behind nginx, %d clients: %d requests in %s (%.0f req/s); %s",
		nInst, rounds, clients, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), strings.Join(restarts, "; "))
}
