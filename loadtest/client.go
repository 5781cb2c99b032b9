package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// readBufferSize is the per-connection read buffer: large enough that a
// typical API response arrives in one or two reads.
const readBufferSize = 32 << 10

var errStopped = errors.New("run stopped")

// dialError marks a failure to (re)connect, after which the worker backs off.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// malformedError is a response that is not valid HTTP/1.x.
type malformedError string

func (e malformedError) Error() string { return "malformed response: " + string(e) }

// client is a minimal HTTP/1.1 keep-alive client for one connection, sending
// the same pre-serialized request over and over. It is used by one goroutine;
// only stop may be called from another.
type client struct {
	ep      endpoint
	req     []byte
	set     *requestSet // when set, each request takes its bytes from it
	timeout time.Duration
	dialer  net.Dialer
	br      *bufio.Reader

	mu      sync.Mutex // guards conn against stop; conn is read without it by the owner
	conn    net.Conn
	stopped bool

	reused   bool      // conn has already carried a response
	deadline time.Time // deadline currently set on conn
}

func newClient(ep endpoint, req []byte, timeout time.Duration) *client {
	c := &client{ep: ep, req: req, timeout: timeout}
	c.dialer.Timeout = timeout
	c.dialer.KeepAlive = -1 // the connection is never idle
	return c
}

// dial opens a new connection.
func (c *client) dial(ctx context.Context) error {
	conn, err := c.dialer.DialContext(ctx, "tcp", c.ep.addr)
	if err != nil {
		return &dialError{err}
	}
	if c.ep.tls != nil {
		tc := tls.Client(conn, c.ep.tls)
		hctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return &dialError{err}
		}
		conn = tc
	}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		conn.Close()
		return errStopped
	}
	c.conn = conn
	c.mu.Unlock()
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, readBufferSize)
	} else {
		c.br.Reset(conn)
	}
	c.reused = false
	c.deadline = time.Time{}
	return nil
}

func (c *client) closeConn() {
	c.mu.Lock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	c.mu.Unlock()
}

// stop closes the connection and refuses new ones; the owner's pending read
// or write fails at once.
func (c *client) stop() {
	c.mu.Lock()
	c.stopped = true
	if c.conn != nil {
		c.conn.Close()
	}
	c.mu.Unlock()
}

// do sends the request and reads the whole response, returning its status.
// start is when the request is meant to have been sent; the timeout counts
// from about then. A request that fails on a reused connection before any
// byte of the response arrived (the server closed an idle keep-alive
// connection) is retried once on a new connection, as browsers and net/http
// do for idempotent requests.
func (c *client) do(ctx context.Context, start time.Time) (int, error) {
	if c.set != nil {
		c.req = c.set.pick()
	}
	for attempt := 0; ; attempt++ {
		if c.conn == nil {
			if err := c.dial(ctx); err != nil {
				return 0, err
			}
		}
		c.refreshDeadline(start)
		reused := c.reused
		status, keep, gotBytes, err := c.roundTrip()
		if err != nil {
			c.closeConn()
			if reused && !gotBytes && attempt == 0 {
				continue
			}
			return 0, err
		}
		c.reused = true
		if !keep {
			c.closeConn()
		}
		return status, nil
	}
}

// refreshDeadline keeps the connection's deadline between 0.9 and 1 timeout
// after now, calling SetDeadline only about once per timeout/10 rather than
// on every request.
func (c *client) refreshDeadline(now time.Time) {
	if c.deadline.Sub(now) >= c.timeout-c.timeout/10 {
		return
	}
	c.deadline = now.Add(c.timeout)
	c.conn.SetDeadline(c.deadline)
}

// roundTrip writes the request and reads one response. keep reports whether
// the connection may carry another request; gotBytes whether any byte of the
// response was read.
func (c *client) roundTrip() (status int, keep, gotBytes bool, err error) {
	if _, err = c.conn.Write(c.req); err != nil {
		return 0, false, false, err
	}
	br := c.br
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, len(line) > 0, err
		}
		var http10 bool
		status, http10, err = parseStatusLine(line)
		if err != nil {
			return 0, false, true, err
		}
		h := respHead{status: status, keep: !http10, contentLength: -1}
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				return 0, false, true, err
			}
			line = trimEOL(line)
			if len(line) == 0 {
				break
			}
			if err := h.headerLine(line); err != nil {
				return 0, false, true, err
			}
		}
		keep = h.keep
		contentLength, chunked := h.contentLength, h.chunked
		if status >= 100 && status < 200 && status != 101 {
			continue // interim response; the real one follows
		}
		switch {
		case status == 204 || status == 304 || status < 200:
			// no body
		case chunked:
			err = discardChunked(br)
		case contentLength >= 0:
			_, err = br.Discard(int(contentLength))
		default:
			// No length: the body runs to the end of the connection.
			_, err = br.WriteTo(io.Discard)
			keep = false
		}
		if err != nil {
			return 0, false, true, err
		}
		return status, keep, true, nil
	}
}

// respHead is what the client needs from a response head.
type respHead struct {
	status        int
	keep          bool  // the connection may carry another request
	contentLength int64 // -1 when absent
	chunked       bool
}

// headerLine applies one header line (without its line end).
func (h *respHead) headerLine(line []byte) error {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return malformedError("bad header line")
	}
	name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
	switch len(name) {
	case len("content-length"):
		if asciiEqualFold(name, "content-length") {
			n, err := parseContentLength(value)
			if err != nil {
				return err
			}
			h.contentLength = n
		}
	case len("transfer-encoding"):
		if asciiEqualFold(name, "transfer-encoding") {
			h.chunked = hasSuffixFold(value, "chunked")
		}
	case len("connection"):
		if asciiEqualFold(name, "connection") {
			if containsFold(value, "close") {
				h.keep = false
			} else if containsFold(value, "keep-alive") {
				h.keep = true
			}
		}
	}
	return nil
}

// parseChunkSize parses a chunk size line (without its line end), ignoring
// chunk extensions.
func parseChunkSize(line []byte) (int64, error) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, malformedError("bad chunk size")
	}
	var size int64
	for _, b := range line {
		var d byte
		switch {
		case b >= '0' && b <= '9':
			d = b - '0'
		case b >= 'a' && b <= 'f':
			d = b - 'a' + 10
		case b >= 'A' && b <= 'F':
			d = b - 'A' + 10
		default:
			return 0, malformedError("bad chunk size")
		}
		size = size<<4 | int64(d)
	}
	return size, nil
}

// parseStatusLine parses "HTTP/1.x SSS reason\r\n".
func parseStatusLine(line []byte) (status int, http10 bool, err error) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' {
		return 0, false, malformedError(fmt.Sprintf("bad status line %q", trimEOL(line)))
	}
	for _, b := range line[9:12] {
		if b < '0' || b > '9' {
			return 0, false, malformedError(fmt.Sprintf("bad status line %q", trimEOL(line)))
		}
		status = status*10 + int(b-'0')
	}
	if len(line) > 12 && line[12] != ' ' && line[12] != '\r' && line[12] != '\n' {
		return 0, false, malformedError(fmt.Sprintf("bad status line %q", trimEOL(line)))
	}
	return status, line[7] == '0', nil
}

func parseContentLength(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 15 {
		return 0, malformedError("bad Content-Length")
	}
	var n int64
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, malformedError("bad Content-Length")
		}
		n = n*10 + int64(b-'0')
	}
	return n, nil
}

// discardChunked reads and drops a chunked body and its trailers.
func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, err := parseChunkSize(trimEOL(line))
		if err != nil {
			return err
		}
		if size == 0 {
			for { // trailers up to the empty line
				line, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(trimEOL(line)) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(size)); err != nil {
			return err
		}
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(trimEOL(line)) != 0 {
			return malformedError("chunk not followed by CRLF")
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func lower(b byte) byte {
	if b >= 'A' && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// asciiEqualFold compares b with the lower-case ASCII s, ignoring case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func hasSuffixFold(b []byte, s string) bool {
	return len(b) >= len(s) && asciiEqualFold(b[len(b)-len(s):], s)
}

func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if asciiEqualFold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}
