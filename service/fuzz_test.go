package service

import (
	"encoding/json"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

var fuzzNow = time.Date(2026, 3, 15, 10, 30, 0, 0, time.UTC)

// equivalent reports whether two parsed queries select the same events
// with the same buckets.
func equivalent(a, b modellab.AnalyticsQuery) bool {
	return a.From.Equal(b.From) && a.To.Equal(b.To) && a.Interval == b.Interval && a.ModelID == b.ModelID
}

func parseRaw(raw string) (modellab.AnalyticsQuery, bool, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return modellab.AnalyticsQuery{}, false, nil
	}
	q, err := ParseAnalyticsQuery(v, fuzzNow)
	return q, err == nil, err
}

// FuzzAnalyticsQuery checks ParseAnalyticsQuery and the canonical cache
// key on two arbitrary query strings: parsing never panics and rejects only
// with invalid_argument; an accepted query is valid, UTC, millisecond
// precise; its canonical spelling parses back to the same key; and two
// accepted queries share a key if and only if they are equivalent — no two
// different parameter sets ever share a cache entry — and never across users.
func FuzzAnalyticsQuery(f *testing.F) {
	for _, s := range [][2]string{
		{"", "interval=day"},
		{"from=2026-01-01&to=2026-01-08", "from=2026-01-01T00:00:00Z&to=2026-01-08T00:00:00.000Z"},
		{"from=2026-01-01T01:00:00%2B01:00&to=2026-01-02", "from=2026-01-01&to=2026-01-02"},
		{"interval=hour&model_id=mdl_abc", "interval=hour&model_id=mdl_abd"},
		{"from=2026-01-01T00:00:00.0001Z&to=2026-01-02", "from=2026-01-01T00:00:00Z&to=2026-01-02"},
		{"from=2026-01-01&from=2026-01-02", "to=1969-12-31"},
		{"interval=week", "from=2026-01-02&to=2026-01-01"},
		{"model_id=%7C%3D", "to=2026-03-16&interval=day"},
		{"from=2025-01-01&to=2026-01-02", "x=1&interval=day"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		qa, okA, errA := parseRaw(a)
		qb, okB, errB := parseRaw(b)
		for _, e := range []error{errA, errB} {
			if e != nil && modellab.ErrorCode(e) != modellab.EINVALID {
				t.Fatalf("parse error %v is not invalid_argument", e)
			}
		}
		for _, c := range []struct {
			raw string
			q   modellab.AnalyticsQuery
			ok  bool
		}{{a, qa, okA}, {b, qb, okB}} {
			if !c.ok {
				continue
			}
			if err := c.q.Valid(); err != nil {
				t.Fatalf("%q accepted but invalid: %v", c.raw, err)
			}
			if c.q.From.Location() != time.UTC || c.q.To.Location() != time.UTC ||
				!c.q.From.Equal(c.q.From.Truncate(time.Millisecond)) || !c.q.To.Equal(c.q.To.Truncate(time.Millisecond)) {
				t.Fatalf("%q: bounds not UTC milliseconds: %v %v", c.raw, c.q.From, c.q.To)
			}
			// The canonical spelling is an equivalent spelling: same key.
			canon := url.Values{"from": {c.q.From.Format(time.RFC3339Nano)}, "to": {c.q.To.Format(time.RFC3339Nano)}, "interval": {c.q.Interval}}
			if c.q.ModelID != "" {
				canon.Set("model_id", c.q.ModelID)
			}
			q2, err := ParseAnalyticsQuery(canon, fuzzNow)
			if err != nil {
				t.Fatalf("%q: canonical spelling %q rejected: %v", c.raw, canon.Encode(), err)
			}
			if keyAnalytics("usr_a", q2) != keyAnalytics("usr_a", c.q) {
				t.Fatalf("%q and its canonical spelling %q have different keys", c.raw, canon.Encode())
			}
			if keyAnalytics("usr_a", c.q) == keyAnalytics("usr_b", c.q) {
				t.Fatalf("%q: two users share a key", c.raw)
			}
		}
		if okA && okB {
			same := keyAnalytics("usr_a", qa) == keyAnalytics("usr_a", qb)
			if same != equivalent(qa, qb) {
				t.Fatalf("%q (%+v) and %q (%+v): same key %v, equivalent %v", a, qa, b, qb, same, equivalent(qa, qb))
			}
		}
	})
}

// FuzzAnalyticsJSON checks that the hand-written analytics encoder writes
// what json.Marshal does, for arbitrary strings (escapes, HTML, invalid
// UTF-8), floats (exponents, NaN, infinities), times and nil lists.
func FuzzAnalyticsJSON(f *testing.F) {
	f.Add("day", "mdl_a", "gpt <b>&\"x\"\\\n\u2028", int64(5), 27.86734055, 1133.50533348561, 1e-7, int64(1764892800123), uint8(3))
	f.Add("hour", "", "\xff\xfe", int64(-1), 1e21, 5e-324, math.NaN(), int64(-62135596800000), uint8(0))
	f.Add("\t", "é", "\xff\xfe", int64(-1), 1e21, 5e-324, 0.0, int64(-62135596800000), uint8(1))
	f.Add("e&f", "c>d", "a<b", int64(2), 0.5, 1e20, 1e-6, int64(0), uint8(1))
	f.Add("week", "mdl_b", "plain", int64(math.MaxInt64), 123456789012345678.0, -0.0, math.Inf(1), int64(253402300800000), uint8(7))
	f.Fuzz(func(t *testing.T, interval, id, name string, n int64, f1, f2, f3 float64, ms int64, shape uint8) {
		at := time.UnixMilli(ms).In(time.FixedZone("x", int(n%50000)))
		res := modellab.AnalyticsResult{From: at, To: at.Add(time.Hour).UTC(), Interval: interval,
			Totals: modellab.AnalyticsTotals{Requests: n, Errors: -n, InputTokens: n / 3, OutputTokens: n % 7,
				CostUSD: f1, AvgLatencyMS: f2, P95LatencyMS: f3}}
		if shape&1 != 0 {
			res.ByModel = []modellab.ModelUsage{}
			for i := range int(shape % 4) {
				res.ByModel = append(res.ByModel, modellab.ModelUsage{ModelID: id, ModelName: name, Requests: n + int64(i),
					Errors: int64(i), InputTokens: n, OutputTokens: -n, CostUSD: f2 * float64(i), AvgLatencyMS: f1 / float64(i+1)})
			}
		}
		if shape&2 != 0 {
			res.Series = []modellab.SeriesPoint{{T: at, Requests: n, Errors: 1, Tokens: 2, AvgLatencyMS: f3}, {T: res.To, AvgLatencyMS: f1}}
		}
		want, wantErr := json.Marshal(res)
		got, err := encodeAnalytics(res)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("error %v, json.Marshal's %v", err, wantErr)
		}
		if string(got) != string(want) {
			t.Fatalf("encodeAnalytics:\n%s\njson.Marshal:\n%s", got, want)
		}
	})
}
