package cache

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Entry is one cached value. It is immutable once published: the same *Entry
// is handed to every caller that hits it, so callers must not modify Body.
type Entry struct {
	// Body is the cached bytes (for a server, the encoded response).
	Body []byte
	// ETag is a strong validator, quoted, derived from a hash of Body; it is
	// computed once when the entry is filled, never on a hit.
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
	// long (times EarlyRefresh) before FreshUntil.
	delta time.Duration
	// refreshWanted is set by a Peek that decided on an early refresh it
	// cannot start itself (it has no loader): the next Fetch starts it.
	refreshWanted atomic.Bool

	gzOnce sync.Once
	gz     []byte
}

// tagGen is a tag and the generation it had when the entry was loaded.
type tagGen struct{ tag, gen string }

// Gzip returns Body compressed with gzip. It is computed once per entry
// instance, so hits never compress again.
func (e *Entry) Gzip() []byte {
	e.gzOnce.Do(func() {
		var buf bytes.Buffer
		buf.Grow(len(e.Body)/3 + 64)
		zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		zw.Write(e.Body)
		zw.Close()
		e.gz = buf.Bytes()
	})
	return e.gz
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
		Body:       body,
		ETag:       etagOf(body),
		FreshUntil: f.at.Add(f.ttl),
		StaleUntil: f.at.Add(f.ttl + f.stale),
		tags:       f.tags,
		born:       f.born,
		delta:      f.delta,
	}
}

func etagOf(body []byte) string {
	sum := sha256.Sum256(body)
	var b [2 + 32]byte
	b[0] = '"'
	hex.Encode(b[1:33], sum[:16])
	b[33] = '"'
	return string(b[:])
}

// Binary format of an entry in Redis (field "v" of the key's hash). Decoding
// a hit is a few slices of the reply, no JSON:
//
//	version    1 byte (entryVersion; version 1, still decoded, lacks flags and delta)
//	flags      1 byte, 0 (reserved)
//	freshUntil 8 bytes, big-endian unix nanoseconds
//	staleUntil 8 bytes
//	delta      uvarint, nanoseconds the load took (early refresh)
//	ntags      uvarint, then per tag: uvarint len + tag, uvarint len + generation
//	etag       uvarint len + bytes
//	body       uvarint len + bytes (must end the value exactly)
const entryVersion = 2

var errCorrupt = errors.New("cache: corrupt entry")

func encodeEntry(e *Entry) []byte {
	n := 2 + 16 + binary.MaxVarintLen64*(4+2*len(e.tags)) + len(e.ETag) + len(e.Body)
	for _, t := range e.tags {
		n += len(t.tag) + len(t.gen)
	}
	b := make([]byte, 0, n)
	b = append(b, entryVersion, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(e.FreshUntil.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.StaleUntil.UnixNano()))
	b = binary.AppendUvarint(b, uint64(max(e.delta, 0)))
	b = binary.AppendUvarint(b, uint64(len(e.tags)))
	for _, t := range e.tags {
		b = appendString(b, t.tag)
		b = appendString(b, t.gen)
	}
	b = appendString(b, e.ETag)
	b = binary.AppendUvarint(b, uint64(len(e.Body)))
	b = append(b, e.Body...)
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

func decodeEntry(b []byte) (*Entry, error) {
	d := decoder{r: b}
	version := d.fixed(1)[0]
	if version != 1 && version != entryVersion {
		return nil, errCorrupt
	}
	if version >= 2 && d.fixed(1)[0] != 0 {
		return nil, errCorrupt // flags this version does not know
	}
	e := &Entry{FreshUntil: d.time(), StaleUntil: d.time()}
	if version >= 2 {
		delta := d.uvarint()
		if delta > math.MaxInt64 {
			return nil, errCorrupt
		}
		e.delta = time.Duration(delta)
	}
	if nt := d.uvarint(); nt > 0 {
		if nt > uint64(len(d.r)) {
			return nil, errCorrupt
		}
		e.tags = make([]tagGen, nt)
		for i := range e.tags {
			e.tags[i] = tagGen{string(d.bytes()), string(d.bytes())}
		}
	}
	e.ETag = string(d.bytes())
	body := d.bytes()
	if d.bad || len(d.r) != 0 || len(body) == 0 || e.StaleUntil.Before(e.FreshUntil) {
		return nil, errCorrupt
	}
	e.Body = body
	return e, nil
}
