package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/store"
)

// TestSeedRuns: the seeded runs look like training jobs, the demo user has
// one in every state, and both engines hold the same runs and curves.
func TestSeedRuns(t *testing.T) {
	t.Parallel()
	opts := store.SeedOptions{Users: 4, Models: 10, GlobalModels: 2, Servers: 2, Events: 10, Days: 7, Runs: 10, RunSteps: 300, Now: seedNow, RandSeed: 7}
	var snaps [][]modellab.Run
	for _, e := range engines {
		db := e.opener(t)(t, store.Options{})
		ctx := context.Background()
		res, err := store.Seed(ctx, db, opts)
		if err != nil {
			t.Fatalf("%s: Seed: %v", e.name, err)
		}
		if res.Runs != opts.Runs || res.MetricPoints < opts.Runs*2 {
			t.Fatalf("%s: seeded %d runs, %d points", e.name, res.Runs, res.MetricPoints)
		}
		runs, err := db.ListRuns(ctx, res.Users[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		checkSeededRuns(t, e.name, db, runs, opts)
		snaps = append(snaps, runs)
	}
	if !reflect.DeepEqual(snaps[0], snaps[1]) {
		t.Errorf("the engines hold different runs:\n%+v\n%+v", snaps[0], snaps[1])
	}
}

func checkSeededRuns(t *testing.T, engine string, db *store.DB, runs []modellab.Run, opts store.SeedOptions) {
	t.Helper()
	states := map[string]int{}
	for _, r := range runs {
		states[r.Status]++
		h, err := db.MetricHistory(context.Background(), r.ID, modellab.MetricQuery{Keys: []string{"loss", "lr"}, AfterStep: -1})
		if err != nil {
			t.Fatal(err)
		}
		loss, lr := h.Series[0].Points, h.Series[1].Points
		if len(loss) < 2 || len(lr) != len(loss) || r.LastStep == nil || *r.LastStep != loss[len(loss)-1].Step {
			t.Fatalf("%s: run %s has %d loss and %d lr points, last_step %v", engine, r.Name, len(loss), len(lr), r.LastStep)
		}
		if r.Latest["loss"] != loss[len(loss)-1].Value {
			t.Errorf("%s: run %s: latest loss %v, last point %v", engine, r.Name, r.Latest["loss"], loss[len(loss)-1].Value)
		}
		switch r.Status {
		case modellab.RunFinished:
			if loss[len(loss)-1].Value >= loss[0].Value || r.EndedAt == nil {
				t.Errorf("%s: finished run %s: loss %v to %v, ended %v", engine, r.Name, loss[0].Value, loss[len(loss)-1].Value, r.EndedAt)
			}
			if len(h.Series[0].Points) != opts.RunSteps {
				t.Errorf("%s: finished run %s logged %d steps, want %d", engine, r.Name, len(loss), opts.RunSteps)
			}
		case modellab.RunFailed:
			if loss[len(loss)-1].Value <= loss[len(loss)/2].Value {
				t.Errorf("%s: failed run %s does not diverge: %v then %v", engine, r.Name, loss[len(loss)/2].Value, loss[len(loss)-1].Value)
			}
		case modellab.RunRunning:
			if r.EndedAt != nil || opts.Now.Sub(loss[len(loss)-1].Timestamp.Time()) > time.Minute {
				t.Errorf("%s: running run %s: ended %v, last point at %v", engine, r.Name, r.EndedAt, loss[len(loss)-1].Timestamp.Time())
			}
		}
		// Warm-up, then a decay to a tenth of the peak.
		peak := r.Params["lr"].(float64)
		if lr[0].Value >= peak || r.Status == modellab.RunFinished && lr[len(lr)-1].Value > peak*0.11 {
			t.Errorf("%s: run %s lr from %v to %v, peak %v", engine, r.Name, lr[0].Value, lr[len(lr)-1].Value, peak)
		}
	}
	for _, s := range []string{modellab.RunRunning, modellab.RunFinished, modellab.RunFailed, modellab.RunKilled} {
		if states[s] == 0 {
			t.Errorf("%s: the demo user has no %s run (%v)", engine, s, states)
		}
	}
}
