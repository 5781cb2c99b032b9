//go:build linux

package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// feed gives the parser resp in pieces of size n (as reads would), with the
// buffer management of eloop.read, and returns the status once the response
// is complete.
func feed(t *testing.T, resp string, n int) (status int, keep bool, err error) {
	t.Helper()
	c := &econn{buf: make([]byte, 1024), phase: phHead}
	for off := 0; off < len(resp); {
		if c.w == len(c.buf) {
			if c.r == 0 {
				return 0, false, errHeadLarge
			}
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		k := copy(c.buf[c.w:], resp[off:min(off+n, len(resp))])
		off += k
		c.w += k
		if err := c.parse(); err != nil {
			return 0, false, err
		}
		if c.finished {
			if c.r != c.w || off != len(resp) {
				return 0, false, errLeftover
			}
			return c.status, c.keep, nil
		}
		if c.r == c.w {
			c.r, c.w = 0, 0
		}
	}
	if c.phase == phUntilClose {
		return c.status, false, nil // complete at EOF
	}
	t.Fatalf("response incomplete after all %d bytes (phase %d)", len(resp), c.phase)
	return 0, false, nil
}

func TestEpollParserPieces(t *testing.T) {
	tests := []struct {
		name   string
		resp   string
		status int
		keep   bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, true},
		{"empty body", "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 201, true},
		{"body larger than the buffer", "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("x", 5000), 200, true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: y\r\n\r\n", 200, true},
		{"chunked big chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + strings.Repeat("z", 5000) + "\r\n0\r\n\r\n", 200, true},
		{"connection close", "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno", 503, false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, false},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, true},
		{"interim then final", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, true},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", 204, true},
		{"304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", 304, true},
		{"303", "HTTP/1.1 303 See Other\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n", 303, true},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 200, true},
		{"until close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end", 200, false},
	}
	for _, tc := range tests {
		for _, n := range []int{1, 2, 3, 7, 64, 100000} {
			status, keep, err := feed(t, tc.resp, n)
			if err != nil || status != tc.status || keep != tc.keep {
				t.Fatalf("%s in pieces of %d: got %d keep %v err %v, want %d keep %v", tc.name, n, status, keep, err, tc.status, tc.keep)
			}
		}
	}
}

func TestEpollParserErrors(t *testing.T) {
	tests := []struct{ name, resp string }{
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"},
		{"bad content-length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"},
		{"bad header", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n"},
		{"head too large", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 2000) + "\r\n\r\n"},
		{"bytes after the response", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"},
	}
	for _, tc := range tests {
		if _, _, err := feed(t, tc.resp, 1<<20); err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
	}
}

// TestEnginesResponses runs both engines against servers answering in each
// shape: every response must parse, on reused connections where allowed.
func TestEnginesResponses(t *testing.T) {
	tests := []struct {
		name     string
		resp     string
		close    bool
		code     string
		failures bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, "200", false},
		{"large body", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000), false, "200", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n186A0\r\n" + strings.Repeat("y", 100000) + "\r\n0\r\n\r\n", false, "200", false},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true, "200", false},
		{"silent close (idle keep-alive closed)", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, "200", false},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nbody", true, "200", false},
		{"303 is not a failure", "HTTP/1.1 303 See Other\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n", false, "303", false},
		{"401 is a failure", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", false, "401", true},
		{"malformed is an error", "HTTP/1.1 abc\r\n\r\n", true, "error", true},
	}
	for _, engine := range []bool{true, false} {
		for _, tc := range tests {
			t.Run(map[bool]string{true: "epoll", false: "goroutines"}[engine]+"/"+tc.name, func(t *testing.T) {
				defer func(old bool) { epollEnabled = old }(epollEnabled)
				epollEnabled = engine
				s := newRawServer(t, func(int64) (string, bool) { return tc.resp, tc.close })
				rep, err := Run(context.Background(), Config{URL: s.url(), Connections: 3, Duration: 600 * time.Millisecond,
					Targets: []Target{{Name: "x", Path: "/"}}})
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				tr := rep.Targets[0]
				if tr.Requests == 0 || tr.StatusCounts[tc.code] != tr.Requests {
					t.Fatalf("got %d requests, status counts %v; want all %s", tr.Requests, tr.StatusCounts, tc.code)
				}
				if want := map[bool]int64{true: tr.Requests, false: 0}[tc.failures]; tr.Failures != want {
					t.Fatalf("failures %d, want %d", tr.Failures, want)
				}
				if !tc.close && s.conns.Load() > 3+1 { // +1: the reachability probe
					t.Fatalf("%d connections for 3 keep-alive workers", s.conns.Load())
				}
			})
		}
	}
}

func TestEpollTimeoutAndStop(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Connections: 2, Duration: 600 * time.Millisecond,
		Timeout: 200 * time.Millisecond, Targets: []Target{{Name: "x", Path: "/"}}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("run of 600ms took %v", d)
	}
	tr := rep.Targets[0]
	// Two connections, each timing out every ~200ms: about 4 timeouts.
	if tr.StatusCounts["error"] < 2 || tr.StatusCounts["error"] > 6 || tr.Failures != tr.Requests {
		t.Fatalf("got %+v, want a few timeouts, all failures", tr)
	}
	if tr.P50MS < 190 {
		t.Fatalf("timed out requests recorded at %v ms, want about 200", tr.P50MS)
	}
}
