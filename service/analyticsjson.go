package service

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/modellab/modellab"
)

// The analytics answer is encoded by hand: an uncached answer for a heavy
// user holds some 250 models, and encoding/json's reflection over them was
// an eighth of the server's time per answer. The output is byte for byte
// what json.Marshal gives (FuzzAnalyticsJSON compares the two): strings
// that need any escaping, and values json.Marshal refuses, go through
// json.Marshal itself.

// encodeAnalytics is res as JSON.
func encodeAnalytics(res modellab.AnalyticsResult) ([]byte, error) {
	if !plainAnalytics(res) {
		return encode(res)
	}
	// Written in a pooled buffer, then copied once at its size: an estimate
	// of the size would either grow the buffer or waste some of it.
	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	b := append((*bp)[:0], `{"from":`...)
	b = appendTime(b, res.From)
	b = append(b, `,"to":`...)
	b = appendTime(b, res.To)
	b = append(b, `,"interval":`...)
	b = appendString(b, res.Interval)
	t := res.Totals
	b = appendInt(b, `,"totals":{"requests":`, t.Requests)
	b = appendInt(b, `,"errors":`, t.Errors)
	b = appendInt(b, `,"input_tokens":`, t.InputTokens)
	b = appendInt(b, `,"output_tokens":`, t.OutputTokens)
	b = appendNumber(b, `,"cost_usd":`, t.CostUSD)
	b = appendNumber(b, `,"avg_latency_ms":`, t.AvgLatencyMS)
	b = appendNumber(b, `,"p95_latency_ms":`, t.P95LatencyMS)
	b = append(b, `},"by_model":`...)
	b = appendList(b, res.ByModel, appendModelUsage)
	b = append(b, `,"series":`...)
	b = appendList(b, res.Series, appendSeriesPoint)
	*bp = append(b, '}')
	return bytes.Clone(*bp), nil
}

// plainAnalytics reports whether res holds only what encodeAnalytics
// writes as json.Marshal would: finite numbers, times json.Marshal
// accepts.
func plainAnalytics(res modellab.AnalyticsResult) bool {
	ok := func(fs ...float64) bool {
		for _, f := range fs {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return false
			}
		}
		return true
	}
	t := res.Totals
	if !plainTime(res.From) || !plainTime(res.To) || !ok(t.CostUSD, t.AvgLatencyMS, t.P95LatencyMS) {
		return false
	}
	for _, m := range res.ByModel {
		if !ok(m.CostUSD, m.AvgLatencyMS) {
			return false
		}
	}
	for _, p := range res.Series {
		if !plainTime(p.T) || !ok(p.AvgLatencyMS) {
			return false
		}
	}
	return true
}

// plainTime: time.Time.MarshalJSON refuses years outside [0, 9999].
func plainTime(t time.Time) bool { return t.Year() >= 0 && t.Year() <= 9999 }

func appendList[T any](b []byte, items []T, item func([]byte, *T) []byte) []byte {
	if items == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = item(b, &items[i])
	}
	return append(b, ']')
}

func appendModelUsage(b []byte, m *modellab.ModelUsage) []byte {
	b = append(b, `{"model_id":`...)
	b = appendString(b, m.ModelID)
	b = append(b, `,"model_name":`...)
	b = appendString(b, m.ModelName)
	b = appendInt(b, `,"requests":`, m.Requests)
	b = appendInt(b, `,"errors":`, m.Errors)
	b = appendInt(b, `,"input_tokens":`, m.InputTokens)
	b = appendInt(b, `,"output_tokens":`, m.OutputTokens)
	b = appendNumber(b, `,"cost_usd":`, m.CostUSD)
	b = appendNumber(b, `,"avg_latency_ms":`, m.AvgLatencyMS)
	return append(b, '}')
}

func appendSeriesPoint(b []byte, p *modellab.SeriesPoint) []byte {
	b = append(b, `{"t":`...)
	b = appendTime(b, p.T)
	b = appendInt(b, `,"requests":`, p.Requests)
	b = appendInt(b, `,"errors":`, p.Errors)
	b = appendInt(b, `,"tokens":`, p.Tokens)
	b = appendNumber(b, `,"avg_latency_ms":`, p.AvgLatencyMS)
	return append(b, '}')
}

// appendInt writes key (the punctuation and name before a value) and v.
func appendInt(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(append(b, key...), v, 10)
}

// appendNumber writes key and f.
func appendNumber(b []byte, key string, f float64) []byte {
	return appendFloat(append(b, key...), f)
}

// appendTime is time.Time.MarshalJSON, for a time plainTime accepts.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat writes f as encoding/json does: shortest representation,
// exponent form outside [1e-6, 1e21), "e-07" shortened to "e-7".
func appendFloat(b []byte, f float64) []byte {
	if out, ok := appendDecimal(b, f); ok {
		return out
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendDecimal writes f if it is the double nearest to a decimal of at
// most 9 places and 15 significant digits, such as every cost in USD (an
// integer of nanodollars over 1e9): that decimal is then f's shortest
// representation, because any other of as many digits is more than an
// ulp of f away from it, and it is written from integers, about five
// times faster than the shortest-digits search. Others are left to
// strconv (false).
func appendDecimal(b []byte, f float64) ([]byte, bool) {
	const scale = 1e9
	a := math.Abs(f)
	if !(a >= 1e-6 && a < 1e6) {
		return b, false
	}
	m := math.Round(a * scale)
	if m >= 1e15 || m/scale != a {
		return b, false
	}
	n := uint64(m)
	if f < 0 {
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, n/scale, 10)
	frac := n % scale
	if frac == 0 {
		return b, true
	}
	var digits [9]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := len(digits)
	for digits[end-1] == '0' {
		end--
	}
	b = append(b, '.')
	return append(b, digits[:end]...), true
}

// appendString quotes s as encoding/json does. Printable ASCII that JSON
// and json.Marshal's HTML escaping leave alone is copied; any other
// string is left to json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
