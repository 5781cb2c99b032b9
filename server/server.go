// Package server is modellab's HTTP layer: the JSON API, the pages, the
// middleware (request IDs, access log, recovery, auth, body limits, load
// shedding) and the service calls that the API and the pages share. Reads of
// the three hot endpoints go through the response cache; every write
// invalidates what it changes before it answers.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// Config is everything a Server needs; cmd/modellab fills it in.
type Config struct {
	Store   Store
	Cache   *cache.Cache
	Metrics *Metrics
	Logger  *slog.Logger

	// AdminToken, when set, authenticates as the admin user AdminUser.
	AdminToken string
	AdminUser  modellab.User

	ModelsTTL    time.Duration
	ServersTTL   time.Duration
	AnalyticsTTL time.Duration

	// MaxInFlight bounds the requests being served at once; past it the
	// server answers 503 instead of queueing without limit.
	MaxInFlight int
	// MaxDBInFlight bounds the operations that need the database at once
	// (cache misses and writes); cache hits never wait for it.
	MaxDBInFlight int
	// DBQueueWait is how long database-bound work may wait for a slot
	// before it is answered 503.
	DBQueueWait time.Duration

	// AccessLog, when set, gets one line per request. It is a logger of
	// its own so that it can be buffered without delaying error logs.
	AccessLog *slog.Logger

	// Pages mounts the HTML pages; nil leaves them out.
	Pages func(s *Server, mux *http.ServeMux)

	Now func() time.Time
}

// Server is the HTTP handler of modellab.
type Server struct {
	cfg     Config
	store   Store
	cache   *cache.Cache
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	auth    *authenticator
	handler http.Handler

	dbSlots chan struct{}
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ModelsTTL <= 0 {
		cfg.ModelsTTL = 120 * time.Second
	}
	if cfg.ServersTTL <= 0 {
		cfg.ServersTTL = 30 * time.Second
	}
	if cfg.AnalyticsTTL <= 0 {
		cfg.AnalyticsTTL = 300 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 10000
	}
	if cfg.MaxDBInFlight <= 0 {
		cfg.MaxDBInFlight = 64
	}
	if cfg.DBQueueWait <= 0 {
		cfg.DBQueueWait = time.Second
	}
	s := &Server{
		cfg:     cfg,
		store:   cfg.Store,
		cache:   cfg.Cache,
		metrics: cfg.Metrics,
		log:     cfg.Logger,
		now:     cfg.Now,
		dbSlots: make(chan struct{}, cfg.MaxDBInFlight),
	}
	s.auth = newAuthenticator(cfg.Store, cfg.AdminToken, cfg.AdminUser, cfg.Now)
	if s.cache != nil {
		s.metrics.Register(newCacheCollector(s.cache))
	}
	s.handler = s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Metrics returns the server's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Close stops the goroutines the server started (the token cache's
// expiry). The store and cache it was given are the caller's to close.
func (s *Server) Close() { s.auth.tokens.StopAllGoroutines() }

// Logger returns the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// withDB runs fn while holding one of the database slots. Waiting longer
// than DBQueueWait answers EUNAVAILABLE: shedding load beats queueing until
// every request times out.
func (s *Server) withDB(ctx context.Context, fn func(context.Context) error) error {
	select {
	case s.dbSlots <- struct{}{}:
	default:
		s.metrics.DBSlotWait()
		t := time.NewTimer(s.cfg.DBQueueWait)
		select {
		case s.dbSlots <- struct{}{}:
			t.Stop()
		case <-t.C:
			s.metrics.shed.WithLabelValues("db").Inc()
			return modellab.Errorf(modellab.EUNAVAILABLE, "the service is overloaded, try again")
		case <-ctx.Done():
			t.Stop()
			return modellab.WrapError(modellab.EUNAVAILABLE, ctx.Err(), "the request was cancelled")
		}
	}
	defer func() { <-s.dbSlots }()
	return fn(ctx)
}
