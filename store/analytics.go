package store

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modellab/modellab"
)

// msRange is [from, to) in unix milliseconds.
type msRange struct{ from, to int64 }

func (r msRange) empty() bool { return r.from >= r.to }

// cover is how the sources split a range: the partial hours at its edges
// from events, the whole hours around its whole days from the hourly
// rollups, the whole days from the daily ones. Empty parts are skipped.
type cover struct {
	raw, hours [2]msRange
	days       msRange
}

func ceilTo(t, w int64) int64  { return -floorDiv(-t, w) * w }
func floorTo(t, w int64) int64 { return floorDiv(t, w) * w }

// coverOf splits [from, to); with days false no daily rollup is used (an
// hourly series needs hours).
func coverOf(r msRange, days bool) cover {
	h0, h1 := ceilTo(r.from, hourMS), floorTo(r.to, hourMS)
	if h0 >= h1 {
		return cover{raw: [2]msRange{r}}
	}
	c := cover{raw: [2]msRange{{r.from, h0}, {h1, r.to}}, hours: [2]msRange{{h0, h1}}}
	d0, d1 := ceilTo(h0, dayMS), floorTo(h1, dayMS)
	if days && d0 < d1 {
		c.hours = [2]msRange{{h0, d0}, {d1, h1}}
		c.days = msRange{d0, d1}
	}
	return c
}

// union builds a UNION ALL of selects and their arguments.
type union struct {
	parts []string
	args  []any
}

func (u *union) add(q string, args ...any) {
	u.parts = append(u.parts, q)
	u.args = append(u.args, args...)
}

func (u *union) sql() string { return strings.Join(u.parts, " UNION ALL ") }

// analyticsRead is one analytics query: whose events, which range, and how
// rollup rows are chosen (modelCond, modelArgs) and events filtered.
type analyticsRead struct {
	user      string
	r         msRange
	modelID   string // "" for every model
	modelCond string // on rollup rows: "model_id = ?", "model_id <> ''"…
	modelArgs []any
	// digestDays: whole days come from the daily digests, not from the
	// daily rollups (every model, by model or by latency).
	digestDays bool
}

// sums is the union of rows (model_id, t, requests, errors, input, output,
// cost, latency) that cover the range, from every source.
func (a analyticsRead) sums(c cover) union {
	var u union
	for _, r := range c.raw {
		if !r.empty() {
			q := `SELECT model_id, ts AS t, 1 AS requests, CASE WHEN status = 'error' THEN 1 ELSE 0 END AS errors,
				input_tokens, output_tokens, cost_nanos, latency_us FROM events WHERE user_id = ? AND ts >= ? AND ts < ?`
			args := []any{a.user, r.from, r.to}
			if a.modelID != "" {
				q += " AND model_id = ?"
				args = append(args, a.modelID)
			}
			u.add(q, args...)
		}
	}
	add := func(table string, r msRange) {
		if !r.empty() {
			u.add(`SELECT model_id, period AS t, requests, errors, input_tokens, output_tokens, cost_nanos, latency_us
				FROM `+table+` WHERE user_id = ? AND `+a.modelCond+` AND period >= ? AND period < ?`,
				append(append([]any{a.user}, a.modelArgs...), r.from, r.to)...)
		}
	}
	add("usage_hourly", c.hours[0])
	add("usage_hourly", c.hours[1])
	if !a.digestDays {
		add("usage_daily", c.days)
	}
	return u
}

// Analytics aggregates userID's events in [q.From, q.To), reading the
// rollups for whole hours and days and events for the rest. Its queries
// (by model, series, latency histogram, the digests of whole days with
// the models' names) run concurrently on separate connections; a read of
// an aligned range of days is the last alone. Totals are the sum of the
// per-model rows: exact integers, as raw events give them.
func (db *DB) Analytics(ctx context.Context, userID string, q modellab.AnalyticsQuery) (modellab.AnalyticsResult, error) {
	if err := q.Valid(); err != nil {
		return modellab.AnalyticsResult{}, err
	}
	r := msRange{ceilMilli(q.From), ceilMilli(q.To)}
	base := analyticsRead{user: userID, r: r, modelID: q.ModelID, digestDays: q.ModelID == ""}
	p, err := db.analyticsParts(ctx, base, q)
	if err != nil {
		return modellab.AnalyticsResult{}, err
	}
	defer p.release()
	totals, names := p.sums, []string(nil)
	if p.days != nil {
		p.series.addDays(p.days.days)
		totals = p.sums.join(p.days.models)
		names = p.days.names.of(totals)
	} else if names, err = db.modelNames(ctx, userID, totals); err != nil {
		return modellab.AnalyticsResult{}, err
	}
	res := modellab.AnalyticsResult{From: q.From, To: q.To, Interval: q.Interval, ByModel: totals.usage(names), Totals: totals.totals()}
	if res.Totals.P95LatencyMS, err = db.p95(ctx, base, p.buckets, res.Totals.Requests); err != nil {
		return modellab.AnalyticsResult{}, err
	}
	res.Series = p.series.points()
	return res, nil
}

// analyticsParts is what a read's concurrent statements give, in pooled
// buffers that the answer does not keep.
type analyticsParts struct {
	sums    *modelTotals // from the rollups and events; all but whole days when days is set
	series  *seriesSums
	buckets *bucketCounts
	days    *dayDigests // the whole days' digests and the names; nil for one model
}

// analyticsParts runs the read's statements concurrently on separate
// connections.
func (db *DB) analyticsParts(ctx context.Context, a analyticsRead, q modellab.AnalyticsQuery) (*analyticsParts, error) {
	p := &analyticsParts{}
	var hist latencyCounts
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { p.sums, err = db.modelSums(gctx, a.forModels()); return })
	g.Go(func() (err error) { p.series, err = db.series(gctx, a.forTotals(), q); return })
	g.Go(func() (err error) { hist, err = db.latencyHistogram(gctx, a); return })
	if a.digestDays {
		g.Go(func() (err error) { p.days, err = db.digestsAndNames(gctx, a.user, coverOf(a.r, true).days); return })
	}
	if err := g.Wait(); err != nil {
		p.release()
		return nil, err
	}
	if p.days != nil {
		p.buckets, p.days.hist = p.days.hist, nil
	} else {
		p.buckets = newBucketCounts()
	}
	for k, n := range hist {
		p.buckets.add(k, n)
	}
	return p, nil
}

// release gives p's buffers back to their pools; p must not be used after.
func (p *analyticsParts) release() {
	p.sums.release()
	p.buckets.release()
	if p.days != nil {
		p.days.release()
	}
}

// totals sums every model's figures: exact integers, as raw events give
// them.
func (t *modelTotals) totals() modellab.AnalyticsTotals {
	var out modellab.AnalyticsTotals
	var costNanos, latUS int64
	for i := range t.sums {
		s := &t.sums[i]
		out.Requests += s.requests
		out.Errors += s.errors
		out.InputTokens += s.input
		out.OutputTokens += s.output
		costNanos += s.costNanos
		latUS += s.latencyUS
	}
	out.CostUSD = usd(costNanos)
	out.AvgLatencyMS = avgMS(latUS, out.Requests)
	return out
}

// forModels chooses the per-model rollup rows.
func (a analyticsRead) forModels() analyticsRead {
	if a.modelID != "" {
		a.modelCond, a.modelArgs = "model_id = ?", []any{a.modelID}
	} else {
		a.modelCond, a.modelArgs = "model_id <> ''", nil
	}
	return a
}

// forTotals chooses the rows that sum the selection: one model's, or the
// all-models rows.
func (a analyticsRead) forTotals() analyticsRead {
	a = a.forModels()
	if a.modelID == "" {
		a.modelCond, a.modelArgs = "model_id = ?", []any{allModels}
	}
	return a
}

// modelTotals are sums by model, in the order the models came, or in
// byte order of the ids when they were merged from digests.
type modelTotals struct {
	index map[string]int32
	ids   []string
	sums  []rollupSums
	// spareIDs and spareSums are what mergeDigest merges into.
	spareIDs  []string
	spareSums []rollupSums
}

// totalsPool keeps modelTotals between reads: a heavy user's map and
// slices are most of what their analytics read would otherwise allocate.
var totalsPool sync.Pool

func newModelTotals(n int) *modelTotals {
	if t, ok := totalsPool.Get().(*modelTotals); ok {
		return t
	}
	return &modelTotals{index: make(map[string]int32, n), ids: make([]string, 0, n), sums: make([]rollupSums, 0, n)}
}

// release empties t for another read; t must not be used after.
func (t *modelTotals) release() {
	if t == nil || len(t.ids) > 1<<16 { // a rare giant is left to the collector
		return
	}
	clear(t.index)
	clear(t.ids) // the ids are the answer's now; the pool must not keep them
	clear(t.spareIDs)
	t.ids, t.sums = t.ids[:0], t.sums[:0]
	t.spareIDs, t.spareSums = t.spareIDs[:0], t.spareSums[:0]
	totalsPool.Put(t)
}

// addBytes adds s to the model named id, without a string made for an id
// already there, and returns the model's index.
func (t *modelTotals) addBytes(id []byte, s rollupSums) int {
	if i, ok := t.index[string(id)]; ok {
		t.sums[i].add(s)
		return int(i)
	}
	return t.add(string(id), s)
}

func (t *modelTotals) add(id string, s rollupSums) int {
	if i, ok := t.index[id]; ok {
		t.sums[i].add(s)
		return int(i)
	}
	t.index[id] = int32(len(t.ids))
	t.ids = append(t.ids, id)
	t.sums = append(t.sums, s)
	return len(t.ids) - 1
}

// join adds the smaller of t and o to the larger and returns it; either
// may be nil.
func (t *modelTotals) join(o *modelTotals) *modelTotals {
	if t == nil || o != nil && len(o.ids) > len(t.ids) {
		t, o = o, t
	}
	if t == nil {
		return newModelTotals(0)
	}
	if o != nil {
		for i, id := range o.ids {
			t.add(id, o.sums[i])
		}
	}
	return t
}

// modelSums sums the selection by model over what the SQL sources cover
// (all of the range, or all but its whole days when those come from the
// digests).
func (db *DB) modelSums(ctx context.Context, a analyticsRead) (*modelTotals, error) {
	u := a.sums(coverOf(a.r, true))
	out := newModelTotals(0)
	if len(u.parts) == 0 {
		return out, nil
	}
	rows, err := db.query(ctx, `SELECT model_id, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT),
			CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT),
			CAST(SUM(cost_nanos) AS BIGINT), CAST(SUM(latency_us) AS BIGINT)
		FROM (`+u.sql()+`) AS u
		GROUP BY model_id`, u.args...)
	if err != nil {
		return nil, fail(err, "analytics by model")
	}
	defer rows.Close()
	for rows.Next() {
		var model string
		var s rollupSums
		if err := rows.Scan(&model, &s.requests, &s.errors, &s.input, &s.output, &s.costNanos, &s.latencyUS); err != nil {
			return nil, fail(err, "analytics by model")
		}
		out.add(model, s)
	}
	return out, fail(rows.Err(), "analytics by model")
}

// usage is the models' sums with their names (names[i] for ids[i]),
// ordered by requests, then id in byte order.
func (t *modelTotals) usage(names []string) []modellab.ModelUsage {
	order := t.byRequests()
	out := make([]modellab.ModelUsage, len(order))
	for j, i := range order {
		s := &t.sums[i]
		out[j] = modellab.ModelUsage{ModelID: t.ids[i], ModelName: names[i], Requests: s.requests, Errors: s.errors,
			InputTokens: s.input, OutputTokens: s.output, CostUSD: usd(s.costNanos), AvgLatencyMS: avgMS(s.latencyUS, s.requests)}
	}
	return out
}

// Bits of a packed sort key: requests' complement above, the model's
// index below.
const (
	keyIndexBits    = 20
	keyRequestsBits = 64 - keyIndexBits
)

// byRequests is the order of t's models: by requests, most first, then by
// id in byte order. When the ids are already in byte order, as merged
// digests leave them, each model is one integer to sort, its requests and
// its index packed; the sort of 250 models by a comparison of both
// fields, through the index, was a twentieth of an analytics read.
func (t *modelTotals) byRequests() []int32 {
	order := make([]int32, len(t.ids))
	if keys, ok := t.packedKeys(); ok {
		slices.Sort(keys)
		for j, k := range keys {
			order[j] = int32(k & (1<<keyIndexBits - 1))
		}
		return order
	}
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(t.sums[b].requests, t.sums[a].requests), strings.Compare(t.ids[a], t.ids[b]))
	})
	return order
}

// packedKeys are t's models as sort keys that order them by byRequests,
// if its ids are in byte order and every count fits.
func (t *modelTotals) packedKeys() ([]uint64, bool) {
	if len(t.ids) >= 1<<keyIndexBits || !slices.IsSorted(t.ids) {
		return nil, false
	}
	keys := make([]uint64, len(t.ids))
	for i := range t.sums {
		r := t.sums[i].requests
		if r < 0 || r >= 1<<keyRequestsBits {
			return nil, false
		}
		keys[i] = uint64(1<<keyRequestsBits-1-r)<<keyIndexBits | uint64(i)
	}
	return keys, true
}

// modelNames are the names of t's models, by index, for those user may
// see (global models and their own); the others' are "".
func (db *DB) modelNames(ctx context.Context, user string, t *modelTotals) ([]string, error) {
	out := make([]string, len(t.ids))
	if len(t.ids) == 0 {
		return out, nil
	}
	const visible = ` AND (owner_id IS NULL OR owner_id = ?)`
	var rows rows
	var err error
	if db.engine == EnginePostgres {
		// The ids go as one text that the server splits: pgx's encoding of
		// a text[] of 250 ids cost more than the statement. Generated ids
		// hold no comma; an id that did would match no model, and so have
		// no name, as it should.
		rows, err = db.query(ctx, `SELECT id, name FROM models WHERE id = ANY(string_to_array(?, ','))`+visible,
			strings.Join(t.ids, ","), user)
	} else {
		// One parameter a model, under SQLite's 32,766: a user's models
		// with events in range.
		args := make([]any, 0, len(t.ids)+1)
		for _, id := range t.ids {
			args = append(args, id)
		}
		rows, err = db.query(ctx, `SELECT id, name FROM models WHERE id IN (?`+strings.Repeat(", ?", len(t.ids)-1)+`)`+visible,
			append(args, user)...)
	}
	if err != nil {
		return nil, fail(err, "analytics model names")
	}
	defer rows.Close()
	err = scanPairs(rows, func(id, name []byte) error {
		if i, ok := t.index[string(id)]; ok {
			out[i] = string(name)
		}
		return nil
	})
	return out, fail(err, "analytics model names")
}

// seriesSums are a series' buckets as their parts come in: averages are
// made once every part is summed.
type seriesSums struct {
	start, step int64
	out         []modellab.SeriesPoint
	latUS       []int64
	// digestDays: the whole days are not in the SQL part; the digests'
	// per-day sums add them (addDays).
	digestDays bool
}

// add adds to the bucket that starts at t.
func (s *seriesSums) add(t int64, p modellab.SeriesPoint, latUS int64) {
	i := (t - s.start) / s.step
	if i < 0 || i >= int64(len(s.out)) {
		return
	}
	o := &s.out[i]
	o.Requests += p.Requests
	o.Errors += p.Errors
	o.Tokens += p.Tokens
	s.latUS[i] += latUS
}

// addDays adds the digests' days, when the series left them to them.
func (s *seriesSums) addDays(days []daySums) {
	if !s.digestDays {
		return
	}
	for _, d := range days {
		p := modellab.SeriesPoint{Requests: d.sums.requests, Errors: d.sums.errors, Tokens: d.sums.input + d.sums.output}
		s.add(floorTo(d.period, s.step), p, d.sums.latencyUS)
	}
}

func (s *seriesSums) points() []modellab.SeriesPoint {
	for i := range s.out {
		s.out[i].AvgLatencyMS = avgMS(s.latUS[i], s.out[i].Requests)
	}
	return s.out
}

// series buckets the selection by the query's interval; every bucket of
// the range is present, zero-filled. Days that the digests are read for
// are left to them: their per-day sums are the all-models rows of the
// daily rollups, and reading both would add a statement for nothing.
func (db *DB) series(ctx context.Context, a analyticsRead, q modellab.AnalyticsQuery) (*seriesSums, error) {
	step := q.Step().Milliseconds()
	start := floorDiv(q.From.UnixMilli(), step) * step
	s := &seriesSums{start: start, step: step, out: []modellab.SeriesPoint{}, digestDays: a.digestDays && step >= dayMS}
	for t := start; t < a.r.to; t += step {
		s.out = append(s.out, modellab.SeriesPoint{T: time.UnixMilli(t).UTC()})
	}
	s.latUS = make([]int64, len(s.out))
	u := a.sums(coverOf(a.r, step >= dayMS))
	if len(u.parts) == 0 {
		return s, nil
	}
	rows, err := db.query(ctx, `SELECT t / ?, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT),
			CAST(SUM(input_tokens + output_tokens) AS BIGINT), CAST(SUM(latency_us) AS BIGINT)
		FROM (`+u.sql()+`) AS u
		GROUP BY 1`, append([]any{step}, u.args...)...)
	if err != nil {
		return nil, fail(err, "analytics series")
	}
	defer rows.Close()
	for rows.Next() {
		var b, lat int64
		var p modellab.SeriesPoint
		if err := rows.Scan(&b, &p.Requests, &p.Errors, &p.Tokens, &lat); err != nil {
			return nil, fail(err, "analytics series")
		}
		s.add(b*step, p, lat)
	}
	return s, fail(rows.Err(), "analytics series")
}

// latencyCounts is a latency histogram: count by bucket.
type latencyCounts map[int64]int64

// latencyHistogram reads the histogram of the selection: the rollups'
// buckets for whole hours and days, the edges' events bucketed here.
func (db *DB) latencyHistogram(ctx context.Context, a analyticsRead) (latencyCounts, error) {
	a = a.forTotals()
	c := coverOf(a.r, true)
	var u union
	for _, part := range []struct {
		table string
		r     msRange
	}{{"latency_hourly", c.hours[0]}, {"latency_hourly", c.hours[1]}, {"latency_daily", c.days}} {
		if !part.r.empty() && !(a.digestDays && part.table == "latency_daily") {
			// Summed here by bucket: a week of daily histograms is 1,500
			// rows, and 230 distinct buckets.
			u.add(`SELECT 0 AS raw, bucket AS v, CAST(SUM(n) AS BIGINT) AS n FROM `+part.table+` WHERE user_id = ? AND `+a.modelCond+` AND period >= ? AND period < ? GROUP BY bucket`,
				append(append([]any{a.user}, a.modelArgs...), part.r.from, part.r.to)...)
		}
	}
	for _, r := range c.raw {
		if !r.empty() {
			q, args := `SELECT 1 AS raw, latency_us AS v, 1 AS n FROM events WHERE user_id = ? AND ts >= ? AND ts < ?`, []any{a.user, r.from, r.to}
			if a.modelID != "" {
				q, args = q+" AND model_id = ?", append(args, a.modelID)
			}
			u.add(q, args...)
		}
	}
	h := latencyCounts{}
	if len(u.parts) == 0 {
		return h, nil
	}
	rows, err := db.query(ctx, u.sql(), u.args...)
	if err != nil {
		return nil, fail(err, "analytics latency")
	}
	defer rows.Close()
	// Rollup rows carry a bucket and its count; event rows a latency, to
	// be bucketed here.
	for rows.Next() {
		var raw, v, n int64
		if err := rows.Scan(&raw, &v, &n); err != nil {
			return nil, fail(err, "analytics latency")
		}
		if raw == 1 {
			v = latencyBucket(v)
		}
		h[v] += n
	}
	return h, fail(rows.Err(), "analytics latency")
}

// exactP95Max is the number of events in range up to which the 95th
// percentile is computed exactly from the events: cheap at that size.
var exactP95Max int64 = 5000

// p95 is the nearest-rank 95th percentile of the selection's latencies in
// ms: exact from the events when they are few, else the value of the
// histogram bucket holding that rank (within latencyAlpha).
func (db *DB) p95(ctx context.Context, a analyticsRead, h *bucketCounts, n int64) (float64, error) {
	if n == 0 {
		return 0, nil
	}
	if n <= exactP95Max {
		where, args := "user_id = ? AND ts >= ? AND ts < ?", []any{a.user, a.r.from, a.r.to}
		if a.modelID != "" {
			where, args = where+" AND model_id = ?", append(args, a.modelID)
		}
		var us int64
		if err := db.get(ctx, "analytics p95", analyticsSQL(where).p95, args, &us); err != nil {
			return 0, err
		}
		return float64(us) / 1e3, nil
	}
	if b, ok := h.bucketOf((n*95 + 99) / 100); ok {
		return math.Round(bucketValueUS(b)) / 1e3, nil
	}
	return 0, nil
}

// bucketCounts is a latency histogram summed in an array over the buckets
// any latency may have (denseBuckets of them from zeroBucket), with a map
// for a bucket outside them: a heavy user's week is some 1,600 bucket
// counts to add, and hashing them into a map and sorting its keys was a
// tenth of an analytics read.
type bucketCounts struct {
	dense [denseBuckets]int64
	other latencyCounts
}

var bucketsPool = sync.Pool{New: func() any { return new(bucketCounts) }}

func newBucketCounts() *bucketCounts { return bucketsPool.Get().(*bucketCounts) }

// release empties h for another read; h must not be used after.
func (h *bucketCounts) release() {
	if h == nil {
		return
	}
	clear(h.dense[:])
	clear(h.other)
	bucketsPool.Put(h)
}

func (h *bucketCounts) add(k, n int64) {
	if i := k - zeroBucket; i >= 0 && i < denseBuckets {
		h.dense[i] += n
		return
	}
	if h.other == nil {
		h.other = latencyCounts{}
	}
	h.other[k] += n
}

// bucketOf is the bucket that holds the rank-th smallest latency (from
// 1); false if h holds fewer.
func (h *bucketCounts) bucketOf(rank int64) (int64, bool) {
	keys := slices.Sorted(maps.Keys(h.other)) // none, unless a bucket is out of range
	var seen int64
	lo := 0
	for ; lo < len(keys) && keys[lo] < zeroBucket; lo++ {
		if seen += h.other[keys[lo]]; seen >= rank {
			return keys[lo], true
		}
	}
	for i, n := range h.dense {
		if seen += n; seen >= rank {
			return int64(i) + zeroBucket, true
		}
	}
	for _, k := range keys[lo:] {
		if seen += h.other[k]; seen >= rank {
			return k, true
		}
	}
	return 0, false
}
