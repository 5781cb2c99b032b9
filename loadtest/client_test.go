package loadtest

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer is a TCP server on 127.0.0.1 that reads GET requests and answers
// request number n (counted over all connections, from 0) with respond(n):
// the raw response bytes, and whether to close the connection afterwards.
type rawServer struct {
	ln    net.Listener
	conns atomic.Int64
	reqs  atomic.Int64
	wg    sync.WaitGroup
}

func newRawServer(t testing.TB, respond func(n int64) (resp string, closeAfter bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &rawServer{ln: ln}
	var mu sync.Mutex
	var open []net.Conn
	raw := map[string][]byte{} // responses as bytes, so that serving does not allocate
	toBytes := func(resp string) []byte {
		mu.Lock()
		defer mu.Unlock()
		b, ok := raw[resp]
		if !ok {
			b = []byte(resp)
			raw[resp] = b
		}
		return b
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open = append(open, conn)
			mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					for { // request line and headers up to the empty line
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if line == "\r\n" {
							break
						}
					}
					resp, closeAfter := respond(s.reqs.Add(1) - 1)
					if _, err := conn.Write(toBytes(resp)); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

func testClient(t *testing.T, rawURL string, timeout time.Duration) *client {
	t.Helper()
	ep, err := parseURL(rawURL)
	if err != nil {
		t.Fatalf("parseURL: %v", err)
	}
	c := newClient(ep, buildRequest(ep, "/x", ""), timeout)
	t.Cleanup(c.closeConn)
	return c
}

func TestClientResponses(t *testing.T) {
	tests := []struct {
		name      string
		responses []string // answered in turn, cycling
		closeAt   []bool   // close after the response of the same index
		wantCodes []int    // statuses of successive requests
		wantConns int64
	}{
		{
			name:      "content-length keep-alive",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
			wantCodes: []int{200, 200, 200},
			wantConns: 1,
		},
		{
			name:      "content-length larger than the read buffer",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000)},
			wantCodes: []int{200, 200, 200},
			wantConns: 1,
		},
		{
			name: "chunked with extension and trailer",
			responses: []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"5\r\nhello\r\n6;ext=1\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n"},
			wantCodes: []int{200, 200, 200},
			wantConns: 1,
		},
		{
			name:      "chunked large chunk, mixed case headers",
			responses: []string{"HTTP/1.1 201 Created\r\ntransfer-encoding: Chunked\r\n\r\n" + "186A0\r\n" + strings.Repeat("y", 100000) + "\r\n0\r\n\r\n"},
			wantCodes: []int{201, 201},
			wantConns: 1,
		},
		{
			name:      "connection close reconnects",
			responses: []string{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"},
			closeAt:   []bool{true},
			wantCodes: []int{200, 200, 200},
			wantConns: 3,
		},
		{
			name:      "no length: body to end of connection",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"},
			closeAt:   []bool{true},
			wantCodes: []int{200, 200},
			wantConns: 2,
		},
		{
			name:      "HTTP/1.0 response closes",
			responses: []string{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
			closeAt:   []bool{true},
			wantCodes: []int{200, 200},
			wantConns: 2,
		},
		{
			name:      "interim 100 then final",
			responses: []string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
			wantCodes: []int{200, 200},
			wantConns: 1,
		},
		{
			name: "204 and 304 have no body",
			responses: []string{
				"HTTP/1.1 204 No Content\r\n\r\n",
				"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
				"HTTP/1.1 303 See Other\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n",
			},
			wantCodes: []int{204, 304, 303, 204},
			wantConns: 1,
		},
		{
			name: "statuses are reported as they are",
			responses: []string{
				"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
				"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
			},
			wantCodes: []int{404, 503},
			wantConns: 1,
		},
		{
			name:      "server closes an idle keep-alive connection: retried",
			responses: []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
			closeAt:   []bool{true}, // without saying so
			wantCodes: []int{200, 200, 200},
			wantConns: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, func(n int64) (string, bool) {
				i := int(n) % len(tc.responses)
				closeAfter := false
				if i < len(tc.closeAt) {
					closeAfter = tc.closeAt[i]
				}
				return tc.responses[i], closeAfter
			})
			c := testClient(t, s.url(), 2*time.Second)
			for i, want := range tc.wantCodes {
				got, err := c.do(context.Background(), time.Now())
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if got != want {
					t.Fatalf("request %d: status %d, want %d", i, got, want)
				}
			}
			if got := s.conns.Load(); got != tc.wantConns {
				t.Fatalf("connections: got %d, want %d", got, tc.wantConns)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name     string
		response string
		close    bool
	}{
		{"malformed status line", "HTTP/1.1 2x0 OK\r\n\r\n", true},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", true},
		{"bad content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", true},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n", true},
		{"closed before any byte", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, func(int64) (string, bool) { return tc.response, tc.close })
			c := testClient(t, s.url(), 2*time.Second)
			status, err := c.do(context.Background(), time.Now())
			if err == nil {
				t.Fatalf("got status %d and no error, want an error", status)
			}
			if c.conn != nil {
				t.Fatalf("connection kept after an error")
			}
		})
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	s := newRawServer(t, func(int64) (string, bool) {
		<-release
		return "", true
	})
	t.Cleanup(func() { close(release) })
	c := testClient(t, s.url(), 200*time.Millisecond)
	start := time.Now()
	_, err := c.do(context.Background(), start)
	if err == nil {
		t.Fatalf("no error from a server that does not answer")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("timed out after %v, want about 200ms", d)
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in               string
		addr, host, pref string
		tls              bool
		bad              bool
	}{
		{in: "http://127.0.0.1:8080", addr: "127.0.0.1:8080", host: "127.0.0.1:8080"},
		{in: "http://localhost", addr: "localhost:80", host: "localhost"},
		{in: "https://example.com/", addr: "example.com:443", host: "example.com", tls: true},
		{in: "http://[::1]:9000/base/", addr: "[::1]:9000", host: "[::1]:9000", pref: "/base"},
		{in: "ftp://127.0.0.1", bad: true},
		{in: "127.0.0.1:8080", bad: true},
		{in: "http://", bad: true},
		{in: "http://h/?q=1", bad: true},
		{in: "://x", bad: true},
	}
	for _, tc := range tests {
		ep, err := parseURL(tc.in)
		if tc.bad {
			if err == nil {
				t.Fatalf("parseURL(%q): no error", tc.in)
			}
			continue
		}
		if err != nil {
			t.Fatalf("parseURL(%q): %v", tc.in, err)
		}
		if ep.addr != tc.addr || ep.host != tc.host || ep.prefix != tc.pref || (ep.tls != nil) != tc.tls {
			t.Fatalf("parseURL(%q) = %+v, want addr %q host %q prefix %q tls %v", tc.in, ep, tc.addr, tc.host, tc.pref, tc.tls)
		}
	}
}

func TestBuildRequest(t *testing.T) {
	ep, _ := parseURL("http://127.0.0.1:8080/base")
	got := string(buildRequest(ep, "/api/models?limit=2", "tok"))
	want := "GET /base/api/models?limit=2 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: modellab-loadtest\r\nAccept: */*\r\nAuthorization: Bearer tok\r\n\r\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = string(buildRequest(ep, "/", "", "Cookie: modellab_session=abc", "X-A: b"))
	want = "GET /base/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: modellab-loadtest\r\nAccept: */*\r\nCookie: modellab_session=abc\r\nX-A: b\r\n\r\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := string(buildRequest(ep, "/", "")); strings.Contains(got, "Authorization") || strings.Contains(got, "Accept-Encoding") {
		t.Fatalf("unexpected header in %q", got)
	}
}

// BenchmarkClientDo measures one keep-alive request/response. The client
// does not allocate: the few allocations reported are the test server's.
func BenchmarkClientDo(b *testing.B) {
	for _, tc := range []struct {
		name string
		resp string
	}{
		{"content-length-20KB", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n\r\n" + strings.Repeat("x", 20000)},
		{"chunked-20KB", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("FA0\r\n"+strings.Repeat("y", 4000)+"\r\n", 5) + "0\r\n\r\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := newRawServer(b, func(int64) (string, bool) { return tc.resp, false })
			ep, _ := parseURL(s.url())
			c := newClient(ep, buildRequest(ep, "/x", ""), 5*time.Second)
			defer c.closeConn()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.do(ctx, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
