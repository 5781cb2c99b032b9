package cache

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// FuzzDecodeEntry feeds arbitrary bytes (what a corrupted or foreign Redis
// value could hold) to decodeEntry: it never panics, an accepted entry has
// a body and StaleUntil ≥ FreshUntil, and it survives encode → decode.
func FuzzDecodeEntry(f *testing.F) {
	now := time.Unix(1_760_000_000, 123)
	for _, e := range []*Entry{
		newEntry([]byte(`{"models":[]}`), fillInfo{at: now, ttl: time.Minute, stale: 10 * time.Minute}),
		newEntry([]byte("x"), fillInfo{at: now, tags: []tagGen{{"models:global", "g1"}, {"t", ""}}}),
	} {
		f.Add(encodeEntry(e))
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
		if len(e.Body) == 0 || e.StaleUntil.Before(e.FreshUntil) {
			t.Fatalf("accepted an entry without a body or with stale < fresh: %+v", e)
		}
		e2, err := decodeEntry(encodeEntry(e))
		if err != nil {
			t.Fatalf("re-encoded entry rejected: %v", err)
		}
		if !sameEntry(e, e2) {
			t.Fatalf("round trip changed the entry: %+v → %+v", e, e2)
		}
	})
}

// FuzzEntryRoundTrip encodes arbitrary entries and decodes them back.
func FuzzEntryRoundTrip(f *testing.F) {
	f.Add([]byte(`{"a":1}`), `"etag"`, "models:global", "gen", int64(1), int64(2))
	f.Add([]byte{0}, "", "", "", int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, body []byte, etag, tag, gen string, fresh, stale int64) {
		e := &Entry{Body: body, ETag: etag, FreshUntil: time.Unix(0, fresh), StaleUntil: time.Unix(0, stale)}
		if tag != "" {
			e.tags = []tagGen{{tag, gen}}
		}
		got, err := decodeEntry(encodeEntry(e))
		if len(body) == 0 || stale < fresh {
			if err == nil {
				t.Fatalf("accepted an entry that must be rejected: %+v", got)
			}
			return
		}
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", e, err)
		}
		if !sameEntry(e, got) {
			t.Fatalf("round trip: %+v → %+v", e, got)
		}
	})
}

func sameEntry(a, b *Entry) bool {
	return bytes.Equal(a.Body, b.Body) && a.ETag == b.ETag && a.FreshUntil.Equal(b.FreshUntil) &&
		a.StaleUntil.Equal(b.StaleUntil) && slices.Equal(a.tags, b.tags)
}
