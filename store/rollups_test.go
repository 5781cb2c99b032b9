package store

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/testpg"
)

func TestLatencyBucket(t *testing.T) {
	prev := int64(zeroBucket)
	for _, us := range []int64{1, 2, 3, 10, 99, 100, 101, 1000, 123456, 86_400_000_000} {
		k := latencyBucket(us)
		if k < prev {
			t.Fatalf("bucket of %d is %d, below the bucket of a smaller latency (%d)", us, k, prev)
		}
		prev = k
		if v := bucketValueUS(k); math.Abs(v-float64(us)) > latencyAlpha*float64(us)*(1+1e-9) {
			t.Errorf("latency %d µs: bucket %d stands for %.3f µs, more than %.2f%% away", us, k, v, 100*latencyAlpha)
		}
	}
	if latencyBucket(0) != zeroBucket || bucketValueUS(zeroBucket) != 0 {
		t.Errorf("0 µs is not its own bucket")
	}
}

func openInternal(t *testing.T, engine string) *DB {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	if engine == EnginePostgres {
		url = testpg.URL(t)
	}
	db, err := Open(context.Background(), url, Options{QueryTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openMigrated is openInternal with every migration applied.
func openMigrated(t *testing.T, engine string) *DB {
	t.Helper()
	db := openInternal(t, engine)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// randomEvents makes n events of a few users and models over ten days,
// with timestamps at any millisecond.
func randomEvents(r *rand.Rand, n int, start time.Time) []modellab.Event {
	users, models := []string{"usr_a", "usr_b", "usr_c"}, []string{"mdl_1", "mdl_2", "mdl_3", "mdl_4"}
	out := make([]modellab.Event, n)
	for i := range out {
		status := modellab.EventOK
		if r.IntN(10) == 0 {
			status = modellab.EventError
		}
		out[i] = modellab.Event{
			UserID: users[r.IntN(len(users))], ModelID: models[r.IntN(len(models))],
			Timestamp:   start.Add(time.Duration(r.Int64N(int64(10 * 24 * time.Hour)))).Truncate(time.Millisecond),
			InputTokens: r.Int64N(5000), OutputTokens: r.Int64N(2000),
			LatencyMS: math.Round(r.ExpFloat64()*300*1000) / 1000, Status: status,
			CostUSD: math.Round(r.Float64()*1e6) / 1e9,
		}
	}
	return out
}

// randomQuery is a range of any length inside or around the events, at
// millisecond precision, by hour or day, for every model or one.
func randomQuery(r *rand.Rand, start time.Time) modellab.AnalyticsQuery {
	from := start.Add(time.Duration(r.Int64N(int64(11*24*time.Hour))) - 12*time.Hour).Truncate(time.Millisecond)
	if r.IntN(3) == 0 {
		from = from.Truncate(time.Hour) // aligned bounds are the common case
	}
	to := from.Add(time.Duration(1 + r.Int64N(int64(6*24*time.Hour))))
	if r.IntN(3) == 0 {
		to = to.Truncate(24 * time.Hour).Add(24 * time.Hour)
	}
	q := modellab.AnalyticsQuery{From: from.UTC(), To: to.UTC(), Interval: modellab.IntervalHour}
	if r.IntN(2) == 0 {
		q.Interval = modellab.IntervalDay
	}
	if r.IntN(3) == 0 {
		q.ModelID = fmt.Sprintf("mdl_%d", 1+r.IntN(4))
	}
	return q
}

// checkAgainstEvents compares Analytics with the events-only reference on
// random queries: equal in everything but the percentile, which is exact
// for few events and within the histogram's error otherwise.
func checkAgainstEvents(t *testing.T, db *DB, r *rand.Rand, start time.Time, queries int) {
	t.Helper()
	defaultExact := exactP95Max
	ctx := context.Background()
	for i := 0; i < queries; i++ {
		q := randomQuery(r, start)
		user := []string{"usr_a", "usr_b", "usr_c"}[r.IntN(3)]
		want, err := db.analyticsFromEvents(ctx, user, q)
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		for _, limit := range []int64{defaultExact, 0} { // exact when few, then always the histogram
			exactP95Max = limit
			got, err := db.Analytics(ctx, user, q)
			exactP95Max = defaultExact
			exact := got.Totals.Requests <= limit
			if err != nil {
				t.Fatalf("Analytics(%+v): %v", q, err)
			}
			gp, wp := got.Totals.P95LatencyMS, want.Totals.P95LatencyMS
			if exact && gp != wp || !exact && math.Abs(gp-wp) > latencyAlpha*wp+0.0005 {
				t.Fatalf("query %+v (exact %v): p95 %v, events say %v", q, exact, gp, wp)
			}
			got.Totals.P95LatencyMS = wp
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("query %+v:\nrollups %+v\nevents  %+v", q, got, want)
			}
		}
	}
}

// checkUsageModels: usage_models holds every (user, model) pair of the
// events, and no other.
func checkUsageModels(t *testing.T, db *DB) {
	t.Helper()
	var missing, extra int64
	ctx := context.Background()
	err := db.get(ctx, "usage models", `SELECT COUNT(*) FROM (SELECT DISTINCT user_id, model_id FROM events) e
		WHERE NOT EXISTS (SELECT 1 FROM usage_models u WHERE u.user_id = e.user_id AND u.model_id = e.model_id)`, nil, &missing)
	if err == nil {
		err = db.get(ctx, "usage models", `SELECT COUNT(*) FROM usage_models u
			WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = u.user_id AND e.model_id = u.model_id)`, nil, &extra)
	}
	if err != nil {
		t.Fatal(err)
	}
	if missing != 0 || extra != 0 {
		t.Errorf("usage_models: %d pairs of the events missing, %d not in the events", missing, extra)
	}
}

// TestRollupsMatchEvents: analytics from the rollups that ingest keeps
// equal analytics from the events, on random data and ranges, both engines.
func TestRollupsMatchEvents(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			db := openMigrated(t, engine)
			r := rand.New(rand.NewPCG(7, 11))
			start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			events := randomEvents(r, 6000, start)
			for len(events) > 0 { // batches of every size, as clients send them
				n := min(len(events), 1+r.IntN(1000))
				if err := db.InsertEvents(context.Background(), events[:n]); err != nil {
					t.Fatal(err)
				}
				events = events[n:]
			}
			checkAgainstEvents(t, db, r, start, 150)
			checkUsageModels(t, db)
		})
	}
}

// TestRollupBackfill: the migration that adds the rollups fills them from
// the events a database already holds, with the same buckets as ingest.
func TestRollupBackfill(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := openInternal(t, engine)
			p := db.testProvider(t)
			before := int64(0)
			for _, s := range p.ListSources() {
				if s.Version < 6 {
					before = max(before, s.Version)
				}
			}
			if _, err := p.UpTo(ctx, before); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 5))
			start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			rows := [][]any{}
			for _, e := range randomEvents(r, 3000, start) {
				rows = append(rows, eventRow(&e))
			}
			if err := db.inTx(ctx, time.Minute, func(t *tx) error { return t.insertRows("events", eventCols, rows) }); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatal(err)
			}
			checkAgainstEvents(t, db, r, start, 60)
			checkUsageModels(t, db)
		})
	}
}

func (db *DB) testProvider(t *testing.T) *goose.Provider {
	t.Helper()
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var p *goose.Provider
	if db.engine == EngineSQLite {
		p, err = goose.NewProvider(goose.DialectSQLite3, db.wr, fsys, goose.WithGoMigrations(db.goMigrations()...))
	} else {
		sqldb := stdlib.OpenDBFromPool(db.pool)
		t.Cleanup(func() { sqldb.Close() })
		p, err = goose.NewProvider(goose.DialectPostgres, sqldb, fsys, goose.WithGoMigrations(db.goMigrations()...))
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSeedRollups: the seed loads the rollups of the events it makes.
func TestSeedRollups(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := openMigrated(t, engine)
			now := time.Date(2026, 3, 11, 9, 30, 0, 0, time.UTC)
			opts := SeedOptions{Users: 3, Models: 12, GlobalModels: 3, Servers: 6, Events: 5000, Days: 10, Now: now, RandSeed: 1}
			res, err := Seed(ctx, db, opts)
			if err != nil {
				t.Fatal(err)
			}
			compared := 0
			for _, u := range res.Users {
				q := modellab.AnalyticsQuery{From: now.Add(-7 * 24 * time.Hour).Add(17 * time.Minute), To: now, Interval: modellab.IntervalDay}
				want, err := db.analyticsFromEvents(ctx, u.ID, q)
				if err != nil {
					t.Fatal(err)
				}
				got, err := db.Analytics(ctx, u.ID, q)
				if err != nil {
					t.Fatal(err)
				}
				if want.Totals.Requests == 0 {
					continue
				}
				compared++
				if !reflect.DeepEqual(got, want) {
					t.Errorf("user %s:\nrollups %+v\nevents  %+v", u.Name, got.Totals, want.Totals)
				}
			}
			if compared == 0 {
				t.Fatal("no seeded user has events in the range")
			}
		})
	}
}

// TestTokensMigration: tokens stored before the lifecycle migration keep
// authenticating, with an ID and a name.
func TestTokensMigration(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := openInternal(t, engine)
			p := db.testProvider(t)
			if _, err := p.UpTo(ctx, 4); err != nil {
				t.Fatal(err)
			}
			secret := modellab.NewToken()
			err := db.inTx(ctx, time.Minute, func(t *tx) error {
				if err := t.exec("INSERT INTO users (id, name, admin, created_at) VALUES ('usr_old', 'old', FALSE, 1)"); err != nil {
					return err
				}
				return t.exec("INSERT INTO tokens (hash, user_id, created_at) VALUES (?, 'usr_old', 2)", modellab.HashToken(secret))
			})
			if err != nil {
				t.Fatal(err)
			}
			// A database that got 00006 before 00005 existed: Migrate
			// applies the missing one.
			if _, err := p.ApplyVersion(ctx, 6, true); err != nil {
				t.Fatal(err)
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("Migrate with 00005 missing below 00006: %v", err)
			}
			u, tok, err := db.TokenByHash(ctx, modellab.HashToken(secret))
			if err != nil || u.ID != "usr_old" || !modellab.ValidID(tok.ID) || tok.ExpiresAt != nil {
				t.Fatalf("migrated token: %+v %+v %v", u, tok, err)
			}
			list, err := db.ListTokens(ctx, "usr_old")
			if err != nil || len(list) != 1 || list[0].Name != "token" || list[0].LastUsedAt != nil {
				t.Fatalf("ListTokens after migration = %+v, %v", list, err)
			}
		})
	}
}
