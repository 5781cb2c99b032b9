package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
	"github.com/modellab/modellab/service"
)

// MaxBodyBytes is the request body limit of the contract (1 MiB).
const MaxBodyBytes = 1 << 20

type ctxKey int

const (
	ctxRequestID ctxKey = iota
	ctxUser
)

// requestContext is a request's context: it carries the statusWriter
// (the request ID) and the caller embedded in it, in the one allocation
// that context.WithValue would make for the first of them alone.
type requestContext struct {
	context.Context
	sw *statusWriter
}

func (c *requestContext) Value(key any) any {
	switch key {
	case ctxRequestID:
		return c.sw
	case service.CallerContextKey:
		return &c.sw.caller
	}
	return c.Context.Value(key)
}

func requestID(ctx context.Context) string {
	if sw, _ := ctx.Value(ctxRequestID).(*statusWriter); sw != nil {
		return sw.id
	}
	return ""
}

// reqIDs makes request IDs cheaply: a random per-process prefix and a counter.
type reqIDs struct {
	prefix string
	n      atomic.Uint64
}

func newReqIDs() *reqIDs {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &reqIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (g *reqIDs) next() string {
	var b [32]byte
	return string(strconv.AppendUint(append(b[:0], g.prefix...), g.n.Add(1), 36))
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// statusWriter records what the handler answered. It is the one
// per-request allocation of the middleware: it also carries the request ID
// (the context holds the writer, not a boxed string) and the backing store
// of the response's own header values.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	id     string
	vals   [3]string
	nvals  int
	// caller is who the request's database-bound work is admitted as
	// (the service reads it from the context): the client's address until
	// authentication names the user.
	caller service.Caller
}

// headerValue returns v as a header value slice, without allocating for
// the first few values of a response.
func (w *statusWriter) headerValue(v string) []string {
	if w.nvals == len(w.vals) {
		return []string{v}
	}
	i := w.nvals
	w.nvals++
	w.vals[i] = v
	return w.vals[i : i+1 : i+1]
}

// headerValue is statusWriter.headerValue for any writer.
func headerValue(w http.ResponseWriter, v string) []string {
	if sw, ok := w.(*statusWriter); ok {
		return sw.headerValue(v)
	}
	return []string{v}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// FlushError is Flush that says when the client is gone (streams stop on
// it); http.ResponseController prefers it to Flush.
func (w *statusWriter) FlushError() error {
	if f, ok := w.ResponseWriter.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// middleware wraps the mux with everything every request goes through. The
// order matters: recovery is innermost around the mux so that a panic is
// still counted and logged by the outer layers.
func (s *Server) middleware(mux *http.ServeMux) http.Handler {
	ids := newReqIDs()
	inner := s.recoverer(mux)
	maxInFlight := int64(s.cfg.MaxInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := transport.HeaderGet(r.Header, "X-Request-Id")
		if !validRequestID(id) {
			id = ids.next()
		}
		sw := &statusWriter{ResponseWriter: w, id: id}
		w.Header()["X-Request-Id"] = sw.headerValue(id)
		// The peer's address, or the client a trusted proxy names: never a
		// header any client could forge to get a fresh share.
		addr := r.RemoteAddr
		if len(s.cfg.TrustedProxies) > 0 {
			addr = clientAddr(r, s.cfg.TrustedProxies)
		}
		sw.caller.Reset(addr)
		r = r.WithContext(&requestContext{Context: r.Context(), sw: sw})

		if n := s.metrics.inFlight.Add(1); n > maxInFlight {
			s.metrics.inFlight.Add(-1)
			s.metrics.shed.WithLabelValues("in_flight").Inc()
			s.writeError(sw, r, modellab.Errorf(modellab.EUNAVAILABLE, "the server is overloaded, try again"))
			s.metrics.observe("overload", sw.status, time.Since(start).Seconds())
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(sw, r.Body, MaxBodyBytes)
		}
		inner.ServeHTTP(sw, r)
		s.metrics.inFlight.Add(-1)

		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		switch {
		case sw.status != 0:
		case transport.ClientGone(r):
			sw.status = transport.StatusClientClosed
		default:
			sw.status = http.StatusOK
		}
		elapsed := time.Since(start)
		s.metrics.observe(route, sw.status, elapsed.Seconds())
		if s.cfg.AccessLog != nil {
			s.cfg.AccessLog.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.String("route", route), slog.Int("status", sw.status),
				slog.Int64("bytes", sw.bytes), slog.Duration("duration", elapsed),
				slog.String("request_id", id), slog.String("cache", sw.Header().Get("X-Cache")),
				slog.String("client", addr))
		}
	})
}

// recoverer turns a panic into a logged 500 with the JSON error body. The
// mux mutates r.Pattern in place, so the caller reads it after we return.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			err := fmt.Errorf("panic: %v\n%s", v, debug.Stack())
			sw, _ := w.(*statusWriter)
			if sw != nil && sw.status != 0 {
				// Too late for an error body: the status line is gone.
				s.log.ErrorContext(r.Context(), "panic after response started", "err", err)
				return
			}
			s.writeError(w, r, modellab.WrapError(modellab.EINTERNAL, err, "internal error"))
		}()
		next.ServeHTTP(w, r)
	})
}

// bodyError maps the errors of reading a request body.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return modellab.Errorf(modellab.ETOOLARGE, "request body exceeds %d bytes", MaxBodyBytes)
	}
	return modellab.WrapError(modellab.EINVALID, err, "could not read the request body")
}
