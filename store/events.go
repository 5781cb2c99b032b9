package store

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modellab/modellab"
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

// InsertEvents stores all events or none, and adds them to the hourly
// rollups in the same transaction. Validation is the caller's (it knows the
// clock); the schema's CHECK constraints are the last line. Latencies are
// kept to the microsecond and costs to the nano-dollar.
func (db *DB) InsertEvents(ctx context.Context, events []modellab.Event) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([][]any, len(events))
	r := newRollups()
	for i := range events {
		rows[i] = eventRow(&events[i])
		r.addRow(rows[i])
	}
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		if err := t.insertRows("events", eventCols, rows); err != nil {
			return err
		}
		return upsertRollups(t, r)
	})
	if err != nil {
		return eventsErr(err)
	}
	return nil
}

// insertRows inserts rows into table: one COPY on PostgreSQL, multi-row
// INSERTs on SQLite.
func (t *tx) insertRows(table string, cols []string, rows [][]any) error {
	if t.pg != nil {
		defer t.db.observe(time.Now())
		_, err := t.pg.CopyFrom(t.ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
		return withCtx(t.ctx, err)
	}
	per := max(1, min(sqliteEventBatch, 32766/len(cols)))
	for start := 0; start < len(rows); start += per {
		end := min(start+per, len(rows))
		args := make([]any, 0, (end-start)*len(cols))
		for _, row := range rows[start:end] {
			args = append(args, row...)
		}
		if err := t.exec(insertValues(table, cols, end-start), args...); err != nil {
			return err
		}
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
