// Package service holds modellab's use cases: the calls that the JSON API
// (package server) and the pages (package web) both make. Each read names
// its cache key, tags and TTL here, once, so a page and an API call of the
// same data share one cache entry; each write changes the database, then
// invalidates every entry it affects before it returns, so the next read on
// this instance sees it. The service knows nothing of HTTP.
//
// Database-bound work (cache misses and writes) runs under a bounded number
// of slots, handed out fairly between callers with a bounded share each
// (see admitter); cache hits never wait for one.
package service

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/academy"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/gateway"
)

// Config is everything a Service needs; cmd/modellab fills it in.
type Config struct {
	Store  Store
	Cache  *cache.Cache
	Logger *slog.Logger

	// AdminToken, when set, authenticates as AdminUser (DefaultAdmin when
	// its ID is empty).
	AdminToken string
	AdminUser  modellab.User

	ModelsTTL    time.Duration
	ServersTTL   time.Duration
	AnalyticsTTL time.Duration

	// Academy is Lab Academy's catalog (default: the embedded one) and
	// AcademyTTL how long its entries stay fresh (default 10 minutes):
	// lessons change only with the binary, progress is invalidated by
	// every completion.
	Academy    *academy.Catalog
	AcademyTTL time.Duration

	// MaxDBInFlight bounds the operations that need the database at once
	// (cache misses and writes); default DefaultMaxDBInFlight.
	MaxDBInFlight int
	// MaxDBInFlightPerUser bounds the slots one caller (a user, or an
	// anonymous client address) holds at once; default a quarter of
	// MaxDBInFlight, rounded up.
	MaxDBInFlightPerUser int
	// DBQueueWait is how long database-bound work may wait for a slot
	// before it is shed: ERATELIMITED when its caller held its whole
	// share, EUNAVAILABLE when the slots were taken by everyone together.
	DBQueueWait time.Duration
	// OnShed, when set, is told each time work is shed for want of a
	// slot ("db": every slot taken; "user": the caller's share used), and
	// OnSlotWait each time work waits for one (for the metrics).
	OnShed     func(reason string)
	OnSlotWait func()

	Now func() time.Time

	// Gateway sends chat completions to inference servers; nil means one
	// with the contract's default timeouts.
	Gateway *gateway.Gateway
}

// DefaultAdmin is the user the admin token acts as; serve creates its row
// so that the admin's models have a real owner.
var DefaultAdmin = modellab.User{ID: "usr_admin", Name: "admin", Admin: true}

// Service is the use-case layer. It is safe for concurrent use.
type Service struct {
	cfg   Config
	store Store
	cache *cache.Cache
	log   *slog.Logger
	now   func() time.Time
	auth  *authenticator
	comp  *composer
	tails *tailCache // raw histories of runs, for incremental reloads

	slots *admitter // the database slots

	gw     *gateway.Gateway
	routes routeMemo
	usage  *usageRecorder
}

// New builds the service; zero fields of cfg get the contract's defaults.
func New(cfg Config) *Service {
	clockGiven := cfg.Now != nil
	cfg = withDefaults(cfg)
	s := &Service{
		cfg:   cfg,
		store: cfg.Store,
		cache: cfg.Cache,
		log:   cfg.Logger,
		now:   cfg.Now,
		slots: newAdmitter(cfg.MaxDBInFlight, cfg.MaxDBInFlightPerUser, cfg.DBQueueWait),
		comp:  newComposer(),
		gw:    cfg.Gateway,
	}
	if cfg.Cache != nil && cfg.Cache.Mode() != "off" {
		// With caching off (the "before" of the experiment), every read
		// is a full read.
		s.tails = newTailCache()
	}
	s.auth = newAuthenticator(authConfigOf(cfg, clockGiven))
	s.usage = newUsageRecorder(s)
	return s
}

// authConfigOf is the token check's configuration. Without a clock given,
// it reads the cache's: the check runs on every request, the cache's clock
// is an atomic read where the system clock may cost a system call, and
// token expiry needs no more than its millisecond.
func authConfigOf(cfg Config, clockGiven bool) authConfig {
	a := authConfig{store: cfg.Store, cache: cfg.Cache, adminToken: cfg.AdminToken,
		admin: cfg.AdminUser, now: cfg.Now, log: cfg.Logger}
	if !clockGiven && cfg.Cache != nil {
		a.now, a.clock = cfg.Cache.Now, coarseClock{cfg.Cache}
	}
	return a
}

func withDefaults(cfg Config) Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AdminUser.ID == "" {
		cfg.AdminUser = DefaultAdmin
	}
	cfg.AdminUser.Admin = true
	if cfg.ModelsTTL <= 0 {
		cfg.ModelsTTL = 120 * time.Second
	}
	if cfg.ServersTTL <= 0 {
		cfg.ServersTTL = 30 * time.Second
	}
	if cfg.AnalyticsTTL <= 0 {
		cfg.AnalyticsTTL = 300 * time.Second
	}
	if cfg.Academy == nil {
		cfg.Academy = academy.MustEmbedded()
	}
	if cfg.AcademyTTL <= 0 {
		cfg.AcademyTTL = 10 * time.Minute
	}
	if cfg.MaxDBInFlight <= 0 {
		cfg.MaxDBInFlight = DefaultMaxDBInFlight
	}
	if cfg.MaxDBInFlightPerUser <= 0 || cfg.MaxDBInFlightPerUser > cfg.MaxDBInFlight {
		cfg.MaxDBInFlightPerUser = DefaultPerUser(cfg.MaxDBInFlight)
	}
	if cfg.DBQueueWait <= 0 {
		cfg.DBQueueWait = time.Second
	}
	if cfg.OnShed == nil {
		cfg.OnShed = func(string) {}
	}
	if cfg.OnSlotWait == nil {
		cfg.OnSlotWait = func() {}
	}
	if cfg.Gateway == nil {
		cfg.Gateway = gateway.New(gateway.Config{Logger: cfg.Logger})
	}
	return cfg
}

// Close stops the goroutines the service started (the token cache's
// expiry and use recorder, the usage recorder, after they wrote what they
// hold). The store and
// cache it was given are the caller's to close.
func (s *Service) Close() {
	s.usage.close()
	s.auth.close()
	s.comp.close()
}

// Now returns the service's clock, so that the transports render times and
// default ranges exactly as the use cases compute them.
func (s *Service) Now() time.Time { return s.now() }

// Cache returns the response cache, for the admin endpoints and metrics.
func (s *Service) Cache() *cache.Cache { return s.cache }

// ComposedBytes is what the composer keeps of recent composed answers.
func (s *Service) ComposedBytes() uint64 { return s.comp.bytes() }

// Ping checks that the database answers.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// DefaultMaxDBInFlight is MaxDBInFlight unless set: the size of the
// store's default PostgreSQL pool. Work admitted past what the pool runs
// at once would wait for a connection in the pool's queue, which is not
// fair between users, and every admitted operation shares the cores with
// the others (docs/BENCHMARKS.md (k) measures 64 against 20).
const DefaultMaxDBInFlight = 20

// DefaultPerUser is the share of maxDB slots one caller may hold unless
// configured: a quarter, rounded up, so that no one caller takes more
// than a quarter of the database and a bound below four still admits one.
func DefaultPerUser(maxDB int) int { return (maxDB + 3) / 4 }

// withDB runs fn while holding one of the database slots, admitted as
// ctx's caller (see WithCaller). Waiting longer than DBQueueWait sheds the
// work: shedding load beats queueing until every request times out, and
// shedding one caller's excess (429) beats failing everyone (503).
func (s *Service) withDB(ctx context.Context, fn func(context.Context) error) error {
	t, waited, err := s.slots.acquire(ctx, callerOf(ctx).key())
	if waited {
		s.cfg.OnSlotWait()
	}
	if err != nil {
		var shed *errShed
		switch {
		case !errors.As(err, &shed):
			return err
		case shed.perUser:
			s.cfg.OnShed("user")
			return modellab.WrapError(modellab.ERATELIMITED, err, "too many requests of yours need the database at once, try again")
		default:
			s.cfg.OnShed("db")
			return modellab.WrapError(modellab.EUNAVAILABLE, err, "the service is overloaded, try again")
		}
	}
	defer s.slots.release(t)
	return fn(ctx)
}
