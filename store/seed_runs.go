package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modellab/modellab"
)

// The training runs of the demo data set: curves that look like real
// fine-tuning jobs (a loss that decays with noise, a learning rate that
// warms up and follows a cosine, an eval every 50 logged steps), some still
// running up to Now, most finished, a few failed (the loss blows up) or
// killed. They are written in one transaction, COPY on PostgreSQL and
// multi-row INSERTs on SQLite, with each run's summary (last step, latest
// values) computed on the way, as an ingest would have left it.

// runStepEvery is the training steps between two logged points.
const runStepEvery = 10

// runEvalEvery logged points carry an eval.
const runEvalEvery = 50

// demoRunShare: the demo user owns this share of the runs (at least
// demoRunsMin, as far as there are runs).
const (
	demoRunShare = 0.1
	demoRunsMin  = 6
)

var (
	runTasks      = []string{"sft", "dpo", "lora", "distill", "continued-pretrain"}
	runOptimizers = []string{"adamw", "adamw", "adamw", "adafactor", "lion"}
	runDatasets   = []string{"support-tickets-40k", "code-reviews-12k", "summaries-v3", "chat-mix-2024", "docs-qa-8k"}
	runPeakLRs    = []float64{1e-5, 2e-5, 5e-5, 1e-4, 3e-4, 5e-4}
)

// runSeeder adds the runs to a database that bulkLoad has filled.
type runSeeder struct {
	db     *DB
	s      *seeder
	users  []modellab.User
	models []seedModel
}

// seed creates the runs and their points and records how many in res.
func (rs *runSeeder) seed(ctx context.Context, res *SeedResult) error {
	opt := rs.s.opt
	if opt.Runs <= 0 || opt.RunSteps <= 0 {
		return nil
	}
	visible := rs.visibleModels()
	demoRuns := min(opt.Runs, max(demoRunsMin, int(float64(opt.Runs)*demoRunShare)))
	plans := make([]plannedRun, opt.Runs)
	for i := range plans {
		owner := 0
		if i >= demoRuns && len(rs.users) > 1 {
			// A long tail: a few users run most jobs.
			owner = 1 + int(float64(len(rs.users)-1)*math.Pow(rs.s.r.Float64(), 3))
		}
		plans[i] = rs.plan(i, &rs.users[owner], visible[owner])
	}
	err := rs.db.inTx(ctx, 0, func(t *tx) error {
		points := rs.pointRows(plans)
		if err := bulkInsert(t, "metric_chunks", chunkCols, points.next); err != nil {
			return fmt.Errorf("metric points: %w", err)
		}
		res.MetricPoints = points.n
		if err := bulkInsert(t, "runs", runSeedCols, rowsOf(len(plans), func(i int) []any { return plans[i].row() })); err != nil {
			return fmt.Errorf("runs: %w", err)
		}
		var latest [][]any
		for i := range plans {
			latest = append(latest, plans[i].latestRows()...)
		}
		return bulkInsert(t, "run_latest", latestCols, rowsOf(len(latest), func(i int) []any { return latest[i] }))
	})
	if err != nil {
		return fail(err, "seed runs")
	}
	res.Runs = len(plans)
	// Statistics for the planner, as the rest of the seed has them.
	for _, table := range []string{"runs", "run_latest", "metric_chunks"} {
		if _, err := rs.db.exec(ctx, "ANALYZE "+table); err != nil {
			return fail(err, "analyze "+table)
		}
	}
	return nil
}

// visibleModels lists, per user, the models the user may train: the
// user's own and the global ones.
func (rs *runSeeder) visibleModels() [][]*seedModel {
	byOwner := map[string]int{}
	for i := range rs.users {
		byOwner[rs.users[i].ID] = i
	}
	var globals []*seedModel
	own := make([][]*seedModel, len(rs.users))
	for i := range rs.models {
		m := &rs.models[i]
		if m.m.OwnerID == nil {
			globals = append(globals, m)
		} else {
			k := byOwner[*m.m.OwnerID]
			own[k] = append(own[k], m)
		}
	}
	for k := range own {
		own[k] = append(own[k], globals...)
	}
	return own
}

// runShape is what a run's curves follow.
type runShape struct {
	status             string
	logged, planned    int     // points per key logged, and planned for the whole job
	lossStart, lossEnd float64 // the loss decays from one towards the other
	tau                float64 // in logged points
	noise, peakLR, gap float64
	failAt             int           // logged point where a failed run starts to diverge
	stepTime           time.Duration // wall time of one logged point
	start              time.Time
}

func (rs *runSeeder) shape(i int) runShape {
	r, opt := rs.s.r, rs.s.opt
	sh := runShape{planned: opt.RunSteps, lossStart: 2.4 + 1.6*r.Float64(), lossEnd: 0.25 + 0.9*r.Float64(),
		noise: 0.02 + 0.04*r.Float64(), peakLR: runPeakLRs[r.IntN(len(runPeakLRs))], gap: 0.03 + 0.12*r.Float64(),
		stepTime: time.Duration(2+r.IntN(7)) * time.Second}
	sh.tau = float64(sh.planned) * (0.08 + 0.25*r.Float64())
	// The demo user's first runs show every state; the rest are drawn.
	states := []string{modellab.RunRunning, modellab.RunRunning, modellab.RunFinished, modellab.RunFailed, modellab.RunFinished, modellab.RunKilled}
	switch p := r.IntN(100); {
	case i < len(states):
		sh.status = states[i]
	case p < 12:
		sh.status = modellab.RunRunning
	case p < 80:
		sh.status = modellab.RunFinished
	case p < 94:
		sh.status = modellab.RunFailed
	default:
		sh.status = modellab.RunKilled
	}
	sh.logged = sh.planned
	switch sh.status {
	case modellab.RunRunning:
		sh.logged = max(2, int(float64(sh.planned)*(0.3+0.6*r.Float64())))
	case modellab.RunFailed:
		sh.failAt = max(2, int(float64(sh.planned)*(0.1+0.5*r.Float64())))
		sh.logged = min(sh.planned, sh.failAt+8+r.IntN(20))
	case modellab.RunKilled:
		sh.logged = max(2, int(float64(sh.planned)*(0.2+0.6*r.Float64())))
	}
	span := time.Duration(sh.logged) * sh.stepTime
	if sh.status == modellab.RunRunning {
		sh.start = opt.Now.Add(-span) // its last point is now
	} else {
		sh.start = opt.Now.Add(-span - time.Duration(r.Int64N(int64(time.Duration(opt.Days)*24*time.Hour))))
	}
	return sh
}

// points draws the run's curves.
func (sh *runShape) points(r interface{ NormFloat64() float64 }) []modellab.MetricPoint {
	out := make([]modellab.MetricPoint, 0, 2*sh.logged+2*(sh.logged/runEvalEvery))
	warmup := max(1, sh.planned/20)
	for i := 0; i < sh.logged; i++ {
		step := int64(i * runStepEvery)
		ts := sh.start.Add(time.Duration(i) * sh.stepTime)
		decay := math.Exp(-float64(i) / sh.tau)
		smooth := sh.lossEnd + (sh.lossStart-sh.lossEnd)*decay
		loss := smooth + sh.noise*(0.4+decay)*r.NormFloat64()
		if sh.failAt > 0 && i > sh.failAt {
			loss = smooth * math.Pow(1.35, float64(i-sh.failAt))
		}
		lr := sh.peakLR * float64(i+1) / float64(warmup)
		if i >= warmup {
			lr = sh.peakLR * (0.1 + 0.45*(1+math.Cos(math.Pi*float64(i-warmup)/float64(max(1, sh.planned-warmup)))))
		}
		out = append(out, modellab.MetricPoint{Key: "loss", Step: step, Value: round4(math.Max(loss, 0.01)), Timestamp: ts},
			modellab.MetricPoint{Key: "lr", Step: step, Value: lr, Timestamp: ts})
		if i%runEvalEvery == runEvalEvery-1 {
			acc := math.Min(0.97, 0.25+0.65*(1-decay)+0.01*r.NormFloat64())
			out = append(out, modellab.MetricPoint{Key: "eval_loss", Step: step, Value: round4(smooth + sh.gap*(1+float64(i)/float64(sh.planned))), Timestamp: ts},
				modellab.MetricPoint{Key: "eval_accuracy", Step: step, Value: round4(acc), Timestamp: ts})
		}
	}
	return out
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// plannedRun is a run about to be written, and the summary of its points
// as they are generated.
type plannedRun struct {
	run    modellab.Run
	shape  runShape
	params string
	last   int64
	latest map[string]modellab.MetricPoint
}

var runSeedCols = []string{"id", "owner_id", "name", "model_id", "status", "params", "last_step", "created_at", "updated_at", "ended_at"}

func (p *plannedRun) row() []any {
	var last *int64
	if p.last >= 0 {
		last = &p.last
	}
	r := &p.run
	return []any{r.ID, r.OwnerID, r.Name, r.ModelID, r.Status, p.params, last, micros(r.CreatedAt), micros(r.UpdatedAt), endedMicros(r)}
}

func (p *plannedRun) latestRows() [][]any {
	out := make([][]any, 0, len(p.latest))
	for _, k := range slices.Sorted(maps.Keys(p.latest)) {
		l := p.latest[k]
		out = append(out, []any{p.run.ID, l.Key, l.Step, l.Value})
	}
	return out
}

// plan draws run i of owner: its shape, model, name and parameters.
func (rs *runSeeder) plan(i int, owner *modellab.User, models []*seedModel) plannedRun {
	r := rs.s.r
	sh := rs.shape(i)
	run := modellab.Run{ID: rs.s.id(modellab.PrefixRun), OwnerID: owner.ID, Status: sh.status,
		CreatedAt: sh.start.UTC().Truncate(time.Microsecond)}
	base := "tiny-gpt"
	if len(models) > 0 {
		m := models[r.IntN(len(models))]
		run.ModelID, base = &m.m.ID, m.m.BaseModel
	}
	task := runTasks[r.IntN(len(runTasks))]
	run.Name = fmt.Sprintf("%s-%s-lr%s-%03d", base, task, fmtLR(sh.peakLR), i+1)
	run.Params = map[string]any{
		"lr": sh.peakLR, "batch_size": float64(int(8) << r.IntN(4)), "optimizer": runOptimizers[r.IntN(len(runOptimizers))],
		"epochs": float64(1 + r.IntN(4)), "warmup_steps": float64(max(1, sh.planned/20) * runStepEvery),
		"seed": float64(r.IntN(10_000)), "bf16": r.IntN(4) > 0, "dataset": runDatasets[r.IntN(len(runDatasets))],
	}
	if task == "lora" {
		run.Params["lora_rank"] = float64(int(8) << r.IntN(3))
	}
	end := sh.start.Add(time.Duration(sh.logged) * sh.stepTime).UTC().Truncate(time.Microsecond)
	run.UpdatedAt = end
	if sh.status != modellab.RunRunning {
		run.EndedAt = &end
	}
	params, _ := json.Marshal(run.Params) // strings, numbers and booleans: cannot fail
	return plannedRun{run: run, shape: sh, params: string(params), last: -1, latest: map[string]modellab.MetricPoint{}}
}

// pointStream yields the chunk rows of the runs, run after run,
// generating each run's points when its turn comes (a large data set never
// sits in memory) and noting its summary.
type pointStream struct {
	rs    *runSeeder
	plans []plannedRun
	run   int
	rows  [][]any
	n     int // points
}

func (rs *runSeeder) pointRows(plans []plannedRun) *pointStream {
	return &pointStream{rs: rs, plans: plans, run: -1}
}

func (ps *pointStream) next() ([]any, bool) {
	for len(ps.rows) == 0 {
		if ps.run++; ps.run >= len(ps.plans) {
			return nil, false
		}
		p := &ps.plans[ps.run]
		pts := dedupePoints(p.shape.points(ps.rs.s.r))
		for _, pt := range pts {
			p.last = max(p.last, pt.Step)
			if l, ok := p.latest[pt.Key]; !ok || pt.Step >= l.Step {
				p.latest[pt.Key] = pt
			}
		}
		ps.n += len(pts)
		for _, g := range groupChunks(pts) {
			c := g.row()
			ps.rows = append(ps.rows, []any{p.run.ID, c.key, c.chunk, c.lo, c.hi, c.data})
		}
	}
	row := ps.rows[0]
	ps.rows = ps.rows[1:]
	return row, true
}

// bulkInsert writes the rows next yields into table: one COPY on
// PostgreSQL, INSERTs of many rows at a time on SQLite.
func bulkInsert(t *tx, table string, cols []string, next func() ([]any, bool)) error {
	if t.pg != nil {
		defer t.db.observe(time.Now())
		_, err := t.pg.CopyFrom(t.ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			row, ok := next()
			if !ok {
				return nil, nil
			}
			return row, nil
		}))
		return err
	}
	per := min(500, 32766/len(cols))
	args := make([]any, 0, per*len(cols))
	for {
		row, ok := next()
		if ok {
			args = append(args, row...)
		}
		if len(args) > 0 && (!ok || len(args) == per*len(cols)) {
			if err := t.execSQLite(insertValues(table, cols, len(args)/len(cols)), args...); err != nil {
				return err
			}
			args = args[:0]
		}
		if !ok {
			return nil
		}
	}
}

// fmtLR writes a learning rate as run names do: 3e-4, 1e-5.
func fmtLR(lr float64) string {
	e := int(math.Floor(math.Log10(lr)))
	return fmt.Sprintf("%.0fe%d", lr/math.Pow(10, float64(e)), e)
}
