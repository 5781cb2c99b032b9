package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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

// runBench is the before/after experiment of the design note: the same data,
// the same load, cache off then cache on, printed side by side.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "modellab bench: %v\n", err)
		return 2
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conns := fs.Int("connections", 200, "concurrent connections")
	dur := fs.Duration("duration", 20*time.Second, "load duration per target and run")
	database := fs.String("database", "", "database URL (default: a fresh SQLite file seeded with the realistic data set)")
	redisFlag := fs.String("redis", "", "Redis URL for the cache-on run (default: in-memory tier only)")
	targets := fs.String("targets", benchTargets, "comma-separated target names")
	users := fs.String("users", "", "the JSON `modellab seed` printed for --database: load as that crowd (default: the users seeded now)")
	size := fs.String("size", "default", "data set size when seeding: default (1M events) or demo (small)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *conns < 1 || *dur <= 0 {
		fmt.Fprintln(stderr, "modellab bench: --connections must be >= 1 and --duration > 0")
		return 2
	}
	var tgts []loadtest.Target
	for _, name := range strings.Split(*targets, ",") {
		t, ok := loadtest.NamedTarget(strings.TrimSpace(name))
		if !ok {
			fmt.Fprintf(stderr, "modellab bench: unknown target %q (known: %s)\n", name, strings.Join(loadtest.TargetNames(), ", "))
			return 2
		}
		tgts = append(tgts, t)
	}
	seedOpts := store.DefaultSeedOptions()
	switch *size {
	case "default":
	case "demo":
		seedOpts = store.DemoSeedOptions()
	default:
		fmt.Fprintf(stderr, "modellab bench: --size=%q: must be default or demo\n", *size)
		return 2
	}
	if *redisFlag != "" {
		if err := checkRedisURL("--redis", *redisFlag); err != nil {
			fmt.Fprintf(stderr, "modellab bench: %v\n", err)
			return 2
		}
	}
	cfg.LogLevel = slog.LevelWarn
	cfg.AccessLog = false
	log := newLogger(stderr, cfg)

	if *database == "" {
		dir, err := os.MkdirTemp("", "modellab-bench-")
		if err != nil {
			fmt.Fprintf(stderr, "modellab bench: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		*database = "sqlite://" + filepath.Join(dir, "bench.db")
	} else if err := checkDatabaseURL("--database", *database); err != nil {
		fmt.Fprintf(stderr, "modellab bench: %v\n", err)
		return 2
	}
	cfg.DatabaseURL = *database
	token, crowd, err := benchCrowd(ctx, cfg, seedOpts, *users, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "modellab bench: %v\n", err)
		return 1
	}

	prefix := "bench:" + randomHex(6) + ":"
	var before, after loadtest.Report
	for i, cacheOn := range []bool{false, true} {
		rc := cfg
		rc.DisableCache = !cacheOn
		rc.CachePrefix = prefix
		rc.DisableRedis = *redisFlag == ""
		rc.RedisURL = *redisFlag
		label := "cache off (before)"
		if cacheOn {
			label = "cache on (after)"
		}
		fmt.Fprintf(stderr, "== %s\n", label)
		rep, err := benchRun(ctx, rc, log, loadtest.Config{
			Connections: *conns, Duration: *dur, Token: token, Targets: tgts, Progress: stderr,
			SharedRuntime: true, Tokens: crowd,
		})
		if err != nil {
			fmt.Fprintf(stderr, "modellab bench: %s: %v\n", label, err)
			return 1
		}
		if i == 0 {
			before = rep
		} else {
			after = rep
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(loadtest.Comparison{Before: before, After: after}); err != nil {
			return 1
		}
		return 0
	}
	if err := writeBenchTable(stdout, before, after); err != nil {
		return 1
	}
	return 0
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
