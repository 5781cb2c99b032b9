// Package gateway talks to inference servers through their
// OpenAI-compatible API (vLLM, llama.cpp server, Ollama, …): it picks one
// of the servers a model runs on (round robin, skipping for a short while
// one that just refused), sends the chat completion request, and reads
// the answer — whole, or as a stream of server-sent events read leniently
// (keep-alive comments, empty frames, CRLF, events split across reads, and
// the error dialects: "error:" lines, "event: error", data: {"error": …}).
//
// It bounds the wait for the first byte and the silence between two
// chunks, and the upstream request lives in the caller's context: a client
// that leaves cancels it, which inference servers take as an abort. Every
// failure is a *modellab.Error: EBADGATEWAY when the server refused the
// connection, answered 5xx or sent something that is not the API,
// EGATEWAYTIMEOUT when it was too slow. The package knows nothing of
// users, models or the database: its callers (package service) choose the
// endpoints and record the usage the answer reports.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modellab/modellab"
)

// Defaults of the contract (CHAT_FIRST_TOKEN_TIMEOUT_MS, CHAT_IDLE_TIMEOUT_MS).
const (
	DefaultFirstByteTimeout = 60 * time.Second
	DefaultIdleTimeout      = 30 * time.Second
	// DefaultPenalty is how long an endpoint that refused is passed over.
	DefaultPenalty = 5 * time.Second
	// maxAttempts bounds the endpoints one request tries when they refuse
	// the connection (a request that reached a server is never retried).
	maxAttempts = 3
	// MaxBodyBytes bounds a completion read whole.
	MaxBodyBytes = 8 << 20
)

// Config tunes a Gateway; zero fields get the defaults.
type Config struct {
	// Client sends the requests; nil means a client tuned for streaming
	// (see NewTransport).
	Client           *http.Client
	FirstByteTimeout time.Duration
	IdleTimeout      time.Duration
	Penalty          time.Duration
	Logger           *slog.Logger
	Now              func() time.Time
}

// Gateway sends chat completions to inference servers. It is safe for
// concurrent use.
type Gateway struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	rr      map[string]*atomic.Uint64 // round-robin position per key
	penalty map[string]time.Time      // endpoint -> passed over until
}

// New builds a gateway.
// LongestSilence is the longest a stream may go without a byte before the
// gateway ends it: the first-byte or the idle timeout.
func (g *Gateway) LongestSilence() time.Duration {
	return max(g.cfg.FirstByteTimeout, g.cfg.IdleTimeout)
}

func New(cfg Config) *Gateway {
	if cfg.FirstByteTimeout <= 0 {
		cfg.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Penalty <= 0 {
		cfg.Penalty = DefaultPenalty
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: NewTransport()}
	}
	return &Gateway{cfg: cfg, client: cfg.Client, log: cfg.Logger, now: cfg.Now,
		rr: map[string]*atomic.Uint64{}, penalty: map[string]time.Time{}}
}

// NewTransport is the transport of the default client: a bounded connect
// time, many idle connections per server (hundreds of streams may go to
// one), and no transparent gzip, which would buffer a stream.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
}

// Timeouts returns the first-byte and idle timeouts in force.
func (g *Gateway) Timeouts() (firstByte, idle time.Duration) {
	return g.cfg.FirstByteTimeout, g.cfg.IdleTimeout
}

// Request is one completion to send.
type Request struct {
	// Key groups the requests that share a round robin (a user's model).
	Key string
	// Endpoints are the base URLs of the OpenAI-compatible APIs that can
	// answer, e.g. http://gpu-1:8000/v1.
	Endpoints []string
	// Body is the request body, model already rewritten.
	Body   []byte
	Stream bool
	// HideUsage drops the usage-only chunk of a stream (the client did not
	// ask for it); its usage is still read.
	HideUsage bool
}

// Send sends req to one of its endpoints and returns the answer once its
// headers have arrived with a status below 500. An endpoint that refuses
// the connection is passed over for a while and the next one is tried.
func (g *Gateway) Send(ctx context.Context, req Request) (*Response, error) {
	if len(req.Endpoints) == 0 {
		return nil, modellab.Errorf(modellab.EUNAVAILABLE, "no inference server is running for this model")
	}
	var last error
	for i, ep := range g.order(req.Key, req.Endpoints) {
		if i == maxAttempts {
			break
		}
		res, err := g.try(ctx, ep, req)
		if err == nil {
			return res, nil
		}
		var re *refusedError
		if !errors.As(err, &re) || ctx.Err() != nil {
			return nil, err
		}
		g.punish(ep)
		last = re.err
		g.log.WarnContext(ctx, "inference server refused the connection", "endpoint", redact(ep), "err", re.cause)
	}
	return nil, last
}

// refusedError marks a failure to connect: nothing reached the server, so
// another one may be tried.
type refusedError struct {
	err   error // the *modellab.Error to answer
	cause error
}

func (e *refusedError) Error() string { return e.err.Error() }

// Timeout causes, told apart from a client that left.
var (
	errFirstByte = errors.New("first byte timeout")
	errIdle      = errors.New("idle timeout")
)

func (g *Gateway) try(ctx context.Context, endpoint string, req Request) (*Response, error) {
	u, err := completionsURL(endpoint)
	if err != nil {
		return nil, &refusedError{err: modellab.WrapError(modellab.EBADGATEWAY, err, "the inference server's endpoint is not a URL"), cause: err}
	}
	uctx, cancel := context.WithCancelCause(ctx)
	clock := newWatchdog(cancel, g.cfg.FirstByteTimeout, g.cfg.IdleTimeout)
	hreq, err := http.NewRequestWithContext(uctx, http.MethodPost, u, bytes.NewReader(req.Body))
	if err != nil {
		clock.stop()
		cancel(nil)
		return nil, modellab.WrapError(modellab.EINTERNAL, err, "could not build the upstream request")
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json, text/event-stream")
	res, err := g.client.Do(hreq)
	if err != nil {
		clock.stop()
		cancel(nil)
		return nil, g.sendError(ctx, uctx, endpoint, err)
	}
	r := &Response{Status: res.StatusCode, Header: res.Header, Endpoint: endpoint, hideUsage: req.HideUsage,
		body: &watchedBody{rc: res.Body, clock: clock, ctx: uctx, parent: ctx,
			firstByte: g.cfg.FirstByteTimeout, idle: g.cfg.IdleTimeout}, cancel: cancel}
	if res.StatusCode >= 500 {
		defer r.Close()
		g.punish(endpoint)
		msg := "no detail given"
		if b, err := io.ReadAll(io.LimitReader(r.body, 4<<10)); err == nil && len(b) > 0 {
			msg = errorText(b)
		}
		return nil, modellab.Errorf(modellab.EBADGATEWAY, "the inference server answered %d: %s", res.StatusCode, msg)
	}
	return r, nil
}

// sendError classifies a failed round trip: the client leaving, the first
// byte timeout, a refused connection, or anything else the server did.
func (g *Gateway) sendError(parent, uctx context.Context, endpoint string, err error) error {
	if parent.Err() != nil {
		return modellab.WrapError(modellab.EUNAVAILABLE, parent.Err(), "the request was cancelled")
	}
	if errors.Is(context.Cause(uctx), errFirstByte) {
		return modellab.WrapError(modellab.EGATEWAYTIMEOUT, err, "the inference server did not answer within %v", g.cfg.FirstByteTimeout)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return &refusedError{err: modellab.WrapError(modellab.EBADGATEWAY, err, "could not connect to the inference server %s", redact(endpoint)), cause: err}
	}
	return modellab.WrapError(modellab.EBADGATEWAY, err, "the inference server %s failed before answering", redact(endpoint))
}

// completionsURL is endpoint's chat completions URL.
func completionsURL(endpoint string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("endpoint %q is not an http(s) URL", redact(endpoint))
	}
	return strings.TrimRight(u.String(), "/") + "/chat/completions", nil
}

// redact keeps an endpoint's credentials, if any, out of messages.
func redact(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// order returns the endpoints starting at key's round-robin position, the
// ones passed over (recent refusals) last: when every endpoint refused
// recently, they are still tried rather than answering 503.
func (g *Gateway) order(key string, endpoints []string) []string {
	n := len(endpoints)
	start := int(g.counter(key).Add(1)-1) % n
	now := g.now()
	out := make([]string, 0, n)
	var later []string
	g.mu.Lock()
	for i := 0; i < n; i++ {
		ep := endpoints[(start+i)%n]
		if until, ok := g.penalty[ep]; ok && now.Before(until) {
			later = append(later, ep)
			continue
		}
		out = append(out, ep)
	}
	g.mu.Unlock()
	return append(out, later...)
}

// maxKeys bounds the round-robin and penalty maps: past it they are
// emptied (positions restart, which round robin does not mind).
const maxKeys = 100_000

func (g *Gateway) counter(key string) *atomic.Uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.rr[key]
	if !ok {
		if len(g.rr) >= maxKeys {
			clear(g.rr)
		}
		c = new(atomic.Uint64)
		g.rr[key] = c
	}
	return c
}

// punish passes endpoint over for the penalty time.
func (g *Gateway) punish(endpoint string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.penalty) >= maxKeys {
		clear(g.penalty)
	}
	g.penalty[endpoint] = g.now().Add(g.cfg.Penalty)
}
