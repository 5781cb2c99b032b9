package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestShutdownDelayConfig(t *testing.T) {
	tests := []struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		{"", 5 * time.Second, false},
		{"0", 0, false},
		{"250", 250 * time.Millisecond, false},
		{"-1", 0, true},
		{"soon", 0, true},
	}
	for _, tt := range tests {
		cfg, err := loadConfig(func(k string) string { return map[string]string{"SHUTDOWN_DELAY_MS": tt.value}[k] })
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "SHUTDOWN_DELAY_MS") {
				t.Errorf("SHUTDOWN_DELAY_MS=%q: err %v, want one naming the variable", tt.value, err)
			}
			continue
		}
		if err != nil || cfg.ShutdownDelay != tt.want {
			t.Errorf("SHUTDOWN_DELAY_MS=%q: %v, %v; want %v", tt.value, cfg.ShutdownDelay, err, tt.want)
		}
	}
}

// slowPost is a POST whose body arrives in two halves: the server holds it
// in flight until the second half is sent.
type slowPost struct {
	conn net.Conn
	rest string
}

func startSlowPost(t *testing.T, addr, path, token, body string) *slowPost {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	half := len(body) / 2
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		path, addr, token, len(body), body[:half])
	return &slowPost{conn: c, rest: body[half:]}
}

// finish sends the rest of the body and returns the response's status.
func (s *slowPost) finish() (int, error) {
	if _, err := s.conn.Write([]byte(s.rest)); err != nil {
		return 0, err
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(s.conn), nil)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// TestGracefulHandover stops serve the way SIGTERM does (run's context is
// the signal's) and checks the handover a load balancer needs: /readyz
// answers 503 at once, new requests are still served during
// SHUTDOWN_DELAY_MS, then new connections are refused while a request in
// flight since before the signal completes, and serve exits 0.
func TestGracefulHandover(t *testing.T) {
	const delay = 1500 * time.Millisecond
	const admin = "handover-admin-token-0123456789"
	p := startServe(t, map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "h.db"),
		"DISABLE_REDIS_CACHE": "true", "ACCESS_LOG": "false", "LOG_LEVEL": "warn",
		"ADMIN_TOKEN": admin, "DB_TIMEOUT_MS": "30000",
		"SHUTDOWN_DELAY_MS": fmt.Sprint(delay.Milliseconds()), "SHUTDOWN_TIMEOUT_MS": "10000",
	}, "--demo=false")
	addr := strings.TrimPrefix(p.url, "http://")
	if res, body := get(t, p.url+"/readyz", ""); res.StatusCode != 200 {
		t.Fatalf("readyz before the signal: %d %s", res.StatusCode, body)
	}
	post := startSlowPost(t, addr, "/api/models", admin, `{"name":"handover","provider":"acme"}`)
	time.Sleep(100 * time.Millisecond) // the server has read the headers

	sigAt := time.Now()
	p.cancel()
	var notReady time.Duration
	for notReady == 0 {
		res, body := get(t, p.url+"/readyz", "")
		switch {
		case res.StatusCode == 503 && strings.Contains(string(body), `"shutting_down":true`):
			notReady = time.Since(sigAt)
		case time.Since(sigAt) > delay/2:
			t.Fatalf("readyz still %d %s %s after the signal", res.StatusCode, body, time.Since(sigAt))
		default:
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Still serving during the delay, on new connections.
	served := 0
	for time.Since(sigAt) < delay-300*time.Millisecond {
		res, body := get(t, p.url+"/api/models", admin)
		if res.StatusCode != 200 {
			t.Fatalf("GET /api/models %s after the signal (within the delay): %d %s", time.Since(sigAt), res.StatusCode, body)
		}
		served++
		time.Sleep(20 * time.Millisecond)
	}
	// A connection made during the delay whose request comes only after
	// the listener closed (a proxy's connect and its write can be that far
	// apart on a busy machine): it must be answered, not closed unanswered
	// as http.Server.Shutdown does with a request it reads after it began.
	late, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	// Past the delay: the listener closes while the POST is still in flight.
	refusedAt := waitRefused(t, addr, sigAt, delay+5*time.Second)
	lateStatus := requestOn(t, late, "POST", "/api/models", admin, `{"name":"late","provider":"acme"}`)
	if lateStatus != 201 {
		t.Errorf("POST sent after the listener closed on a connection accepted before: %d, want 201", lateStatus)
	}
	if refusedAt < delay {
		t.Errorf("new connections refused %s after the signal, before SHUTDOWN_DELAY_MS %s", refusedAt, delay)
	}
	status, err := post.finish()
	if err != nil || status != 201 {
		t.Errorf("the request in flight since before the signal: %d %v, want 201", status, err)
	}
	select {
	case code := <-p.done:
		p.done <- code
		if code != 0 {
			t.Errorf("exit code %d, want 0: %s", code, p.logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not exit: %s", p.logs())
	}
	t.Logf("readyz 503 after %s; %d requests served during the %s delay; refused after %s; in-flight POST %d; late POST %d; exit after %s",
		notReady.Round(time.Millisecond), served, delay, refusedAt.Round(time.Millisecond), status, lateStatus, time.Since(sigAt).Round(time.Millisecond))
}

// requestOn writes one HTTP/1.1 request on c and returns the response's
// status, 0 when the connection closed without one.
func requestOn(t *testing.T, c net.Conn, method, path, token, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+c.RemoteAddr().String()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := req.Write(c); err != nil {
		t.Logf("write request: %v", err)
		return 0
	}
	res, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Logf("read response: %v", err)
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// waitRefused polls addr until a connection is refused and returns when
// that happened, relative to from.
func waitRefused(t *testing.T, addr string, from time.Time, within time.Duration) time.Duration {
	t.Helper()
	for time.Since(from) < within {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// A dial caught in the accept queue as the listener closes is
		// reset rather than refused: the listener is gone either way.
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
			return time.Since(from)
		}
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Fatalf("%s still accepting %s after the signal", addr, within)
	return 0
}
