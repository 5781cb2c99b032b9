package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/modellab/modellab"
)

// historySQL reads a run's head (owner, status, last step, rewrites) and
// its chunks in one statement, so that a cache fill is one query. The head
// row is told apart by its chunk, below zero (a chunk's is never): it
// holds "owner status", -2 - last_step (-1 for none), no data and
// rewrites; the other rows are (key, chunk, data, hi). A chunk whose
// highest step is not after the cursor holds nothing to read; the bound on
// the chunk lets the primary key skip those of a long run that a poll
// (the cursor at the last step) does not need. Rows come in
// (key, chunk) order along the primary key; MetricHistory does not rely on
// it for correctness.
func historySQL(nkeys int) string {
	var b strings.Builder
	b.WriteString(`SELECT owner_id || ' ' || status, -2 - COALESCE(last_step, -1), CAST(NULL AS BYTEA), rewrites
		FROM runs WHERE id = ?
		UNION ALL
		SELECT * FROM (SELECT key, chunk, data, hi FROM metric_chunks WHERE run_id = ? AND chunk >= ? AND hi > ?`)
	if nkeys > 0 {
		b.WriteString(" AND key IN (?" + strings.Repeat(", ?", nkeys-1) + ")")
	}
	b.WriteString(" ORDER BY key, chunk) AS c")
	return b.String()
}

// MetricHistory reads the points of run id after q.AfterStep, of q.Keys
// (all when empty), every series sorted by step and the series by key.
// It does not downsample (q.MaxPoints is the caller's) and does not check
// rights: OwnerID says whose run it is. A run that does not exist is
// ENOTFOUND.
func (db *DB) MetricHistory(ctx context.Context, id string, q modellab.MetricQuery) (modellab.RunHistory, error) {
	args := make([]any, 0, 4+len(q.Keys))
	args = append(args, id, id, chunkOf(max(q.AfterStep+1, 0)), q.AfterStep)
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

// row takes one row of historySQL: the head when chunk < 0.
func (b *historyBuilder) row(key []byte, chunk int64, data []byte, aux int64) error {
	if chunk >= 0 {
		return b.chunk(key, data)
	}
	owner, status, ok := strings.Cut(string(key), " ")
	if !ok {
		return modellab.Errorf(modellab.EINTERNAL, "read metrics: run head %q", key)
	}
	b.found, b.h.OwnerID, b.h.Status, b.h.Rewrites = true, owner, status, aux
	if last := -2 - chunk; last >= 0 {
		b.h.LastStep = &last
		if len(b.q.Keys) == 1 {
			b.expect = int(max(0, min(last-b.q.AfterStep, maxExpect)))
		}
	}
	return nil
}

// chunk appends a chunk's points after the cursor. The key's bytes are
// copied only when a series starts: rows come key by key.
func (b *historyBuilder) chunk(key, data []byte) error {
	if err := checkChunk(data); err != nil {
		return modellab.WrapError(modellab.EINTERNAL, err, "read metrics")
	}
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
	for i := range len(data) / recordSize {
		step, value, ts := record(data, i)
		if step > b.q.AfterStep {
			s.Points = append(s.Points, modellab.MetricSample{Step: step, Value: value, Timestamp: modellab.UnixMicro(ts)})
		}
	}
	return nil
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
	// RawBytes: no copy; chunk copies a key when a series starts.
	var key, data sql.RawBytes
	var chunk, aux int64
	dest := []any{&key, &chunk, &data, &aux}
	for r.Next() {
		if err := r.Scan(dest...); err != nil {
			return b.h, false, fail(err, "read metrics")
		}
		if err := b.row(key, chunk, data, aux); err != nil {
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
// string and copy the data of every row.
func scanHistoryPG(r pgx.Rows, q modellab.MetricQuery) (modellab.RunHistory, bool, error) {
	b := newHistoryBuilder(q)
	for r.Next() {
		v := r.RawValues()
		fd := r.FieldDescriptions()
		if len(v) != 4 || len(fd) != 4 {
			return b.h, false, modellab.Errorf(modellab.EINTERNAL, "read metrics: %d columns", len(v))
		}
		chunk, err1 := rawInt(v[1], fd[1].Format)
		data, err2 := rawBytea(v[2], fd[2].Format)
		aux, err3 := rawInt(v[3], fd[3].Format)
		if err := errors.Join(err1, err2, err3); err != nil {
			return b.h, false, modellab.WrapError(modellab.EINTERNAL, err, "read metrics")
		}
		if err := b.row(v[0], chunk, data, aux); err != nil {
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

// rawBytea decodes a BYTEA in either wire format (text is hex).
func rawBytea(b []byte, format int16) ([]byte, error) {
	if format == pgx.BinaryFormatCode || b == nil {
		return b, nil
	}
	h, ok := bytes.CutPrefix(b, []byte(`\x`))
	if !ok {
		return nil, fmt.Errorf("bytea text %.10q", b)
	}
	out := make([]byte, hex.DecodedLen(len(h)))
	_, err := hex.Decode(out, h)
	return out, err
}
