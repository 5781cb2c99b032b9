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

// rollupKey is one row of usage_hourly or usage_daily (by width). User
// and model are interned (rollups.names): the seed aggregates a million
// events into millions of keys, and keys without pointers hash faster and
// are not scanned by the collector.
type rollupKey struct {
	user, model int32
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
type rollups struct {
	hourly, daily rollupLevel
	ids           map[string]int32
	names         []string
}

func newRollups() *rollups {
	lvl := func(w int64) rollupLevel {
		return rollupLevel{width: w, sums: map[rollupKey]*rollupSums{}, latency: map[latencyKey]int64{}}
	}
	return &rollups{hourly: lvl(hourMS), daily: lvl(dayMS), ids: map[string]int32{}}
}

func (r *rollups) id(s string) int32 {
	if i, ok := r.ids[s]; ok {
		return i
	}
	i := int32(len(r.names))
	r.ids[s] = i
	r.names = append(r.names, s)
	return i
}

// addRow counts one event, as eventRow makes its row, under its model and
// under allModels, at both widths.
func (r *rollups) addRow(row []any) {
	user, ts, model := r.id(row[0].(string)), row[1].(int64), r.id(row[2].(string))
	in, out, lat, status, cost := row[3].(int64), row[4].(int64), row[5].(int64), row[6].(string), row[7].(int64)
	bucket := latencyBucket(lat)
	all := r.id(allModels)
	for _, l := range []*rollupLevel{&r.hourly, &r.daily} {
		for _, m := range []int32{model, all} {
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

// ranks is each interned name's place in byte order, so that keys sort
// as their strings would at the cost of integers.
func (r *rollups) ranks() []int32 {
	order := make([]int32, len(r.names))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(r.names[a], r.names[b]) })
	rank := make([]int32, len(order))
	for place, id := range order {
		rank[id] = int32(place)
	}
	return rank
}

func compareKeys(rank []int32, a, b rollupKey) int {
	return cmp.Or(cmp.Compare(rank[a.user], rank[b.user]), cmp.Compare(rank[a.model], rank[b.model]), cmp.Compare(a.period, b.period))
}

// rollupTable is one table's rows, in key order (concurrent ingests lock
// rows in the same order and cannot deadlock), made one at a time: the
// seed's millions of rows are never all built at once.
type rollupTable struct {
	name string
	cols []string
	keys int // leading columns that are the primary key
	n    int
	row  func(i int) []any
}

// tables are the tables of both levels, with their rows.
func (r *rollups) tables() []rollupTable {
	rank := r.ranks()
	var out []rollupTable
	for _, l := range []struct {
		level           *rollupLevel
		sums, latencies string
	}{{&r.hourly, "usage_hourly", "latency_hourly"}, {&r.daily, "usage_daily", "latency_daily"}} {
		sums := slices.SortedFunc(maps.Keys(l.level.sums), func(a, b rollupKey) int { return compareKeys(rank, a, b) })
		out = append(out, rollupTable{l.sums, sumCols, 3, len(sums), func(i int) []any {
			k := sums[i]
			s := l.level.sums[k]
			return []any{r.names[k.user], r.names[k.model], k.period, s.requests, s.errors, s.input, s.output, s.costNanos, s.latencyUS}
		}})
		lat := slices.SortedFunc(maps.Keys(l.level.latency), func(a, b latencyKey) int {
			return cmp.Or(compareKeys(rank, a.rollupKey, b.rollupKey), cmp.Compare(a.bucket, b.bucket))
		})
		out = append(out, rollupTable{l.latencies, latencyCols, 4, len(lat), func(i int) []any {
			k := lat[i]
			return []any{r.names[k.user], r.names[k.model], k.period, k.bucket, l.level.latency[k]}
		}})
	}
	return append(out, r.usageModels(rank))
}

var usageModelCols = []string{"user_id", "model_id"}

// usageModels is the (user, model) pairs of the events, in key order.
func (r *rollups) usageModels(rank []int32) rollupTable {
	all := r.id(allModels)
	seen := map[rollupKey]bool{}
	for k := range r.daily.sums {
		if k.model != all {
			seen[rollupKey{user: k.user, model: k.model}] = true
		}
	}
	pairs := slices.SortedFunc(maps.Keys(seen), func(a, b rollupKey) int { return compareKeys(rank, a, b) })
	return rollupTable{"usage_models", usageModelCols, 2, len(pairs), func(i int) []any {
		return []any{r.names[pairs[i].user], r.names[pairs[i].model]}
	}}
}

// upsertRollups adds r to the stored rollups in t: rows that exist grow by
// the new sums, the others are inserted; then the daily digests, which
// rely on the row locks taken here (upsertDigests).
func upsertRollups(t *tx, r *rollups) error {
	for _, tb := range r.tables() {
		if err := upsertAdd(t, tb); err != nil {
			return err
		}
	}
	return upsertDigests(t, r)
}

// rollupBatch rows per statement keeps SQLite under its parameter limit.
const rollupBatch = 500

// upsertAdd inserts a table's rows, adding the columns after its key to
// an existing row's.
func upsertAdd(t *tx, tb rollupTable) error {
	set := make([]string, 0, len(tb.cols)-tb.keys)
	for _, c := range tb.cols[tb.keys:] {
		set = append(set, c+" = "+tb.name+"."+c+" + excluded."+c)
	}
	conflict := " ON CONFLICT (" + strings.Join(tb.cols[:tb.keys], ", ") + ") DO UPDATE SET " + strings.Join(set, ", ")
	if len(set) == 0 { // a table of keys alone: a row there is a row added
		conflict = " ON CONFLICT (" + strings.Join(tb.cols, ", ") + ") DO NOTHING"
	}
	for start := 0; start < tb.n; start += rollupBatch {
		end := min(start+rollupBatch, tb.n)
		args := make([]any, 0, (end-start)*len(tb.cols))
		for i := start; i < end; i++ {
			args = append(args, tb.row(i)...)
		}
		if err := t.exec(insertValues(tb.name, tb.cols, end-start)+conflict, args...); err != nil {
			return err
		}
	}
	return nil
}
