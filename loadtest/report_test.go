package loadtest

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestRecorderArithmetic(t *testing.T) {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	seq := func(n int) []time.Duration { // 1ms, 2ms, … n ms
		var d []time.Duration
		for i := 1; i <= n; i++ {
			d = append(d, ms(float64(i)))
		}
		return d
	}
	repeat := func(d time.Duration, n int) []time.Duration {
		var out []time.Duration
		for range n {
			out = append(out, d)
		}
		return out
	}
	tests := []struct {
		name                          string
		latencies                     []time.Duration
		elapsed                       time.Duration
		rps, avg, p50, p95, p99, maxv float64
	}{
		{"1..100 ms", seq(100), 2 * time.Second, 50, 50.5, 50, 95, 99, 100},
		{"1..1000 ms", seq(1000), 10 * time.Second, 100, 500.5, 500, 950, 990, 1000},
		{"constant 10ms", repeat(ms(10), 1000), time.Second, 1000, 10, 10, 10, 10, 10},
		{"sub-ms", repeat(250*time.Microsecond, 40), 4 * time.Second, 10, 0.25, 0.25, 0.25, 0.25, 0.25},
		{"one slow outlier", append(repeat(ms(2), 99), 3*time.Second), time.Second, 100, 31.98, 2, 2, 2, 3000},
		{"nothing", nil, time.Second, 0, 0, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Spread over two recorders and merge, as Run does.
			a, b := newRecorder(), newRecorder()
			for i, d := range tc.latencies {
				r := a
				if i%2 == 1 {
					r = b
				}
				r.record(d, 200, nil)
			}
			a.merge(b)
			got := a.report("x", tc.elapsed)
			if got.Requests != int64(len(tc.latencies)) {
				t.Fatalf("requests: got %d, want %d", got.Requests, len(tc.latencies))
			}
			// Percentiles come from a 3-significant-digit histogram: within 0.1%.
			checks := []struct {
				what      string
				got, want float64
			}{
				{"rps", got.RPS, tc.rps},
				{"avg", got.AvgMS, tc.avg},
				{"p50", got.P50MS, tc.p50},
				{"p95", got.P95MS, tc.p95},
				{"p99", got.P99MS, tc.p99},
				{"max", got.MaxMS, tc.maxv},
			}
			for _, c := range checks {
				if !near(c.got, c.want, c.want*0.001+0.001) {
					t.Fatalf("%s: got %v, want %v", c.what, c.got, c.want)
				}
			}
			if got.Failures != 0 {
				t.Fatalf("failures: got %d, want 0", got.Failures)
			}
		})
	}
}

func TestFailureClassification(t *testing.T) {
	type outcome struct {
		status int
		err    error
	}
	transport := errors.New("connection reset")
	tests := []struct {
		name         string
		outcomes     []outcome
		wantFailures int64
		wantCounts   map[string]int64
	}{
		{"2xx and 3xx succeed", []outcome{{200, nil}, {201, nil}, {204, nil}, {303, nil}, {304, nil}}, 0,
			map[string]int64{"200": 1, "201": 1, "204": 1, "303": 1, "304": 1}},
		{"4xx fail", []outcome{{400, nil}, {401, nil}, {404, nil}, {429, nil}, {200, nil}}, 4,
			map[string]int64{"400": 1, "401": 1, "404": 1, "429": 1, "200": 1}},
		{"5xx fail", []outcome{{500, nil}, {502, nil}, {503, nil}, {503, nil}}, 4,
			map[string]int64{"500": 1, "502": 1, "503": 2}},
		{"transport errors fail", []outcome{{0, transport}, {0, &dialError{transport}}, {200, nil}}, 2,
			map[string]int64{"200": 1, "error": 2}},
		{"malformed status counts as an error", []outcome{{42, nil}}, 1,
			map[string]int64{"error": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder()
			for _, o := range tc.outcomes {
				r.record(time.Millisecond, o.status, o.err)
			}
			got := r.report("x", time.Second)
			if got.Failures != tc.wantFailures {
				t.Fatalf("failures: got %d, want %d", got.Failures, tc.wantFailures)
			}
			if !reflect.DeepEqual(got.StatusCounts, tc.wantCounts) {
				t.Fatalf("status counts: got %v, want %v", got.StatusCounts, tc.wantCounts)
			}
			if got.Requests != int64(len(tc.outcomes)) {
				t.Fatalf("requests: got %d, want %d", got.Requests, len(tc.outcomes))
			}
			if l := r.liveFailures.Load(); l != tc.wantFailures {
				t.Fatalf("live failures: got %d, want %d", l, tc.wantFailures)
			}
		})
	}
}

func TestRecorderReset(t *testing.T) {
	r := newRecorder()
	r.record(5*time.Millisecond, 500, nil)
	r.reset()
	got := r.report("x", time.Second)
	want := TargetReport{Name: "x", StatusCounts: map[string]int64{}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after reset: got %+v, want %+v", got, want)
	}
}

func TestFormatStatusCounts(t *testing.T) {
	tests := []struct {
		in   map[string]int64
		want string
	}{
		{nil, "-"},
		{map[string]int64{"200": 5}, "200:5"},
		{map[string]int64{"error": 1, "503": 2, "200": 10, "1000": 1}, "200:10 503:2 1000:1 error:1"},
	}
	for _, tc := range tests {
		if got := FormatStatusCounts(tc.in); got != tc.want {
			t.Fatalf("FormatStatusCounts(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// goldenReports are fixed reports for the table golden files.
func goldenReports() (before, after Report) {
	before = Report{Targets: []TargetReport{
		{Name: "api-models", Requests: 2410, RPS: 80.33, AvgMS: 2480.5, P50MS: 2301.12, P95MS: 6011.3, P99MS: 8890.01, MaxMS: 9950, Failures: 312,
			StatusCounts: map[string]int64{"200": 2098, "500": 300, "error": 12}},
		{Name: "api-servers", Requests: 1200, RPS: 40, AvgMS: 4999.99, P50MS: 4800, P95MS: 9100.5, P99MS: 9800, MaxMS: 10000, Failures: 0,
			StatusCounts: map[string]int64{"200": 1200}},
		{Name: "home", Requests: 900, RPS: 30, AvgMS: 100, P50MS: 90, P95MS: 200, P99MS: 300, MaxMS: 400, Failures: 0,
			StatusCounts: map[string]int64{"303": 900}},
	}}
	after = Report{Targets: []TargetReport{
		{Name: "api-models", Requests: 601234, RPS: 20041.13, AvgMS: 9.96, P50MS: 8.5, P95MS: 21.03, P99MS: 35.4, MaxMS: 120.25, Failures: 0,
			StatusCounts: map[string]int64{"200": 601234}},
		{Name: "api-servers", Requests: 300000, RPS: 10000, AvgMS: 20, P50MS: 18, P95MS: 40, P99MS: 60, MaxMS: 99, Failures: 0,
			StatusCounts: map[string]int64{"200": 300000}},
		{Name: "/api/analytics/data?range=7d", Requests: 10, RPS: 0.33, AvgMS: 0.5, P50MS: 0.5, P95MS: 0.5, P99MS: 0.5, MaxMS: 0.5, Failures: 0,
			StatusCounts: map[string]int64{"200": 10}},
	}}
	return before, after
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestWriteTableGolden(t *testing.T) {
	before, after := goldenReports()
	var buf bytes.Buffer
	if err := before.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n")
	if err := after.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n")
	if err := (Report{}).WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "table.golden", buf.Bytes())
}

func TestWriteComparisonGolden(t *testing.T) {
	before, after := goldenReports()
	var buf bytes.Buffer
	if err := WriteComparison(&buf, before, after); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "comparison.golden", buf.Bytes())
}
