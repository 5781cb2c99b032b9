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
	if err := WriteReference(&buf, after, DesignNoteAfter); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "reference.golden", buf.Bytes())
}

// The design note's figures, exactly as its table gives them.
func TestDesignNoteFigures(t *testing.T) {
	want := map[string][4]float64{ // failures, req/s, avg ms, p95 ms
		"home": {0, 88, 2150, 3800}, "models": {0, 80, 2400, 5200}, "monitor": {0, 78, 2500, 6100},
		"docs": {0, 86, 2250, 4300}, "academy": {0, 82, 2350, 5600}, "chat": {0, 76, 2600, 8800},
	}
	order := []string{"home", "models", "monitor", "docs", "academy", "chat"}
	if len(DesignNoteAfter) != len(order) {
		t.Fatalf("%d rows, want %d", len(DesignNoteAfter), len(order))
	}
	for i, r := range DesignNoteAfter {
		w := want[r.Target]
		if r.Target != order[i] || float64(r.Failures) != w[0] || r.RPS != w[1] || r.AvgMS != w[2] || r.P95MS != w[3] {
			t.Errorf("row %d = %+v, want %s %v", i, r, order[i], w)
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
