package cache

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
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
	// 0 for an entry read from Redis.
	born uint64

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
}

func newEntry(body []byte, f fillInfo) *Entry {
	return &Entry{
		Body:       body,
		ETag:       etagOf(body),
		FreshUntil: f.at.Add(f.ttl),
		StaleUntil: f.at.Add(f.ttl + f.stale),
		tags:       f.tags,
		born:       f.born,
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
//	version    1 byte (entryVersion)
//	freshUntil 8 bytes, big-endian unix nanoseconds
//	staleUntil 8 bytes
//	ntags      uvarint, then per tag: uvarint len + tag, uvarint len + generation
//	etag       uvarint len + bytes
//	body       uvarint len + bytes (must end the value exactly)
const entryVersion = 1

var errCorrupt = errors.New("cache: corrupt entry")

func encodeEntry(e *Entry) []byte {
	n := 1 + 16 + binary.MaxVarintLen64*(3+2*len(e.tags)) + len(e.ETag) + len(e.Body)
	for _, t := range e.tags {
		n += len(t.tag) + len(t.gen)
	}
	b := make([]byte, 0, n)
	b = append(b, entryVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(e.FreshUntil.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.StaleUntil.UnixNano()))
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

func decodeEntry(b []byte) (*Entry, error) {
	if len(b) < 17 || b[0] != entryVersion {
		return nil, errCorrupt
	}
	e := &Entry{
		FreshUntil: time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9]))),
		StaleUntil: time.Unix(0, int64(binary.BigEndian.Uint64(b[9:17]))),
	}
	r := b[17:]
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(r)
		if k <= 0 || n > uint64(len(r)-k) {
			return nil, false
		}
		s := r[k : k+int(n)]
		r = r[k+int(n):]
		return s, true
	}
	nt, k := binary.Uvarint(r)
	if k <= 0 || nt > uint64(len(r)) {
		return nil, errCorrupt
	}
	r = r[k:]
	if nt > 0 {
		e.tags = make([]tagGen, nt)
		for i := range e.tags {
			t, ok1 := next()
			g, ok2 := next()
			if !ok1 || !ok2 {
				return nil, errCorrupt
			}
			e.tags[i] = tagGen{string(t), string(g)}
		}
	}
	et, ok := next()
	if !ok {
		return nil, errCorrupt
	}
	e.ETag = string(et)
	body, ok := next()
	if !ok || len(r) != 0 || len(body) == 0 || e.StaleUntil.Before(e.FreshUntil) {
		return nil, errCorrupt
	}
	e.Body = body
	return e, nil
}
