package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/gateway"
	"github.com/modellab/modellab/internal/heapfloor"
	"github.com/modellab/modellab/server"
	"github.com/modellab/modellab/service"
	"github.com/modellab/modellab/store"
	"github.com/modellab/modellab/web"
)

// serveFlags are the flags of serve; empty values leave the environment's.
type serveFlags struct {
	addr, database, redis string
	demo                  autoBool
}

func (f *serveFlags) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", "", "listen `address` (overrides ADDR)")
	fs.StringVar(&f.database, "database", "", "database `URL`, sqlite://PATH or postgres://… (overrides DATABASE_URL)")
	fs.StringVar(&f.redis, "redis", "", "Redis `URL` (overrides the Redis variables)")
	fs.Var(&f.demo, "demo", "seed a small demo data set into a database without one, and print the demo token\n(default: on for SQLite, off for PostgreSQL)")
	return fs
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var f serveFlags
	fs := f.flagSet()
	if code, ok := parseFlags(fs, cmdServe, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, cmdServe, "unexpected arguments %q", fs.Args())
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return usageError(stderr, cmdServe, "%v", err)
	}
	if f.addr != "" {
		cfg.Addr = f.addr
	}
	if f.database != "" {
		cfg.DatabaseURL = f.database
	}
	if f.redis != "" {
		if err := checkRedisURL("--redis", f.redis); err != nil {
			return usageError(stderr, cmdServe, "%v", err)
		}
		cfg.RedisURL = f.redis
	}
	if err := checkDatabaseURL("--database", cfg.DatabaseURL); err != nil {
		return usageError(stderr, cmdServe, "%v", err)
	}
	wantDemo := f.demo.or(strings.HasPrefix(cfg.DatabaseURL, "sqlite://"))
	log := newLogger(stderr, cfg)
	if err := serve(ctx, cfg, wantDemo, log, stderr, stdout); err != nil {
		log.Error("modellab serve failed", "err", err)
		return 1
	}
	return 0
}

// app is everything serve wires together; bench reuses it.
type app struct {
	accessLog *bufferedLog
	db        *store.DB
	cache     *cache.Cache
	service   *service.Service
	metrics   *server.Metrics
	api       *server.Server
	handler   http.Handler
}

func (a *app) close() {
	if a.service != nil {
		a.service.Close()
	}
	if a.accessLog != nil {
		_ = a.accessLog.Close()
	}
	if a.cache != nil {
		a.cache.Close()
	}
	if a.db != nil {
		_ = a.db.Close()
	}
}

// newApp opens the database (migrating it), the cache, the use cases, and
// mounts the JSON API and the pages on one mux.
func newApp(ctx context.Context, cfg config, log *slog.Logger, logOut io.Writer) (*app, error) {
	a := &app{metrics: server.NewMetrics()}
	if err := a.openStore(ctx, cfg, log); err != nil {
		a.close()
		return nil, err
	}
	c, err := cache.New(cacheOptions(cfg, log))
	if err != nil {
		a.close()
		return nil, fmt.Errorf("cache: %w", err)
	}
	a.cache = c
	a.metrics.Register(newPoolCollector(a.db))
	a.service = service.New(service.Config{
		Store:                a.db,
		Cache:                c,
		Logger:               log,
		AdminToken:           cfg.AdminToken,
		ModelsTTL:            cfg.ModelsTTL,
		ServersTTL:           cfg.ServersTTL,
		AnalyticsTTL:         cfg.AnalyticsTTL,
		MaxDBInFlight:        cfg.MaxDBInFlight,
		MaxDBInFlightPerUser: cfg.MaxDBPerUser,
		OnShed:               a.metrics.Shed,
		OnSlotWait:           a.metrics.DBSlotWait,
		Gateway:              gateway.New(gateway.Config{FirstByteTimeout: cfg.ChatFirstByte, IdleTimeout: cfg.ChatIdle, Logger: log}),
	})
	if err := a.mount(cfg, log, logOut); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// openStore opens and migrates the database, and creates the admin user
// when an admin token is configured.
func (a *app) openStore(ctx context.Context, cfg config, log *slog.Logger) error {
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{
		OnQuery:      a.metrics.DBQuery,
		QueryTimeout: cfg.DBTimeout,
		MaxConns:     cfg.DBMaxConns,
		Logger:       log,
	})
	if err != nil {
		return fmt.Errorf("open database %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	a.db = db
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if cfg.AdminToken != "" {
		if err := db.EnsureUser(ctx, service.DefaultAdmin); err != nil {
			return fmt.Errorf("create the admin user: %w", err)
		}
	}
	return nil
}

func cacheOptions(cfg config, log *slog.Logger) cache.Options {
	copts := cache.Options{
		Prefix:       cfg.CachePrefix,
		RedisURL:     cfg.RedisURL,
		DisableRedis: cfg.DisableRedis,
		Disabled:     cfg.DisableCache,
		DisableLocal: cfg.DisableLocal,
		KeepLocal:    []string{service.TokenKeyPrefix},
		Stale:        cfg.Stale,
		RedisTimeout: cfg.RedisTimeout,
		Logger:       log,
	}
	if cfg.DisableRedis || cfg.DisableCache {
		copts.RedisURL = ""
	}
	return copts
}

// mount puts the JSON API and the pages on one mux behind the middleware.
func (a *app) mount(cfg config, log *slog.Logger, logOut io.Writer) error {
	var accessLog *slog.Logger
	if cfg.AccessLog {
		a.accessLog = newBufferedLog(logOut)
		accessLog = newLogger(a.accessLog, cfg)
	}
	api := server.New(server.Config{
		Service:        a.service,
		Metrics:        a.metrics,
		Logger:         log,
		MaxInFlight:    cfg.MaxInFlight,
		TrustedProxies: cfg.TrustedProxies,
		AccessLog:      accessLog,
	})
	a.api = api
	pages, err := web.New(web.Config{Service: a.service, Logger: log})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	api.Register(mux)
	pages.Register(mux)
	a.handler = api.Handler(mux)
	return nil
}

func serve(ctx context.Context, cfg config, wantDemo bool, log *slog.Logger, logOut, stdout io.Writer) error {
	a, err := newApp(ctx, cfg, log, logOut)
	if err != nil {
		return err
	}
	defer a.close()
	if cfg.HeapFloor > 0 {
		defer heapfloor.Start(cfg.HeapFloor, 100).Stop()
	}
	a.metrics.Register(buildInfoCollector(readBuildInfo()))
	log.Info("database ready", "engine", a.db.Engine(), "url", redactURL(cfg.DatabaseURL))
	log.Info("cache ready", "mode", a.cache.Mode(), "redis", a.cache.RedisState())

	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	if wantDemo {
		d := demoSeed{baseURL: "http://" + displayAddr(addr), ignore: demoIgnores(cfg), inference: demoInference(cfg)}
		if err := seedDemo(ctx, a.db, log, stdout, d); err != nil {
			ln.Close()
			return err
		}
	}
	srv := newHTTPServer(a.handler, log)
	conns := newConnStates()
	srv.ConnState = conns.track
	if cfg.DebugAddr != "" {
		stop, err := serveDebug(cfg.DebugAddr, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	fmt.Fprintf(stdout, "modellab listening on http://%s\n", displayAddr(addr))
	log.Info("listening", "addr", addr)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	h := handover{srv: srv, ln: ln, conns: conns, api: a.api, served: errc, cfg: cfg, log: log}
	if err := h.run(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// displayAddr turns ":8080" or "[::]:8080" into something a browser opens.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// demoSeed is what the demo seeding needs besides the database.
type demoSeed struct {
	baseURL   string   // where the server listens, for the hint printed
	ignore    []string // users that do not make a database non-empty
	inference store.InferenceSeed
}

// demoIgnores are the users that do not count as data for the demo seed:
// the admin user ADMIN_TOKEN acts as (newApp creates it).
func demoIgnores(cfg config) []string {
	if cfg.AdminToken != "" {
		return []string{service.DefaultAdmin.ID}
	}
	return nil
}

// demoInference is the inference server of the demo's running servers.
func demoInference(cfg config) store.InferenceSeed {
	return store.InferenceSeed{URL: cfg.DemoInferenceURL, Model: cfg.DemoInferenceModel}
}

// newHTTPServer bounds every phase of a connection, so that slow or idle
// clients cannot hold the server's resources.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// seedDemo seeds an empty database with the small demo set and prints the
// demo user's token, which the seed made. On a database seeded before it
// mints nothing (a token printed on every start would pile up in the
// database and in logs): it says how to mint one. The users in d.ignore
// (the admin user) do not make a database non-empty.
func seedDemo(ctx context.Context, db *store.DB, log *slog.Logger, stdout io.Writer, d demoSeed) error {
	empty, err := db.Empty(ctx, d.ignore...)
	if err != nil {
		return fmt.Errorf("check for an empty database: %w", err)
	}
	if !empty {
		_, err := db.UserIDByName(ctx, "demo")
		switch {
		case modellab.ErrorCode(err) == modellab.ENOTFOUND:
			return nil // not a demo database: nothing to print
		case err != nil:
			return fmt.Errorf("look up the demo user: %w", err)
		}
		fmt.Fprintln(stdout, "demo data already present; mint a token for it with: modellab token --user demo")
		return nil
	}
	start := time.Now()
	opts := store.DemoSeedOptions()
	opts.IgnoreUsers, opts.Inference = d.ignore, d.inference
	res, err := store.Seed(ctx, db, opts)
	if err != nil {
		return fmt.Errorf("seed demo data: %w", err)
	}
	log.Info("seeded demo data", "users", len(res.Users), "models", res.Models, "servers", res.Servers,
		"events", res.Events, "took", time.Since(start).Round(time.Millisecond))
	for _, u := range res.Users {
		if u.Name == "demo" {
			fmt.Fprintf(stdout, "demo user \"demo\" token: %s\n", u.Token)
			fmt.Fprintf(stdout, "  try: curl -H 'Authorization: Bearer %s' %s/api/servers/status\n", u.Token, d.baseURL)
		}
	}
	return nil
}
