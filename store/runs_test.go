package store_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/store"
)

var runEpoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func mustRun(t testing.TB, db *store.DB, r modellab.Run) modellab.Run {
	t.Helper()
	if r.Status == "" {
		r.Status = modellab.RunRunning
	}
	if err := db.CreateRun(context.Background(), &r); err != nil {
		t.Fatalf("CreateRun(%q): %v", r.Name, err)
	}
	return r
}

func pt(key string, step int64, value float64) modellab.MetricPoint {
	return modellab.MetricPoint{Key: key, Step: step, Value: value, Timestamp: runEpoch.Add(time.Duration(step) * time.Second)}
}

func ingest(t testing.TB, db *store.DB, run modellab.Run, points ...modellab.MetricPoint) {
	t.Helper()
	if err := db.IngestMetrics(context.Background(), modellab.MetricBatch{RunID: run.ID, OwnerID: run.OwnerID, Points: points}); err != nil {
		t.Fatalf("IngestMetrics(%d points): %v", len(points), err)
	}
}

func testRuns(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	alice, bob := mustUser(t, db, "alice"), mustUser(t, db, "bob")
	m := mustModel(t, db, modellab.Model{Name: "m", OwnerID: &alice.ID})

	params := map[string]any{"lr": 0.0003, "batch_size": 32.0, "optimizer": "adamw", "fp16": true}
	r1 := mustRun(t, db, modellab.Run{Name: "first", OwnerID: alice.ID, ModelID: &m.ID, Params: params, CreatedAt: runEpoch})
	r2 := mustRun(t, db, modellab.Run{Name: "second", OwnerID: alice.ID, CreatedAt: runEpoch.Add(time.Minute)})
	mustRun(t, db, modellab.Run{Name: "bob's", OwnerID: bob.ID})
	if r1.LastStep != nil || len(r1.Latest) != 0 || r1.EndedAt != nil {
		t.Fatalf("a new run has a summary: %+v", r1)
	}

	got, err := db.GetRun(ctx, r1.ID)
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	if !reflect.DeepEqual(got, r1) {
		t.Errorf("GetRun =\n %+v\nwant\n %+v", got, r1)
	}
	if _, err := db.GetRun(ctx, "run_nope"); code(err) != modellab.ENOTFOUND {
		t.Errorf("GetRun(unknown): %v, want not_found", err)
	}
	list, err := db.ListRuns(ctx, alice.ID)
	if err != nil || len(list) != 2 || list[0].ID != r2.ID || list[1].ID != r1.ID {
		t.Fatalf("ListRuns(alice) = %+v, %v; want second, first", list, err)
	}
	bad := modellab.Run{Name: "x", OwnerID: alice.ID, Status: modellab.RunRunning, ModelID: ptr("mdl_nope")}
	if err := db.CreateRun(ctx, &bad); code(err) != modellab.EINVALID {
		t.Errorf("CreateRun with an unknown model: %v, want invalid_argument", err)
	}

	ended := runEpoch.Add(time.Hour)
	r1.Status, r1.Name, r1.EndedAt, r1.UpdatedAt = modellab.RunFinished, "renamed", &ended, ended
	if err := db.UpdateRun(ctx, &r1); err != nil {
		t.Fatalf("UpdateRun: %v", err)
	}
	if got, _ := db.GetRun(ctx, r1.ID); got.Status != modellab.RunFinished || got.Name != "renamed" || got.EndedAt == nil || !got.EndedAt.Equal(ended) {
		t.Errorf("after UpdateRun: %+v", got)
	}
	// A deleted model leaves its runs without one.
	if err := db.DeleteModel(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetRun(ctx, r1.ID); got.ModelID != nil {
		t.Errorf("run of a deleted model: model_id %v, want nil", *got.ModelID)
	}

	ingest(t, db, r2, pt("loss", 1, 2.5))
	if err := db.DeleteRun(ctx, r2.ID); err != nil {
		t.Fatalf("DeleteRun: %v", err)
	}
	if err := db.DeleteRun(ctx, r2.ID); code(err) != modellab.ENOTFOUND {
		t.Errorf("second DeleteRun: %v, want not_found", err)
	}
	if _, err := db.MetricHistory(ctx, r2.ID, allPoints()); code(err) != modellab.ENOTFOUND {
		t.Errorf("history of a deleted run: %v, want not_found", err)
	}
}

func allPoints() modellab.MetricQuery {
	return modellab.MetricQuery{AfterStep: -1, MaxPoints: modellab.MaxMaxPoints}
}

func testIngestMetrics(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	alice, bob := mustUser(t, db, "alice"), mustUser(t, db, "bob")
	run := mustRun(t, db, modellab.Run{Name: "r", OwnerID: alice.ID})

	rewrites := func() int64 {
		t.Helper()
		h, err := db.MetricHistory(ctx, run.ID, modellab.MetricQuery{Keys: []string{"none"}, AfterStep: -1})
		if err != nil {
			t.Fatal(err)
		}
		return h.Rewrites
	}
	ingest(t, db, run, pt("loss", 0, 2.5), pt("loss", 10, 2.0), pt("lr", 10, 1e-4), pt("loss", 10, 1.9))
	if n := rewrites(); n != 0 {
		t.Errorf("rewrites after the first batch: %d, want 0", n)
	}
	// An older step of a key does not move its latest value or last_step;
	// a repeated step replaces the point.
	ingest(t, db, run, pt("loss", 5, 2.2), pt("eval/acc", 8, 0.5), pt("loss", 0, 2.6))
	if n := rewrites(); n != 1 {
		t.Errorf("rewrites after a batch that reaches back: %d, want 1", n)
	}
	got, err := db.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantLatest := map[string]float64{"loss": 1.9, "lr": 1e-4, "eval/acc": 0.5}
	if got.LastStep == nil || *got.LastStep != 10 || !reflect.DeepEqual(got.Latest, wantLatest) {
		t.Errorf("summary: last_step %v latest %v; want 10 and %v", got.LastStep, got.Latest, wantLatest)
	}
	h, err := db.MetricHistory(ctx, run.ID, allPoints())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"eval/acc: 8=0.5", "loss: 0=2.6 5=2.2 10=1.9", "lr: 10=0.0001"}
	if s := seriesText(h.Series); !reflect.DeepEqual(s, want) {
		t.Errorf("history = %q\nwant %q", s, want)
	}

	// Another user's run, or none: not found, and nothing stored.
	err = db.IngestMetrics(ctx, modellab.MetricBatch{RunID: run.ID, OwnerID: bob.ID, Points: []modellab.MetricPoint{pt("loss", 99, 9)}})
	if code(err) != modellab.ENOTFOUND {
		t.Errorf("ingest into another user's run: %v, want not_found", err)
	}
	err = db.IngestMetrics(ctx, modellab.MetricBatch{RunID: "run_nope", OwnerID: alice.ID, Points: []modellab.MetricPoint{pt("loss", 99, 9)}})
	if code(err) != modellab.ENOTFOUND {
		t.Errorf("ingest into no run: %v, want not_found", err)
	}
	// The schema refuses a negative step: all or nothing.
	err = db.IngestMetrics(ctx, modellab.MetricBatch{RunID: run.ID, OwnerID: alice.ID, Points: []modellab.MetricPoint{pt("loss", 50, 1), pt("loss", -1, 1)}})
	if code(err) != modellab.EINVALID {
		t.Errorf("negative step: %v, want invalid_argument", err)
	}
	if got, _ := db.GetRun(ctx, run.ID); *got.LastStep != 10 {
		t.Errorf("a refused batch moved last_step to %d", *got.LastStep)
	}

	// A full batch goes in (on PostgreSQL by COPY: it only appends), and
	// replaces itself the second time (an upsert: it reaches back).
	big := make([]modellab.MetricPoint, modellab.MaxPointsPerBatch)
	for i := range big {
		big[i] = pt(fmt.Sprintf("k%d", i%4), int64(1000+i/4), float64(i))
	}
	ingest(t, db, run, big...)
	if n := rewrites(); n != 1 {
		t.Errorf("rewrites after a batch that appends: %d, want 1 still", n)
	}
	err = db.IngestMetrics(ctx, modellab.MetricBatch{RunID: run.ID, OwnerID: bob.ID, Points: big})
	if code(err) != modellab.ENOTFOUND {
		t.Errorf("full batch into another user's run: %v, want not_found", err)
	}
	for i := range big {
		big[i].Value = -big[i].Value
	}
	ingest(t, db, run, big...)
	h, err = db.MetricHistory(ctx, run.ID, modellab.MetricQuery{Keys: []string{"k3"}, AfterStep: -1, MaxPoints: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n := rewrites(); n != 2 {
		t.Errorf("rewrites after a repeated batch: %d, want 2", n)
	}
	pts := h.Series[0].Points
	if len(h.Series) != 1 || len(pts) != modellab.MaxPointsPerBatch/4 || *h.LastStep != 1000+modellab.MaxPointsPerBatch/4-1 {
		t.Errorf("after a full batch: %d series, %d points of k3, last_step %d", len(h.Series), len(pts), *h.LastStep)
	}
	if last := pts[len(pts)-1]; last.Value != -float64(modellab.MaxPointsPerBatch-1) {
		t.Errorf("the repeated batch did not replace the points: last k3 %v", last)
	}
	if got, _ := db.GetRun(ctx, run.ID); got.Latest["k3"] != -float64(modellab.MaxPointsPerBatch-1) || got.Latest["loss"] != 1.9 {
		t.Errorf("latest after the batches: %v", got.Latest)
	}
}

func seriesText(ss []modellab.MetricSeries) []string {
	var out []string
	for _, s := range ss {
		line := s.Key + ":"
		for _, p := range s.Points {
			line += fmt.Sprintf(" %d=%g", p.Step, p.Value)
		}
		out = append(out, line)
	}
	return out
}

func testMetricHistory(t *testing.T, open opener) {
	var queries atomic.Int64
	db := open(t, store.Options{OnQuery: func(time.Duration) { queries.Add(1) }})
	ctx := context.Background()
	alice := mustUser(t, db, "alice")
	run := mustRun(t, db, modellab.Run{Name: "r", OwnerID: alice.ID})
	empty := mustRun(t, db, modellab.Run{Name: "empty", OwnerID: alice.ID})
	var points []modellab.MetricPoint
	for s := int64(0); s < 100; s++ {
		points = append(points, pt("loss", s, 2/float64(s+1)), pt("lr", s, 1e-3*math.Cos(float64(s)/100)))
		if s%10 == 9 {
			points = append(points, pt("eval_loss", s, 3/float64(s+1)))
		}
	}
	ingest(t, db, run, points...)

	tests := []struct {
		name  string
		q     modellab.MetricQuery
		count map[string]int
	}{
		{"all", modellab.MetricQuery{AfterStep: -1}, map[string]int{"eval_loss": 10, "loss": 100, "lr": 100}},
		{"after", modellab.MetricQuery{AfterStep: 89}, map[string]int{"eval_loss": 1, "loss": 10, "lr": 10}},
		{"keys", modellab.MetricQuery{Keys: []string{"eval_loss", "loss"}, AfterStep: 49}, map[string]int{"eval_loss": 5, "loss": 50}},
		{"unknown key", modellab.MetricQuery{Keys: []string{"nope"}, AfterStep: -1}, map[string]int{}},
		{"past the end", modellab.MetricQuery{AfterStep: 99}, map[string]int{}},
	}
	for _, tt := range tests {
		before := queries.Load()
		h, err := db.MetricHistory(ctx, run.ID, tt.q)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if n := queries.Load() - before; n != 1 {
			t.Errorf("%s: %d statements, want 1 (the head and the points together)", tt.name, n)
		}
		got := map[string]int{}
		for i, s := range h.Series {
			got[s.Key] = len(s.Points)
			if i > 0 && h.Series[i-1].Key >= s.Key {
				t.Errorf("%s: series %q after %q", tt.name, s.Key, h.Series[i-1].Key)
			}
			for j, p := range s.Points {
				if p.Step <= tt.q.AfterStep || j > 0 && p.Step <= s.Points[j-1].Step {
					t.Fatalf("%s: %s has step %d at %d", tt.name, s.Key, p.Step, j)
				}
			}
		}
		if !reflect.DeepEqual(got, tt.count) || h.OwnerID != alice.ID || h.Status != modellab.RunRunning || *h.LastStep != 99 {
			t.Errorf("%s: points per key %v owner %q status %q last_step %v; want %v", tt.name, got, h.OwnerID, h.Status, h.LastStep, tt.count)
		}
	}
	h, err := db.MetricHistory(ctx, run.ID, modellab.MetricQuery{Keys: []string{"loss"}, AfterStep: 98})
	if err != nil || len(h.Series) != 1 || h.Series[0].Points[0] != (modellab.MetricSample{Step: 99, Value: 2.0 / 100, Timestamp: modellab.Micros(runEpoch.Add(99 * time.Second))}) {
		t.Errorf("last point read back: %+v, %v", h.Series, err)
	}
	h, err = db.MetricHistory(ctx, empty.ID, allPoints())
	if err != nil || len(h.Series) != 0 || h.LastStep != nil || h.Status != modellab.RunRunning {
		t.Errorf("history of a run without points: %+v, %v", h, err)
	}
}
