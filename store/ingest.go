package store

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/modellab/modellab"
	"modernc.org/sqlite"
)

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
	groups []pointGroup // points cut into chunks
	top    int64        // highest step
	bottom int64        // lowest step
	at     int64        // unix micros
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
	in.groups = groupChunks(in.points)
	var n int64
	var err error
	switch {
	case db.pool == nil:
		n, err = db.ingestSQLite(ctx, in)
	case len(in.points) < pgTxMin:
		n, err = db.ingestPostgresAppend(ctx, in)
		if errors.Is(err, errNotAppend) {
			n, err = db.ingestTx(ctx, in)
		}
	default:
		n, err = db.ingestTx(ctx, in)
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

// pgTxMin points and more go through ingestTx on PostgreSQL at once: a
// bulk batch reaches back into stored chunks more often than a trainer's
// step, and one more round trip is nothing next to its size.
const pgTxMin = 1000

// ingestPostgresSQL is the common ingest (a trainer logging a step at a
// time, every point above the stored ones of its chunk) in one statement,
// atomic on its own and one round trip: lock the run if it is the owner's,
// append the points to their chunks, upsert the latest values, move
// last_step. A chunk the batch reaches back into cannot be appended to:
// its data becomes NULL, which the NOT NULL constraint refuses, and the
// whole statement with it; the caller then merges in a transaction. The
// data-modifying CTEs run whether or not the outer statement reads them;
// all of them write nothing when r is empty.
const ingestPostgresSQL = `WITH r AS (SELECT id FROM runs WHERE id = ? AND owner_id = ? FOR UPDATE),
c AS (INSERT INTO metric_chunks (run_id, key, chunk, lo, hi, data)
	SELECT r.id, x.key, x.chunk, x.lo, x.hi, x.data
	FROM r, unnest(?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bytea[]) AS x(key, chunk, lo, hi, data)
	ON CONFLICT (run_id, key, chunk) DO UPDATE SET hi = EXCLUDED.hi,
		data = CASE WHEN EXCLUDED.lo > metric_chunks.hi THEN metric_chunks.data || EXCLUDED.data END),
l AS (INSERT INTO run_latest (run_id, key, step, value)
	SELECT r.id, x.key, x.step, x.value
	FROM r, unnest(?::text[], ?::bigint[], ?::double precision[]) AS x(key, step, value)
	ON CONFLICT (run_id, key) DO UPDATE SET step = EXCLUDED.step, value = EXCLUDED.value
	WHERE run_latest.step <= EXCLUDED.step)
UPDATE runs SET rewrites = rewrites + CASE WHEN ? < COALESCE(last_step, -1) THEN 1 ELSE 0 END,
	last_step = GREATEST(COALESCE(last_step, ?), ?), updated_at = ? WHERE id IN (SELECT id FROM r)`

// errNotAppend is ingestPostgresSQL refusing a batch that reaches back.
var errNotAppend = errors.New("the batch reaches back into a stored chunk")

// pointColumns splits points into the column arrays unnest takes.
func pointColumns(points []modellab.MetricPoint) (keys []string, steps []int64, values []float64) {
	keys, steps, values = make([]string, len(points)), make([]int64, len(points)), make([]float64, len(points))
	for i := range points {
		keys[i], steps[i], values[i] = points[i].Key, points[i].Step, points[i].Value
	}
	return keys, steps, values
}

// newChunks encodes every group as a chunk of its own.
func newChunks(groups []pointGroup) []chunkRow {
	out := make([]chunkRow, len(groups))
	for i := range groups {
		out[i] = groups[i].row()
	}
	return out
}

func (db *DB) ingestPostgresAppend(ctx context.Context, in *ingest) (int64, error) {
	keys, chunks, los, his, data := chunkColumns(newChunks(in.groups))
	lkeys, lsteps, lvalues := pointColumns(in.latest)
	n, err := db.exec(ctx, ingestPostgresSQL, in.b.RunID, in.b.OwnerID, keys, chunks, los, his, data,
		lkeys, lsteps, lvalues, in.bottom, in.top, in.top, in.at)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23502" && pe.TableName == "metric_chunks" && pe.ColumnName == "data" {
		return 0, errNotAppend
	}
	return n, err
}

// ingestTx is the general ingest on PostgreSQL: in a transaction that
// holds the run's row, read the stored chunks the batch falls into, merge,
// write them back and the summary.
func (db *DB) ingestTx(ctx context.Context, in *ingest) (int64, error) {
	var n int64
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		var last *int64
		err := t.get("SELECT last_step FROM runs WHERE id = ? AND owner_id = ? FOR UPDATE", []any{in.b.RunID, in.b.OwnerID}, &last)
		if errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		n = 1
		rows, err := t.mergeChunks(in, last)
		if err != nil {
			return err
		}
		if err := t.upsertChunks(in.b.RunID, rows); err != nil {
			return err
		}
		return t.summary(in)
	})
	return n, err
}

type chunkKey struct {
	key   string
	chunk int64
}

// mergeChunks is the batch's chunks as they are to be written: merged
// with the stored ones. Only a chunk at or below the one of the run's last
// step can be stored, so a batch that only appends reads at most one
// chunk a key.
func (t *tx) mergeChunks(in *ingest, last *int64) ([]chunkRow, error) {
	var maybe []chunkKey
	if last != nil {
		for _, g := range in.groups {
			if g.chunk <= chunkOf(*last) {
				maybe = append(maybe, chunkKey{g.key, g.chunk})
			}
		}
	}
	stored, err := t.storedChunks(in.b.RunID, maybe)
	if err != nil {
		return nil, err
	}
	out := make([]chunkRow, len(in.groups))
	for i := range in.groups {
		g := &in.groups[i]
		data, ok := stored[chunkKey{g.key, g.chunk}]
		if !ok {
			out[i] = g.row()
			continue
		}
		if out[i], err = g.merge(data); err != nil {
			return nil, modellab.WrapError(modellab.EINTERNAL, err, "run %s, key %s", in.b.RunID, g.key)
		}
	}
	return out, nil
}

// storedChunks reads the data of those of the chunks of run that exist.
func (t *tx) storedChunks(run string, want []chunkKey) (map[chunkKey][]byte, error) {
	out := make(map[chunkKey][]byte, len(want))
	if len(want) == 0 {
		return out, nil
	}
	defer t.db.observe(time.Now())
	if t.pg != nil {
		keys, chunks := make([]string, len(want)), make([]int64, len(want))
		for i, w := range want {
			keys[i], chunks[i] = w.key, w.chunk
		}
		r, err := t.pg.Query(t.ctx, t.db.sqlFor(`SELECT c.key, c.chunk, c.data FROM metric_chunks c
			JOIN unnest(?::text[], ?::bigint[]) AS x(key, chunk) ON c.key = x.key AND c.chunk = x.chunk
			WHERE c.run_id = ?`), keys, chunks, run)
		if err != nil {
			return nil, withCtx(t.ctx, err)
		}
		return out, collectChunks(pgRows{r, func() {}}, out)
	}
	for start := 0; start < len(want); start += sqliteChunkBatch {
		part := want[start:min(start+sqliteChunkBatch, len(want))]
		args := make([]any, 0, 1+2*len(part))
		args = append(args, run)
		for _, w := range part {
			args = append(args, w.key, w.chunk)
		}
		r, err := t.sql.QueryContext(t.ctx, "SELECT key, chunk, data FROM metric_chunks WHERE run_id = ? AND (key, chunk) IN (VALUES (?, ?)"+
			strings.Repeat(", (?, ?)", len(part)-1)+")", args...)
		if err != nil {
			return nil, withCtx(t.ctx, err)
		}
		if err := collectChunks(&sqlRows{Rows: r, cancel: func() {}}, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func collectChunks(r rows, out map[chunkKey][]byte) error {
	defer r.Close()
	for r.Next() {
		var k chunkKey
		var data []byte
		if err := r.Scan(&k.key, &k.chunk, &data); err != nil {
			return err
		}
		out[k] = data
	}
	return r.Err()
}

// sqliteChunkBatch rows per statement on SQLite, under its 32,766
// parameters (six a row written, two a row read).
const sqliteChunkBatch = 2000

const pgChunkUpsert = `INSERT INTO metric_chunks (run_id, key, chunk, lo, hi, data)
	SELECT ?, x.key, x.chunk, x.lo, x.hi, x.data
	FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bytea[]) AS x(key, chunk, lo, hi, data)
	ON CONFLICT (run_id, key, chunk) DO UPDATE SET lo = EXCLUDED.lo, hi = EXCLUDED.hi, data = EXCLUDED.data`

const sqliteChunkUpsert = " ON CONFLICT (run_id, key, chunk) DO UPDATE SET lo = excluded.lo, hi = excluded.hi, data = excluded.data"

// upsertChunks writes the chunks whole (PostgreSQL).
func (t *tx) upsertChunks(run string, rows []chunkRow) error {
	keys, chunks, los, his, data := chunkColumns(rows)
	return t.exec(pgChunkUpsert, run, keys, chunks, los, his, data)
}

// writeChunksSQLite inserts the chunks, doing onConflict with a stored one.
func (t *tx) writeChunksSQLite(run string, rows []chunkRow, onConflict string) error {
	args := make([]any, 0, min(len(rows), sqliteChunkBatch)*len(chunkCols))
	for start := 0; start < len(rows); start += sqliteChunkBatch {
		part := rows[start:min(start+sqliteChunkBatch, len(rows))]
		args = args[:0]
		for i := range part {
			c := &part[i]
			args = append(args, run, c.key, c.chunk, c.lo, c.hi, c.data)
		}
		if err := t.execSQLite(insertValues("metric_chunks", chunkCols, len(part))+onConflict, args...); err != nil {
			return err
		}
	}
	return nil
}

// pgSummarySQL upserts the latest values and moves last_step.
const pgSummarySQL = `WITH l AS (INSERT INTO run_latest (run_id, key, step, value)
	SELECT ?, x.key, x.step, x.value FROM unnest(?::text[], ?::bigint[], ?::double precision[]) AS x(key, step, value)
	ON CONFLICT (run_id, key) DO UPDATE SET step = EXCLUDED.step, value = EXCLUDED.value
	WHERE run_latest.step <= EXCLUDED.step)
UPDATE runs SET rewrites = rewrites + CASE WHEN ? < COALESCE(last_step, -1) THEN 1 ELSE 0 END,
	last_step = GREATEST(COALESCE(last_step, ?), ?), updated_at = ? WHERE id = ?`

const sqliteLatestUpsert = " ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, value = excluded.value WHERE excluded.step >= run_latest.step"

var latestCols = []string{"run_id", "key", "step", "value"}

// summary keeps the run's latest values and last step, and counts a
// batch that reaches back below the last step as a rewrite.
func (t *tx) summary(in *ingest) error {
	lkeys, lsteps, lvalues := pointColumns(in.latest)
	return t.exec(pgSummarySQL, in.b.RunID, lkeys, lsteps, lvalues, in.bottom, in.top, in.top, in.at, in.b.RunID)
}

// ingestSQLite is the ingest in SQLite's transaction, which holds the
// whole database: three statements, as a trainer's step costs them. The
// run's summary goes first and is the owner check; the chunks are then
// appended to in one upsert, as on PostgreSQL; only a batch that reaches
// back into a stored chunk, which that upsert refuses, reads the chunks
// and merges (a refused statement leaves SQLite's transaction as it was,
// and a part of the batch already appended merges again unchanged).
func (db *DB) ingestSQLite(ctx context.Context, in *ingest) (int64, error) {
	var n int64
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		var err error
		n, err = t.execN(`UPDATE runs SET rewrites = rewrites + CASE WHEN ? < COALESCE(last_step, -1) THEN 1 ELSE 0 END,
			last_step = CASE WHEN last_step IS NULL OR last_step < ? THEN ? ELSE last_step END,
			updated_at = ? WHERE id = ? AND owner_id = ?`, in.bottom, in.top, in.top, in.at, in.b.RunID, in.b.OwnerID)
		if err != nil || n == 0 {
			return err
		}
		err = t.writeChunksSQLite(in.b.RunID, newChunks(in.groups), sqliteChunkAppend)
		if isNotAppendSQLite(err) {
			unknown := int64(math.MaxInt64) // any chunk may be stored
			var rows []chunkRow
			if rows, err = t.mergeChunks(in, &unknown); err == nil {
				err = t.writeChunksSQLite(in.b.RunID, rows, sqliteChunkUpsert)
			}
		}
		if err != nil {
			return err
		}
		args := make([]any, 0, len(in.latest)*len(latestCols))
		for i := range in.latest {
			args = append(args, in.b.RunID, in.latest[i].Key, in.latest[i].Step, in.latest[i].Value)
		}
		return t.execSQLite(insertValues("run_latest", latestCols, len(in.latest))+sqliteLatestUpsert, args...)
	})
	return n, err
}

// sqliteChunkAppend is ingestPostgresSQL's append on SQLite; || of two
// blobs is their bytes, made a blob again by the CAST.
const sqliteChunkAppend = ` ON CONFLICT (run_id, key, chunk) DO UPDATE SET hi = excluded.hi,
	data = CASE WHEN excluded.lo > metric_chunks.hi THEN CAST(metric_chunks.data || excluded.data AS BLOB) END`

// sqliteNotNull is SQLITE_CONSTRAINT_NOTNULL.
const sqliteNotNull = 1299

func isNotAppendSQLite(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqliteNotNull && strings.Contains(se.Error(), "metric_chunks.data")
}

// execSQLite runs a statement written for SQLite as it is: statements
// whose text varies with the batch size must not go through sqlFor, which
// keeps every text it has seen.
func (t *tx) execSQLite(q string, args ...any) error {
	defer t.db.observe(time.Now())
	_, err := t.sql.ExecContext(t.ctx, q, args...)
	return withCtx(t.ctx, err)
}
