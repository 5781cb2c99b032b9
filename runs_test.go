package modellab_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

func TestRunValid(t *testing.T) {
	ok := modellab.Run{Name: "r", OwnerID: "usr_x", Status: modellab.RunRunning,
		Params: map[string]any{"lr": 3e-4, "optimizer": "adamw", "fp16": true}}
	if err := ok.Valid(); err != nil {
		t.Fatalf("valid run: %v", err)
	}
	many := map[string]any{}
	for i := 0; i <= modellab.MaxParams; i++ {
		many["p"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+string(rune('a'+i/26))] = 1.0
	}
	cases := []struct {
		name  string
		edit  func(r *modellab.Run)
		field string
	}{
		{"no name", func(r *modellab.Run) { r.Name = "" }, "name"},
		{"bad status", func(r *modellab.Run) { r.Status = "paused" }, "status"},
		{"nested param", func(r *modellab.Run) { r.Params = map[string]any{"opt": map[string]any{"b": 1}} }, "params.opt"},
		{"null param", func(r *modellab.Run) { r.Params = map[string]any{"x": nil} }, "params.x"},
		{"list param", func(r *modellab.Run) { r.Params = map[string]any{"xs": []any{1.0}} }, "params.xs"},
		{"NaN param", func(r *modellab.Run) { r.Params = map[string]any{"x": math.NaN()} }, "params.x"},
		{"long param", func(r *modellab.Run) {
			r.Params = map[string]any{"x": strings.Repeat("v", modellab.MaxParamValueLen+1)}
		}, "params.x"},
		{"empty param name", func(r *modellab.Run) { r.Params = map[string]any{"": 1.0} }, "params"},
		{"too many params", func(r *modellab.Run) { r.Params = many }, "params"},
	}
	for _, tc := range cases {
		r := ok
		tc.edit(&r)
		err := r.Valid()
		if modellab.ErrorCode(err) != modellab.EINVALID || modellab.ErrorField(err) != tc.field {
			t.Errorf("%s: %v (field %q), want invalid_argument about %s", tc.name, err, modellab.ErrorField(err), tc.field)
		}
	}
}

func TestRunPatch(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	r := modellab.Run{Name: "r", OwnerID: "usr_x", Status: modellab.RunRunning}
	finish := modellab.RunPatch{Status: modellab.Some(modellab.RunFinished)}
	got := finish.Apply(r, now)
	if got.Status != modellab.RunFinished || got.EndedAt == nil || !got.EndedAt.Equal(now) {
		t.Fatalf("finish: %+v", got)
	}
	// From one end to another keeps the first end.
	fail := modellab.RunPatch{Status: modellab.Some(modellab.RunFailed)}
	if again := fail.Apply(got, now.Add(time.Hour)); !again.EndedAt.Equal(now) {
		t.Errorf("finished then failed: ended_at %v, want %v", again.EndedAt, now)
	}
	resume := modellab.RunPatch{Status: modellab.Some(modellab.RunRunning)}
	if back := resume.Apply(got, now); back.EndedAt != nil {
		t.Errorf("resumed run keeps ended_at %v", back.EndedAt)
	}
	rename := modellab.RunPatch{Name: modellab.Some("new")}
	if n := rename.Apply(r, now); n.Name != "new" || n.EndedAt != nil || n.Status != modellab.RunRunning {
		t.Errorf("rename: %+v", n)
	}
	for _, p := range []modellab.RunPatch{
		{Status: modellab.Optional[string]{Set: true, Null: true}},
		{Name: modellab.Optional[string]{Set: true, Null: true}},
		{Status: modellab.Some("paused")},
	} {
		if err := p.Valid(); modellab.ErrorCode(err) != modellab.EINVALID {
			t.Errorf("patch %+v: %v, want invalid_argument", p, err)
		}
	}
}

func TestMetricPointValid(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ok := modellab.MetricPoint{Key: "train/loss_0.5-x", Step: 0, Value: -1.5, Timestamp: now}
	if err := ok.Valid(now); err != nil {
		t.Fatalf("valid point: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(p *modellab.MetricPoint)
		field string
	}{
		{"empty key", func(p *modellab.MetricPoint) { p.Key = "" }, "key"},
		{"space in key", func(p *modellab.MetricPoint) { p.Key = "a b" }, "key"},
		{"unicode key", func(p *modellab.MetricPoint) { p.Key = "lösung" }, "key"},
		{"long key", func(p *modellab.MetricPoint) { p.Key = strings.Repeat("k", 101) }, "key"},
		{"negative step", func(p *modellab.MetricPoint) { p.Step = -1 }, "step"},
		{"huge step", func(p *modellab.MetricPoint) { p.Step = modellab.MaxStep + 1 }, "step"},
		{"NaN", func(p *modellab.MetricPoint) { p.Value = math.NaN() }, "value"},
		{"+Inf", func(p *modellab.MetricPoint) { p.Value = math.Inf(1) }, "value"},
		{"-Inf", func(p *modellab.MetricPoint) { p.Value = math.Inf(-1) }, "value"},
		{"future", func(p *modellab.MetricPoint) { p.Timestamp = now.Add(48 * time.Hour) }, "timestamp"},
		{"before 1970", func(p *modellab.MetricPoint) { p.Timestamp = time.Unix(-1, 0) }, "timestamp"},
	}
	for _, tc := range cases {
		p := ok
		tc.edit(&p)
		err := p.Valid(now)
		if modellab.ErrorCode(err) != modellab.EINVALID || modellab.ErrorField(err) != tc.field {
			t.Errorf("%s: %v (field %q), want invalid_argument about %s", tc.name, err, modellab.ErrorField(err), tc.field)
		}
	}
	if len(strings.Repeat("k", 100)) != modellab.MaxMetricKeyLen || !modellab.ValidMetricKey(strings.Repeat("k", 100)) {
		t.Errorf("a key of %d characters is refused", modellab.MaxMetricKeyLen)
	}
}

func TestMetricQueryValid(t *testing.T) {
	ok := modellab.MetricQuery{Keys: []string{"loss"}, AfterStep: -1, MaxPoints: 2}
	if err := ok.Valid(); err != nil {
		t.Fatalf("valid query: %v", err)
	}
	for _, tc := range []struct {
		q     modellab.MetricQuery
		field string
	}{
		{modellab.MetricQuery{AfterStep: -1, MaxPoints: 1}, "max_points"},
		{modellab.MetricQuery{AfterStep: -1, MaxPoints: 5001}, "max_points"},
		{modellab.MetricQuery{AfterStep: -2, MaxPoints: 10}, "after_step"},
		{modellab.MetricQuery{Keys: []string{"a b"}, AfterStep: -1, MaxPoints: 10}, "keys"},
		{modellab.MetricQuery{Keys: make([]string, modellab.MaxMetricKeysPerQuery+1), AfterStep: -1, MaxPoints: 10}, "keys"},
	} {
		if err := tc.q.Valid(); modellab.ErrorField(err) != tc.field {
			t.Errorf("%+v: %v, want an error about %s", tc.q, err, tc.field)
		}
	}
}

// TestUnixMicroJSON: a point's time reads and writes as time.Time does.
func TestUnixMicroJSON(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	s := modellab.MetricSample{Step: 3, Value: 1.5, Timestamp: modellab.Micros(at)}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(struct {
		Step      int64     `json:"step"`
		Value     float64   `json:"value"`
		Timestamp time.Time `json:"timestamp"`
	}{3, 1.5, at})
	if string(b) != string(want) {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var back modellab.MetricSample
	if err := json.Unmarshal(b, &back); err != nil || back != s || !back.Timestamp.Time().Equal(at) {
		t.Errorf("round trip: %+v, %v; want %+v", back, err, s)
	}
	if err := json.Unmarshal([]byte(`{"timestamp": "yesterday"}`), &back); err == nil {
		t.Errorf("a time that is not RFC 3339 was accepted")
	}
}
