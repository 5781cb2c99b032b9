package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/modellab/modellab/loadtest"
	"github.com/modellab/modellab/store"
)

// benchTargets are bench's default targets: the six pages of the design
// note's table, in its order, then the three hot APIs.
const benchTargets = "home,models,monitor,docs,academy,chat,api-models,api-servers,api-analytics"

// benchCrowd prepares the database and returns who the load is sent as:
// the heavy user "demo"'s token and the crowd the requests are spread over
// (nil: demo alone). With usersFile (the JSON `modellab seed` printed for
// this database) the crowd is those users. Otherwise an empty database is
// seeded and the crowd is every seeded user; a database seeded earlier,
// whose tokens cannot be read back, is loaded as demo alone.
func benchCrowd(ctx context.Context, cfg config, opts store.SeedOptions, usersFile string, stderr io.Writer) (string, []string, error) {
	var crowd []string
	if usersFile != "" {
		var err error
		if crowd, err = loadtest.LoadUsers(usersFile); err != nil {
			return "", nil, fmt.Errorf("--users: %w", err)
		}
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{QueryTimeout: 10 * time.Minute})
	if err != nil {
		return "", nil, fmt.Errorf("open %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return "", nil, fmt.Errorf("migrate: %w", err)
	}
	empty, err := db.Empty(ctx)
	switch {
	case err != nil:
		return "", nil, err
	case empty && crowd != nil:
		return "", nil, errors.New("--users names users of a seeded database, but this one is empty: run modellab seed on it first")
	case crowd != nil:
		return crowd[0], crowd, nil
	case !empty:
		fmt.Fprintln(stderr, "the database holds data already: loading as the demo user alone (pass --users with the seed's JSON for a crowd)")
		tok, err := db.IssueToken(ctx, "demo")
		return tok, nil, err
	}
	return benchSeed(ctx, db, opts, stderr)
}

// benchSeed seeds an empty database and returns demo's token and every
// seeded user's.
func benchSeed(ctx context.Context, db *store.DB, opts store.SeedOptions, stderr io.Writer) (string, []string, error) {
	fmt.Fprintf(stderr, "seeding %d users, %d models, %d servers, %d events…\n", opts.Users, opts.Models, opts.Servers, opts.Events)
	start := time.Now()
	res, err := store.Seed(ctx, db, opts)
	if err != nil {
		return "", nil, fmt.Errorf("seed: %w", err)
	}
	fmt.Fprintf(stderr, "seeded in %s\n", time.Since(start).Round(time.Millisecond))
	var demo string
	crowd := make([]string, 0, len(res.Users))
	for _, u := range res.Users {
		crowd = append(crowd, u.Token)
		if u.Name == "demo" {
			demo = u.Token
		}
	}
	if demo == "" {
		return "", nil, errors.New("the seed made no demo user")
	}
	return demo, crowd, nil
}

// writeBenchTable prints the before/after table, then ours beside the
// design note's own figures for its six pages.
func writeBenchTable(w io.Writer, before, after loadtest.Report) error {
	if err := loadtest.WriteComparison(w, before, after); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nBeside the design note's table (the original app after its fix, 200 connections) — ours is the cache-on run:")
	return loadtest.WriteReference(w, after, loadtest.DesignNoteAfter)
}
