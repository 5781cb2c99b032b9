// Package server is modellab's JSON API: its routes and handlers, the
// middleware every request goes through (request IDs, access log, metrics,
// recovery, body limits, load shedding) and the Prometheus metrics. The use
// cases themselves live in package service, which the pages (package web)
// call too; cmd/modellab mounts both on one mux and wraps it with Handler.
package server

import (
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"

	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/service"
)

// Config is everything a Server needs; cmd/modellab fills it in.
type Config struct {
	Service *service.Service
	Metrics *Metrics
	Logger  *slog.Logger

	// MaxInFlight bounds the requests being served at once; past it the
	// server answers 503 instead of queueing without limit.
	MaxInFlight int

	// AccessLog, when set, gets one line per request. It is a logger of
	// its own so that it can be buffered without delaying error logs.
	AccessLog *slog.Logger

	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client of an anonymous request, for fairness (clientAddr). None: the
	// peer's address, whatever the header says.
	TrustedProxies []netip.Prefix
}

// Server is the JSON API of modellab.
type Server struct {
	cfg     Config
	svc     *service.Service
	cache   *cache.Cache
	metrics *Metrics
	log     *slog.Logger

	// shuttingDown turns /readyz to 503 while the instance still serves:
	// the load balancer's readiness probe takes it out before it drains.
	shuttingDown atomic.Bool
}

// New builds the API. Register mounts its routes; Handler wraps a mux
// with the middleware.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 10000
	}
	s := &Server{cfg: cfg, svc: cfg.Service, cache: cfg.Service.Cache(), metrics: cfg.Metrics, log: cfg.Logger}
	s.metrics.Register(newCacheCollector(s.cache, service.Groups), composedBytes(cfg.Service))
	return s
}

// BeginShutdown makes /readyz answer 503 from now on; everything else is
// still served. serve calls it on SIGTERM, SHUTDOWN_DELAY_MS before it stops
// accepting connections.
func (s *Server) BeginShutdown() { s.shuttingDown.Store(true) }

// Metrics returns the server's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Logger returns the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Handler answers every path mux does not know with the JSON error of the
// contract (405 with Allow when the path exists under other methods) and
// wraps mux with the middleware. Mount every route first.
func (s *Server) Handler(mux *http.ServeMux) http.Handler {
	mux.HandleFunc("/", s.fallback(mux))
	return s.closeWhenShuttingDown(s.middleware(mux))
}

// closeWhenShuttingDown ends every connection after its response once
// BeginShutdown was called: the response says Connection: close, so that a
// proxy's pooled connection leaves the instance at a point where the proxy
// knows not to reuse it. Closing idle connections from this side instead
// races with a request the proxy is sending on one (a reset it cannot
// retry for a POST).
func (s *Server) closeWhenShuttingDown(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.shuttingDown.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// NewHandler is New, Register and Handler for a server with the API alone
// (tests, and tools that need no pages).
func NewHandler(cfg Config) (*Server, http.Handler) {
	s := New(cfg)
	mux := http.NewServeMux()
	s.Register(mux)
	return s, s.Handler(mux)
}
