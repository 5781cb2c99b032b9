package service

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

// heavyResult is an answer of the seed's heaviest user's size: 250 models,
// a week by day, costs whole nanodollars as the store makes them.
func heavyResult() modellab.AnalyticsResult {
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	res := modellab.AnalyticsResult{From: day, To: day.Add(7 * 24 * time.Hour), Interval: modellab.IntervalDay,
		Totals: modellab.AnalyticsTotals{Requests: 17512, Errors: 459, InputTokens: 11839835, OutputTokens: 4220491,
			CostUSD: 27.86734055, AvgLatencyMS: 1133.50533348561, P95LatencyMS: 2630.31}}
	for i := range 250 {
		res.ByModel = append(res.ByModel, modellab.ModelUsage{ModelID: fmt.Sprintf("mdl_%020d", i), ModelName: fmt.Sprintf("model-%d-instruct", i),
			Requests: int64(2888 - i), Errors: int64(i % 89), InputTokens: int64(1919026 - i*7), OutputTokens: int64(675381 + i),
			CostUSD: float64(1972584500/(i+1)) / 1e9, AvgLatencyMS: 1604.9412396121884 / float64(i+1)})
	}
	for d := range 7 {
		res.Series = append(res.Series, modellab.SeriesPoint{T: day.Add(time.Duration(d) * 24 * time.Hour), Requests: 2500, Errors: 60,
			Tokens: 2300000, AvgLatencyMS: 1133.5 + float64(d)/3})
	}
	return res
}

// BenchmarkEncodeAnalytics compares the hand-written encoder with
// json.Marshal on the heavy user's answer, side by side.
func BenchmarkEncodeAnalytics(b *testing.B) {
	res := heavyResult()
	want, _ := json.Marshal(res)
	if got, _ := encodeAnalytics(res); string(got) != string(want) {
		b.Fatal("encodeAnalytics differs from json.Marshal")
	}
	b.Run("encodeAnalytics", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeAnalytics(res); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(res); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAppendDecimal: floats written from their decimal are what
// json.Marshal writes, for costs (nanodollars over 1e9), for decimals of
// fewer places, near the fast path's bounds and for floats it leaves to
// strconv.
func TestAppendDecimal(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	fs := []float64{1e-6, 0.999999999, 1e6, 999999.999999999, 1e6 - 1e-9, 0.1, 0.3, 2630.31, 30.98259665, 1133.5016262036468,
		123456.789012345, 0.000001234, 5e-7, 1e15, -0.0, 0}
	for range 20000 {
		nanos := r.Int64N(1 << r.IntN(50))
		fs = append(fs, float64(nanos)/1e9, -float64(nanos)/1e9, float64(r.Int64N(1_000_000))/1e3, r.Float64()*math.Pow(10, float64(r.IntN(12)-6)))
	}
	for _, f := range fs {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, f); string(got) != string(want) {
			t.Fatalf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}
