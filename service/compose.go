package service

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/klauspost/compress/gzip"
	"github.com/maypok86/otter/v2"

	"github.com/modellab/modellab/cache"
)

// Composed answers. A user's model list is the global models plus the
// user's own: caching the concatenation per user made one global edit cost
// one reload per user. Instead each part is cached once (the global part
// for everyone, the private part per user) as an item list, and the answer
// is merged on the way out: runs of pre-encoded items copied into one
// buffer, no JSON encoded. The plan of a merge (which runs, the size, the
// ETag) is kept per user and reused while the parts stay the same; while a
// stamp of both parts holds (see memo), a hit is the plan's lookup and an
// atomic load, without looking the parts up.

// Answer is a response body ready to write: one cached entry, or a body
// composed from cached parts. Callers Release it once written.
type Answer struct {
	body   []byte // of a composed answer (an entry's is the entry's)
	ETag   string
	Result cache.Result
	entry  *cache.Entry // the entry, for an answer that is one
	comp   *composer    // the composer, for a composed answer
	buf    *[]byte      // a pooled body to give back on Release
}

// Body returns the answer's bytes. An entry that Redis held compressed
// inflates them on first use only: a client that takes gzip gets Gzip.
// An entry read for this request only (no in-process tier for its key)
// inflates into a pooled buffer that Release gives back, instead of a new
// one per request.
func (a *Answer) Body() []byte {
	if a.body != nil || a.entry == nil {
		return a.body
	}
	if !a.entry.Transient() {
		return a.entry.Body()
	}
	buf := bodyPool.Get().(*[]byte)
	body, inBuf := a.entry.BodyInto(*buf)
	if !inBuf {
		bodyPool.Put(buf)
		return body
	}
	a.body, a.buf = body, buf
	return body
}

// Size is the length of Body, known without inflating it.
func (a *Answer) Size() int {
	if a.entry != nil {
		return a.entry.Size()
	}
	return len(a.body)
}

// Gzip returns Body compressed with gzip, computed once per body version:
// hits never compress again.
func (a *Answer) Gzip() []byte {
	if a.entry != nil {
		return a.entry.Gzip()
	}
	return a.comp.gzip(a.ETag, a.body)
}

// Release gives a composed body's buffer back to the pool; Body is not to
// be used afterwards.
func (a *Answer) Release() {
	if a.buf != nil {
		*a.buf = a.body[:0]
		bodyPool.Put(a.buf)
		a.buf, a.body = nil, nil
	}
}

// answerOf is entryAnswer for a read's three results.
func answerOf(e *cache.Entry, res cache.Result, err error) (Answer, error) {
	if err != nil {
		return Answer{}, err
	}
	return entryAnswer(e, res), nil
}

func entryAnswer(e *cache.Entry, res cache.Result) Answer {
	return Answer{ETag: e.ETag, Result: res, entry: e}
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// worse returns the result that describes an answer made of two parts: a
// miss of either part is a miss, and so on.
func worse(a, b cache.Result) cache.Result {
	rank := func(r cache.Result) int {
		switch r {
		case cache.Stale:
			return 1
		case cache.Miss:
			return 2
		case cache.Bypass:
			return 3
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// span is a run of consecutive items of one part.
type span struct {
	part     uint8
	from, to int32
}

// plan is how two parts merge into one answer: valid while both parts have
// the ETags it was made from.
type plan struct {
	etags [2]string
	etag  string
	size  int
	runs  []span
	memo  atomic.Pointer[memo]
}

// memo serves a plan's answer again without looking its parts up: while
// its stamp is Valid, both parts are still the entries the body was made
// from. It holds the body weakly, so the bodies' budget stays the only
// bound on their memory.
type memo struct {
	stamp cache.Stamp
	body  weak.Pointer[bodyRef]
	keys  [2]string // the parts' cache keys ("" for none), whose hits a memo hit counts
}

// bodyRef is a composed body as the bodies cache holds it: by pointer, for
// memos to refer to.
type bodyRef struct{ b []byte }

// arm lets the plan's answer, body, be served from a memo while the parts
// a and b stay what they are. Only parts taken by a Peek have a stamp.
func (p *plan) arm(a, b part, body *bodyRef) {
	st := a.stamp
	if b.key != "" {
		st = st.Join(b.stamp)
	}
	if a.key == "" || st.IsZero() {
		return
	}
	p.memo.Store(&memo{stamp: st, body: weak.Make(body), keys: [2]string{a.key, b.key}})
}

// stamps is what a memo hit asks of the cache.
type stamps interface {
	Valid(cache.Stamp) bool
	CountHit(key, group string)
}

// memoHit answers key from its plan's memo while the memo's stamp holds,
// counting the hits of the parts (of group) it stands for.
func (c *composer) memoHit(key, group string, st stamps) (Answer, bool) {
	p, ok := c.plans.GetIfPresent(key)
	if !ok {
		return Answer{}, false
	}
	m := p.memo.Load()
	if m == nil || !st.Valid(m.stamp) {
		return Answer{}, false
	}
	b := m.body.Value()
	if b == nil {
		return Answer{}, false
	}
	for _, k := range m.keys {
		if k != "" {
			st.CountHit(k, group)
		}
	}
	return Answer{body: b.b, ETag: p.etag, Result: cache.Hit, comp: c}, true
}

// composer keeps the plans, one per composed key, and the bodies and gzip
// forms of recent answers by ETag, each within a byte budget: past it an
// answer is composed again into a pooled buffer, one copy of its bytes.
type composer struct {
	plans       *otter.Cache[string, *plan]
	statusPlans *otter.Cache[string, *statusPlan]
	indexes     *otter.Cache[string, modelIndex]
	bodies      *otter.Cache[string, *bodyRef]
	gzips       *otter.Cache[string, []byte]
}

// Budgets of the composer. A plan is a few hundred bytes; bodies are whole
// answers.
const (
	maxPlans        = 100_000
	composedBodyMax = 64 << 20
	composedGzipMax = 32 << 20
)

func newComposer() *composer {
	weigh := func(k string, v []byte) uint32 { return uint32(len(k) + len(v)) }
	return &composer{
		plans:       otter.Must(&otter.Options[string, *plan]{MaximumSize: maxPlans}),
		statusPlans: otter.Must(&otter.Options[string, *statusPlan]{MaximumSize: maxPlans}),
		indexes:     newIndexCache(),
		bodies:      otter.Must(&otter.Options[string, *bodyRef]{MaximumWeight: composedBodyMax, Weigher: func(k string, v *bodyRef) uint32 { return weigh(k, v.b) }}),
		gzips:       otter.Must(&otter.Options[string, []byte]{MaximumWeight: composedGzipMax, Weigher: weigh}),
	}
}

func (c *composer) close() {
	c.plans.StopAllGoroutines()
	c.statusPlans.StopAllGoroutines()
	c.indexes.StopAllGoroutines()
	c.bodies.StopAllGoroutines()
	c.gzips.StopAllGoroutines()
}

// bytes returns the bytes the cache's local tier does not see.
func (c *composer) bytes() uint64 { return c.bodies.WeightedSize() + c.gzips.WeightedSize() }

func (c *composer) gzip(etag string, body []byte) []byte {
	if gz, ok := c.gzips.GetIfPresent(etag); ok {
		return gz
	}
	gz := gzipBytes(body)
	c.gzips.Set(etag, gz)
	return gz
}

// listShape is what surrounds the merged items of an answer.
type listShape struct{ prefix, suffix string }

var modelsShape = listShape{prefix: `{"models":[`, suffix: `]}`}

// merge answers key with the items of a and b merged by key, in shape.
// Either part may be empty. The parts' results combine into the answer's.
// A part that is not an item list (written by another version, or
// corrupted) is errItemList; parts are checked once per plan, not per hit.
func (c *composer) merge(key string, shape listShape, a, b part) (Answer, error) {
	res := worse(a.res, b.res)
	p, ok := c.plans.GetIfPresent(key)
	if !ok || p.etags[0] != a.etag || p.etags[1] != b.etag {
		if err := errors.Join(a.items.check(), b.items.check()); err != nil {
			return Answer{}, errItemList
		}
		p = newPlan(shape, a, b)
		c.plans.Set(key, p)
		body := &bodyRef{p.write(make([]byte, 0, p.size), shape, a, b)}
		c.bodies.Set(p.etag, body)
		p.arm(a, b, body)
		return Answer{body: body.b, ETag: p.etag, Result: res, comp: c}, nil
	}
	if body, ok := c.bodies.GetIfPresent(p.etag); ok {
		p.arm(a, b, body)
		return Answer{body: body.b, ETag: p.etag, Result: res, comp: c}, nil
	}
	bp := bodyPool.Get().(*[]byte)
	return Answer{body: p.write((*bp)[:0], shape, a, b), ETag: p.etag, Result: res, comp: c, buf: bp}, nil
}

// write appends the merged body to b.
func (p *plan) write(b []byte, shape listShape, x, y part) []byte {
	b = append(b, shape.prefix...)
	for i, r := range p.runs {
		if i > 0 {
			b = append(b, ',')
		}
		l := x.items
		if r.part == 1 {
			l = y.items
		}
		b = append(b, l.run(int(r.from), int(r.to))...)
	}
	return append(b, shape.suffix...)
}

// emptyPart stands for the private part of an anonymous caller.
var emptyPart = part{items: encodeItems(nil, nil), res: cache.Hit}

// part is one cached part of a composed answer: the entry's ETag and body,
// and for a part a Peek found, its key and stamp (see plan.arm).
type part struct {
	etag  string
	items itemList
	res   cache.Result
	key   string
	stamp cache.Stamp
}

func partOf(e *cache.Entry, res cache.Result) part {
	return part{etag: e.ETag, items: itemList(e.Body()), res: res}
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// newPlan merges the parts' keys into runs. Keys never repeat across parts
// (they end with the item's id).
func newPlan(shape listShape, a, b part) *plan {
	p := &plan{etags: [2]string{a.etag, b.etag}}
	la, lb := a.items.Len(), b.items.Len()
	i, j := 0, 0
	for i < la || j < lb {
		switch {
		case j == lb:
			p.runs, i = append(p.runs, span{0, int32(i), int32(la)}), la
		case i == la:
			p.runs, j = append(p.runs, span{1, int32(j), int32(lb)}), lb
		case bytes.Compare(a.items.Key(i), b.items.Key(j)) < 0:
			k := i + 1
			for k < la && bytes.Compare(a.items.Key(k), b.items.Key(j)) < 0 {
				k++
			}
			p.runs, i = append(p.runs, span{0, int32(i), int32(k)}), k
		default:
			k := j + 1
			for k < lb && bytes.Compare(b.items.Key(k), a.items.Key(i)) < 0 {
				k++
			}
			p.runs, j = append(p.runs, span{1, int32(j), int32(k)}), k
		}
	}
	p.size = len(shape.prefix) + len(shape.suffix) + max(len(p.runs)-1, 0)
	for _, r := range p.runs {
		l := a.items
		if r.part == 1 {
			l = b.items
		}
		p.size += len(l.run(int(r.from), int(r.to)))
	}
	p.etag = composedETag(shape.prefix, a, b)
	return p
}

// composedETag is a strong validator of the merged body, derived from the
// parts' own (content hashes): an empty part does not count, so a user
// without private models shares the anonymous answer's tag — the bytes are
// the same.
func composedETag(kind string, parts ...part) string {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, p := range parts {
		if p.items.Len() > 0 {
			h.Write([]byte(p.etag))
		}
	}
	var sum [32]byte
	return `"c` + hex.EncodeToString(h.Sum(sum[:0])[:16]) + `"`
}
