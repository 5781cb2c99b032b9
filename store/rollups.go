package store

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/modellab/modellab"
)

// Rollups of events, maintained in the transaction of each ingest: per
// user, model and hour (usage_hourly) or UTC day (usage_daily), the sums of
// every analytics figure, and per user, model and hour or day a latency
// histogram with log-spaced buckets (latency_hourly, latency_daily) for the
// 95th percentile. Model "" holds the sum over all models. An analytics
// read takes whole days from the daily tables, the whole hours around them
// from the hourly ones and the partial hours at the edges from events, so
// its cost follows the days and hours in range, not the events. Sums are
// exact, so the answer is the one raw events give; the percentile is
// within the histogram's relative error (latencyAlpha) — or exact, from
// the events themselves, when the range holds few of them.

// latencyGamma is the ratio between bucket bounds: bucket k holds
// latencies in (gamma^(k-1), gamma^k] microseconds, and its value is
// reported as 2·gamma^k/(gamma+1), within latencyAlpha of any latency in it.
const (
	latencyGamma = 1.02
	// latencyAlpha = (gamma-1)/(gamma+1), about 0.99%.
	latencyAlpha = (latencyGamma - 1) / (latencyGamma + 1)
	// zeroBucket holds latencies of 0 µs.
	zeroBucket = -1
	hourMS     = int64(3_600_000)
	dayMS      = 24 * hourMS
	// allModels is the model of the rows that sum every model.
	allModels = ""
)

var lnGamma = math.Log(latencyGamma)

// latencyBucket is the histogram bucket of a latency in µs. The migration
// that backfills rollups computes the same with SQL's ln().
func latencyBucket(us int64) int64 {
	if us <= 0 {
		return zeroBucket
	}
	return int64(math.Ceil(math.Log(float64(us)) / lnGamma))
}

// bucketValueUS is the latency a bucket stands for.
func bucketValueUS(k int64) float64 {
	if k == zeroBucket {
		return 0
	}
	return 2 * math.Pow(latencyGamma, float64(k)) / (latencyGamma + 1)
}

// rollupKey is one row of usage_hourly or usage_daily (by width).
type rollupKey struct {
	user, model string
	period      int64
}

type rollupSums struct {
	requests, errors, input, output, costNanos, latencyUS int64
}

// latencyKey is one row of latency_hourly or latency_daily.
type latencyKey struct {
	rollupKey
	bucket int64
}

// rollupLevel is the rows one table width (hour or day) gets.
type rollupLevel struct {
	width   int64
	sums    map[rollupKey]*rollupSums
	latency map[latencyKey]int64
}

// rollups aggregates events into the rollup rows they add to.
type rollups struct{ hourly, daily rollupLevel }

func newRollups() *rollups {
	lvl := func(w int64) rollupLevel {
		return rollupLevel{width: w, sums: map[rollupKey]*rollupSums{}, latency: map[latencyKey]int64{}}
	}
	return &rollups{hourly: lvl(hourMS), daily: lvl(dayMS)}
}

// addRow counts one event, as eventRow makes its row, under its model and
// under allModels, at both widths.
func (r *rollups) addRow(row []any) {
	user, ts, model := row[0].(string), row[1].(int64), row[2].(string)
	in, out, lat, status, cost := row[3].(int64), row[4].(int64), row[5].(int64), row[6].(string), row[7].(int64)
	bucket := latencyBucket(lat)
	for _, l := range []*rollupLevel{&r.hourly, &r.daily} {
		for _, m := range []string{model, allModels} {
			k := rollupKey{user: user, model: m, period: floorDiv(ts, l.width) * l.width}
			s := l.sums[k]
			if s == nil {
				s = &rollupSums{}
				l.sums[k] = s
			}
			s.requests++
			if status == modellab.EventError {
				s.errors++
			}
			s.input += in
			s.output += out
			s.costNanos += cost
			s.latencyUS += lat
			l.latency[latencyKey{k, bucket}]++
		}
	}
}

var (
	sumCols     = []string{"user_id", "model_id", "period", "requests", "errors", "input_tokens", "output_tokens", "cost_nanos", "latency_us"}
	latencyCols = []string{"user_id", "model_id", "period", "bucket", "n"}
)

func compareKeys(a, b rollupKey) int {
	return cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.model, b.model), cmp.Compare(a.period, b.period))
}

// sumRows returns a level's sum rows in key order: concurrent ingests lock
// rows in the same order and cannot deadlock.
func (l *rollupLevel) sumRows() [][]any {
	keys := slices.SortedFunc(maps.Keys(l.sums), compareKeys)
	rows := make([][]any, len(keys))
	for i, k := range keys {
		s := l.sums[k]
		rows[i] = []any{k.user, k.model, k.period, s.requests, s.errors, s.input, s.output, s.costNanos, s.latencyUS}
	}
	return rows
}

// latencyRows returns a level's histogram rows in key order.
func (l *rollupLevel) latencyRows() [][]any {
	keys := slices.SortedFunc(maps.Keys(l.latency), func(a, b latencyKey) int {
		return cmp.Or(compareKeys(a.rollupKey, b.rollupKey), cmp.Compare(a.bucket, b.bucket))
	})
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = []any{k.user, k.model, k.period, k.bucket, l.latency[k]}
	}
	return rows
}

// rollupTables are the tables of both levels, with their rows.
func (r *rollups) tables() []struct {
	name string
	cols []string
	keys int
	rows [][]any
} {
	type t = struct {
		name string
		cols []string
		keys int
		rows [][]any
	}
	return []t{
		{"usage_hourly", sumCols, 3, r.hourly.sumRows()},
		{"usage_daily", sumCols, 3, r.daily.sumRows()},
		{"latency_hourly", latencyCols, 4, r.hourly.latencyRows()},
		{"latency_daily", latencyCols, 4, r.daily.latencyRows()},
	}
}

// upsertRollups adds r to the stored rollups in t: rows that exist grow by
// the new sums, the others are inserted.
func upsertRollups(t *tx, r *rollups) error {
	for _, tb := range r.tables() {
		if err := upsertAdd(t, tb.name, tb.cols, tb.keys, tb.rows); err != nil {
			return err
		}
	}
	return nil
}

// rollupBatch rows per statement keeps SQLite under its parameter limit.
const rollupBatch = 500

// upsertAdd inserts rows whose first keyCols columns are the primary key,
// adding the other columns to an existing row's.
func upsertAdd(t *tx, table string, cols []string, keyCols int, rows [][]any) error {
	set := make([]string, 0, len(cols)-keyCols)
	for _, c := range cols[keyCols:] {
		set = append(set, c+" = "+table+"."+c+" + excluded."+c)
	}
	conflict := " ON CONFLICT (" + strings.Join(cols[:keyCols], ", ") + ") DO UPDATE SET " + strings.Join(set, ", ")
	for start := 0; start < len(rows); start += rollupBatch {
		end := min(start+rollupBatch, len(rows))
		args := make([]any, 0, (end-start)*len(cols))
		for _, row := range rows[start:end] {
			args = append(args, row...)
		}
		if err := t.exec(insertValues(table, cols, end-start)+conflict, args...); err != nil {
			return err
		}
	}
	return nil
}
