package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testbin"
)

func TestInheritedSocketConfig(t *testing.T) {
	pid := os.Getpid()
	me := strconv.Itoa(pid)
	tests := []struct {
		name     string
		env      map[string]string
		want     bool
		wantFail bool
	}{
		{"unset", nil, false, false},
		{"ours", map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": me}, true, false},
		{"another process's", map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": strconv.Itoa(pid + 1)}, false, false},
		{"no LISTEN_PID", map[string]string{"LISTEN_FDS": "1"}, false, false},
		{"two sockets", map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": me}, false, true},
		{"not a number", map[string]string{"LISTEN_FDS": "x", "LISTEN_PID": me}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &envReader{getenv: func(k string) string { return tt.env[k] }, scope: inServe}
			if got := e.inherited(pid); got != tt.want {
				t.Errorf("inherited = %v, want %v", got, tt.want)
			}
			if failed := e.err != nil; failed != tt.wantFail {
				t.Errorf("error = %v, want an error: %v", e.err, tt.wantFail)
			}
			if e.err != nil && !strings.Contains(e.err.Error(), "LISTEN_FDS") {
				t.Errorf("error %q does not name LISTEN_FDS", e.err)
			}
		})
	}
}

// TestSocketActivation runs the real binary the way systemd runs it from a
// socket unit: the test holds the listening socket and passes it to each
// process. A request sent while no process runs (between the exit of one
// and the start of the next) must wait in the socket and be answered by
// the next process, where a socket of the process's own would have
// refused it. ADDR names a busy address: it must not be listened on.
func TestSocketActivation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	ln.Close() // the socket stays open through sock
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := ln.Addr().String()
	const admin = "socket-activation-admin-token-01"
	env := []string{
		"PATH=" + os.Getenv("PATH"), "ADDR=" + busy.Addr().String(),
		"DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "s.db"), "DISABLE_REDIS_CACHE=true",
		"ADMIN_TOKEN=" + admin, "ACCESS_LOG=false", "LOG_LEVEL=warn", "SHUTDOWN_DELAY_MS=0",
	}
	first := startActivated(t, sock, env, addr)
	if code := postModel(t, addr, admin, "before"); code != 201 {
		t.Fatalf("POST through the first process: %d", code)
	}
	first.stop(t)

	// No process now. The connection is made (the socket's queue takes
	// it) and the request waits for the next process.
	pending := make(chan int, 1)
	go func() { pending <- postModel(t, addr, admin, "between") }()
	time.Sleep(300 * time.Millisecond)
	select {
	case code := <-pending:
		t.Fatalf("POST with no process running answered %d at once, want it to wait", code)
	default:
	}
	second := startActivated(t, sock, env, addr)
	select {
	case code := <-pending:
		if code != 201 {
			t.Fatalf("POST sent between the processes: %d, want 201 from the next one", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("POST sent between the processes was not answered by the next one")
	}
	second.stop(t)
}

type activated struct {
	cmd  *exec.Cmd
	logs strings.Builder
	done chan error
}

// startActivated starts `modellab serve` with sock as its file descriptor
// 3 and LISTEN_PID set to its own process ID (the shell's, which exec
// keeps), and waits until it says it listens on want.
func startActivated(t *testing.T, sock *os.File, env []string, want string) *activated {
	t.Helper()
	a := &activated{done: make(chan error, 1)}
	a.cmd = exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve --demo=false`, testbin.Path(t))
	a.cmd.Env = env
	a.cmd.ExtraFiles = []*os.File{sock}
	a.cmd.Stderr = &a.logs
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	testbin.DieWithParent(a.cmd)
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.cmd.Process.Kill() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "modellab listening on ") {
				line <- sc.Text()
			}
		}
		_, _ = io.Copy(io.Discard, out)
		a.done <- a.cmd.Wait()
	}()
	select {
	case l := <-line:
		if wantLine := "modellab listening on http://" + want; l != wantLine {
			t.Fatalf("serve said %q, want %q", l, wantLine)
		}
	case err := <-a.done:
		t.Fatalf("serve exited before listening: %v\n%s", err, a.logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("serve did not listen: %s", a.logs.String())
	}
	return a
}

// stop sends SIGTERM and wants exit 0.
func (a *activated) stop(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v\n%s", err, a.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
}

// postModel creates a model on a new connection and returns the status
// (0 when the request failed).
func postModel(t *testing.T, addr, token, name string) int {
	req, err := http.NewRequest("POST", "http://"+addr+"/api/models", strings.NewReader(fmt.Sprintf(`{"name":%q,"provider":"acme"}`, name)))
	if err != nil {
		t.Error(err)
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	res, err := hc.Do(req)
	if err != nil {
		t.Errorf("POST %s: %v", name, err)
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// TestTrustedProxies: the access log's client is the peer unless the peer
// is a trusted proxy, whose X-Forwarded-For then names the client; a bad
// TRUSTED_PROXIES stops serve with a message naming it.
func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct{ name, trusted, want string }{
		{"none trusted", "", "client=127.0.0.1:"},
		{"loopback trusted", "127.0.0.1, ::1", "client=198.51.100.7\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startServe(t, map[string]string{
				"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
				"DISABLE_REDIS_CACHE": "true", "ACCESS_LOG": "true", "TRUSTED_PROXIES": tc.trusted,
			}, "--demo=false")
			req, err := http.NewRequest("GET", p.url+"/api/models", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Forwarded-For", "198.51.100.7")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if code := p.stop(t); code != 0 {
				t.Fatalf("serve exited %d", code)
			}
			var line string
			for _, l := range strings.SplitAfter(p.logs(), "\n") {
				if strings.Contains(l, "path=/api/models") {
					line = l
				}
			}
			if !strings.Contains(line, tc.want) {
				t.Errorf("access log line %q, want %q in it", line, tc.want)
			}
		})
	}
	code, _, stderr := runCLI(map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33", "DISABLE_REDIS_CACHE": "true",
		"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "bad.db")}, "serve", "--addr", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "TRUSTED_PROXIES") {
		t.Errorf("bad TRUSTED_PROXIES: exit %d, stderr %q", code, stderr)
	}
}
