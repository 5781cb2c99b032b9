package cache

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/gzip"
)

// Entry is one cached value. It is immutable once published: the same *Entry
// is handed to every caller that hits it, so callers must not modify the
// slices Body and Gzip return.
type Entry struct {
	// ETag is a strong validator, quoted, derived from a hash of the body;
	// it is computed once when the entry is filled, never on a hit.
	ETag string
	// FreshUntil is when the entry stops being a HIT.
	FreshUntil time.Time
	// StaleUntil is when the entry stops being servable at all (STALE before).
	StaleUntil time.Time

	tags []tagGen // tag generations read before the load
	// born is the birth mark of the load in this process (see fenceSet);
	// 0 for an entry read from Redis, which has seen: the mark before the
	// read was sent.
	born, seen uint64
	// delta is how long the load took: early refresh starts about that
	// long (times EarlyRefresh) before FreshUntil; earlyFrom is where its
	// window begins (see setEarly).
	delta     time.Duration
	earlyFrom int64
	// refreshWanted is set by a Peek that decided on an early refresh it
	// cannot start itself (it has no loader): the next Fetch starts it.
	refreshWanted atomic.Bool

	// The two representations. An entry filled here has body and computes
	// gz on first use; one read compressed from Redis has gz and inflates
	// body on first use. size (the body's length) and zsize (the length of
	// the gzip bytes read from Redis, else 0) never change.
	size, zsize int
	// transient marks an entry read from Redis for one request only: the
	// in-process tier is off for its key and no other read was coalesced
	// with it, so nothing done on it (an inflated body) is reused.
	transient atomic.Bool
	bodyOnce  sync.Once
	body      []byte
	gzOnce    sync.Once
	gz        []byte
}

// tagGen is a tag and the generation it had when the entry was loaded.
type tagGen struct{ tag, gen string }

// Body returns the cached bytes (for a server, the encoded response). For
// an entry that Redis held compressed it inflates them once, on the first
// call; a compressed value that does not inflate (corrupted in Redis)
// yields nil.
func (e *Entry) Body() []byte {
	e.bodyOnce.Do(func() {
		if e.body == nil && e.gz != nil {
			e.body = gunzip(e.gz, e.size)
		}
	})
	return e.body
}

// Transient reports whether the entry was read from Redis for this
// request only: the in-process tier is off for its key, and no other
// request's read was coalesced with this one. Inflating its body once, to
// keep, would help nobody; for an entry several requests hold it would.
func (e *Entry) Transient() bool { return e.transient.Load() }

// BodyInto is Body for a single use. A body Redis held compressed is
// inflated into dst's storage (grown when too small) and not kept, so a
// caller that pools dst allocates nothing for it: inDst is then true, and
// the body is valid as long as dst's storage is. Any other entry returns
// Body, which is not in dst. A compressed value that does not inflate
// yields nil.
func (e *Entry) BodyInto(dst []byte) (body []byte, inDst bool) {
	if e.zsize == 0 { // the body was held from the start
		return e.Body(), false
	}
	body = gunzipInto(dst, e.gz, e.size)
	return body, body != nil
}

// Gzip returns the body compressed with gzip: the bytes Redis held for an
// entry stored compressed, else compressed once per entry instance, so
// hits never compress again.
func (e *Entry) Gzip() []byte {
	e.gzOnce.Do(func() {
		if e.gz == nil {
			e.gz = gzipBytes(e.body)
		}
	})
	return e.gz
}

// Size is the length of the body in bytes (known without inflating it).
func (e *Entry) Size() int { return e.size }

// weight is what the entry may occupy in memory: the body, plus the gzip
// bytes it was read with.
func (e *Entry) weight() int { return e.size + e.zsize }

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/3 + 64)
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// gzipReaders keeps inflaters (about 45 KB of state each) between the
// Redis-tier reads that need a body inflated.
var gzipReaders sync.Pool

// gunzip inflates gz, whose body is size bytes long; nil if it does not
// inflate to exactly that.
func gunzip(gz []byte, size int) []byte { return gunzipInto(nil, gz, size) }

// gunzipInto is gunzip into dst's storage, grown when too small.
func gunzipInto(dst, gz []byte, size int) []byte {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(gz))
	} else {
		err = zr.Reset(bytes.NewReader(gz))
	}
	if err != nil {
		return nil
	}
	defer gzipReaders.Put(zr)
	out := slices.Grow(dst[:0], size)[:size]
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil
	}
	var more [1]byte
	if n, err := zr.Read(more[:]); n != 0 || err != io.EOF { // EOF only after the CRC matched
		return nil
	}
	return out
}

// Fresh reports whether the entry is fresh at t (a HIT).
func (e *Entry) Fresh(t time.Time) bool { return t.Before(e.FreshUntil) }

// Usable reports whether the entry may still be served at t: fresh, or
// stale within its bound (STALE).
func (e *Entry) Usable(t time.Time) bool { return t.Before(e.StaleUntil) }

// fillInfo is what a fill knows besides the body: when it was loaded, how
// long it is fresh and then servable, and the tag generations read before
// the load.
type fillInfo struct {
	at         time.Time
	ttl, stale time.Duration
	tags       []tagGen
	born       uint64
	delta      time.Duration
}

func newEntry(body []byte, f fillInfo) *Entry {
	return &Entry{
		body:       body,
		size:       len(body),
		ETag:       etagOf(body),
		FreshUntil: f.at.Add(f.ttl),
		StaleUntil: f.at.Add(f.ttl + f.stale),
		tags:       f.tags,
		born:       f.born,
		delta:      f.delta,
	}
}

// ETagOf is the strong entity tag the cache gives a body, a hash of its
// bytes. Transports use it for bytes that are not cached entries (static
// files), so that every validator has one form.
func ETagOf(body []byte) string { return etagOf(body) }

// etagOf hashes with XXH64, not SHA-256: a validator must change when the
// bytes do, which 64 bits do but for a chance of 2^-64 per change, and
// nothing is gained by forging one. SHA-256 of a heavy user's 48 kB
// analytics answer was a twentieth of the server's time for an uncached
// answer.
func etagOf(body []byte) string {
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], xxhash.Sum64(body))
	var b [2 + 16]byte
	b[0] = '"'
	hex.Encode(b[1:17], sum[:])
	b[17] = '"'
	return string(b[:])
}

// Binary format of an entry in Redis (field "v" of the key's hash). Decoding
// a hit is a few slices of the reply, no JSON:
//
//	version    1 byte (entryVersion; version 1, still decoded, lacks flags and delta)
//	flags      1 byte: flagGzip, or 0
//	freshUntil 8 bytes, big-endian unix nanoseconds
//	staleUntil 8 bytes
//	delta      uvarint, nanoseconds the load took (early refresh)
//	ntags      uvarint, then per tag: uvarint len + tag, uvarint len + generation
//	etag       uvarint len + bytes
//	body       uvarint len + bytes (must end the value exactly); with
//	           flagGzip, the body compressed with gzip (its trailer gives
//	           the body's length)
const entryVersion = 2

// flagGzip marks a body stored compressed (see Options.CompressAbove).
const flagGzip = 1

var errCorrupt = errors.New("cache: corrupt entry")

// encodeEntry encodes e, its body compressed if it is longer than
// compressAbove bytes (negative: never).
func encodeEntry(e *Entry, compressAbove int) []byte {
	body, flags := e.Body(), byte(0)
	if compressAbove >= 0 && e.size > compressAbove {
		body, flags = e.Gzip(), flagGzip
	}
	n := 2 + 16 + binary.MaxVarintLen64*(4+2*len(e.tags)) + len(e.ETag) + len(body)
	for _, t := range e.tags {
		n += len(t.tag) + len(t.gen)
	}
	b := make([]byte, 0, n)
	b = append(b, entryVersion, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(e.FreshUntil.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.StaleUntil.UnixNano()))
	b = binary.AppendUvarint(b, uint64(max(e.delta, 0)))
	b = binary.AppendUvarint(b, uint64(len(e.tags)))
	for _, t := range e.tags {
		b = appendString(b, t.tag)
		b = appendString(b, t.gen)
	}
	b = appendString(b, e.ETag)
	b = binary.AppendUvarint(b, uint64(len(body)))
	b = append(b, body...)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the fields of an encoded entry; the first short or
// malformed field sets bad, and every later read returns zero values.
type decoder struct {
	r   []byte
	bad bool
}

func (d *decoder) fixed(n int) []byte {
	if d.bad || len(d.r) < n {
		d.bad = true
		return make([]byte, n)
	}
	v := d.r[:n]
	d.r = d.r[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	n, k := binary.Uvarint(d.r)
	if k <= 0 {
		d.bad = true
		return 0
	}
	d.r = d.r[k:]
	return n
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.r)) {
		d.bad = true
		return nil
	}
	v := d.r[:n]
	d.r = d.r[n:]
	return v
}

func (d *decoder) time() time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(d.fixed(8))))
}

// decodeHead reads an encoded entry up to its body: the entry without a
// body, and its flags; ok is false for a malformed or unknown header.
func decodeHead(d *decoder) (e *Entry, flags byte, ok bool) {
	version := d.fixed(1)[0]
	if version != 1 && version != entryVersion {
		return nil, 0, false
	}
	if version >= 2 {
		if flags = d.fixed(1)[0]; flags&^flagGzip != 0 {
			return nil, 0, false // flags this version does not know
		}
	}
	e = &Entry{FreshUntil: d.time(), StaleUntil: d.time()}
	if version >= 2 {
		delta := d.uvarint()
		if delta > math.MaxInt64 {
			return nil, 0, false
		}
		e.delta = time.Duration(delta)
	}
	if nt := d.uvarint(); nt > 0 {
		if nt > uint64(len(d.r)) {
			return nil, 0, false
		}
		e.tags = make([]tagGen, nt)
		for i := range e.tags {
			e.tags[i] = tagGen{string(d.bytes()), string(d.bytes())}
		}
	}
	e.ETag = string(d.bytes())
	return e, flags, !d.bad && !e.StaleUntil.Before(e.FreshUntil)
}

func decodeEntry(b []byte) (*Entry, error) {
	d := decoder{r: b}
	e, flags, ok := decodeHead(&d)
	if !ok {
		return nil, errCorrupt
	}
	body := d.bytes()
	if d.bad || len(d.r) != 0 || len(body) == 0 {
		return nil, errCorrupt
	}
	if flags&flagGzip == 0 {
		e.body, e.size = body, len(body)
		return e, nil
	}
	// A gzip member: magic, deflate, ..., CRC-32 and the body's length
	// (mod 2^32) last. The body itself is inflated when first asked for.
	if len(body) < 18 || body[0] != 0x1f || body[1] != 0x8b || body[2] != 8 {
		return nil, errCorrupt
	}
	size := binary.LittleEndian.Uint32(body[len(body)-4:])
	if size == 0 || uint64(size) > math.MaxInt32 {
		return nil, errCorrupt
	}
	e.gz, e.size, e.zsize = body, int(size), len(body)
	return e, nil
}
