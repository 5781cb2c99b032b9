package cache

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// FuzzDecodeEntry feeds arbitrary bytes (what a corrupted or foreign Redis
// value could hold) to decodeEntry: it never panics, an accepted entry has
// a body (or, stored compressed, one that does not inflate: nil) and
// StaleUntil ≥ FreshUntil, and it survives encode → decode, compressed or
// not.
func FuzzDecodeEntry(f *testing.F) {
	now := time.Unix(1_760_000_000, 123)
	for _, e := range []*Entry{
		newEntry([]byte(`{"models":[]}`), fillInfo{at: now, ttl: time.Minute, stale: 10 * time.Minute}),
		newEntry([]byte("x"), fillInfo{at: now, tags: []tagGen{{"models:global", "g1"}, {"t", ""}}}),
	} {
		f.Add(encodeEntry(e, -1))
	}
	f.Add([]byte{})
	f.Add([]byte{entryVersion})
	f.Add(append([]byte{entryVersion}, bytes.Repeat([]byte{0xff}, 30)...))
	f.Add(append(append([]byte{entryVersion}, make([]byte, 16)...), 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			if e != nil {
				t.Fatalf("error %v with an entry", err)
			}
			return
		}
		if e.StaleUntil.Before(e.FreshUntil) {
			t.Fatalf("accepted an entry with stale < fresh: %+v", e)
		}
		if body := e.Body(); len(body) != e.Size() || body == nil && e.zsize == 0 {
			t.Fatalf("accepted an entry without a body, or of the wrong size: %d bytes, Size %d", len(body), e.Size())
		}
		if e.Body() == nil {
			return // compressed, and does not inflate
		}
		for _, compressAbove := range []int{-1, 0} {
			e2, err := decodeEntry(encodeEntry(e, compressAbove))
			if err != nil {
				t.Fatalf("re-encoded entry (compressAbove %d) rejected: %v", compressAbove, err)
			}
			if !sameEntry(e, e2) {
				t.Fatalf("round trip (compressAbove %d) changed the entry: %+v → %+v", compressAbove, e, e2)
			}
		}
	})
}

// FuzzEntryRoundTrip encodes arbitrary entries and decodes them back.
func FuzzEntryRoundTrip(f *testing.F) {
	f.Add([]byte(`{"a":1}`), `"etag"`, "models:global", "gen", int64(1), int64(2))
	f.Add([]byte{0}, "", "", "", int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, body []byte, etag, tag, gen string, fresh, stale int64) {
		e := &Entry{body: body, size: len(body), ETag: etag, FreshUntil: time.Unix(0, fresh), StaleUntil: time.Unix(0, stale)}
		if tag != "" {
			e.tags = []tagGen{{tag, gen}}
		}
		for _, compressAbove := range []int{-1, 0} {
			got, err := decodeEntry(encodeEntry(e, compressAbove))
			if len(body) == 0 || stale < fresh {
				if err == nil {
					t.Fatalf("accepted an entry that must be rejected: %+v", got)
				}
				continue
			}
			if err != nil {
				t.Fatalf("decode(encode(%+v, %d)): %v", e, compressAbove, err)
			}
			if !sameEntry(e, got) {
				t.Fatalf("round trip (compressAbove %d): %+v → %+v", compressAbove, e, got)
			}
		}
	})
}

func sameEntry(a, b *Entry) bool {
	return bytes.Equal(a.Body(), b.Body()) && a.ETag == b.ETag && a.FreshUntil.Equal(b.FreshUntil) &&
		a.StaleUntil.Equal(b.StaleUntil) && slices.Equal(a.tags, b.tags)
}
