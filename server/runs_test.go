package server_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

func (e *env) run(token string, body map[string]any) modellab.Run {
	e.t.Helper()
	var r modellab.Run
	e.must(201, "POST", "/api/runs", token, body).json(e.t, &r)
	return r
}

func (e *env) history(token, runID, query string) modellab.RunHistory {
	e.t.Helper()
	var h modellab.RunHistory
	e.must(200, "GET", "/api/runs/"+runID+"/metrics"+query, token, nil).json(e.t, &h)
	return h
}

var pointsEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// points makes n points of key from step from on, one a second.
func points(key string, from, n int, f func(step int) float64) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		s := from + i
		out[i] = map[string]any{"key": key, "step": s, "value": f(s), "timestamp": pointsEpoch.Add(time.Duration(s) * time.Second).Format(time.RFC3339)}
	}
	return out
}

func TestAPIRuns(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, envOpts{engine: engine})
		alice, aliceID := e.user("alice")
		bob, _ := e.user("bob")
		m := e.model(alice, map[string]any{"name": "m", "provider": "local"})
		bobs := e.model(bob, map[string]any{"name": "bobs", "provider": "local"})

		r1 := e.run(alice, map[string]any{"name": "sweep-1", "model_id": m.ID, "params": map[string]any{"lr": 3e-4, "batch_size": 32, "optimizer": "adamw", "fp16": true}})
		if r1.Status != "running" || r1.OwnerID != aliceID || r1.LastStep != nil || len(r1.Latest) != 0 || r1.EndedAt != nil || r1.Params["optimizer"] != "adamw" {
			t.Fatalf("created run: %+v", r1)
		}
		r2 := e.run(alice, map[string]any{"name": "sweep-2"})
		if r2.ModelID != nil || r2.Params == nil {
			t.Errorf("run without model or params: %+v", r2)
		}
		for _, tc := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": ""}, "name"},
			{map[string]any{"name": "x", "model_id": bobs.ID}, "model_id"},
			{map[string]any{"name": "x", "model_id": "mdl_nope0000000000000000"}, "model_id"},
			{map[string]any{"name": "x", "params": map[string]any{"nested": map[string]any{"a": 1}}}, "params.nested"},
			{map[string]any{"name": "x", "params": map[string]any{"none": nil}}, "params.none"},
		} {
			if r := e.do("POST", "/api/runs", alice, tc.body); r.status != 400 || r.errorCode(t) != "invalid_argument" || !strings.Contains(string(r.body), tc.field) {
				t.Errorf("POST /api/runs %v: %d %s, want 400 naming %s", tc.body, r.status, r.body, tc.field)
			}
		}

		// Newest first; another user's run is not found.
		var list service.RunList
		e.must(200, "GET", "/api/runs", alice, nil).json(t, &list)
		if len(list.Runs) != 2 || list.Runs[0].ID != r2.ID || list.Runs[1].ID != r1.ID {
			t.Fatalf("GET /api/runs: %+v", list.Runs)
		}
		e.must(200, "GET", "/api/runs/"+r1.ID, alice, nil)
		for _, req := range [][2]string{{"GET", ""}, {"PATCH", ""}, {"DELETE", ""}, {"GET", "/metrics"}, {"POST", "/metrics"}} {
			var body any
			switch {
			case req[0] == "PATCH":
				body = map[string]any{"name": "mine"}
			case req[0] == "POST":
				body = map[string]any{"points": points("loss", 0, 1, func(int) float64 { return 1 })}
			}
			if r := e.do(req[0], "/api/runs/"+r1.ID+req[1], bob, body); r.status != 404 || r.errorCode(t) != "not_found" {
				t.Errorf("bob %s %s: %d %s, want 404", req[0], req[1], r.status, r.body)
			}
		}
		e.must(404, "GET", "/api/runs/run_nope000000000000000000", alice, nil)
		e.must(401, "GET", "/api/runs", "", nil)

		// Leaving running records the end; coming back clears it.
		var p modellab.Run
		e.must(200, "PATCH", "/api/runs/"+r2.ID, alice, map[string]any{"status": "failed", "name": "sweep-2b"}).json(t, &p)
		if p.Status != "failed" || p.Name != "sweep-2b" || p.EndedAt == nil {
			t.Errorf("after PATCH failed: %+v", p)
		}
		e.must(200, "PATCH", "/api/runs/"+r2.ID, alice, map[string]any{"status": "running"}).json(t, &p)
		if p.EndedAt != nil {
			t.Errorf("a resumed run keeps ended_at %v", p.EndedAt)
		}
		for _, body := range []map[string]any{{"status": "paused"}, {"status": nil}, {"name": ""}, {"owner_id": "x"}} {
			if r := e.do("PATCH", "/api/runs/"+r2.ID, alice, body); r.status != 400 {
				t.Errorf("PATCH %v: %d, want 400", body, r.status)
			}
		}
		e.must(204, "DELETE", "/api/runs/"+r2.ID, alice, nil)
		e.must(404, "GET", "/api/runs/"+r2.ID, alice, nil)
		e.must(200, "GET", "/api/runs", alice, nil).json(t, &list)
		if len(list.Runs) != 1 {
			t.Errorf("after DELETE the list has %d runs", len(list.Runs))
		}
	})
}

func TestAPIRunMetrics(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, envOpts{engine: engine})
		alice, _ := e.user("alice")
		run := e.run(alice, map[string]any{"name": "r"})
		loss := func(s int) float64 { return 2 * math.Exp(-float64(s)/500) }
		ingestOK := func(pts []map[string]any) {
			t.Helper()
			var out struct{ Accepted int }
			e.must(202, "POST", "/api/runs/"+run.ID+"/metrics", alice, map[string]any{"points": pts}).json(t, &out)
			if out.Accepted != len(pts) {
				t.Fatalf("accepted %d of %d", out.Accepted, len(pts))
			}
		}
		ingestOK(points("loss", 0, 2000, loss))
		ingestOK(append(points("lr", 0, 10, func(int) float64 { return 1e-3 }),
			map[string]any{"key": "eval/acc", "step": 1500, "value": 0.7, "timestamp": "2025-03-01T12:00:00.123456Z"}))

		h := e.history(alice, run.ID, "")
		if h.RunID != run.ID || h.Status != "running" || h.LastStep == nil || *h.LastStep != 1999 || len(h.Series) != 3 {
			t.Fatalf("history: run %s status %s last_step %v, %d series", h.RunID, h.Status, h.LastStep, len(h.Series))
		}
		if k := []string{h.Series[0].Key, h.Series[1].Key, h.Series[2].Key}; strings.Join(k, ",") != "eval/acc,loss,lr" {
			t.Errorf("series order %v", k)
		}
		if got := h.Series[0].Points[0]; got.Step != 1500 || got.Value != 0.7 || !got.Timestamp.Time().Equal(time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)) {
			t.Errorf("eval point read back as %+v", got)
		}
		// The default bound is 1,000 points, first and last kept.
		if pts := h.Series[1].Points; len(pts) != modellab.DefaultMaxPoints || pts[0].Step != 0 || pts[len(pts)-1].Step != 1999 {
			t.Errorf("loss: %d points from %d to %d, want 1000 from 0 to 1999", len(pts), pts[0].Step, pts[len(pts)-1].Step)
		}
		h = e.history(alice, run.ID, "?keys=loss&after_step=1989&max_points=5000")
		if len(h.Series) != 1 || len(h.Series[0].Points) != 10 || h.Series[0].Points[0].Step != 1990 {
			t.Errorf("after_step=1989: %+v", h.Series)
		}
		h = e.history(alice, run.ID, "?keys=lr,nothing-yet&max_points=2")
		if len(h.Series) != 2 || h.Series[0].Key != "lr" || len(h.Series[0].Points) != 2 || h.Series[1].Key != "nothing-yet" || len(h.Series[1].Points) != 0 {
			t.Errorf("keys=lr,nothing-yet max_points=2: %+v", h.Series)
		}

		// The summary of the run follows the points.
		var got modellab.Run
		e.must(200, "GET", "/api/runs/"+run.ID, alice, nil).json(t, &got)
		if *got.LastStep != 1999 || got.Latest["loss"] != loss(1999) || got.Latest["lr"] != 1e-3 || got.Latest["eval/acc"] != 0.7 {
			t.Errorf("run summary: last_step %v latest %v", *got.LastStep, got.Latest)
		}
	})
}

func TestAPIRunMetricsInvalid(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, _ := e.user("alice")
	run := e.run(alice, map[string]any{"name": "r"})
	path := "/api/runs/" + run.ID + "/metrics"
	good := `{"key": "loss", "step": 1, "value": 1}`
	many := make([]map[string]any, modellab.MaxPointsPerBatch+1)
	for i := range many {
		many[i] = map[string]any{"key": "k", "step": i, "value": 1}
	}
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"NaN word", `{"points": [` + good + `, {"key": "loss", "step": 2, "value": NaN}]}`, "points[1].value"},
		{"Infinity word", `{"points": [{"key": "loss", "step": 2, "value": -Infinity}]}`, "points[0].value"},
		{"NaN string", `{"points": [` + good + `, ` + good + `, {"key": "loss", "step": 2, "value": "NaN"}]}`, "points[2].value"},
		{"overflow", `{"points": [{"key": "loss", "step": 2, "value": 1e999}]}`, "points[0].value"},
		{"value as text", `{"points": [{"key": "loss", "step": 2, "value": "1.5"}]}`, "points[0].value"},
		{"no value", `{"points": [{"key": "loss", "step": 2}]}`, "points[0].value"},
		{"negative step", `{"points": [{"key": "loss", "step": -1, "value": 1}]}`, "points[0].step"},
		{"fractional step", `{"points": [` + good + `, {"key": "loss", "step": 1.5, "value": 1}]}`, "points[1].step"},
		{"no step", `{"points": [{"key": "loss", "value": 1}]}`, "points[0].step"},
		{"bad key", `{"points": [{"key": "loss rate", "step": 1, "value": 1}]}`, "points[0].key"},
		{"long key", `{"points": [{"key": "` + strings.Repeat("k", 101) + `", "step": 1, "value": 1}]}`, "points[0].key"},
		{"future", `{"points": [{"key": "k", "step": 1, "value": 1, "timestamp": "2999-01-01T00:00:00Z"}]}`, "points[0].timestamp"},
		{"none", `{"points": []}`, "points"},
		{"too many", map[string]any{"points": many}, "points"},
	} {
		r := e.do("POST", path, alice, tc.body)
		if r.status != 400 || r.errorCode(t) != "invalid_argument" || !strings.Contains(string(r.body), tc.field) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, r.status, r.body, tc.field)
		}
	}
	// A string that merely contains the word is not rewritten.
	e.must(202, "POST", path, alice, `{"points": [{"key": "NaN", "step": 1, "value": 1}]}`)
	// All or nothing: nothing of the refused batches was stored.
	if h := e.history(alice, run.ID, ""); len(h.Series) != 1 || h.Series[0].Key != "NaN" {
		t.Errorf("after refused batches: %+v", h.Series)
	}
	for _, q := range []string{"max_points=1", "max_points=5001", "max_points=x", "after_step=-1", "after_step=x",
		"keys=a%20b", "max_points=10&max_points=20"} {
		if r := e.do("GET", path+"?"+q, alice, nil); r.status != 400 || r.errorCode(t) != "invalid_argument" {
			t.Errorf("GET ?%s: %d %s, want 400", q, r.status, r.body)
		}
	}
	e.must(200, "GET", path+"?max_points=2", alice, nil)
	e.must(200, "GET", path+"?max_points=5000&after_step=0", alice, nil)
}

// TestRunsCache: reads are cached per run and per list, an ingest drops
// both, and the polling read between ingests is a hit or a 304.
func TestRunsCache(t *testing.T) {
	e := newEnv(t, envOpts{ttl: time.Hour})
	alice, _ := e.user("alice")
	run := e.run(alice, map[string]any{"name": "r"})
	path := "/api/runs/" + run.ID + "/metrics?after_step=9"
	ingest := func(from int) {
		t.Helper()
		e.must(202, "POST", "/api/runs/"+run.ID+"/metrics", alice, map[string]any{"points": points("loss", from, 10, func(s int) float64 { return float64(s) })})
	}
	ingest(0)
	loads := func() float64 { return e.metric("modellab_cache_loads_total", map[string]string{"endpoint": "runs"}) }

	first := e.must(200, "GET", path, alice, nil)
	if first.header.Get("X-Cache") != "MISS" || first.header.Get("Cache-Control") != "private, no-cache" {
		t.Fatalf("first read: X-Cache %q Cache-Control %q", first.header.Get("X-Cache"), first.header.Get("Cache-Control"))
	}
	before := loads()
	// Equivalent spellings share the entry.
	for _, p := range []string{path, "/api/runs/" + run.ID + "/metrics?max_points=1000&after_step=9&keys="} {
		if r := e.must(200, "GET", p, alice, nil); r.header.Get("X-Cache") != "HIT" {
			t.Errorf("%s: X-Cache %q, want HIT", p, r.header.Get("X-Cache"))
		}
	}
	e.must(304, "GET", path, alice, nil, "If-None-Match", first.header.Get("ETag"))
	if n := loads() - before; n != 0 {
		t.Errorf("%v loads between ingests, want 0", n)
	}
	e.must(200, "GET", "/api/runs", alice, nil)
	if r := e.must(200, "GET", "/api/runs", alice, nil); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("run list: X-Cache %q, want HIT", r.header.Get("X-Cache"))
	}

	// The ingest is seen by the very next read of the history and the list,
	// at the cost of one load.
	ingest(10)
	before = loads()
	r := e.do("GET", path, alice, nil, "If-None-Match", first.header.Get("ETag"))
	if n := loads() - before; n != 1 {
		t.Errorf("%v loads for the read after an ingest, want 1", n)
	}
	var h modellab.RunHistory
	r.json(t, &h)
	if r.status != 200 || r.header.Get("X-Cache") != "MISS" || len(h.Series) != 1 || len(h.Series[0].Points) != 10 || *h.LastStep != 19 {
		t.Fatalf("read after ingest: %d X-Cache %q %s", r.status, r.header.Get("X-Cache"), r.body)
	}
	var list service.RunList
	e.must(200, "GET", "/api/runs", alice, nil).json(t, &list)
	if *list.Runs[0].LastStep != 19 || list.Runs[0].Latest["loss"] != 19 {
		t.Errorf("run list after ingest: %+v", list.Runs[0])
	}
	// A status change shows too.
	e.must(200, "PATCH", "/api/runs/"+run.ID, alice, map[string]any{"status": "finished"})
	if h := e.history(alice, run.ID, "?after_step=9"); h.Status != "finished" {
		t.Errorf("history after PATCH: status %q", h.Status)
	}
	e.must(204, "DELETE", "/api/runs/"+run.ID, alice, nil)
	e.must(404, "GET", path, alice, nil)
}

// TestRunsCacheTwoInstances: an ingest on one instance is seen by the next
// read on another one sharing the Redis.
func TestRunsCacheTwoInstances(t *testing.T) {
	a := newEnv(t, envOpts{engine: "postgres", redis: true, ttl: time.Hour})
	b := newEnv(t, envOpts{engine: "postgres", redis: true, ttl: time.Hour, dbURL: a.dbURL(), prefix: a.pfx})
	tok, _ := a.user("alice")
	run := a.run(tok, map[string]any{"name": "r"})
	for i := 0; i < 3; i++ {
		pts := points("loss", i*10, 10, func(s int) float64 { return float64(s) })
		a.must(202, "POST", "/api/runs/"+run.ID+"/metrics", tok, map[string]any{"points": pts})
		want := int64(i*10 + 9)
		var h modellab.RunHistory
		waitFor(t, 2*time.Second, func() bool {
			b.must(200, "GET", "/api/runs/"+run.ID+"/metrics", tok, nil).json(t, &h)
			return *h.LastStep == want
		})
		var list service.RunList
		b.must(200, "GET", "/api/runs", tok, nil).json(t, &list)
		if *list.Runs[0].LastStep != want {
			t.Errorf("instance b's run list: last_step %d, want %d", *list.Runs[0].LastStep, want)
		}
	}
}

// historyCalls records what the service asked the store for.
type historyCalls struct {
	service.Store
	mu    sync.Mutex
	calls []string // "after_step:points read"
}

func (h *historyCalls) MetricHistory(ctx context.Context, id string, q modellab.MetricQuery) (modellab.RunHistory, error) {
	r, err := h.Store.MetricHistory(ctx, id, q)
	n := 0
	for _, s := range r.Series {
		n += len(s.Points)
	}
	h.mu.Lock()
	h.calls = append(h.calls, fmt.Sprintf("%d:%d", q.AfterStep, n))
	h.mu.Unlock()
	return r, err
}

func (h *historyCalls) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.calls
	h.calls = nil
	return out
}

// TestRunsIncrementalReload: after an ingest, the reload of a history read
// before fetches only the points after the run's last step, unless the
// ingest reached back (a replaced or late point), and the answers are
// those of a full read either way.
func TestRunsIncrementalReload(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		calls := &historyCalls{}
		e := newEnv(t, envOpts{engine: engine, ttl: time.Hour, wrap: func(s service.Store) service.Store { calls.Store = s; return calls }})
		ref := newEnv(t, envOpts{engine: "sqlite", disabled: true}) // the same ingests, read in full each time
		alice, _ := e.user("alice")
		refTok, _ := ref.user("alice")
		run := e.run(alice, map[string]any{"name": "r"})
		refRun := ref.run(refTok, map[string]any{"name": "r"})
		send := func(pts []map[string]any) {
			t.Helper()
			e.must(202, "POST", "/api/runs/"+run.ID+"/metrics", alice, map[string]any{"points": pts})
			ref.must(202, "POST", "/api/runs/"+refRun.ID+"/metrics", refTok, map[string]any{"points": pts})
		}
		check := func(step string, wantCalls ...string) {
			t.Helper()
			for _, q := range []string{"?max_points=50", "?keys=loss&max_points=5000"} {
				got, want := e.history(alice, run.ID, q), ref.history(refTok, refRun.ID, q)
				got.RunID, want.RunID = "", ""
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s, %s: the reload differs from a full read:\n got %v\nwant %v", step, q, briefly(got), briefly(want))
				}
			}
			if c := calls.take(); !slices.Equal(c, wantCalls) {
				t.Errorf("%s: store reads (after_step:points) %v, want %v", step, c, wantCalls)
			}
		}
		lin := func(s int) float64 { return float64(s) }
		send(append(points("loss", 0, 100, lin), points("lr", 0, 100, lin)...))
		check("first reads", "-1:200", "-1:100")
		send(points("loss", 100, 5, lin))
		// The last step (99) is read again, with what follows.
		check("after an append", "98:7", "98:6")
		// Another key at the last step, as a trainer logging one key per
		// call does: still the cheap path.
		send(points("lr", 104, 6, lin))
		check("after an append of another key at the last step", "103:7", "103:1")
		at := func(key string, step int, value float64) []map[string]any {
			return points(key, step, 1, func(int) float64 { return value })
		}
		send(at("loss", 109, -5))
		check("after a replaced point at the last step", "108:2", "108:1")
		// A replaced point and a late one below it: everything is read again.
		send(append(at("loss", 50, -1), at("eval", 3, 7)...))
		check("after a rewrite", "108:2", "-1:213", "108:1", "-1:106")
		send(points("loss", 200, 3, lin))
		check("after a rewrite and an append", "108:5", "108:4")
	})
}

func briefly(h modellab.RunHistory) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s last_step %v:", h.Status, *h.LastStep)
	for _, s := range h.Series {
		fmt.Fprintf(&b, " %s[%d points", s.Key, len(s.Points))
		for _, p := range s.Points {
			fmt.Fprintf(&b, " %d=%g", p.Step, p.Value)
		}
		b.WriteString("]")
	}
	return b.String()
}
