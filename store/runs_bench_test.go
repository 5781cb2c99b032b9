package store_test

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/store"
)

// The figures of these benchmarks are in docs/BENCHMARKS.md:
//
//	go test ./store -run '^$' -bench 'Ingest|MetricHistory' -benchtime 50x

// benchOpen opens a fresh, migrated database of the engine.
func benchOpen(b *testing.B, engine string) *store.DB {
	b.Helper()
	url := "sqlite://" + filepath.Join(b.TempDir(), "bench.db")
	if engine == "postgres" {
		url = testpg.URL(b)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, url, store.Options{QueryTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	return db
}

// benchRun creates a user and a run for a benchmark.
func benchRun(b *testing.B, db *store.DB) modellab.Run {
	b.Helper()
	u := modellab.User{Name: "bench"}
	if _, err := db.CreateUser(context.Background(), &u); err != nil {
		b.Fatal(err)
	}
	return mustRun(b, db, modellab.Run{Name: "bench", OwnerID: u.ID})
}

// curve is a loss-like series for the benchmarks.
func curve(key string, from, n int) []modellab.MetricPoint {
	out := make([]modellab.MetricPoint, n)
	for i := range out {
		s := from + i
		out[i] = modellab.MetricPoint{Key: key, Step: int64(s),
			Value:     0.3 + 2*math.Exp(-float64(s)/20000) + 0.05*math.Sin(float64(s)*0.37),
			Timestamp: runEpoch.Add(time.Duration(s) * 100 * time.Millisecond)}
	}
	return out
}

// BenchmarkIngest stores 10,000-point batches (five keys, 2,000 steps
// each) into one run: "append" as a training job logging in bulk does
// (every step new), "rewrite" sending the same batch again (every point
// replaces one). BenchmarkIngestStep is the other end: a trainer logging
// one step of three keys per call.
func BenchmarkIngest(b *testing.B) {
	keys := []string{"loss", "lr", "grad_norm", "throughput", "eval/loss"}
	const perKey = modellab.MaxPointsPerBatch / 5
	batch := func(i int) []modellab.MetricPoint {
		var pts []modellab.MetricPoint
		for _, k := range keys {
			pts = append(pts, curve(k, i*perKey, perKey)...)
		}
		return pts
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"append", "rewrite"} {
			b.Run(engine+"/"+mode, func(b *testing.B) {
				db := benchOpen(b, engine)
				ctx := context.Background()
				run := benchRun(b, db)
				batches := make([][]modellab.MetricPoint, b.N)
				for i := range batches {
					if mode == "append" || i == 0 {
						batches[i] = batch(i)
					} else {
						batches[i] = batches[0]
					}
				}
				if mode == "rewrite" {
					ingest(b, db, run, batches[0]...)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := db.IngestMetrics(ctx, modellab.MetricBatch{RunID: run.ID, OwnerID: run.OwnerID, Points: batches[i]}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*modellab.MaxPointsPerBatch)/b.Elapsed().Seconds(), "points/s")
			})
		}
	}
}

func BenchmarkIngestStep(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			db := benchOpen(b, engine)
			ctx := context.Background()
			run := benchRun(b, db)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var pts []modellab.MetricPoint
				for _, k := range []string{"loss", "lr", "grad_norm"} {
					pts = append(pts, curve(k, i, 1)...)
				}
				if err := db.IngestMetrics(ctx, modellab.MetricBatch{RunID: run.ID, OwnerID: run.OwnerID, Points: pts}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// BenchmarkMetricHistory reads a 100,000-point series and downsamples it
// to 1,000 points with LTTB: the work of one uncached history read below
// the HTTP layer. It reports the median and the 95th percentile.
func BenchmarkMetricHistory(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			db := benchOpen(b, engine)
			ctx := context.Background()
			run := benchRun(b, db)
			for i := 0; i < 10; i++ {
				ingest(b, db, run, curve("loss", i*10_000, 10_000)...)
				// Another key interleaved, as real runs log them.
				ingest(b, db, run, curve("lr", i*10_000, 10_000)...)
			}
			q := modellab.MetricQuery{Keys: []string{"loss"}, AfterStep: -1, MaxPoints: 1000}
			durs := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				h, err := db.MetricHistory(ctx, run.ID, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(h.Series) != 1 || len(h.Series[0].Points) != 100_000 {
					b.Fatalf("read %d series", len(h.Series))
				}
				if got := modellab.LTTB(h.Series[0].Points, q.MaxPoints); len(got) != q.MaxPoints {
					b.Fatalf("LTTB gave %d points", len(got))
				}
				durs = append(durs, time.Since(start))
			}
			b.StopTimer()
			reportPercentiles(b, durs)
		})
	}
}

func reportPercentiles(b *testing.B, durs []time.Duration) {
	slices.Sort(durs)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(durs)))) - 1
		return float64(durs[max(i, 0)].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
}
