package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
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
		tok, err := db.IssueToken(ctx, "demo", "bench", 24*time.Hour)
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
// original app's published figures for its six pages.
func writeBenchTable(w io.Writer, before, after loadtest.Report) error {
	if err := loadtest.WriteComparison(w, before, after); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nBeside the original app's published figures (after its fix, 200 connections; ranges across its six pages) — ours is the cache-on run:")
	return loadtest.WriteReference(w, after, loadtest.OriginalAfter)
}

// benchLoad runs lc's targets one by one. Before each target of a cache-on
// run with a crowd, every user sends it one request (benchWarm): the after
// run measures the steady state of a site whose users come back, not a
// thousand first visits. A cache-off run has nothing to warm.
func benchLoad(ctx context.Context, lc loadtest.Config, warm bool) (loadtest.Report, error) {
	var rep loadtest.Report
	for _, t := range lc.Targets {
		if warm && len(lc.Tokens) > 0 {
			benchWarm(ctx, lc, t)
		}
		one := lc
		one.Targets = []loadtest.Target{t}
		r, err := loadtest.Run(ctx, one)
		rep.Targets = append(rep.Targets, r.Targets...)
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// benchWarm sends target t once per token of the crowd, lc.Connections at
// a time, and says how long it took. Failures are not counted: the
// measured run that follows counts its own.
func benchWarm(ctx context.Context, lc loadtest.Config, t loadtest.Target) {
	start := time.Now()
	client := &http.Client{Timeout: lc.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if client.Timeout <= 0 {
		client.Timeout = loadtest.DefaultTimeout
	}
	client.Transport = &http.Transport{MaxIdleConnsPerHost: lc.Connections, DisableCompression: true}
	defer client.CloseIdleConnections()
	toks := make(chan string)
	var wg sync.WaitGroup
	for range min(lc.Connections, len(lc.Tokens)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok := range toks {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, lc.URL+t.Path, nil)
				if err != nil {
					continue
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				if res, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
		}()
	}
	for _, tok := range lc.Tokens {
		if ctx.Err() != nil {
			break
		}
		toks <- tok
	}
	close(toks)
	wg.Wait()
	if lc.Progress != nil {
		fmt.Fprintf(lc.Progress, "%-16s warmed: one request per user (%d) in %s\n", t.Name, len(lc.Tokens), time.Since(start).Round(time.Millisecond))
	}
}
