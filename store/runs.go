package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modellab/modellab"
)

// runSelect reads runs with their latest values: one row per (run, key),
// a run without points once with a NULL key. Rows of one run are adjacent
// because the order ends with the (unique) id.
const runSelect = `SELECT r.id, r.owner_id, r.name, r.model_id, r.status, r.params, r.last_step,
	r.created_at, r.updated_at, r.ended_at, l.key, l.value
	FROM runs r LEFT JOIN run_latest l ON l.run_id = r.id`

// scanRuns folds runSelect's rows into runs.
func scanRuns(r rows, op string) ([]modellab.Run, error) {
	out := []modellab.Run{}
	for r.Next() {
		var run modellab.Run
		var params string
		var created, updated int64
		var ended *int64
		var key *string
		var value *float64
		if err := r.Scan(&run.ID, &run.OwnerID, &run.Name, &run.ModelID, &run.Status, &params, &run.LastStep,
			&created, &updated, &ended, &key, &value); err != nil {
			return nil, fail(err, op)
		}
		if n := len(out); n == 0 || out[n-1].ID != run.ID {
			run.CreatedAt, run.UpdatedAt = fromMicros(created), fromMicros(updated)
			if ended != nil {
				t := fromMicros(*ended)
				run.EndedAt = &t
			}
			if err := json.Unmarshal([]byte(params), &run.Params); err != nil {
				return nil, modellab.WrapError(modellab.EINTERNAL, err, "%s: stored params are not JSON", op)
			}
			if run.Params == nil {
				run.Params = map[string]any{}
			}
			run.Latest = map[string]float64{}
			out = append(out, run)
		}
		if key != nil && value != nil {
			out[len(out)-1].Latest[*key] = *value
		}
	}
	if err := r.Err(); err != nil {
		return nil, fail(err, op)
	}
	return out, nil
}

// ListRuns returns ownerID's runs, newest first (runs started in the same
// microsecond by name, then id, so that the order is stable).
func (db *DB) ListRuns(ctx context.Context, ownerID string) ([]modellab.Run, error) {
	r, err := db.query(ctx, runSelect+` WHERE r.owner_id = ? ORDER BY r.created_at DESC, r.name COLLATE "C", r.id COLLATE "C"`, ownerID)
	if err != nil {
		return nil, fail(err, "list runs")
	}
	defer r.Close()
	return scanRuns(r, "list runs")
}

// GetRun returns one run whoever owns it; rights are the caller's business.
func (db *DB) GetRun(ctx context.Context, id string) (modellab.Run, error) {
	r, err := db.query(ctx, runSelect+" WHERE r.id = ?", id)
	if err != nil {
		return modellab.Run{}, fail(err, "get run")
	}
	defer r.Close()
	runs, err := scanRuns(r, "get run")
	if err != nil {
		return modellab.Run{}, err
	}
	if len(runs) == 0 {
		return modellab.Run{}, modellab.Errorf(modellab.ENOTFOUND, "run %s not found", id)
	}
	return runs[0], nil
}

func runErr(err error, r *modellab.Run, op string) error {
	if classify(err) == modellab.EINVALID {
		if r.ModelID != nil {
			return modellab.WrapError(modellab.EINVALID, err, "model %s does not exist", *r.ModelID)
		}
		return modellab.WrapError(modellab.EINVALID, err, "the run's owner does not exist")
	}
	return fail(err, op)
}

func endedMicros(r *modellab.Run) *int64 {
	if r.EndedAt == nil {
		return nil
	}
	us := micros(*r.EndedAt)
	return &us
}

// CreateRun stores r, setting ID, CreatedAt and UpdatedAt unless set. Its
// metric summary starts empty.
func (db *DB) CreateRun(ctx context.Context, r *modellab.Run) error {
	if err := r.Valid(); err != nil {
		return err
	}
	nr := *r
	if nr.ID == "" {
		nr.ID = modellab.NewID(modellab.PrefixRun)
	}
	if nr.CreatedAt.IsZero() {
		nr.CreatedAt = now()
	}
	if nr.UpdatedAt.IsZero() {
		nr.UpdatedAt = nr.CreatedAt
	}
	nr.CreatedAt, nr.UpdatedAt = nr.CreatedAt.UTC().Truncate(1000), nr.UpdatedAt.UTC().Truncate(1000)
	if nr.Params == nil {
		nr.Params = map[string]any{}
	}
	params, err := json.Marshal(nr.Params)
	if err != nil {
		return modellab.WrapError(modellab.EINVALID, err, "params cannot be stored")
	}
	nr.LastStep, nr.Latest = nil, map[string]float64{}
	_, err = db.exec(ctx, `INSERT INTO runs (id, owner_id, name, model_id, status, params, created_at, updated_at, ended_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		nr.ID, nr.OwnerID, nr.Name, nr.ModelID, nr.Status, string(params), micros(nr.CreatedAt), micros(nr.UpdatedAt), endedMicros(&nr))
	if err != nil {
		return runErr(err, &nr, "create run")
	}
	*r = nr
	return nil
}

// UpdateRun writes r's name, status and end, and its UpdatedAt (now unless
// set).
func (db *DB) UpdateRun(ctx context.Context, r *modellab.Run) error {
	if err := r.Valid(); err != nil {
		return err
	}
	nr := *r
	if nr.UpdatedAt.IsZero() {
		nr.UpdatedAt = now()
	}
	nr.UpdatedAt = nr.UpdatedAt.UTC().Truncate(1000)
	if nr.EndedAt != nil {
		t := nr.EndedAt.UTC().Truncate(1000)
		nr.EndedAt = &t
	}
	n, err := db.exec(ctx, "UPDATE runs SET name = ?, status = ?, ended_at = ?, updated_at = ? WHERE id = ?",
		nr.Name, nr.Status, endedMicros(&nr), micros(nr.UpdatedAt), nr.ID)
	if err != nil {
		return runErr(err, &nr, "update run")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "run %s not found", nr.ID)
	}
	*r = nr
	return nil
}

// DeleteRun deletes a run and its metrics. The run's row goes first: on
// PostgreSQL that waits for an ingest holding it, whose points the next
// statement then sees and deletes.
func (db *DB) DeleteRun(ctx context.Context, id string) error {
	var n int64
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		var err error
		if n, err = t.execCount("DELETE FROM runs WHERE id = ?", id); err != nil || n == 0 {
			return err
		}
		return t.exec("DELETE FROM metric_points WHERE run_id = ?", id)
	})
	if err != nil {
		return fail(err, "delete run")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "run %s not found", id)
	}
	return nil
}

// execCount is exec that reports the rows affected.
func (t *tx) execCount(q string, args ...any) (int64, error) {
	defer t.db.observe(time.Now())
	q = t.db.sqlFor(q)
	if t.pg != nil {
		tag, err := t.pg.Exec(t.ctx, q, args...)
		return tag.RowsAffected(), withCtx(t.ctx, err)
	}
	res, err := t.sql.ExecContext(t.ctx, q, args...)
	if err != nil {
		return 0, withCtx(t.ctx, err)
	}
	n, err := res.RowsAffected()
	return n, withCtx(t.ctx, err)
}

// dedupePoints keeps the last of the points that share a (key, step), as
// the API promises (a later point replaces an earlier one), so that one
// statement never upserts a row twice. The input is left alone.
func dedupePoints(points []modellab.MetricPoint) []modellab.MetricPoint {
	type ks struct {
		key  string
		step int64
	}
	last := make(map[ks]int, len(points))
	for i := range points {
		last[ks{points[i].Key, points[i].Step}] = i
	}
	if len(last) == len(points) {
		return points
	}
	out := make([]modellab.MetricPoint, 0, len(last))
	for i := range points {
		if last[ks{points[i].Key, points[i].Step}] == i {
			out = append(out, points[i])
		}
	}
	return out
}

// latestOf returns, per key, the point of the highest step (points are
// deduplicated), sorted by key, and the highest step of all.
func latestOf(points []modellab.MetricPoint) ([]modellab.MetricPoint, int64) {
	at := map[string]int{}
	top := int64(-1)
	for i := range points {
		p := &points[i]
		top = max(top, p.Step)
		if j, ok := at[p.Key]; !ok || p.Step > points[j].Step {
			at[p.Key] = i
		}
	}
	out := make([]modellab.MetricPoint, 0, len(at))
	for _, i := range at {
		out = append(out, points[i])
	}
	slices.SortFunc(out, func(a, b modellab.MetricPoint) int { return strings.Compare(a.Key, b.Key) })
	return out, top
}

// ingest is one batch on its way in: deduplicated points, the latest
// point of each key, the highest step and the time of the batch.
type ingest struct {
	b      modellab.MetricBatch
	points []modellab.MetricPoint
	latest []modellab.MetricPoint
	top    int64 // highest step
	bottom int64 // lowest step
	at     int64 // unix micros
}

// IngestMetrics stores a batch of points for a run of b.OwnerID, all or
// none, replacing points of the same (key, step), and keeps the run's
// last_step and latest values current. A run that does not exist or is not
// b.OwnerID's is ENOTFOUND, and nothing is stored.
func (db *DB) IngestMetrics(ctx context.Context, b modellab.MetricBatch) error {
	if len(b.Points) == 0 {
		return nil
	}
	in := &ingest{b: b, points: dedupePoints(b.Points)}
	in.latest, in.top = latestOf(in.points)
	in.bottom = in.top
	for i := range in.points {
		in.bottom = min(in.bottom, in.points[i].Step)
	}
	at := b.At
	if at.IsZero() {
		at = now()
	}
	in.at = micros(at)
	var n int64
	var err error
	switch {
	case db.pool == nil:
		n, err = db.ingestSQLite(ctx, in)
	case len(in.points) < pgCopyMin:
		n, err = db.ingestPostgres(ctx, in)
	default:
		n, err = db.ingestPostgresCopy(ctx, in)
	}
	if err != nil {
		if classify(err) == modellab.EINVALID {
			return modellab.WrapError(modellab.EINVALID, err, "a point is invalid; none were stored")
		}
		return fail(err, "store metrics")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "run %s not found", b.RunID)
	}
	return nil
}

// ingestPostgresSQL is the whole ingest in one statement (atomic on its
// own, one round trip): lock the run if it is the owner's, upsert the
// points and the latest values from arrays, move last_step. The data-
// modifying CTEs run whether or not the outer statement reads them; all
// of them insert nothing when r is empty.
const ingestPostgresSQL = `WITH r AS (SELECT id FROM runs WHERE id = ? AND owner_id = ? FOR UPDATE),
p AS (INSERT INTO metric_points (run_id, key, step, value, ts)
	SELECT r.id, x.key, x.step, x.value, x.ts
	FROM r, unnest(?::text[], ?::bigint[], ?::double precision[], ?::bigint[]) AS x(key, step, value, ts)
	ON CONFLICT (run_id, key, step) DO UPDATE SET value = EXCLUDED.value, ts = EXCLUDED.ts),
l AS (INSERT INTO run_latest (run_id, key, step, value)
	SELECT r.id, x.key, x.step, x.value
	FROM r, unnest(?::text[], ?::bigint[], ?::double precision[]) AS x(key, step, value)
	ON CONFLICT (run_id, key) DO UPDATE SET step = EXCLUDED.step, value = EXCLUDED.value
	WHERE run_latest.step <= EXCLUDED.step)
UPDATE runs SET rewrites = rewrites + CASE WHEN ? < COALESCE(last_step, -1) THEN 1 ELSE 0 END,
	last_step = GREATEST(COALESCE(last_step, ?), ?), updated_at = ? WHERE id IN (SELECT id FROM r)`

// pointColumns splits points into the column arrays unnest takes.
func pointColumns(points []modellab.MetricPoint) (keys []string, steps []int64, values []float64, ts []int64) {
	keys, steps, values, ts = make([]string, len(points)), make([]int64, len(points)), make([]float64, len(points)), make([]int64, len(points))
	for i := range points {
		p := &points[i]
		keys[i], steps[i], values[i], ts[i] = p.Key, p.Step, p.Value, micros(p.Timestamp)
	}
	return keys, steps, values, ts
}

// ingestPostgres is a small batch (the common case of a trainer logging a
// step at a time): one statement.
func (db *DB) ingestPostgres(ctx context.Context, in *ingest) (int64, error) {
	keys, steps, values, ts := pointColumns(in.points)
	lkeys, lsteps, lvalues, _ := pointColumns(in.latest)
	return db.exec(ctx, ingestPostgresSQL, in.b.RunID, in.b.OwnerID, keys, steps, values, ts,
		lkeys, lsteps, lvalues, in.bottom, in.top, in.top, in.at)
}

// pgCopyMin points and more go through COPY when they only append.
const pgCopyMin = 1000

// pgSummarySQL upserts the latest values and moves last_step: the end of
// a batch that went in through COPY.
const pgSummarySQL = `WITH l AS (INSERT INTO run_latest (run_id, key, step, value)
	SELECT ?, x.key, x.step, x.value FROM unnest(?::text[], ?::bigint[], ?::double precision[]) AS x(key, step, value)
	ON CONFLICT (run_id, key) DO UPDATE SET step = EXCLUDED.step, value = EXCLUDED.value
	WHERE run_latest.step <= EXCLUDED.step)
UPDATE runs SET rewrites = rewrites + CASE WHEN ? < COALESCE(last_step, -1) THEN 1 ELSE 0 END,
	last_step = GREATEST(COALESCE(last_step, ?), ?), updated_at = ? WHERE id = ?`

// ingestPostgresCopy is a bulk batch in one transaction. With the run's
// row locked, a batch whose every step is above the run's last step cannot
// meet a stored point (none has a higher step than last_step), so it is
// COPYed, which is twice as fast as the upsert; a batch that reaches back
// is upserted.
func (db *DB) ingestPostgresCopy(ctx context.Context, in *ingest) (int64, error) {
	var n int64
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		var last *int64
		start := time.Now()
		err := t.pg.QueryRow(t.ctx, db.sqlFor("SELECT last_step FROM runs WHERE id = ? AND owner_id = ? FOR UPDATE"),
			in.b.RunID, in.b.OwnerID).Scan(&last)
		db.observe(start)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		n = 1
		if last == nil || in.bottom > *last {
			start = time.Now()
			defer db.observe(start)
			_, err = t.pg.CopyFrom(t.ctx, pgx.Identifier{"metric_points"}, pointCols,
				pgx.CopyFromSlice(len(in.points), func(i int) ([]any, error) {
					p := &in.points[i]
					return []any{in.b.RunID, p.Key, p.Step, p.Value, micros(p.Timestamp)}, nil
				}))
		} else {
			keys, steps, values, ts := pointColumns(in.points)
			err = t.exec(`INSERT INTO metric_points (run_id, key, step, value, ts)
				SELECT ?, x.key, x.step, x.value, x.ts FROM unnest(?::text[], ?::bigint[], ?::double precision[], ?::bigint[]) AS x(key, step, value, ts)
				ON CONFLICT (run_id, key, step) DO UPDATE SET value = EXCLUDED.value, ts = EXCLUDED.ts`, in.b.RunID, keys, steps, values, ts)
		}
		if err != nil {
			return err
		}
		lkeys, lsteps, lvalues, _ := pointColumns(in.latest)
		return t.exec(pgSummarySQL, in.b.RunID, lkeys, lsteps, lvalues, in.bottom, in.top, in.top, in.at, in.b.RunID)
	})
	return n, err
}

// sqliteMetricBatch rows per INSERT: a bigger statement is cheaper per row
// until its parsing dominates; SQLite allows 32766 parameters (6553 rows).
const sqliteMetricBatch = 2000

const (
	sqlitePointUpsert  = " ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, ts = excluded.ts"
	sqliteLatestUpsert = " ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, value = excluded.value WHERE excluded.step >= run_latest.step"
)

var (
	pointCols  = []string{"run_id", "key", "step", "value", "ts"}
	latestCols = []string{"run_id", "key", "step", "value"}
)

func (db *DB) ingestSQLite(ctx context.Context, in *ingest) (int64, error) {
	var n int64
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		var err error
		n, err = t.execCount(`UPDATE runs SET rewrites = rewrites + CASE WHEN ? < COALESCE(last_step, -1) THEN 1 ELSE 0 END,
			last_step = CASE WHEN last_step IS NULL OR last_step < ? THEN ? ELSE last_step END,
			updated_at = ? WHERE id = ? AND owner_id = ?`, in.bottom, in.top, in.top, in.at, in.b.RunID, in.b.OwnerID)
		if err != nil || n == 0 {
			return err
		}
		args := make([]any, 0, min(len(in.points), sqliteMetricBatch)*len(pointCols))
		for start := 0; start < len(in.points); start += sqliteMetricBatch {
			chunk := in.points[start:min(start+sqliteMetricBatch, len(in.points))]
			args = args[:0]
			for i := range chunk {
				p := &chunk[i]
				args = append(args, in.b.RunID, p.Key, p.Step, p.Value, micros(p.Timestamp))
			}
			if err := t.execSQLite(insertValues("metric_points", pointCols, len(chunk))+sqlitePointUpsert, args...); err != nil {
				return err
			}
		}
		args = args[:0]
		for i := range in.latest {
			args = append(args, in.b.RunID, in.latest[i].Key, in.latest[i].Step, in.latest[i].Value)
		}
		return t.execSQLite(insertValues("run_latest", latestCols, len(in.latest))+sqliteLatestUpsert, args...)
	})
	return n, err
}

// execSQLite runs a statement written for SQLite as it is: statements
// whose text varies with the batch size must not go through sqlFor, which
// keeps every text it has seen.
func (t *tx) execSQLite(q string, args ...any) error {
	defer t.db.observe(time.Now())
	_, err := t.sql.ExecContext(t.ctx, q, args...)
	return withCtx(t.ctx, err)
}

// historySQL reads a run's head (owner, status, last step, rewrites) and
// its points in one statement, so that a cache fill is one query. Four
// columns, not more: most of a long read is the server sending a hundred
// thousand rows, and each column is paid on every one. The head row is
// told apart by its step, below zero (a point's is never): it holds
// "owner status", -2 - last_step (-1 for none), 0 and rewrites; the other
// rows are (key, step, value, ts). Rows come in (key, step) order along
// the primary key; MetricHistory does not rely on it for correctness.
func historySQL(nkeys int) string {
	var b strings.Builder
	b.WriteString(`SELECT owner_id || ' ' || status, -2 - COALESCE(last_step, -1), CAST(0 AS DOUBLE PRECISION), rewrites
		FROM runs WHERE id = ?
		UNION ALL
		SELECT * FROM (SELECT key, step, value, ts FROM metric_points WHERE run_id = ? AND step > ?`)
	if nkeys > 0 {
		b.WriteString(" AND key IN (?" + strings.Repeat(", ?", nkeys-1) + ")")
	}
	b.WriteString(" ORDER BY key, step) AS p")
	return b.String()
}

// MetricHistory reads the points of run id after q.AfterStep, of q.Keys
// (all when empty), every series sorted by step and the series by key.
// It does not downsample (q.MaxPoints is the caller's) and does not check
// rights: OwnerID says whose run it is. A run that does not exist is
// ENOTFOUND.
func (db *DB) MetricHistory(ctx context.Context, id string, q modellab.MetricQuery) (modellab.RunHistory, error) {
	args := make([]any, 0, 3+len(q.Keys))
	args = append(args, id, id, q.AfterStep)
	for _, k := range q.Keys {
		args = append(args, k)
	}
	r, err := db.query(ctx, historySQL(len(q.Keys)), args...)
	if err != nil {
		return modellab.RunHistory{}, fail(err, "read metrics")
	}
	defer r.Close()
	h, found, err := scanHistory(r, q)
	if err != nil {
		return modellab.RunHistory{}, err
	}
	if !found {
		return modellab.RunHistory{}, modellab.Errorf(modellab.ENOTFOUND, "run %s not found", id)
	}
	h.RunID = id
	return h, nil
}

// historyBuilder folds the rows of historySQL into a RunHistory.
type historyBuilder struct {
	h     modellab.RunHistory
	q     modellab.MetricQuery
	found bool
	at    map[string]int // key -> index in h.Series
	cur   int            // series of the last point
	// expect is how many points a series may hold (from the run's last
	// step), when one key was asked for: its slice is made that large at
	// once rather than grown and copied twenty times.
	expect int
}

func newHistoryBuilder(q modellab.MetricQuery) *historyBuilder {
	return &historyBuilder{h: modellab.RunHistory{Series: []modellab.MetricSeries{}}, q: q, at: map[string]int{}, cur: -1}
}

// maxExpect bounds the slice made ahead: a sparse key (an eval every
// thousand steps) of a long run must not cost a long slice.
const maxExpect = 1 << 16

// row takes one row of historySQL: the head when step < 0.
func (b *historyBuilder) row(key []byte, step int64, value float64, ts int64) error {
	if step >= 0 {
		b.point(key, step, value, ts)
		return nil
	}
	owner, status, ok := strings.Cut(string(key), " ")
	if !ok {
		return modellab.Errorf(modellab.EINTERNAL, "read metrics: run head %q", key)
	}
	b.found, b.h.OwnerID, b.h.Status, b.h.Rewrites = true, owner, status, ts
	if last := -2 - step; last >= 0 {
		b.h.LastStep = &last
		if len(b.q.Keys) == 1 {
			b.expect = int(max(0, min(last-b.q.AfterStep, maxExpect)))
		}
	}
	return nil
}

// point appends a point. The key's bytes are copied only when a series
// starts: rows come key by key, and a hundred thousand of them must not
// allocate a string each.
func (b *historyBuilder) point(key []byte, step int64, value float64, ts int64) {
	if b.cur < 0 || b.h.Series[b.cur].Key != string(key) {
		i, ok := b.at[string(key)]
		if !ok {
			i = len(b.h.Series)
			b.at[string(key)] = i
			b.h.Series = append(b.h.Series, modellab.MetricSeries{Key: string(key), Points: make([]modellab.MetricSample, 0, b.expect)})
		}
		b.cur = i
	}
	s := &b.h.Series[b.cur]
	s.Points = append(s.Points, modellab.MetricSample{Step: step, Value: value, Timestamp: modellab.UnixMicro(ts)})
}

// finish sorts what the rows' order did not: steps within a series (the
// primary key gives that order, but SQL does not promise it through the
// UNION), and the series by key in byte order.
func (b *historyBuilder) finish() (modellab.RunHistory, bool) {
	bystep := func(x, y modellab.MetricSample) int { return cmp.Compare(x.Step, y.Step) }
	for i := range b.h.Series {
		if !slices.IsSortedFunc(b.h.Series[i].Points, bystep) {
			slices.SortFunc(b.h.Series[i].Points, bystep)
		}
	}
	slices.SortFunc(b.h.Series, func(x, y modellab.MetricSeries) int { return strings.Compare(x.Key, y.Key) })
	return b.h, b.found
}

func scanHistory(r rows, q modellab.MetricQuery) (modellab.RunHistory, bool, error) {
	if pr, ok := r.(pgRows); ok {
		return scanHistoryPG(pr.Rows, q)
	}
	b := newHistoryBuilder(q)
	// RawBytes: no copy; point copies a key when a series starts.
	var key sql.RawBytes
	var step, ts int64
	var value float64
	dest := []any{&key, &step, &value, &ts}
	for r.Next() {
		if err := r.Scan(dest...); err != nil {
			return b.h, false, fail(err, "read metrics")
		}
		if err := b.row(key, step, value, ts); err != nil {
			return b.h, false, err
		}
	}
	if err := r.Err(); err != nil {
		return b.h, false, fail(err, "read metrics")
	}
	h, found := b.finish()
	return h, found, nil
}

// scanHistoryPG reads the rows' raw values: pgx would otherwise build a
// string and box three values for every one of a hundred thousand rows.
func scanHistoryPG(r pgx.Rows, q modellab.MetricQuery) (modellab.RunHistory, bool, error) {
	b := newHistoryBuilder(q)
	for r.Next() {
		v := r.RawValues()
		fd := r.FieldDescriptions()
		if len(v) != 4 || len(fd) != 4 {
			return b.h, false, modellab.Errorf(modellab.EINTERNAL, "read metrics: %d columns", len(v))
		}
		step, err1 := rawInt(v[1], fd[1].Format)
		value, err2 := rawFloat(v[2], fd[2].Format)
		ts, err3 := rawInt(v[3], fd[3].Format)
		if err := errors.Join(err1, err2, err3); err != nil {
			return b.h, false, modellab.WrapError(modellab.EINTERNAL, err, "read metrics")
		}
		if err := b.row(v[0], step, value, ts); err != nil {
			return b.h, false, err
		}
	}
	if err := r.Err(); err != nil {
		return b.h, false, fail(err, "read metrics")
	}
	h, found := b.finish()
	return h, found, nil
}

// rawInt decodes a BIGINT in either wire format.
func rawInt(b []byte, format int16) (int64, error) {
	if format == pgx.BinaryFormatCode {
		if len(b) != 8 {
			return 0, fmt.Errorf("bigint of %d bytes", len(b))
		}
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	return strconv.ParseInt(string(b), 10, 64)
}

// rawFloat decodes a DOUBLE PRECISION in either wire format.
func rawFloat(b []byte, format int16) (float64, error) {
	if format == pgx.BinaryFormatCode {
		if len(b) != 8 {
			return 0, fmt.Errorf("double of %d bytes", len(b))
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	}
	return strconv.ParseFloat(string(b), 64)
}
