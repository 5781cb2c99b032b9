package cache

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// Bodies above CompressAbove are stored gzip-compressed in Redis. Read
// back, the entry serves those gzip bytes as they are and inflates the
// body only when asked for it, once; smaller bodies are stored as they are.
func TestCompressedEntries(t *testing.T) {
	prefix := testPrefix(t, sharedRedis)
	filler := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: prefix})
	reader := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: prefix, DisableLocal: true})
	var sb strings.Builder
	for i := 0; sb.Len() < 60<<10; i++ {
		fmt.Fprintf(&sb, `{"t":"2026-09-01T%02d:00:00Z","requests":%d,"errors":%d},`, i%24, 1000+i*7%313, i%17)
	}
	big, small := sb.String(), `{"models":[]}`
	cl := adminClient(t, sharedRedis)
	stored := func(key string) []byte {
		t.Helper()
		v, err := cl.Do(context.Background(), cl.B().Hget().Key(prefix+key).Field("v").Build()).AsBytes()
		if err != nil {
			t.Fatalf("HGET %s: %v", key, err)
		}
		return v
	}
	fo := FetchOptions{TTL: time.Minute}
	for _, tc := range []struct {
		key, body  string
		compressed bool
	}{{"big", big, true}, {"small", small, false}} {
		filled, _, err := filler.Fetch(context.Background(), tc.key, fo, (&source{val: tc.body}).load)
		if err != nil {
			t.Fatal(err)
		}
		raw := stored(tc.key)
		if got := raw[1]&flagGzip != 0; got != tc.compressed {
			t.Fatalf("%s: stored compressed = %v, want %v", tc.key, got, tc.compressed)
		}
		e, res, err := reader.Fetch(context.Background(), tc.key, fo, (&source{val: "never loaded"}).load)
		if err != nil || res != Hit {
			t.Fatalf("%s: reader Fetch = %v, %v; want a HIT from Redis", tc.key, res, err)
		}
		if e.ETag != filled.ETag || e.Size() != len(tc.body) {
			t.Errorf("%s: ETag %s, Size %d; want %s, %d", tc.key, e.ETag, e.Size(), filled.ETag, len(tc.body))
		}
		if tc.compressed {
			t.Logf("%s: %d bytes stored for a %d-byte body", tc.key, len(raw), len(tc.body))
			if len(raw) > len(tc.body)/4 {
				t.Errorf("%s: %d bytes stored, want well under %d", tc.key, len(raw), len(tc.body))
			}
			gz := e.Gzip()
			if e.body != nil || !bytes.HasSuffix(raw, gz) {
				t.Errorf("%s: Gzip inflated the body or is not the stored bytes", tc.key)
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := io.ReadAll(zr); string(b) != tc.body {
				t.Errorf("%s: Gzip does not inflate to the body", tc.key)
			}
		}
		if !e.Transient() || filled.Transient() {
			t.Errorf("%s: Transient = %v read without the local tier, %v filled with it; want true, false", tc.key, e.Transient(), filled.Transient())
		}
		// Inflated for one use into the caller's buffer, not kept.
		dst := make([]byte, 0, len(tc.body)+10)
		got, inDst := e.BodyInto(dst)
		if string(got) != tc.body || inDst != tc.compressed {
			t.Errorf("%s: BodyInto = %d bytes, in dst %v; want the %d-byte body, in dst %v", tc.key, len(got), inDst, len(tc.body), tc.compressed)
		}
		if tc.compressed && (&got[0] != &dst[:1][0] || e.body != nil) {
			t.Errorf("%s: BodyInto did not inflate into dst, or kept the body", tc.key)
		}
		if got := string(e.Body()); got != tc.body {
			t.Errorf("%s: Body() = %d bytes, want the %d-byte body", tc.key, len(got), len(tc.body))
		}
		if b1, b2 := e.Body(), e.Body(); &b1[0] != &b2[0] {
			t.Errorf("%s: Body inflated twice", tc.key)
		}
	}

	// CompressAbove < 0: never; entries of the older encoding still decode.
	plain := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: prefix, CompressAbove: -1})
	fetch(t, plain, "big-plain", fo, (&source{val: big}).load)
	if raw := stored("big-plain"); raw[1]&flagGzip != 0 {
		t.Errorf("CompressAbove -1 stored a compressed body")
	}
	v1 := []byte("\x01")
	v1 = append(v1, encodeEntry(newEntry([]byte("old"), fillInfo{at: time.Now(), ttl: time.Minute}), -1)[2:]...)
	v1 = append(v1[:17], v1[18:]...) // version 1 has no flags and no delta (a one-byte 0 here)
	cl.Do(context.Background(), cl.B().Hset().Key(prefix+"v1").FieldValue().FieldValue("v", string(v1)).Build())
	cl.Do(context.Background(), cl.B().Pexpire().Key(prefix+"v1").Milliseconds(60000).Build())
	if got, res := fetch(t, reader, "v1", fo, (&source{val: "new"}).load); got != "old" || res != Hit {
		t.Errorf("a version 1 entry: %q %v, want old HIT", got, res)
	}
}

// Reads of one key coalesced into one Redis read share the entry; such an
// entry is not Transient, so its body is inflated once for all of them
// rather than once per request. An entry one request read alone is.
func TestCoalescedReadsShareInflate(t *testing.T) {
	prefix := testPrefix(t, sharedRedis)
	filler := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: prefix})
	reader := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: prefix, DisableLocal: true})
	fo := FetchOptions{TTL: time.Minute}
	fetch(t, filler, "big", fo, (&source{val: strings.Repeat(`{"hour":1,"requests":2},`, 3000)}).load)
	read := func() *Entry {
		e, res, err := reader.Fetch(context.Background(), "big", fo, (&source{val: "never loaded"}).load)
		if err != nil || res != Hit {
			t.Errorf("Fetch = %v, %v; want a HIT from Redis", res, err)
		}
		return e
	}
	if e := read(); !e.Transient() {
		t.Fatalf("an entry read alone is not Transient")
	}
	shared := 0
	for round := 0; round < 5 && shared < 2; round++ {
		held, release := holdSharedReads(t, "big")
		got := make(chan *Entry, 2)
		go func() { got <- read() }()
		<-held // the first read has its answer and waits
		go func() { got <- read() }()
		time.Sleep(50 * time.Millisecond) // time for the second to join it
		release()
		e1, e2 := <-got, <-got
		switch {
		case e1 == e2:
			shared++
			if e1.Transient() {
				t.Errorf("round %d: an entry two requests share is Transient", round)
			}
		case !e1.Transient() || !e2.Transient():
			t.Errorf("round %d: two reads not coalesced, Transient %v and %v; want both", round, e1.Transient(), e2.Transient())
		}
		testHookSharedRead = nil
	}
	if shared == 0 {
		t.Fatalf("no round coalesced the two reads")
	}
}
