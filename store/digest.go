package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/modellab/modellab"
)

// Daily digests (usage_daily_digest): per user and UTC day, one row that
// holds the day's per-model sums and its all-models latency histogram,
// each packed in a blob. They hold nothing the daily rollups do not; they
// exist for the read that every analytics page makes, every model of one
// user over whole days, which from usage_daily and latency_daily is a row
// per model and day plus a row per bucket and day (about 2,900 rows for a
// week of the seed's heaviest user) and from the digests one row per day.
// Ingest keeps them in the same transaction as the rollups, by reading,
// merging and rewriting each touched day's row (upsertDigests).

// digestModel is one model's sums in a digest.
type digestModel struct {
	model string
	sums  rollupSums
}

// digestFormat is the first byte of both blobs, so that a later layout can
// be told apart from this one.
const digestFormat = 1

var errDigest = errors.New("malformed daily digest")

func (s *rollupSums) add(o rollupSums) {
	s.requests += o.requests
	s.errors += o.errors
	s.input += o.input
	s.output += o.output
	s.costNanos += o.costNanos
	s.latencyUS += o.latencyUS
}

func (s *rollupSums) fields() [6]*int64 {
	return [6]*int64{&s.requests, &s.errors, &s.input, &s.output, &s.costNanos, &s.latencyUS}
}

// encodeModels packs models, which are in byte order of their names: a
// count, then per model its name and its six sums as varints.
func encodeModels(models []digestModel) []byte {
	b := binary.AppendUvarint([]byte{digestFormat}, uint64(len(models)))
	for i := range models {
		m := &models[i]
		b = binary.AppendUvarint(b, uint64(len(m.model)))
		b = append(b, m.model...)
		for _, f := range m.sums.fields() {
			b = binary.AppendVarint(b, *f)
		}
	}
	return b
}

// eachModel calls fn with every model of a models blob, its name aliasing
// the blob (fn copies it to keep it). The count is not trusted for
// allocation: a corrupt blob fails, it does not allocate.
func eachModel(b []byte, fn func(name []byte, s rollupSums)) error {
	if len(b) == 0 || b[0] != digestFormat {
		return errDigest
	}
	n, i := uvarintAt(b, 1)
	for k := uint64(0); k < n && i >= 0; k++ {
		var l uint64
		if l, i = uvarintAt(b, i); i < 0 || l > uint64(len(b)-i) {
			return errDigest
		}
		name := b[i : i+int(l)]
		var s rollupSums
		if s, i = sumsAt(b, i+int(l)); i >= 0 {
			fn(name, s)
		}
	}
	if i != len(b) {
		return errDigest
	}
	return nil
}

// decodeModels unpacks a models blob.
func decodeModels(b []byte) ([]digestModel, error) {
	var out []digestModel
	err := eachModel(b, func(name []byte, s rollupSums) {
		out = append(out, digestModel{string(name), s})
	})
	return out, err
}

// mergeModels adds b to a; both and the result are in byte order.
func mergeModels(a, b []digestModel) []digestModel {
	out := make([]digestModel, 0, max(len(a), len(b)))
	for len(a) > 0 && len(b) > 0 {
		switch c := strings.Compare(a[0].model, b[0].model); {
		case c < 0:
			out, a = append(out, a[0]), a[1:]
		case c > 0:
			out, b = append(out, b[0]), b[1:]
		default:
			m := a[0]
			m.sums.add(b[0].sums)
			out, a, b = append(out, m), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// encodeLatency packs a histogram: a count, then per bucket, in bucket
// order, the bucket's distance from the previous one and its count.
func encodeLatency(h latencyCounts) []byte {
	b := binary.AppendUvarint([]byte{digestFormat}, uint64(len(h)))
	prev := int64(0)
	for _, k := range slices.Sorted(maps.Keys(h)) {
		b = binary.AppendVarint(b, k-prev)
		b = binary.AppendVarint(b, h[k])
		prev = k
	}
	return b
}

// eachBucket calls fn with every bucket of a latency blob, in order.
func eachBucket(b []byte, fn func(bucket, n int64)) error {
	if len(b) == 0 || b[0] != digestFormat {
		return errDigest
	}
	n, i := uvarintAt(b, 1)
	k := int64(0)
	for j := uint64(0); j < n && i >= 0; j++ {
		var d, c int64
		d, i = varintAt(b, i)
		if c, i = varintAt(b, i); i >= 0 {
			k += d
			fn(k, c)
		}
	}
	if i != len(b) {
		return errDigest
	}
	return nil
}

// addLatency adds a latency blob's counts to h.
func addLatency(h latencyCounts, b []byte) error {
	return eachBucket(b, func(k, n int64) { h[k] += n })
}

// digestKey is one row of usage_daily_digest.
type digestKey struct {
	user   int32
	period int64
}

// digestRows are the digests of r's events: per user and day, the models'
// daily sums in byte order of their names and the all-models histogram.
type digestRows struct {
	keys    []digestKey
	models  map[digestKey][]digestModel
	latency map[digestKey]latencyCounts
}

func (r *rollups) digests() digestRows {
	d := digestRows{models: map[digestKey][]digestModel{}, latency: map[digestKey]latencyCounts{}}
	all := r.id(allModels)
	for k, s := range r.daily.sums {
		if k.model != all {
			dk := digestKey{k.user, k.period}
			d.models[dk] = append(d.models[dk], digestModel{r.names[k.model], *s})
		}
	}
	for k, n := range r.daily.latency {
		if k.model == all {
			dk := digestKey{k.user, k.period}
			if d.latency[dk] == nil {
				d.latency[dk] = latencyCounts{}
				d.keys = append(d.keys, dk) // every event counts under allModels
			}
			d.latency[dk][k.bucket] += n
		}
	}
	for _, ms := range d.models {
		slices.SortFunc(ms, func(a, b digestModel) int { return strings.Compare(a.model, b.model) })
	}
	rank := r.ranks()
	slices.SortFunc(d.keys, func(a, b digestKey) int {
		return cmp.Or(cmp.Compare(rank[a.user], rank[b.user]), cmp.Compare(a.period, b.period))
	})
	return d
}

var digestCols = []string{"user_id", "period", "models", "latency"}

// digestTable is the digests as rows to load.
func (r *rollups) digestTable() rollupTable {
	d := r.digests()
	return rollupTable{"usage_daily_digest", digestCols, 2, len(d.keys), func(i int) []any {
		k := d.keys[i]
		return []any{r.names[k.user], k.period, encodeModels(d.models[k]), encodeLatency(d.latency[k])}
	}}
}

// loadTables are every table the rollups fill, as the seed loads them.
func (r *rollups) loadTables() []rollupTable {
	return append(r.tables(), r.digestTable())
}

// digestBatch rows per statement: four parameters a row written, two read.
const digestBatch = 500

// upsertDigests adds r's digests to the stored ones: each day's stored
// row is read, merged with the new sums and written whole. Concurrent
// ingests cannot lose each other's sums: upsertRollups, before this, has
// updated every touched day's all-models usage_daily row, whose row lock
// the transaction holds until it ends, so two transactions that touch the
// same day go through here one after the other, and the second reads
// what the first wrote (each statement of READ COMMITTED sees every
// commit before it). SQLite runs one write transaction at a time.
func upsertDigests(t *tx, r *rollups) error {
	d := r.digests()
	for start := 0; start < len(d.keys); start += digestBatch {
		keys := d.keys[start:min(start+digestBatch, len(d.keys))]
		stored, err := t.storedDigests(r, keys)
		if err != nil {
			return err
		}
		args := make([]any, 0, len(keys)*len(digestCols))
		for _, k := range keys {
			models, lat := d.models[k], d.latency[k]
			if s, ok := stored[k]; ok {
				old, err := decodeModels(s.models)
				if err == nil {
					err = addLatency(lat, s.latency)
				}
				if err != nil {
					return fmt.Errorf("user %s, day %d: %w", r.names[k.user], k.period, err)
				}
				models = mergeModels(old, models)
			}
			args = append(args, r.names[k.user], k.period, encodeModels(models), encodeLatency(lat))
		}
		if err := t.exec(insertValues("usage_daily_digest", digestCols, len(keys))+
			" ON CONFLICT (user_id, period) DO UPDATE SET models = excluded.models, latency = excluded.latency", args...); err != nil {
			return err
		}
	}
	return nil
}

type digestBlobs struct{ models, latency []byte }

// storedDigests reads those of keys' digests that exist: on PostgreSQL
// by arrays, one statement text whatever the number of keys (each count
// of placeholders would be a prepared statement of its own).
func (t *tx) storedDigests(r *rollups, keys []digestKey) (map[digestKey]digestBlobs, error) {
	users, periods := make([]string, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		users[i], periods[i] = r.names[k.user], k.period
	}
	var rs rows
	var err error
	if t.pg != nil {
		rs, err = t.query(`SELECT d.user_id, d.period, d.models, d.latency FROM usage_daily_digest d
			JOIN unnest(?::text[], ?::bigint[]) AS x(user_id, period) ON d.user_id = x.user_id AND d.period = x.period`, users, periods)
	} else {
		args := make([]any, 0, 2*len(keys))
		for i := range keys {
			args = append(args, users[i], periods[i])
		}
		rs, err = t.query(`SELECT user_id, period, models, latency FROM usage_daily_digest WHERE (user_id, period) IN (VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?), ", len(keys)), ", ")+`)`, args...)
	}
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := make(map[digestKey]digestBlobs, len(keys))
	for rs.Next() {
		var user string
		var period int64
		var b digestBlobs
		if err := rs.Scan(&user, &period, &b.models, &b.latency); err != nil {
			return nil, err
		}
		out[digestKey{r.id(user), period}] = b
	}
	return out, rs.Err()
}

// denseBuckets is the bucket range summed in an array when histograms
// are read: every latency an event may have (TestDenseBuckets); a bucket
// outside it, which validation keeps out, is summed in a map.
const denseBuckets = 1300

// dayDigests is what one statement gives an analytics read of every
// model: the sums of the daily digests of its whole days, and the names
// of every model the user has events of.
type dayDigests struct {
	models *modelTotals
	hist   *bucketCounts
	days   []daySums
	names  *modelNameRows
}

// daySums is one digest's day and its sums over all models.
type daySums struct {
	period int64
	sums   rollupSums
}

// modelNameRows are (id, name) pairs copied into one buffer: the models
// they are for are known only when the other parts of the read are in.
type modelNameRows struct {
	buf  []byte
	ends [][2]int // end of the id, end of the name
}

var nameRowsPool = sync.Pool{New: func() any { return new(modelNameRows) }}

// release empties n for another read; n must not be used after.
func (n *modelNameRows) release() {
	if cap(n.buf) > 1<<20 {
		return
	}
	n.buf, n.ends = n.buf[:0], n.ends[:0]
	nameRowsPool.Put(n)
}

func (n *modelNameRows) add(id, name []byte) {
	n.buf = append(n.buf, id...)
	idEnd := len(n.buf)
	n.buf = append(n.buf, name...)
	n.ends = append(n.ends, [2]int{idEnd, len(n.buf)})
}

// of returns the names of t's models, by index; "" for those without one.
// They are cut from one string, made once, rather than made one by one.
func (n *modelNameRows) of(t *modelTotals) []string {
	out := make([]string, len(t.ids))
	all := string(n.buf)
	start := 0
	for _, e := range n.ends {
		if i, ok := t.index[all[start:e[0]]]; ok {
			out[i] = all[e[0]:e[1]]
		}
		start = e[1]
	}
	return out
}

// digestsAndNames reads user's digests of the whole days in r and the
// names of their models in one statement: a read of every model would
// otherwise wait for a second round trip, the names of the ids it found,
// and hold its database slot that much longer. A row with a day is a
// digest; one without is a model the user may see (global or their own).
func (db *DB) digestsAndNames(ctx context.Context, user string, r msRange) (*dayDigests, error) {
	rows, err := db.query(ctx, db.digestsAndNamesSQL(), user, r.from, r.to, user, user)
	if err != nil {
		return nil, fail(err, "analytics daily digests")
	}
	defer rows.Close()
	d := &dayDigests{models: newModelTotals(0), hist: newBucketCounts(), names: nameRowsPool.Get().(*modelNameRows)}
	var decodeErr error
	err = scanRaw(rows, 5, func(v [][]byte) error {
		if len(v[0]) == 0 {
			d.names.add(v[3], v[4])
			return nil
		}
		day := daySums{}
		day.period, decodeErr = parseInt(v[0])
		if decodeErr == nil {
			day.sums, decodeErr = d.models.mergeDigest(v[1])
		}
		if decodeErr == nil {
			decodeErr = d.hist.addBlob(v[2])
		}
		d.days = append(d.days, day)
		return decodeErr
	})
	d.models.reindex()
	if decodeErr != nil {
		d.release()
		return nil, modellab.WrapError(modellab.EINTERNAL, decodeErr, "analytics daily digests of %s", user)
	}
	if err != nil {
		d.release()
		return nil, fail(err, "analytics daily digests")
	}
	return d, nil
}

// release gives d's parts back to their pools; d must not be used after.
func (d *dayDigests) release() {
	d.models.release()
	d.hist.release()
	d.names.release()
}

// digestsAndNamesSQL takes a user, a range of days and the user twice.
// The names have columns of their own, NULL in a digest's row and the
// blobs NULL in a name's: a column of a UNION has one type, and turning
// the names into BYTEA (convert_to) cost PostgreSQL more than the join.
func (db *DB) digestsAndNamesSQL() string {
	return `SELECT CAST(period AS TEXT), models, latency, NULL, NULL FROM usage_daily_digest
		WHERE user_id = ? AND period >= ? AND period < ?
		UNION ALL
		SELECT '', NULL, NULL, m.id, m.name FROM usage_models u JOIN models m ON m.id = u.model_id
		WHERE u.user_id = ? AND (m.owner_id IS NULL OR m.owner_id = ?)`
}

// parseInt reads a decimal integer as SQL's CAST to TEXT writes it,
// without the string strconv would need.
func parseInt(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, errDigest
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errDigest
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// uvarintAt reads the uvarint at b[i] and returns it and the index after
// it, or -1 for a malformed or missing one and for i < 0 (a failed read
// before it), so that a run of reads is checked once at its end. Most of
// a digest's varints are one byte, read here without a call.
func uvarintAt(b []byte, i int) (uint64, int) {
	if uint(i) < uint(len(b)) && b[i] < 0x80 {
		return uint64(b[i]), i + 1
	}
	return uvarintLong(b, i)
}

func uvarintLong(b []byte, i int) (uint64, int) {
	if i < 0 || i >= len(b) {
		return 0, -1
	}
	v, n := binary.Uvarint(b[i:])
	if n <= 0 {
		return 0, -1
	}
	return v, i + n
}

// varintAt undoes binary.AppendVarint's zig-zag encoding, as binary.Varint.
func varintAt(b []byte, i int) (int64, int) {
	u, i := uvarintAt(b, i)
	return int64(u>>1) ^ -int64(u&1), i
}

// sumsAt reads a model's six sums, in the order of rollupSums.fields,
// and returns the index after them (-1 as uvarintAt does).
func sumsAt(b []byte, i int) (s rollupSums, _ int) {
	i = s.readAt(b, i)
	return s, i
}

// readAt reads s's six sums from b[i:], as sumsAt. The varints are read
// here rather than by six calls: this is most of what decoding a digest
// costs. A varint is refused as binary.Uvarint refuses it.
func (s *rollupSums) readAt(b []byte, i int) int {
	var f [6]int64
	for x := range f {
		var u uint64
		for shift := uint(0); ; shift += 7 {
			if uint(i) >= uint(len(b)) || shift == 63 && b[i] > 1 {
				return -1
			}
			c := b[i]
			i++
			u |= uint64(c&0x7f) << shift
			if c < 0x80 {
				break
			}
		}
		f[x] = int64(u>>1) ^ -int64(u&1)
	}
	*s = rollupSums{requests: f[0], errors: f[1], input: f[2], output: f[3], costNanos: f[4], latencyUS: f[5]}
	return i
}

// mergeDigest adds a models blob to t, whose ids are in byte order as a
// blob's are, and keeps them so: the two sorted lists are merged, which
// compares ids where adding by id would hash them, into the spare lists,
// which then change places with t's. t's index is not kept; reindex
// makes it once the last blob is in. It returns the blob's sums over all
// its models. A blob whose ids are not strictly in order is malformed.
func (t *modelTotals) mergeDigest(b []byte) (rollupSums, error) {
	var all rollupSums
	if len(b) == 0 || b[0] != digestFormat {
		return all, errDigest
	}
	n, i := uvarintAt(b, 1)
	ids, sums := t.spareIDs[:0], t.spareSums[:0]
	j := 0
	var prev []byte
	for k := uint64(0); k < n && i >= 0; k++ {
		var l uint64
		if l, i = uvarintAt(b, i); i < 0 || l > uint64(len(b)-i) {
			return all, errDigest
		}
		id := b[i : i+int(l)]
		if k > 0 && string(id) <= string(prev) {
			return all, errDigest
		}
		prev = id
		for j < len(t.ids) && t.ids[j] < string(id) {
			ids, sums = append(ids, t.ids[j]), append(sums, t.sums[j])
			j++
		}
		// The blob's sums are read into their place in the merged list,
		// where a copy of their 48 bytes costs as much as reading them.
		sums = append(sums, rollupSums{})
		s := &sums[len(sums)-1]
		if i = s.readAt(b, i+int(l)); i < 0 {
			return all, errDigest
		}
		all.add(*s)
		if j < len(t.ids) && t.ids[j] == string(id) {
			s.add(t.sums[j])
			ids = append(ids, t.ids[j])
			j++
		} else {
			ids = append(ids, string(id))
		}
	}
	if i != len(b) {
		return all, errDigest
	}
	ids, sums = append(ids, t.ids[j:]...), append(sums, t.sums[j:]...)
	clear(t.ids)
	t.spareIDs, t.spareSums = t.ids, t.sums
	t.ids, t.sums = ids, sums
	return all, nil
}

// reindex makes t's index anew from its ids.
func (t *modelTotals) reindex() {
	clear(t.index)
	for i, id := range t.ids {
		t.index[id] = int32(i)
	}
}

// addBlob adds a latency blob's counts to h.
func (h *bucketCounts) addBlob(b []byte) error { return eachBucket(b, h.add) }

// scanPairs calls fn with the two columns of each row, TEXT or BLOB/BYTEA,
// as bytes that alias the driver's buffer until the next row: the copy and
// the string pgx would otherwise make of every value are the most of what
// an analytics read allocates.
func scanPairs(r rows, fn func(a, b []byte) error) error {
	return scanRaw(r, 2, func(v [][]byte) error { return fn(v[0], v[1]) })
}

// scanRaw calls fn with the n columns of each row as raw bytes, as
// scanPairs does.
func scanRaw(r rows, n int, fn func(v [][]byte) error) error {
	if pr, ok := r.(pgRows); ok {
		return scanRawPG(pr.Rows, n, fn)
	}
	raw := make([]sql.RawBytes, n)
	dest, v := make([]any, n), make([][]byte, n)
	for i := range raw {
		dest[i] = &raw[i]
	}
	for r.Next() {
		if err := r.Scan(dest...); err != nil {
			return err
		}
		for i := range raw {
			v[i] = raw[i]
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return r.Err()
}

func scanRawPG(r pgx.Rows, n int, fn func(v [][]byte) error) error {
	v := make([][]byte, n)
	for r.Next() {
		raw, fd := r.RawValues(), r.FieldDescriptions()
		if len(raw) != n || len(fd) != n {
			return fmt.Errorf("%d columns, want %d", len(raw), n)
		}
		for i := range v {
			v[i] = raw[i]
			if fd[i].DataTypeOID == pgtype.ByteaOID {
				var err error
				if v[i], err = rawBytea(raw[i], fd[i].Format); err != nil {
					return err
				}
			}
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return r.Err()
}
