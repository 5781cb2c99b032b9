package store_test

import (
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/store"
)

var seedNow = time.Date(2024, 6, 1, 15, 4, 5, 0, time.UTC)

// snapshot is everything a seeded database shows the demo user.
type snapshot struct {
	Users     []string
	Models    []modellab.Model
	Servers   []modellab.Server
	Analytics []modellab.AnalyticsResult
}

func takeSnapshot(t *testing.T, db *store.DB, res store.SeedResult) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	for _, u := range res.Users {
		s.Users = append(s.Users, u.ID+" "+u.Name)
	}
	demo := res.Users[0].ID
	var err error
	if s.Models, err = db.ListModels(ctx, demo); err != nil {
		t.Fatal(err)
	}
	if s.Servers, err = db.ListServers(ctx, demo); err != nil {
		t.Fatal(err)
	}
	for _, q := range []modellab.AnalyticsQuery{
		{From: seedNow.Add(-7 * 24 * time.Hour), To: seedNow, Interval: modellab.IntervalDay},
		{From: seedNow.Add(-36 * time.Hour), To: seedNow, Interval: modellab.IntervalHour},
	} {
		for _, user := range []string{demo, res.Users[len(res.Users)-1].ID} {
			a, err := db.Analytics(ctx, user, q)
			if err != nil {
				t.Fatal(err)
			}
			s.Analytics = append(s.Analytics, a)
		}
	}
	return s
}

func TestSeed(t *testing.T) {
	t.Parallel()
	opts := store.SeedOptions{Users: 6, Models: 40, GlobalModels: 8, Servers: 60, Events: 1200, Days: 7, Now: seedNow, RandSeed: 42}
	runs := []struct {
		name string
		open opener
	}{
		{"sqlite", openSQLite},
		{"sqlite again", openSQLite},
		{"postgres", postgresOpener(t)},
	}
	snaps := make([]snapshot, len(runs))
	t.Run("group", func(t *testing.T) {
		for i, run := range runs {
			t.Run(run.name, func(t *testing.T) {
				t.Parallel()
				snaps[i] = seedAndCheck(t, run.name, run.open, opts)
			})
		}
	})
	for i := 1; i < len(runs); i++ {
		if !reflect.DeepEqual(snaps[i], snaps[0]) {
			t.Errorf("%s: seeded data differs from the first run's", runs[i].name)
		}
	}
}

// seedAndCheck seeds a fresh database and checks the data set's promises.
func seedAndCheck(t *testing.T, name string, open opener, opts store.SeedOptions) snapshot {
	t.Helper()
	ctx := context.Background()
	{
		db := open(t, store.Options{})
		res, err := store.Seed(ctx, db, opts)
		if err != nil {
			t.Fatalf("%s: Seed: %v", name, err)
		}
		if res.Models != opts.Models || res.Servers != opts.Servers || res.Events != opts.Events || len(res.Users) != opts.Users {
			t.Errorf("%s: Seed result %d models, %d servers, %d events, %d users; want the options' sizes",
				name, res.Models, res.Servers, res.Events, len(res.Users))
		}
		demo := res.Users[0]
		if demo.Name != "demo" {
			t.Errorf("%s: first user %q, want demo", name, demo.Name)
		}
		u, _, err := db.TokenByHash(ctx, modellab.HashToken(demo.Token))
		if err != nil || u.ID != demo.ID {
			t.Errorf("%s: demo token finds %v, %v", name, u.ID, err)
		}
		snap := takeSnapshot(t, db, res)
		if n := len(snap.Servers); n != 50 {
			t.Errorf("%s: demo has %d servers, want 50", name, n)
		}
		all, err := db.Analytics(ctx, demo.ID, modellab.AnalyticsQuery{From: seedNow.Add(-8 * 24 * time.Hour), To: seedNow.Add(time.Hour), Interval: "day"})
		if err != nil {
			t.Fatal(err)
		}
		if all.Totals.Requests < int64(opts.Events)/5 {
			t.Errorf("%s: demo has %d events, want at least 20%% of %d", name, all.Totals.Requests, opts.Events)
		}
		if all.Totals.Errors == 0 || all.Totals.Errors > all.Totals.Requests/10 {
			t.Errorf("%s: %d errors in %d events, want a few percent", name, all.Totals.Errors, all.Totals.Requests)
		}
		for _, bm := range all.ByModel {
			if bm.ModelName == "" {
				t.Errorf("%s: demo's events use model %s it cannot see", name, bm.ModelID)
			}
		}

		if _, err := store.Seed(ctx, db, opts); modellab.ErrorCode(err) != modellab.ECONFLICT {
			t.Errorf("%s: second Seed: err = %v, want conflict", name, err)
		}
		return snap
	}
}

// TestSeedDefaultSize measures the default data set on both engines; it
// takes a minute or two, so it only runs with MODELLAB_SEED_BENCH=1:
//
//	MODELLAB_SEED_BENCH=1 go test -run TestSeedDefaultSize -v ./store/
func TestSeedDefaultSize(t *testing.T) {
	if os.Getenv("MODELLAB_SEED_BENCH") != "1" {
		t.Skip("set MODELLAB_SEED_BENCH=1 to seed the default size (1M events) on both engines")
	}
	for _, e := range engines {
		t.Run(e.name+"/demo", func(t *testing.T) {
			db := e.opener(t)(t, store.Options{})
			start := time.Now()
			res, err := store.Seed(context.Background(), db, store.DemoSeedOptions())
			if err != nil {
				t.Fatalf("Seed: %v", err)
			}
			t.Logf("%s: demo size: %d users, %d models, %d servers, %d events in %v", e.name, len(res.Users), res.Models, res.Servers, res.Events, time.Since(start).Round(time.Millisecond))
		})
		t.Run(e.name, func(t *testing.T) {
			db := e.opener(t)(t, store.Options{})
			opts := store.DefaultSeedOptions()
			start := time.Now()
			res, err := store.Seed(context.Background(), db, opts)
			if err != nil {
				t.Fatalf("Seed: %v", err)
			}
			took := time.Since(start)
			t.Logf("%s: seeded %d users, %d models, %d servers, %d events in %v", e.name, len(res.Users), res.Models, res.Servers, res.Events, took.Round(time.Millisecond))
			if took > time.Minute {
				t.Errorf("seeding took %v, want under a minute", took)
			}
			for _, q := range []modellab.AnalyticsQuery{
				{From: opts.Now.Add(-7 * 24 * time.Hour), To: opts.Now, Interval: "day"},
				{From: opts.Now.Add(-90 * 24 * time.Hour), To: opts.Now, Interval: "day"},
				{From: opts.Now.Add(-90 * 24 * time.Hour), To: opts.Now, Interval: "hour"},
			} {
				start := time.Now()
				a, err := db.Analytics(context.Background(), res.Users[0].ID, q)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: demo analytics over %v by %s: %d events in %v", e.name, q.To.Sub(q.From), q.Interval, a.Totals.Requests, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}
