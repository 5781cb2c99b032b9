package service

import (
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/modellab/modellab"
)

func TestParseMetricQuery(t *testing.T) {
	parse := func(raw string) (modellab.MetricQuery, error) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		return ParseMetricQuery(v)
	}
	// Equivalent spellings share one key.
	same := []string{"keys=lr,loss", "keys=loss,lr", "keys=loss,lr,loss", "keys= loss , lr ,", "keys=loss,lr&max_points=1000", "keys=loss,lr&after_step="}
	var want string
	for _, raw := range same {
		q, err := parse(raw)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		key := keyRunMetrics("usr_a", "run_1", q)
		if want == "" {
			want = key
		}
		if key != want {
			t.Errorf("%q: key %s, want %s like %q", raw, key, want, same[0])
		}
		if !strings.HasPrefix(key, "api:runs:run_1:metrics:") {
			t.Errorf("key %q", key)
		}
	}
	// Different reads, or another reader, do not.
	q, _ := parse(same[0])
	seen := map[string]string{want: same[0]}
	for _, raw := range []string{"", "keys=loss", "keys=loss,lr&after_step=0", "keys=loss,lr&max_points=999"} {
		q2, err := parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		k := keyRunMetrics("usr_a", "run_1", q2)
		if prev, ok := seen[k]; ok {
			t.Errorf("%q and %q share key %s", raw, prev, k)
		}
		seen[k] = raw
	}
	if keyRunMetrics("usr_b", "run_1", q) == want {
		t.Errorf("two readers share a history key")
	}
	if q, _ := parse(""); q.AfterStep != -1 || q.MaxPoints != modellab.DefaultMaxPoints || q.Keys != nil {
		t.Errorf("defaults: %+v", q)
	}
	for _, raw := range []string{"after_step=-1", "after_step=1.5", "max_points=1", "max_points=5001", "max_points=ten", "keys=a%3Bb", "keys=x&keys=y"} {
		if _, err := parse(raw); modellab.ErrorCode(err) != modellab.EINVALID || modellab.ErrorField(err) == "" {
			t.Errorf("%q: %v, want invalid_argument naming the parameter", raw, err)
		}
	}
}

func TestMetricInputDecoding(t *testing.T) {
	for _, tc := range []struct {
		json      string
		step      int64
		stepSet   bool
		value     float64
		valueSet  bool
		nonFinite bool
	}{
		{`{"key":"k","step":10,"value":2.5}`, 10, true, 2.5, true, false},
		{`{"key":"k","step":1e3,"value":-0}`, 1000, true, 0, true, false},
		{`{"key":"k","step":10.0,"value":1e-300}`, 10, true, 1e-300, true, false},
		{`{"key":"k","step":1.5,"value":1}`, 0, false, 1, true, false},
		{`{"key":"k","step":"10","value":1}`, 0, false, 1, true, false},
		{`{"key":"k","value":1}`, 0, false, 1, true, false},
		{`{"key":"k","step":1,"value":"NaN"}`, 1, true, math.NaN(), true, true},
		{`{"key":"k","step":1,"value":"-Infinity"}`, 1, true, math.Inf(-1), true, true},
		{`{"key":"k","step":1,"value":1e999}`, 1, true, math.Inf(1), true, true},
		{`{"key":"k","step":1,"value":"2.5"}`, 1, true, 0, false, false},
		{`{"key":"k","step":1,"value":null}`, 1, true, 0, false, false},
		{`{"key":"k","step":1}`, 1, true, 0, false, false},
	} {
		var in MetricInput
		if err := json.Unmarshal([]byte(tc.json), &in); err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		if in.Step.Set != tc.stepSet || tc.stepSet && in.Step.V != tc.step {
			t.Errorf("%s: step %+v, want %d set=%v", tc.json, in.Step, tc.step, tc.stepSet)
		}
		if in.Value.Set != tc.valueSet {
			t.Errorf("%s: value set=%v, want %v", tc.json, in.Value.Set, tc.valueSet)
		}
		finite := !math.IsNaN(in.Value.V) && !math.IsInf(in.Value.V, 0)
		if tc.valueSet && (finite == tc.nonFinite || finite && in.Value.V != tc.value) {
			t.Errorf("%s: value %v, want %v", tc.json, in.Value.V, tc.value)
		}
	}
}

func samples(steps ...int64) []modellab.MetricSample {
	out := make([]modellab.MetricSample, len(steps))
	for i, s := range steps {
		out[i] = modellab.MetricSample{Step: s, Value: float64(s)}
	}
	return out
}

func TestExtend(t *testing.T) {
	old := []modellab.MetricSeries{{Key: "a", Points: samples(1, 2, 5)}, {Key: "c", Points: samples(1)}}
	newer := []modellab.MetricSeries{{Key: "a", Points: samples(5, 6)}, {Key: "b", Points: samples(5)}}
	got := extend(old, newer, 5)
	want := "a:1,2,5,6 b:5 c:1"
	var b strings.Builder
	for i, s := range got {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.Key + ":")
		for j, p := range s.Points {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(p.Step, 10))
		}
	}
	if b.String() != want {
		t.Errorf("extend = %s, want %s", b.String(), want)
	}
	if len(old[0].Points) != 3 || old[0].Points[2].Step != 5 {
		t.Errorf("extend changed the old tail: %v", old[0].Points)
	}
}

func TestTailCacheBound(t *testing.T) {
	c := newTailCache()
	big := func(n int) *tail { return &tail{series: []modellab.MetricSeries{{Key: "k"}}, points: n} }
	c.put("r1", nil, big(maxTailPoints/4))
	c.put("r2", []string{"loss"}, big(maxTailPoints/4))
	if c.get("r1", nil) == nil || c.get("r2", []string{"loss"}) == nil || c.get("r2", nil) != nil {
		t.Fatalf("get after put")
	}
	c.put("r3", nil, big(maxTailPoints/4+1)) // too big to keep
	if c.get("r3", nil) != nil || c.points != maxTailPoints/2 {
		t.Errorf("an oversized tail was kept (%d points held)", c.points)
	}
	c.put("r4", nil, big(maxTailPoints/4))
	c.put("r5", nil, big(maxTailPoints/4))
	c.put("r6", nil, big(maxTailPoints/4)) // over the bound: the others go
	if c.get("r1", nil) != nil || c.get("r6", nil) == nil || c.points != maxTailPoints/4 {
		t.Errorf("past the bound: r1 %v, r6 %v, %d points", c.get("r1", nil) != nil, c.get("r6", nil) != nil, c.points)
	}
	c.drop("r6")
	if c.get("r6", nil) != nil || c.points != 0 {
		t.Errorf("after drop: %d points", c.points)
	}
}
