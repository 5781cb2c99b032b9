package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/modellab/modellab/server"
	"github.com/modellab/modellab/service"
)

// config is the environment (envVars), parsed and checked once at start.
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
	MaxDBPerUser  int
	DBMaxConns    int
	DBTimeout     time.Duration
	Shutdown      time.Duration
	ShutdownDelay time.Duration // readiness 503 but still serving, before the drain
	DebugAddr     string        // "" = no profiling listener
	// HeapFloor is the heap size below which the collector does not run
	// (0: none, as when GOGC is set: the operator chose).
	HeapFloor uint64
	// TrustedProxies name the client of an anonymous request through
	// X-Forwarded-For (none: the peer is the client).
	TrustedProxies []netip.Prefix
	// Inherited: socket activation passed this process its listening
	// socket (file descriptor 3); Addr is not listened on.
	Inherited bool

	// The chat gateway's timeouts, and the inference server the demo
	// data's running servers point at ("" = none).
	ChatFirstByte      time.Duration
	ChatIdle           time.Duration
	DemoInferenceURL   string
	DemoInferenceModel string
}

// scope is the set of commands that read a variable.
type scope uint8

const (
	inServe scope = 1 << iota
	inBench       // bench runs the server in-process with its own database, Redis, log and prefix settings
	inDB          // seed and migrate: the database and the logs
	inProbe       // the container health probe: where the server listens
)

// envVar is one environment variable. Loading (its default), every
// command's --help and the README's configuration table all come from this
// one list, so that they cannot drift apart.
type envVar struct {
	name string
	// def is the value used when the variable is unset; it is parsed like
	// a set value.
	def string
	// shown is the default as documented (Markdown), when def alone would
	// mislead; empty means def, or "—" when def is empty too.
	shown   string
	meaning string
	scope   scope
}

const (
	allServer = inServe | inBench
	anyLog    = inServe | inBench | inDB
)

// envVars is the configuration, in the order the README lists it.
var envVars = []envVar{
	{"ADDR", ":8080", "`:8080` (or `:$PORT` when `PORT` is set)", "listen address", inServe | inProbe},
	{"PORT", "", "", "listen port when `ADDR` is not set (set by many platforms)", inServe | inProbe},
	{"LISTEN_FDS", "", "unset", "socket activation (systemd's `modellab.socket`, or any supervisor that does the same): `1` with `LISTEN_PID` naming this process serves the inherited listening socket, file descriptor 3, instead of listening on `ADDR`; the socket outlives a restart, so connections made meanwhile wait in it instead of being refused (DEPLOYMENT.md, \"Rolling restarts behind nginx\")", inServe},
	{"LISTEN_PID", "", "unset", "the process `LISTEN_FDS` is meant for; `LISTEN_FDS` is ignored in any other process (as systemd's `sd_listen_fds` does)", inServe},
	{"DATABASE_URL", "sqlite://./modellab.db", "", "`postgres://…` selects PostgreSQL; `sqlite://PATH` the embedded SQLite", inServe | inDB},
	{"REDIS_URL", "", "", "`redis://` or `rediss://` (TLS) URL of a standalone Redis or any node of a Redis Cluster", inServe},
	{"UPSTASH_REDIS_URL", "", "", "production Redis (TLS `rediss://`); wins over `REDIS_URL` when both are set", inServe},
	{"REDIS_HOST", "localhost", "", "Redis host, used when no URL is set", inServe},
	{"REDIS_PORT", "6379", "", "Redis port, used when no URL is set", inServe},
	{"DISABLE_REDIS_CACHE", "false", "", "`true`: never talk to Redis; the in-memory tier serves alone", inServe},
	{"DISABLE_CACHE", "false", "", "`true`: no response caching at all (the \"before\" of the benchmark)", inServe},
	{"MODELS_CACHE_TTL_MS", "120000", "", "TTL of model lists", allServer},
	{"SERVERS_CACHE_TTL_MS", "30000", "", "TTL of server status", allServer},
	{"ANALYTICS_CACHE_TTL_MS", "300000", "", "TTL of analytics results", allServer},
	{"CACHE_STALE_MS", "600000", "", "how long past its TTL an entry may still be served (stale-while-revalidate, stale-if-error)", allServer},
	{"ADMIN_TOKEN", "", "", "a bearer token that acts as the admin user", allServer},
	{"LOG_LEVEL", "info", "", "slog level: `debug`, `info`, `warn` or `error`", inServe | inDB},
	{"LOG_FORMAT", "text", "", "`text` or `json`", anyLog},
	{"CACHE_PREFIX", "", "", "prefix of every Redis key, to share one Redis between deployments", inServe},
	{"REDIS_TIMEOUT_MS", "100", "", "deadline of every Redis call", allServer},
	{"DISABLE_LOCAL_CACHE", "false", "", "`true`: no in-process tier for answers, which are then read from Redis every time (to measure the Redis tier alone); token lookups keep theirs", allServer},
	{"ACCESS_LOG", "true", "", "one log line per request", inServe},
	{"GC_HEAP_FLOOR_MB", "64", "", "the heap may grow to this size before the garbage collector runs (GOGC is raised after each cycle whose live heap is smaller; a small live heap, as without the in-process tier, is otherwise collected many times a second); `0`: the collector's own pacing; ignored when `GOGC` is set; `GOMEMLIMIT` still bounds the heap", inServe},
	{"GOGC", "", "unset", "read by the Go runtime itself (its collector's target percentage); set, it turns `GC_HEAP_FLOOR_MB` off", inServe},
	{"DEBUG_ADDR", "", "", "an address (e.g. `127.0.0.1:6060`) for a separate listener serving `/debug/pprof/`; never on the API address", inServe},
	{"TRUSTED_PROXIES", "", "none", "addresses or CIDR prefixes, comma-separated (e.g. `127.0.0.1,10.0.0.0/8`), of the proxies in front: for a request from one of them, fairness counts an anonymous client by the last `X-Forwarded-For` address that is not itself a trusted proxy; otherwise (and by default) by the peer's address, so that behind nginx every anonymous client is one", inServe},
	{"MAX_IN_FLIGHT", "10000", "", "requests served at once; past it, 503 with `Retry-After`", allServer},
	{"MAX_DB_IN_FLIGHT", "", "`DB_MAX_CONNS`, or 20 when that is `0`", "database-bound operations at once; the rest wait up to 1 s, then 503 (429 for a user past `MAX_DB_IN_FLIGHT_PER_USER`)", allServer},
	{"MAX_DB_IN_FLIGHT_PER_USER", "", "a quarter of `MAX_DB_IN_FLIGHT` (rounded up)", "database-bound operations one user (or one anonymous client address) may hold at once, at most `MAX_DB_IN_FLIGHT`; the rest of that user's work waits its turn (fair between users) and is shed with 429 `rate_limited` and `Retry-After` when the wait runs out", allServer},
	{"DB_MAX_CONNS", "0", "20 (PostgreSQL), 4 readers (SQLite)", "connection pool size", allServer},
	{"DB_TIMEOUT_MS", "3000", "", "deadline of every database statement", allServer},
	{"SHUTDOWN_DELAY_MS", "5000", "", "on SIGTERM, `/readyz` answers 503 at once and the server keeps serving this long (so a load balancer stops sending) before it drains; `0` drains at once", inServe},
	{"SHUTDOWN_TIMEOUT_MS", "20000", "", "how long SIGTERM waits for in-flight requests", inServe},
	{"CHAT_FIRST_TOKEN_TIMEOUT_MS", "60000", "", "how long the gateway waits for an inference server's first byte (then 504 `gateway_timeout`)", allServer},
	{"CHAT_IDLE_TIMEOUT_MS", "30000", "", "how long a stream may stay silent between two chunks (then a last error event)", allServer},
	{"DEMO_INFERENCE_URL", "", "unset", "an OpenAI-compatible base URL (e.g. Ollama's `http://localhost:11434/v1`) that the demo user's running servers point at when the demo data is seeded; unset, they have no endpoint and the chat page says that nothing can be reached", inServe | inDB},
	{"DEMO_INFERENCE_MODEL", defaultDemoInferenceModel, "", "the model to ask `DEMO_INFERENCE_URL` for: the demo user gets a model of that name, served as that base model", inServe | inDB},
}

// defaultDemoInferenceModel is the model the demo asks DEMO_INFERENCE_URL
// for unless DEMO_INFERENCE_MODEL names another: a small one Ollama serves.
const defaultDemoInferenceModel = "llama3.2"

// lookupEnv returns the entry of name; asking for a variable missing from
// envVars is a programming error.
func lookupEnv(name string) envVar {
	for _, v := range envVars {
		if v.name == name {
			return v
		}
	}
	panic("config: " + name + " is not in envVars")
}

// envReader reads the variables of one scope; a variable outside it reads
// as its default, so that a command never fails on a variable it ignores.
type envReader struct {
	getenv func(string) string
	scope  scope
	err    error
}

func (e *envReader) str(name string) string {
	v := lookupEnv(name)
	if v.scope&e.scope != 0 {
		if s := e.getenv(name); s != "" {
			return s
		}
	}
	return v.def
}

func (e *envReader) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *envReader) boolean(name string) bool {
	v := e.str(name)
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(fmt.Errorf("%s=%q: must be true or false", name, v))
	}
	return b
}

func (e *envReader) millis(name string) time.Duration {
	return time.Duration(e.integer(name, 1)) * time.Millisecond
}

func (e *envReader) integer(name string, min int) int {
	v := e.str(name)
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < min {
		e.fail(fmt.Errorf("%s=%q: must be an integer of at least %d", name, v, min))
	}
	return n
}

// inherited reports whether socket activation passed process pid its
// listening socket. Only one socket is served: more is a configuration
// error, not something to guess about.
func (e *envReader) inherited(pid int) bool {
	fds, owner := e.str("LISTEN_FDS"), e.str("LISTEN_PID")
	if fds == "" || owner != strconv.Itoa(pid) {
		return false
	}
	if fds != "1" {
		e.fail(fmt.Errorf("LISTEN_FDS=%q: modellab serves exactly one inherited socket", fds))
		return false
	}
	return true
}

func (e *envReader) prefixes(name string) []netip.Prefix {
	v := e.str(name)
	p, err := server.ParseTrustedProxies(v)
	if err != nil {
		e.fail(fmt.Errorf("%s=%q: %v (addresses or CIDR prefixes, comma-separated)", name, v, err))
	}
	return p
}

// loadConfig reads the whole environment, as serve does.
func loadConfig(getenv func(string) string) (config, error) {
	return loadConfigFor(getenv, inServe)
}

// loadConfigFor reads the variables of one command's scope; the others keep
// their defaults.
func loadConfigFor(getenv func(string) string, sc scope) (config, error) {
	e := &envReader{getenv: getenv, scope: sc}
	var c config
	c.Addr = e.str("ADDR")
	if p := e.str("PORT"); p != "" && e.getenv("ADDR") == "" {
		c.Addr = ":" + p
	}
	c.Inherited = e.inherited(os.Getpid())
	c.DatabaseURL = e.str("DATABASE_URL")
	c.DisableRedis = e.boolean("DISABLE_REDIS_CACHE")
	c.DisableCache = e.boolean("DISABLE_CACHE")
	c.DisableLocal = e.boolean("DISABLE_LOCAL_CACHE")
	c.ModelsTTL = e.millis("MODELS_CACHE_TTL_MS")
	c.ServersTTL = e.millis("SERVERS_CACHE_TTL_MS")
	c.AnalyticsTTL = e.millis("ANALYTICS_CACHE_TTL_MS")
	c.Stale = e.millis("CACHE_STALE_MS")
	c.RedisTimeout = e.millis("REDIS_TIMEOUT_MS")
	c.CachePrefix = e.str("CACHE_PREFIX")
	c.AdminToken = e.str("ADMIN_TOKEN")
	c.AccessLog = e.boolean("ACCESS_LOG")
	c.MaxInFlight = e.integer("MAX_IN_FLIGHT", 1)
	c.DBMaxConns = e.integer("DB_MAX_CONNS", 0)
	c.MaxDBInFlight = e.maxDB(c.DBMaxConns)
	c.MaxDBPerUser = e.perUser(c.MaxDBInFlight)
	c.DBTimeout = e.millis("DB_TIMEOUT_MS")
	c.Shutdown = e.millis("SHUTDOWN_TIMEOUT_MS")
	c.ShutdownDelay = time.Duration(e.integer("SHUTDOWN_DELAY_MS", 0)) * time.Millisecond
	c.DebugAddr = e.str("DEBUG_ADDR")
	c.HeapFloor = uint64(e.integer("GC_HEAP_FLOOR_MB", 0)) << 20
	if e.str("GOGC") != "" {
		c.HeapFloor = 0
	}
	c.TrustedProxies = e.prefixes("TRUSTED_PROXIES")
	e.chat(&c)
	c.LogLevel = e.logLevel()
	c.LogFormat = strings.ToLower(e.str("LOG_FORMAT"))
	if c.LogFormat != "text" && c.LogFormat != "json" {
		e.fail(fmt.Errorf("LOG_FORMAT=%q: must be text or json", c.LogFormat))
	}
	if e.err != nil {
		return c, e.err
	}
	if err := checkDatabaseURL("DATABASE_URL", c.DatabaseURL); err != nil {
		return c, err
	}
	var err error
	if c.RedisURL, err = redisURL(e.str); err != nil {
		return c, err
	}
	return c, nil
}

// maxDB reads MAX_DB_IN_FLIGHT; unset, the pool's size (DB_MAX_CONNS, or
// service.DefaultMaxDBInFlight, the default pool's), for the reasons
// given there.
func (e *envReader) maxDB(poolSize int) int {
	if strings.TrimSpace(e.str("MAX_DB_IN_FLIGHT")) != "" {
		return e.integer("MAX_DB_IN_FLIGHT", 1)
	}
	if poolSize > 0 {
		return poolSize
	}
	return service.DefaultMaxDBInFlight
}

// perUser reads MAX_DB_IN_FLIGHT_PER_USER: unset, a quarter of maxDB; set,
// an integer in 1..maxDB (a share above the whole would bound nothing).
func (e *envReader) perUser(maxDB int) int {
	const name = "MAX_DB_IN_FLIGHT_PER_USER"
	v := strings.TrimSpace(e.str(name))
	if v == "" {
		return service.DefaultPerUser(maxDB)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxDB {
		e.fail(fmt.Errorf("%s=%q: must be an integer from 1 to MAX_DB_IN_FLIGHT (%d)", name, v, maxDB))
	}
	return n
}

// chat reads the gateway's timeouts and the demo's inference server.
func (e *envReader) chat(c *config) {
	c.ChatFirstByte = e.millis("CHAT_FIRST_TOKEN_TIMEOUT_MS")
	c.ChatIdle = e.millis("CHAT_IDLE_TIMEOUT_MS")
	c.DemoInferenceURL = strings.TrimSpace(e.str("DEMO_INFERENCE_URL"))
	c.DemoInferenceModel = strings.TrimSpace(e.str("DEMO_INFERENCE_MODEL"))
	if err := checkInferenceURL("DEMO_INFERENCE_URL", c.DemoInferenceURL); err != nil {
		e.fail(err)
	}
}

// checkInferenceURL accepts "" (none) or the http(s) base URL of an
// OpenAI-compatible API, e.g. http://localhost:11434/v1.
func checkInferenceURL(name, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s=%q: want the http(s) base URL of an OpenAI-compatible API, e.g. http://localhost:11434/v1", name, v)
	}
	return nil
}

func (e *envReader) logLevel() slog.Level {
	switch lvl := strings.ToLower(e.str("LOG_LEVEL")); lvl {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		e.fail(fmt.Errorf("LOG_LEVEL=%q: must be debug, info, warn or error", lvl))
		return slog.LevelInfo
	}
}

// redisURL applies the precedence of the configuration: UPSTASH_REDIS_URL,
// then REDIS_URL, then REDIS_HOST/REDIS_PORT. get returns a variable's value
// or its default.
func redisURL(get func(string) string) (string, error) {
	for _, name := range []string{"UPSTASH_REDIS_URL", "REDIS_URL"} {
		if v := get(name); v != "" {
			return v, checkRedisURL(name, v)
		}
	}
	host, port := get("REDIS_HOST"), get("REDIS_PORT")
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
