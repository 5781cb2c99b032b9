package modellab_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

func series(n int, f func(i int) float64) []modellab.MetricSample {
	s := make([]modellab.MetricSample, n)
	for i := range s {
		s[i] = modellab.MetricSample{Step: int64(i * 10), Value: f(i), Timestamp: modellab.Micros(time.Unix(int64(i), 0))}
	}
	return s
}

func TestLTTBShape(t *testing.T) {
	noisy := func(i int) float64 { return 2*math.Exp(-float64(i)/300) + 0.1*math.Sin(float64(i)*1.7) }
	for _, tc := range []struct{ len, n int }{
		{10, 3}, {1000, 2}, {1000, 3}, {1000, 100}, {1001, 1000}, {100_000, 1000}, {7, 6},
	} {
		s := series(tc.len, noisy)
		got := modellab.LTTB(s, tc.n)
		if len(got) != tc.n {
			t.Fatalf("LTTB(%d points, %d): %d points", tc.len, tc.n, len(got))
		}
		if got[0] != s[0] || got[len(got)-1] != s[len(s)-1] {
			t.Errorf("LTTB(%d, %d): first %v last %v, want %v and %v", tc.len, tc.n, got[0], got[len(got)-1], s[0], s[len(s)-1])
		}
		for i := 1; i < len(got); i++ {
			if got[i].Step <= got[i-1].Step {
				t.Fatalf("LTTB(%d, %d): step %d after %d at %d", tc.len, tc.n, got[i].Step, got[i-1].Step, i)
			}
		}
		for _, p := range got {
			if !slices.Contains(s, p) {
				t.Fatalf("LTTB(%d, %d) returned %v, not a point of the input", tc.len, tc.n, p)
			}
		}
	}
}

// TestLTTBOnePerBucket: the inner points come one from each bucket, so the
// picture keeps its spread along the steps.
func TestLTTBOnePerBucket(t *testing.T) {
	s := series(1002, func(i int) float64 { return float64(i % 7) })
	got := modellab.LTTB(s, 102) // 1000 inner points, 100 buckets of 10
	for b := 0; b < 100; b++ {
		p := got[b+1]
		idx := int(p.Step / 10)
		if idx < 1+b*10 || idx >= 1+(b+1)*10 {
			t.Errorf("point %d (index %d) is not in bucket %d [%d, %d)", b+1, idx, b, 1+b*10, 1+(b+1)*10)
		}
	}
}

// TestLTTBKeepsSpikes: a single spike, the feature a reader looks for,
// survives a hundredfold reduction.
func TestLTTBKeepsSpikes(t *testing.T) {
	s := series(10_000, func(i int) float64 {
		if i == 4321 {
			return 50
		}
		return 1
	})
	got := modellab.LTTB(s, 100)
	if !slices.ContainsFunc(got, func(p modellab.MetricSample) bool { return p.Value == 50 }) {
		t.Errorf("the spike at step 43210 was dropped")
	}
}

func TestLTTBSmallInputs(t *testing.T) {
	for _, tc := range []struct{ len, n int }{{0, 10}, {1, 10}, {2, 2}, {5, 5}, {5, 1000}, {5, 1}, {5, 0}} {
		s := series(tc.len, func(i int) float64 { return float64(i) })
		got := modellab.LTTB(s, tc.n)
		if !slices.Equal(got, s) {
			t.Errorf("LTTB(%d points, %d) = %v, want the input unchanged", tc.len, tc.n, got)
		}
	}
	s := series(5, func(i int) float64 { return float64(i) })
	if got := modellab.LTTB(s, 2); len(got) != 2 || got[0] != s[0] || got[1] != s[4] {
		t.Errorf("LTTB(5 points, 2) = %v, want the first and the last", got)
	}
}
