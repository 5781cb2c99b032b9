package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/modellab/modellab"
)

// Metric points are stored in chunks: one row per run, key and
// chunkSteps consecutive steps, whose data holds the chunk's points as
// fixed records in step order. A row per point made the uncached read of a
// 100,000-point series cost PostgreSQL 100,000 rows to produce and send,
// which alone took longer than the read's whole budget; in chunks it is
// 1,600 rows of packed bytes.
//
// A record is the step, the value's bits and the timestamp (unix
// microseconds), each eight bytes little endian. Steps within a chunk are
// distinct: a repeated (key, step) replaces the stored point.
const (
	// chunkSteps is 64 so that a full chunk (1,536 bytes of data) stays
	// under PostgreSQL's TOAST threshold (about 2 kB a row): stored
	// inline and uncompressed, read without a second lookup.
	chunkSteps = 64
	recordSize = 24
)

// chunkOf is the chunk of a step.
func chunkOf(step int64) int64 { return step / chunkSteps }

// pointGroup is the points of a batch that fall in one chunk, sorted by
// step and distinct.
type pointGroup struct {
	key    string
	chunk  int64
	points []modellab.MetricPoint
}

// groupChunks sorts deduplicated points by key and step and cuts them
// into chunks, in (key, chunk) order. The input is left alone.
func groupChunks(points []modellab.MetricPoint) []pointGroup {
	sorted := slices.Clone(points)
	slices.SortFunc(sorted, func(a, b modellab.MetricPoint) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return cmp.Compare(a.Step, b.Step)
	})
	var out []pointGroup
	for i := 0; i < len(sorted); {
		c := chunkOf(sorted[i].Step)
		j := i + 1
		for j < len(sorted) && sorted[j].Key == sorted[i].Key && chunkOf(sorted[j].Step) == c {
			j++
		}
		out = append(out, pointGroup{key: sorted[i].Key, chunk: c, points: sorted[i:j]})
		i = j
	}
	return out
}

// chunkRow is a row of metric_chunks: lo and hi are its lowest and
// highest step.
type chunkRow struct {
	key    string
	chunk  int64
	lo, hi int64
	data   []byte
}

func appendRecord(dst []byte, step int64, value float64, ts int64) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(step))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(value))
	return binary.LittleEndian.AppendUint64(dst, uint64(ts))
}

// record decodes the i-th record of data.
func record(data []byte, i int) (step int64, value float64, ts int64) {
	r := data[i*recordSize : (i+1)*recordSize]
	return int64(binary.LittleEndian.Uint64(r)), math.Float64frombits(binary.LittleEndian.Uint64(r[8:])),
		int64(binary.LittleEndian.Uint64(r[16:]))
}

// checkChunk reports stored data that is not whole records.
func checkChunk(data []byte) error {
	if len(data)%recordSize != 0 {
		return fmt.Errorf("metric chunk of %d bytes", len(data))
	}
	return nil
}

// row encodes the group alone, as a new chunk.
func (g *pointGroup) row() chunkRow {
	data := make([]byte, 0, len(g.points)*recordSize)
	for i := range g.points {
		p := &g.points[i]
		data = appendRecord(data, p.Step, p.Value, micros(p.Timestamp))
	}
	return chunkRow{key: g.key, chunk: g.chunk, lo: g.points[0].Step, hi: g.points[len(g.points)-1].Step, data: data}
}

// merge folds the group into a stored chunk's data: both are in step
// order, and a point of the group replaces a stored one of its step.
func (g *pointGroup) merge(stored []byte) (chunkRow, error) {
	if err := checkChunk(stored); err != nil {
		return chunkRow{}, err
	}
	n := len(stored) / recordSize
	data := make([]byte, 0, len(stored)+len(g.points)*recordSize)
	i, j := 0, 0
	for i < n || j < len(g.points) {
		var step int64
		if i < n {
			step, _, _ = record(stored, i)
		}
		switch {
		case i < n && (j == len(g.points) || step < g.points[j].Step):
			data = append(data, stored[i*recordSize:(i+1)*recordSize]...)
			i++
		default:
			if i < n && step == g.points[j].Step {
				i++ // replaced
			}
			p := &g.points[j]
			data = appendRecord(data, p.Step, p.Value, micros(p.Timestamp))
			j++
		}
	}
	lo, _, _ := record(data, 0)
	hi, _, _ := record(data, len(data)/recordSize-1)
	return chunkRow{key: g.key, chunk: g.chunk, lo: lo, hi: hi, data: data}, nil
}

// chunkColumns splits chunk rows into the column arrays unnest takes.
func chunkColumns(rs []chunkRow) (keys []string, chunks, los, his []int64, data [][]byte) {
	keys, chunks, los, his, data = make([]string, len(rs)), make([]int64, len(rs)), make([]int64, len(rs)), make([]int64, len(rs)), make([][]byte, len(rs))
	for i := range rs {
		keys[i], chunks[i], los[i], his[i], data[i] = rs[i].key, rs[i].chunk, rs[i].lo, rs[i].hi, rs[i].data
	}
	return keys, chunks, los, his, data
}

var chunkCols = []string{"run_id", "key", "chunk", "lo", "hi", "data"}

// chunkStream cuts points sorted by (run, key, step), one at a time, into
// chunk rows: the seed and the migration write points too many to hold.
type chunkStream struct {
	run, key string
	chunk    int64
	lo, hi   int64
	data     []byte
}

// add takes the next point; it returns the row it completed, if any.
func (s *chunkStream) add(run, key string, step int64, value float64, ts int64) ([]any, bool) {
	var done []any
	if len(s.data) > 0 && (run != s.run || key != s.key || chunkOf(step) != s.chunk) {
		done = s.flush()
	}
	if len(s.data) == 0 {
		s.run, s.key, s.chunk, s.lo = run, key, chunkOf(step), step
	}
	s.hi = step
	s.data = appendRecord(s.data, step, value, ts)
	return done, done != nil
}

// flush returns the row being built, if any, and starts anew.
func (s *chunkStream) flush() []any {
	if len(s.data) == 0 {
		return nil
	}
	row := []any{s.run, s.key, s.chunk, s.lo, s.hi, s.data}
	s.data = nil
	return row
}
