package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/modellab/modellab/store"
)

// runSeed fills a database with the deterministic demo data set and prints
// the users and their tokens as JSON on stdout.
func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts := store.DefaultSeedOptions()
	var database string
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.StringVar(&database, "database", "", "database `URL`, sqlite://PATH or postgres://… (overrides DATABASE_URL)")
	fs.IntVar(&opts.Users, "users", opts.Users, "number of users (the first is the heavy user \"demo\")")
	fs.IntVar(&opts.Models, "models", opts.Models, "number of models")
	fs.IntVar(&opts.GlobalModels, "global-models", opts.GlobalModels, "how many of the models are global")
	fs.IntVar(&opts.Servers, "servers", opts.Servers, "number of inference servers")
	fs.IntVar(&opts.Events, "events", opts.Events, "number of usage events")
	fs.IntVar(&opts.Days, "days", opts.Days, "days of history the events span")
	fs.IntVar(&opts.Runs, "runs", opts.Runs, "number of training runs (with their metrics)")
	fs.IntVar(&opts.RunSteps, "run-steps", opts.RunSteps, "points per metric of a finished run (loss and lr each step, evals every 50)")
	fs.Int64Var(&opts.RandSeed, "seed", opts.RandSeed, "random seed (same seed, same data)")
	fs.StringVar(&opts.Inference.URL, "inference-url", "",
		"OpenAI-compatible base `URL` the demo user's running servers point at (default DEMO_INFERENCE_URL; none: no endpoint)")
	fs.StringVar(&opts.Inference.Model, "inference-model", "", "the `model` to ask that server for (default DEMO_INFERENCE_MODEL)")
	if code, ok := parseFlags(fs, cmdSeed, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, cmdSeed, "unexpected arguments %q", fs.Args())
	}
	cfg, err := loadConfigFor(getenv, inDB)
	if err != nil {
		return usageError(stderr, cmdSeed, "%v", err)
	}
	if database != "" {
		cfg.DatabaseURL = database
	}
	if opts.Inference.URL == "" {
		opts.Inference.URL = cfg.DemoInferenceURL
	}
	if opts.Inference.Model == "" {
		opts.Inference.Model = cfg.DemoInferenceModel
	}
	if err := errors.Join(checkDatabaseURL("--database", cfg.DatabaseURL), checkInferenceURL("--inference-url", opts.Inference.URL)); err != nil {
		return usageError(stderr, cmdSeed, "%v", err)
	}
	if opts.Users < 1 || opts.Models < opts.GlobalModels || opts.GlobalModels < 0 || opts.Servers < 0 || opts.Events < 0 || opts.Days < 1 ||
		opts.Runs < 0 || opts.RunSteps < 0 {
		return usageError(stderr, cmdSeed, "sizes must be non-negative, with at least 1 user, 1 day, and global-models <= models")
	}
	log := newLogger(stderr, cfg)
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Logger: log, QueryTimeout: 10 * time.Minute})
	if err != nil {
		fmt.Fprintf(stderr, "modellab seed: open %s: %v\n", redactURL(cfg.DatabaseURL), err)
		return 1
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		fmt.Fprintf(stderr, "modellab seed: migrate: %v\n", err)
		return 1
	}
	start := time.Now()
	res, err := store.Seed(ctx, db, opts)
	if err != nil {
		fmt.Fprintf(stderr, "modellab seed: %v\n", err)
		return 1
	}
	log.Info("seeded", "engine", db.Engine(), "users", len(res.Users), "models", res.Models,
		"servers", res.Servers, "events", res.Events, "runs", res.Runs, "metric_points", res.MetricPoints,
		"took", time.Since(start).Round(time.Millisecond))
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		fmt.Fprintf(stderr, "modellab seed: %v\n", err)
		return 1
	}
	return 0
}
