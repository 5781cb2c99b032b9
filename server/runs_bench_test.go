package server_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/internal/testenv"
	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/server"
	"github.com/modellab/modellab/service"
	"github.com/modellab/modellab/store"
)

// BenchmarkRunMetricsUncached is the worst read of the training monitor:
// the first view of a long run, with the cache off (DISABLE_CACHE), so
// every request reads the 100,000 points of a series from the database,
// downsamples them to 1,000 with LTTB and encodes the answer. It goes
// through the whole handler (middleware, auth, metrics) and reports the
// median and the 95th percentile of single requests. The figures are in
// docs/BENCHMARKS.md:
//
//	go test ./server -run '^$' -bench RunMetricsUncached -benchtime 100x
func BenchmarkRunMetricsUncached(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			h, path := longRun(b, engine, 100_000)
			req := httptest.NewRequest("GET", path+"?keys=loss&max_points=1000", nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			durs := make([]time.Duration, 0, b.N)
			w := &discardWriter{h: http.Header{}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				clear(w.h)
				start := time.Now()
				h.ServeHTTP(w, req)
				durs = append(durs, time.Since(start))
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
			b.StopTimer()
			slices.Sort(durs)
			pct := func(p float64) float64 {
				return float64(durs[max(0, int(math.Ceil(p*float64(len(durs))))-1)].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
		})
	}
}

// longRun wires an instance without a response cache on a fresh database
// of engine, with one run of the admin holding n points of "loss" and of
// "lr" (interleaved, as a trainer logs them), and returns its handler and
// the run's metrics path.
func longRun(b *testing.B, engine string, n int) (http.Handler, string) {
	b.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	url := "sqlite://" + filepath.Join(b.TempDir(), "bench.db")
	if engine == "postgres" {
		url = testpg.URL(b)
	}
	db, err := testenv.OpenStore(ctx, b, url, store.Options{Logger: log, QueryTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	c, err := cache.New(cache.Options{Logger: log, Disabled: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	st := testenv.NewStack(b, testenv.StackConfig{
		Service: service.Config{Store: db, Cache: c, Logger: log, AdminToken: adminToken},
		Server:  server.Config{Logger: log},
	})
	run := modellab.Run{Name: "long", OwnerID: testenv.Admin.ID, Status: modellab.RunRunning}
	if err := db.CreateRun(ctx, &run); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now().Add(-time.Duration(n) * time.Second)
	for start := 0; start < n; start += modellab.MaxPointsPerBatch / 2 {
		pts := make([]modellab.MetricPoint, 0, modellab.MaxPointsPerBatch)
		for s := start; s < min(n, start+modellab.MaxPointsPerBatch/2); s++ {
			ts := t0.Add(time.Duration(s) * time.Second)
			pts = append(pts,
				modellab.MetricPoint{Key: "loss", Step: int64(s), Value: 0.3 + 2*math.Exp(-float64(s)/20000) + 0.05*math.Sin(float64(s)), Timestamp: ts},
				modellab.MetricPoint{Key: "lr", Step: int64(s), Value: 3e-4 * math.Cos(float64(s)/float64(n)), Timestamp: ts})
		}
		if err := db.IngestMetrics(ctx, modellab.MetricBatch{RunID: run.ID, OwnerID: run.OwnerID, Points: pts}); err != nil {
			b.Fatal(err)
		}
	}
	return st.Handler, "/api/runs/" + run.ID + "/metrics"
}
