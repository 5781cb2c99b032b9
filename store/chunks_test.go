package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

var chunkEpoch = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

// pointModel is what the stored points must be: the last value written
// for each (key, step).
type pointModel map[string]map[int64]modellab.MetricSample

func (m pointModel) add(points []modellab.MetricPoint) {
	for _, p := range points {
		if m[p.Key] == nil {
			m[p.Key] = map[int64]modellab.MetricSample{}
		}
		m[p.Key][p.Step] = modellab.MetricSample{Step: p.Step, Value: p.Value, Timestamp: modellab.Micros(p.Timestamp)}
	}
}

// after is the model's answer to a history read after a step.
func (m pointModel) after(step int64) []modellab.MetricSeries {
	out := []modellab.MetricSeries{}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var pts []modellab.MetricSample
		for _, s := range m[k] {
			if s.Step > step {
				pts = append(pts, s)
			}
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortFunc(pts, func(a, b modellab.MetricSample) int { return int(a.Step - b.Step) })
		out = append(out, modellab.MetricSeries{Key: k, Points: pts})
	}
	return out
}

// randomBatch is a batch as trainers send them: mostly the next steps,
// sometimes a reach back (a resumed job re-logging steps), repeated
// (key, step) pairs within the batch, sizes on both sides of pgTxMin.
func randomBatch(r *rand.Rand, next *int64) []modellab.MetricPoint {
	keys := []string{"loss", "lr", "eval/loss"}
	n := 1 + r.IntN(40)
	if r.IntN(8) == 0 {
		n = pgTxMin + r.IntN(600)
	}
	from := *next
	if r.IntN(4) == 0 {
		from = max(0, *next-int64(r.IntN(300)))
	}
	out := make([]modellab.MetricPoint, 0, n)
	for i := range n {
		step := from + int64(i/2)
		if r.IntN(10) == 0 {
			step += int64(r.IntN(200)) // a gap, and chunks left half full
		}
		out = append(out, modellab.MetricPoint{Key: keys[r.IntN(len(keys))], Step: step, Value: r.NormFloat64(),
			Timestamp: chunkEpoch.Add(time.Duration(r.IntN(1e9)) * time.Microsecond)})
		*next = max(*next, step+1)
	}
	return out
}

// TestChunksAgainstModel: whatever the batches (appends, reach-backs,
// repeats, small and bulk, so both PostgreSQL paths), every read gives
// back exactly the last value written for each (key, step), after any
// cursor.
func TestChunksAgainstModel(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := openMigrated(t, engine)
			run := chunkTestRun(t, db)
			r := rand.New(rand.NewPCG(7, 11))
			model := pointModel{}
			var next int64
			for i := range 150 {
				b := randomBatch(r, &next)
				if err := db.IngestMetrics(ctx, modellab.MetricBatch{RunID: run.ID, OwnerID: run.OwnerID, Points: b}); err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				model.add(b)
				if i%10 == 0 {
					checkHistory(t, db, run.ID, model, r.Int64N(next+1)-1)
				}
			}
			checkHistory(t, db, run.ID, model, -1)
		})
	}
}

// TestChunksConcurrentIngest: ingests of one run racing, on both
// PostgreSQL paths, lose no point.
func TestChunksConcurrentIngest(t *testing.T) {
	ctx := context.Background()
	db := openMigrated(t, EnginePostgres)
	run := chunkTestRun(t, db)
	model := pointModel{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 40 {
				// Each writer its own key: the model is then the same
				// whatever order the batches landed in.
				key := fmt.Sprintf("w%d", w)
				n := 1 + r.IntN(20)
				if i%10 == 9 {
					n = pgTxMin
				}
				b := make([]modellab.MetricPoint, n)
				from := int64(r.IntN(3000))
				for j := range b {
					b[j] = modellab.MetricPoint{Key: key, Step: from + int64(j), Value: float64(i*100000 + j), Timestamp: chunkEpoch}
				}
				if err := db.IngestMetrics(ctx, modellab.MetricBatch{RunID: run.ID, OwnerID: run.OwnerID, Points: b}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				model.add(b)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	checkHistory(t, db, run.ID, model, -1)
}

// TestChunksMigration: points stored a row each before the chunks read
// back the same after the migration, and the migration down gives the
// rows back.
func TestChunksMigration(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := openInternal(t, engine)
			p := db.testProvider(t)
			if _, err := p.UpTo(ctx, chunksVersion-1); err != nil {
				t.Fatal(err)
			}
			run := chunkTestRun(t, db)
			r := rand.New(rand.NewPCG(5, 3))
			model := pointModel{}
			var rows [][]any
			for _, key := range []string{"loss", "acc", "eval/loss"} {
				for step := int64(0); step < 3000; step += 1 + int64(r.IntN(3)) {
					pt := modellab.MetricPoint{Key: key, Step: step, Value: r.NormFloat64(), Timestamp: chunkEpoch.Add(time.Duration(step) * time.Second)}
					model.add([]modellab.MetricPoint{pt})
					rows = append(rows, []any{run.ID, key, step, pt.Value, micros(pt.Timestamp)})
				}
			}
			err := db.inTx(ctx, time.Minute, func(t *tx) error {
				if err := t.exec("UPDATE runs SET last_step = 2999 WHERE id = ?", run.ID); err != nil {
					return err
				}
				return t.insertRows("metric_points", pointCols, rows)
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatal(err)
			}
			checkHistory(t, db, run.ID, model, -1)
			checkHistory(t, db, run.ID, model, 2000)
			if _, err := p.DownTo(ctx, chunksVersion-1); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.get(ctx, "count", "SELECT COUNT(*) FROM metric_points", nil, &n); err != nil || n != len(rows) {
				t.Errorf("after the migration down: %d points, %v; want %d", n, err, len(rows))
			}
		})
	}
}

func chunkTestRun(t *testing.T, db *DB) modellab.Run {
	t.Helper()
	ctx := context.Background()
	u := modellab.User{Name: "chunks"}
	if _, err := db.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	run := modellab.Run{Name: "chunks", OwnerID: u.ID, Status: modellab.RunRunning}
	if err := db.CreateRun(ctx, &run); err != nil {
		t.Fatal(err)
	}
	return run
}

func checkHistory(t *testing.T, db *DB, run string, model pointModel, after int64) {
	t.Helper()
	h, err := db.MetricHistory(context.Background(), run, modellab.MetricQuery{AfterStep: after, MaxPoints: modellab.MaxMaxPoints})
	if err != nil {
		t.Fatal(err)
	}
	if want := model.after(after); !reflect.DeepEqual(h.Series, want) {
		t.Fatalf("after step %d: read %d series, want %d; first difference: %s", after, len(h.Series), len(want), firstDiff(h.Series, want))
	}
}

func firstDiff(got, want []modellab.MetricSeries) string {
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Key != w.Key {
			return fmt.Sprintf("series %d is %q, want %q", i, g.Key, w.Key)
		}
		for j := range min(len(g.Points), len(w.Points)) {
			if g.Points[j] != w.Points[j] {
				return fmt.Sprintf("%s point %d is %+v, want %+v", g.Key, j, g.Points[j], w.Points[j])
			}
		}
		if len(g.Points) != len(w.Points) {
			return fmt.Sprintf("%s has %d points, want %d", g.Key, len(g.Points), len(w.Points))
		}
	}
	return "series count"
}
