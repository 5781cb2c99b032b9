package service

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

// heavyResult is an answer of the seed's heaviest user's size: 250 models,
// a week by day.
func heavyResult() modellab.AnalyticsResult {
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	res := modellab.AnalyticsResult{From: day, To: day.Add(7 * 24 * time.Hour), Interval: modellab.IntervalDay,
		Totals: modellab.AnalyticsTotals{Requests: 17512, Errors: 459, InputTokens: 11839835, OutputTokens: 4220491,
			CostUSD: 27.86734055, AvgLatencyMS: 1133.50533348561, P95LatencyMS: 2630.31}}
	for i := range 250 {
		res.ByModel = append(res.ByModel, modellab.ModelUsage{ModelID: fmt.Sprintf("mdl_%020d", i), ModelName: fmt.Sprintf("model-%d-instruct", i),
			Requests: int64(2888 - i), Errors: int64(i % 89), InputTokens: int64(1919026 - i*7), OutputTokens: int64(675381 + i),
			CostUSD: 1.9725845 / float64(i+1), AvgLatencyMS: 1604.9412396121884 / float64(i+1)})
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
