package loadtest

import (
	"bytes"
	"testing"
)

func TestWriteReferenceGolden(t *testing.T) {
	after := Report{Targets: []TargetReport{
		{Name: "home", Requests: 300000, RPS: 10000, AvgMS: 19.5, P95MS: 38, Failures: 0},
		{Name: "models", Requests: 90, RPS: 3, AvgMS: 5000, P95MS: 9000, Failures: 12},
		{Name: "api-models", RPS: 20000},
	}}
	var buf bytes.Buffer
	if err := WriteReference(&buf, after, OriginalAfter); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "reference.golden", buf.Bytes())
}

// The published figures: the six pages in the load test's order, each with
// the ranges the write-up gives (nothing more precise is published).
func TestOriginalFigures(t *testing.T) {
	order := []string{"home", "models", "monitor", "docs", "academy", "chat"}
	if len(OriginalAfter) != len(order) {
		t.Fatalf("%d rows, want %d", len(OriginalAfter), len(order))
	}
	for i, r := range OriginalAfter {
		if r.Target != order[i] || r.Failures != 0 || r.RPS != [2]float64{76, 88} || r.P95MS != [2]float64{3800, 8800} {
			t.Errorf("row %d = %+v, want %s with 0 failures, 76–88 req/s, P95 3800–8800 ms", i, r, order[i])
		}
		if _, ok := NamedTarget(r.Target); !ok {
			t.Errorf("%s is not a target", r.Target)
		}
	}
}

func TestFmtFactor(t *testing.T) {
	for _, tc := range []struct {
		ours, theirs float64
		want         string
	}{{10000, 88, "114x"}, {176, 88, "2.00x"}, {38, 3800, "0.0100x"}, {1, 0, "n/a"}} {
		if got := fmtFactor(tc.ours, tc.theirs); got != tc.want {
			t.Errorf("fmtFactor(%v, %v) = %q, want %q", tc.ours, tc.theirs, got, tc.want)
		}
	}
}
