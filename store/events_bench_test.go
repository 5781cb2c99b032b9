package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

// BenchmarkInsertEvents is the write side of the rollups: batches of 50
// events of one heavy user, a day into a week of that user's events over
// 250 models (so that each day's digest holds about 250 models, as the
// seed's heaviest user's do). Every batch updates its hours' and day's
// rollup rows and reads, merges and rewrites that day's digest.
//
//	go test ./store -run '^$' -bench InsertEvents -benchtime 300x
func BenchmarkInsertEvents(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			db := benchOpen(b, engine)
			ctx := context.Background()
			day := time.Date(2026, 5, 10, 0, 0, 0, 0, time.UTC)
			r := rand.New(rand.NewPCG(1, 2))
			event := func(at time.Time) modellab.Event {
				return modellab.Event{UserID: "usr_heavy", ModelID: fmt.Sprintf("mdl_%03d", r.IntN(250)), Timestamp: at,
					InputTokens: r.Int64N(4000), OutputTokens: r.Int64N(1000), LatencyMS: float64(r.IntN(5000)),
					Status: modellab.EventOK, CostUSD: float64(r.IntN(1000)) / 1e6}
			}
			var week []modellab.Event
			for d := range 7 {
				for m := range 250 {
					e := event(day.AddDate(0, 0, -d).Add(time.Duration(m) * time.Minute))
					e.ModelID = fmt.Sprintf("mdl_%03d", m)
					week = append(week, e)
				}
			}
			if err := db.InsertEvents(ctx, week); err != nil {
				b.Fatal(err)
			}
			batch := make([]modellab.Event, 50)
			b.ResetTimer()
			for i := range b.N {
				for j := range batch {
					batch[j] = event(day.Add(time.Duration(i*50+j) * time.Second))
				}
				if err := db.InsertEvents(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
