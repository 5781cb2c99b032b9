package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// config is the environment of SPEC.md, parsed and checked once at start.
// A bad value is fatal, with a message naming the variable.
type config struct {
	Addr          string
	DatabaseURL   string
	RedisURL      string // "" when Redis is disabled
	DisableRedis  bool
	DisableCache  bool
	DisableLocal  bool
	ModelsTTL     time.Duration
	ServersTTL    time.Duration
	AnalyticsTTL  time.Duration
	Stale         time.Duration
	RedisTimeout  time.Duration
	CachePrefix   string
	AdminToken    string
	LogLevel      slog.Level
	LogFormat     string
	AccessLog     bool
	MaxInFlight   int
	MaxDBInFlight int
	DBMaxConns    int
	DBTimeout     time.Duration
	Shutdown      time.Duration
	DebugAddr     string // "" = no profiling listener
}

type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) str(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envReader) boolean(name string, def bool) bool {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("%s=%q: must be true or false", name, v)
	}
	return b
}

func (e *envReader) millis(name string, def int) time.Duration {
	return time.Duration(e.integer(name, def, 1)) * time.Millisecond
}

func (e *envReader) integer(name string, def, min int) int {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if (err != nil || n < min) && e.err == nil {
		e.err = fmt.Errorf("%s=%q: must be an integer of at least %d", name, v, min)
	}
	return n
}

// loadConfig reads the environment of SPEC.md (and a few tuning knobs).
func loadConfig(getenv func(string) string) (config, error) {
	e := &envReader{getenv: getenv}
	var c config
	c.Addr = e.str("ADDR", "")
	if c.Addr == "" {
		c.Addr = ":8080"
		if p := getenv("PORT"); p != "" {
			c.Addr = ":" + p
		}
	}
	c.DatabaseURL = e.str("DATABASE_URL", "sqlite://./modellab.db")
	c.DisableRedis = e.boolean("DISABLE_REDIS_CACHE", false)
	c.DisableCache = e.boolean("DISABLE_CACHE", false)
	c.DisableLocal = e.boolean("DISABLE_LOCAL_CACHE", false)
	c.ModelsTTL = e.millis("MODELS_CACHE_TTL_MS", 120000)
	c.ServersTTL = e.millis("SERVERS_CACHE_TTL_MS", 30000)
	c.AnalyticsTTL = e.millis("ANALYTICS_CACHE_TTL_MS", 300000)
	c.Stale = e.millis("CACHE_STALE_MS", 600000)
	c.RedisTimeout = e.millis("REDIS_TIMEOUT_MS", 100)
	c.CachePrefix = e.str("CACHE_PREFIX", "")
	c.AdminToken = getenv("ADMIN_TOKEN")
	c.AccessLog = e.boolean("ACCESS_LOG", true)
	c.MaxInFlight = e.integer("MAX_IN_FLIGHT", 10000, 1)
	c.MaxDBInFlight = e.integer("MAX_DB_IN_FLIGHT", 64, 1)
	c.DBMaxConns = e.integer("DB_MAX_CONNS", 0, 0)
	c.DBTimeout = e.millis("DB_TIMEOUT_MS", 3000)
	c.Shutdown = e.millis("SHUTDOWN_TIMEOUT_MS", 20000)
	c.DebugAddr = e.str("DEBUG_ADDR", "")
	switch lvl := strings.ToLower(e.str("LOG_LEVEL", "info")); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		if e.err == nil {
			e.err = fmt.Errorf("LOG_LEVEL=%q: must be debug, info, warn or error", lvl)
		}
	}
	c.LogFormat = strings.ToLower(e.str("LOG_FORMAT", "text"))
	if c.LogFormat != "text" && c.LogFormat != "json" && e.err == nil {
		e.err = fmt.Errorf("LOG_FORMAT=%q: must be text or json", c.LogFormat)
	}
	if e.err != nil {
		return c, e.err
	}
	if err := checkDatabaseURL("DATABASE_URL", c.DatabaseURL); err != nil {
		return c, err
	}
	var err error
	if c.RedisURL, err = redisURL(getenv); err != nil {
		return c, err
	}
	return c, nil
}

// redisURL applies the precedence of SPEC.md: UPSTASH_REDIS_URL, then
// REDIS_URL, then REDIS_HOST/REDIS_PORT.
func redisURL(getenv func(string) string) (string, error) {
	for _, name := range []string{"UPSTASH_REDIS_URL", "REDIS_URL"} {
		if v := getenv(name); v != "" {
			return v, checkRedisURL(name, v)
		}
	}
	host := getenv("REDIS_HOST")
	if host == "" {
		host = "localhost"
	}
	port := getenv("REDIS_PORT")
	if port == "" {
		port = "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("REDIS_PORT=%q: must be a port number", port)
	}
	return "redis://" + net.JoinHostPort(host, port), nil
}

func checkRedisURL(name, v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("%s: not a URL: %v", name, err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return fmt.Errorf("%s: unknown scheme %q (want redis:// or rediss://)", name, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%s: the URL names no host", name)
	}
	return nil
}

func checkDatabaseURL(name, v string) error {
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok {
		return fmt.Errorf("%s=%q: want sqlite://PATH or postgres://…", name, v)
	}
	switch scheme {
	case "sqlite":
		if rest == "" {
			return fmt.Errorf("%s=%q: sqlite:// needs a path", name, v)
		}
	case "postgres", "postgresql":
	default:
		return fmt.Errorf("%s=%q: unknown scheme %q (want sqlite or postgres)", name, v, scheme)
	}
	return nil
}

func newLogger(w io.Writer, c config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redactURL hides a password in a URL for the logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}
