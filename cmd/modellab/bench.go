package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modellab/modellab/loadtest"
	"github.com/modellab/modellab/store"
)

// benchFlags are the command line of bench.
type benchFlags struct {
	conns                          int
	dur                            time.Duration
	database, redis, targets, size string
	users                          string
	asJSON                         bool
}

func (f *benchFlags) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&f.conns, "connections", 200, "concurrent connections")
	fs.DurationVar(&f.dur, "duration", 20*time.Second, "load duration per target and run")
	fs.StringVar(&f.database, "database", "", "database `URL` (default: a fresh SQLite file seeded with the realistic data set)")
	fs.StringVar(&f.redis, "redis", "", "Redis `URL` for the cache-on run (default: in-memory tier only)")
	fs.StringVar(&f.targets, "targets", benchTargets, "comma-separated target `names`")
	fs.StringVar(&f.users, "users", "", "the `JSON` `modellab seed` printed for --database: load as that crowd (default: the users seeded now)")
	fs.StringVar(&f.size, "size", "default", "data set `size` when seeding: default (1M events) or demo (small)")
	fs.BoolVar(&f.asJSON, "json", false, "print JSON")
	return fs
}

// plan checks the flags and returns the targets and the size of the data
// set to seed.
func (f *benchFlags) plan() ([]loadtest.Target, store.SeedOptions, error) {
	if f.conns < 1 || f.dur <= 0 {
		return nil, store.SeedOptions{}, errors.New("--connections must be >= 1 and --duration > 0")
	}
	var tgts []loadtest.Target
	for _, name := range strings.Split(f.targets, ",") {
		t, ok := loadtest.NamedTarget(strings.TrimSpace(name))
		if !ok {
			return nil, store.SeedOptions{}, fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(loadtest.TargetNames(), ", "))
		}
		tgts = append(tgts, t)
	}
	seedOpts := store.DefaultSeedOptions()
	switch f.size {
	case "default":
	case "demo":
		seedOpts = store.DemoSeedOptions()
	default:
		return nil, store.SeedOptions{}, fmt.Errorf("--size=%q: must be default or demo", f.size)
	}
	if f.redis != "" {
		if err := checkRedisURL("--redis", f.redis); err != nil {
			return nil, store.SeedOptions{}, err
		}
	}
	if f.database != "" {
		if err := checkDatabaseURL("--database", f.database); err != nil {
			return nil, store.SeedOptions{}, err
		}
	}
	return tgts, seedOpts, nil
}

// runBench is the before/after experiment of the original load test (docs/BENCHMARKS.md, "Background"): the same data,
// the same load, cache off then cache on, printed side by side.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var f benchFlags
	fs := f.flagSet()
	if code, ok := parseFlags(fs, cmdBench, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, cmdBench, "unexpected arguments %q", fs.Args())
	}
	tgts, seedOpts, err := f.plan()
	if err != nil {
		return usageError(stderr, cmdBench, "%v", err)
	}
	cfg, err := loadConfigFor(getenv, inBench)
	if err != nil {
		return usageError(stderr, cmdBench, "%v", err)
	}
	cfg.LogLevel = slog.LevelWarn
	cfg.AccessLog = false
	log := newLogger(stderr, cfg)
	if f.database == "" {
		dir, err := os.MkdirTemp("", "modellab-bench-")
		if err != nil {
			fmt.Fprintf(stderr, "modellab bench: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		f.database = "sqlite://" + filepath.Join(dir, "bench.db")
	}
	cfg.DatabaseURL = f.database
	token, crowd, err := benchCrowd(ctx, cfg, seedOpts, f.users, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "modellab bench: %v\n", err)
		return 1
	}
	lc := loadtest.Config{Connections: f.conns, Duration: f.dur, Token: token, Targets: tgts, Progress: stderr,
		SharedRuntime: true, Tokens: crowd}
	cmp, err := benchBoth(ctx, cfg, f.redis, log, lc, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "modellab bench: %v\n", err)
		return 1
	}
	if err := writeComparison(stdout, cmp, f.asJSON); err != nil {
		return 1
	}
	return 0
}

// benchBoth runs the load with the cache off, then on (with Redis when
// redisURL is set), under one fresh key prefix.
func benchBoth(ctx context.Context, cfg config, redisURL string, log *slog.Logger, lc loadtest.Config, stderr io.Writer) (loadtest.Comparison, error) {
	prefix := "bench:" + randomHex(6) + ":"
	var cmp loadtest.Comparison
	for _, cacheOn := range []bool{false, true} {
		rc := cfg
		rc.DisableCache = !cacheOn
		rc.CachePrefix = prefix
		rc.DisableRedis = redisURL == ""
		rc.RedisURL = redisURL
		label := "cache off (before)"
		if cacheOn {
			label = "cache on (after)"
		}
		fmt.Fprintf(stderr, "== %s\n", label)
		rep, err := benchRun(ctx, rc, log, lc)
		if err != nil {
			return cmp, fmt.Errorf("%s: %w", label, err)
		}
		if cacheOn {
			cmp.After = rep
		} else {
			cmp.Before = rep
		}
	}
	return cmp, nil
}

func writeComparison(w io.Writer, cmp loadtest.Comparison, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(cmp)
	}
	return writeBenchTable(w, cmp.Before, cmp.After)
}

// benchRun starts the server in-process on 127.0.0.1:0, loads it, stops it.
func benchRun(ctx context.Context, cfg config, log *slog.Logger, lc loadtest.Config) (loadtest.Report, error) {
	a, err := newApp(ctx, cfg, log, io.Discard)
	if err != nil {
		return loadtest.Report{}, err
	}
	defer a.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return loadtest.Report{}, err
	}
	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	lc.URL = "http://" + ln.Addr().String()
	return benchLoad(ctx, lc, !cfg.DisableCache)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
