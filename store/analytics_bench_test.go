package store

import (
	"context"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/testpg"
)

// BenchmarkAnalyticsHeavyUser is the uncached read of the analytics page
// for the seed's heaviest user (the `demo` user, about 250 models with
// events in a week) on PostgreSQL: a week by day, every model, the read
// the load test's api-analytics target makes, from 8 goroutines a core.
// The realistic seed (about 30 s) is made once for the rounds, sub-
// benchmarks of this one: run it with -count 1 and compare the rounds.
func BenchmarkAnalyticsHeavyUser(b *testing.B) {
	ctx := context.Background()
	now := time.Date(2026, 3, 11, 9, 30, 0, 0, time.UTC)
	db, err := Open(ctx, testpg.URL(b), Options{QueryTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	opts := DefaultSeedOptions()
	opts.Now = now
	res, err := Seed(ctx, db, opts)
	if err != nil {
		b.Fatal(err)
	}
	user := ""
	for _, u := range res.Users {
		if u.Name == "demo" {
			user = u.ID
		}
	}
	day := now.Truncate(24 * time.Hour)
	q := modellab.AnalyticsQuery{From: day.Add(-6 * 24 * time.Hour), To: day.Add(24 * time.Hour), Interval: modellab.IntervalDay}
	for range 5 {
		b.Run("demo-week", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8) // 16 readers on 2 cores: ns/op is the inverse of throughput
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.Analytics(ctx, user, q); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
