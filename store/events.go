package store

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modellab/modellab"
	"golang.org/x/sync/errgroup"
)

var eventCols = []string{"user_id", "ts", "model_id", "input_tokens", "output_tokens", "latency_us", "status", "cost_nanos"}

// sqliteEventBatch rows per INSERT keeps a statement under SQLite's 32766
// parameters while amortising the per-statement cost.
const sqliteEventBatch = 1000

func eventRow(e *modellab.Event) []any {
	return []any{e.UserID, e.Timestamp.UnixMilli(), e.ModelID, e.InputTokens, e.OutputTokens,
		int64(math.Round(e.LatencyMS * 1e3)), e.Status, int64(math.Round(e.CostUSD * 1e9))}
}

// avgMS turns a sum of microseconds into a mean in ms with one division,
// so that it is the correctly rounded value whatever the engine.
func avgMS(sumUS, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(sumUS) / (float64(n) * 1e3)
}

func usd(nanos int64) float64 { return float64(nanos) / 1e9 }

// insertValues returns "INSERT INTO table (cols) VALUES (?,..),(?,..)" for n rows.
func insertValues(table string, cols []string, n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	row := "(?" + strings.Repeat(", ?", len(cols)-1) + ")"
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// InsertEvents stores all events or none. Validation is the caller's (it
// knows the clock); the schema's CHECK constraints are the last line.
// Latencies are kept to the microsecond and costs to the nano-dollar.
func (db *DB) InsertEvents(ctx context.Context, events []modellab.Event) error {
	if len(events) == 0 {
		return nil
	}
	if db.pool != nil {
		// COPY is one statement, hence atomic on its own.
		ctx, cancel := db.stmt(ctx)
		defer cancel()
		_, err := db.pool.CopyFrom(ctx, pgx.Identifier{"events"}, eventCols,
			pgx.CopyFromSlice(len(events), func(i int) ([]any, error) { return eventRow(&events[i]), nil }))
		if err != nil {
			return eventsErr(withCtx(ctx, err))
		}
		return nil
	}
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		for start := 0; start < len(events); start += sqliteEventBatch {
			end := min(start+sqliteEventBatch, len(events))
			args := make([]any, 0, (end-start)*len(eventCols))
			for i := start; i < end; i++ {
				args = append(args, eventRow(&events[i])...)
			}
			if err := t.exec(insertValues("events", eventCols, end-start), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return eventsErr(err)
	}
	return nil
}

func eventsErr(err error) error {
	if classify(err) == modellab.EINVALID {
		return modellab.WrapError(modellab.EINVALID, err, "an event is invalid; none were stored")
	}
	return fail(err, "store events")
}

// ceilMilli converts a bound to the stored millisecond resolution: an event
// at millisecond t is in [from, to) iff ceil(from) <= t < ceil(to).
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Analytics aggregates userID's events in [q.From, q.To). Its four queries
// (totals, p95, by model, series) run concurrently on separate connections.
func (db *DB) Analytics(ctx context.Context, userID string, q modellab.AnalyticsQuery) (modellab.AnalyticsResult, error) {
	if err := q.Valid(); err != nil {
		return modellab.AnalyticsResult{}, err
	}
	res := modellab.AnalyticsResult{From: q.From, To: q.To, Interval: q.Interval,
		ByModel: []modellab.ModelUsage{}, Series: []modellab.SeriesPoint{}}
	from, to := ceilMilli(q.From), ceilMilli(q.To)
	where := "user_id = ? AND ts >= ? AND ts < ?"
	args := []any{userID, from, to}
	if q.ModelID != "" {
		where += " AND model_id = ?"
		args = append(args, q.ModelID)
	}
	step := q.Step().Milliseconds()
	start := floorDiv(q.From.UnixMilli(), step) * step
	var series []modellab.SeriesPoint
	for t := start; t < to; t += step {
		series = append(series, modellab.SeriesPoint{T: time.UnixMilli(t).UTC()})
	}
	if series == nil {
		series = []modellab.SeriesPoint{}
	}

	var costNanos, latUS, p95US int64
	qs := analyticsSQL(where)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return db.get(gctx, "analytics totals", qs.totals, args,
			&res.Totals.Requests, &res.Totals.Errors, &res.Totals.InputTokens, &res.Totals.OutputTokens,
			&costNanos, &latUS)
	})
	g.Go(func() error {
		// Nearest rank: the ceil(0.95 n)-th smallest latency, computed in
		// integers so that both engines agree to the last bit.
		err := db.get(gctx, "analytics p95", qs.p95, args, &p95US)
		if modellab.ErrorCode(err) == modellab.ENOTFOUND {
			return nil // no events
		}
		return err
	})
	g.Go(func() error {
		// Aggregate first, then join: one lookup per model, and the join
		// condition hides names of models the user may no longer see.
		r, err := db.query(gctx, qs.byModel, append(args[:len(args):len(args)], userID)...)
		if err != nil {
			return fail(err, "analytics by model")
		}
		defer r.Close()
		for r.Next() {
			var u modellab.ModelUsage
			var cost, lat int64
			if err := r.Scan(&u.ModelID, &u.ModelName, &u.Requests, &u.Errors, &u.InputTokens,
				&u.OutputTokens, &cost, &lat); err != nil {
				return fail(err, "analytics by model")
			}
			u.CostUSD, u.AvgLatencyMS = usd(cost), avgMS(lat, u.Requests)
			res.ByModel = append(res.ByModel, u)
		}
		return fail(r.Err(), "analytics by model")
	})
	g.Go(func() error {
		r, err := db.query(gctx, qs.series, append([]any{step}, args...)...)
		if err != nil {
			return fail(err, "analytics series")
		}
		defer r.Close()
		for r.Next() {
			var b, lat int64
			var p modellab.SeriesPoint
			if err := r.Scan(&b, &p.Requests, &p.Errors, &p.Tokens, &lat); err != nil {
				return fail(err, "analytics series")
			}
			p.AvgLatencyMS = avgMS(lat, p.Requests)
			if i := (b*step - start) / step; i >= 0 && i < int64(len(series)) {
				p.T = series[i].T
				series[i] = p
			}
		}
		return fail(r.Err(), "analytics series")
	})
	if err := g.Wait(); err != nil {
		return modellab.AnalyticsResult{}, err
	}
	res.Totals.CostUSD = usd(costNanos)
	res.Totals.AvgLatencyMS = avgMS(latUS, res.Totals.Requests)
	res.Totals.P95LatencyMS = float64(p95US) / 1e3
	res.Series = series
	return res, nil
}

type analyticsQueries struct{ totals, p95, byModel, series string }

// analyticsSQL returns Analytics' statements for a WHERE clause over events
// (kept apart so that a test can EXPLAIN them).
func analyticsSQL(where string) analyticsQueries {
	return analyticsQueries{
		totals: `SELECT COUNT(*),
			CAST(COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT),
			CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT),
			CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT),
			CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT), CAST(COALESCE(SUM(latency_us), 0) AS BIGINT)
			FROM events WHERE ` + where,
		p95: `SELECT latency_us FROM (
			SELECT latency_us, ROW_NUMBER() OVER (ORDER BY latency_us) AS rn, COUNT(*) OVER () AS n
			FROM events WHERE ` + where + `) AS x WHERE rn = (n * 95 + 99) / 100`,
		byModel: `SELECT a.model_id, COALESCE(m.name, ''), a.requests, a.errors,
			a.input_tokens, a.output_tokens, a.cost_nanos, a.latency_us
			FROM (SELECT model_id, COUNT(*) AS requests,
				CAST(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS errors,
				CAST(SUM(input_tokens) AS BIGINT) AS input_tokens,
				CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
				CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos, CAST(SUM(latency_us) AS BIGINT) AS latency_us
				FROM events WHERE ` + where + ` GROUP BY model_id) AS a
			LEFT JOIN models m ON m.id = a.model_id AND (m.owner_id IS NULL OR m.owner_id = ?)
			ORDER BY a.requests DESC, a.model_id COLLATE "C"`,
		series: `SELECT ts / ?, COUNT(*),
			CAST(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS BIGINT),
			CAST(SUM(input_tokens + output_tokens) AS BIGINT), CAST(SUM(latency_us) AS BIGINT)
			FROM events WHERE ` + where + ` GROUP BY 1`,
	}
}
