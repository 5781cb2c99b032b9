package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/internal/testredis"
)

func testPart(t *testing.T, names ...string) part {
	t.Helper()
	items := make([]item, len(names))
	for i, n := range names {
		js, _ := json.Marshal(map[string]string{"name": n})
		items[i] = item{key: []byte(n), aux: []byte(strings.ToLower(n)), json: js}
	}
	b := encodeItems(items, []byte("extra"))
	if err := itemList(b).check(); err != nil {
		t.Fatalf("encoded list does not check: %v", err)
	}
	return part{etag: cache.ETagOf(b), items: itemList(b), res: cache.Hit}
}

func namesOf(t *testing.T, body []byte) []string {
	t.Helper()
	var v struct{ Models []struct{ Name string } }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("composed body is not JSON: %v\n%s", err, body)
	}
	out := []string{}
	for _, m := range v.Models {
		out = append(out, m.Name)
	}
	return out
}

// TestMergeMatchesSort: merging two parts gives the sorted union, for
// interleavings of every shape, empty parts included.
func TestMergeMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var a, b []string
		for i := 0; i < r.IntN(12); i++ {
			a = append(a, fmt.Sprintf("g%03d", r.IntN(1000)))
		}
		for i := 0; i < r.IntN(6); i++ {
			b = append(b, fmt.Sprintf("p%03d", r.IntN(1000))[r.IntN(1):])
		}
		a, b = dedupe(a), dedupe(slices.DeleteFunc(b, func(s string) bool { return slices.Contains(a, s) }))
		c := newComposer()
		for pass := 0; pass < 2; pass++ { // a new plan, then the kept one
			ans, err := c.merge("u", modelsShape, testPart(t, a...), testPart(t, b...))
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Sorted(slices.Values(append(slices.Clone(a), b...)))
			if got := namesOf(t, ans.Body()); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("round %d pass %d: merged %v, want %v", round, pass, got, want)
			}
			ans.Release()
		}
		c.close()
	}
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// TestComposedETag: the tag changes with either part and ignores an empty
// one, so equal bodies share a tag.
func TestComposedETag(t *testing.T) {
	g, p, empty := testPart(t, "a", "c"), testPart(t, "b"), testPart(t)
	base := composedETag("k", g, empty)
	if composedETag("k", g) != base {
		t.Errorf("an empty part changed the tag")
	}
	if composedETag("k", g, p) == base {
		t.Errorf("a private part did not change the tag")
	}
	if composedETag("k", testPart(t, "a", "d"), p) == composedETag("k", g, p) {
		t.Errorf("a changed global part kept the tag")
	}
}

// TestItemListRejectsGarbage: bytes that are not an item list (another
// version's JSON body, truncation) are refused by check, never sliced.
func TestItemListRejectsGarbage(t *testing.T) {
	good := []byte(testPart(t, "a", "b").items)
	for name, b := range map[string][]byte{
		"json":      []byte(`{"models":[]}`),
		"empty":     nil,
		"truncated": good[:len(good)-3],
		"no index":  good[:itemHeader],
	} {
		if err := itemList(b).check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzItemList: check never panics, and a list it accepts can be read
// whole without panicking.
func FuzzItemList(f *testing.F) {
	items := []item{{key: []byte("a\x00mdl_1"), aux: []byte("a"), json: []byte(`{"id":"mdl_1"}`)}, {key: []byte("b"), json: []byte(`{}`)}}
	f.Add(encodeItems(items, []byte("x")))
	f.Add([]byte(itemMagic + "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte(`{"models":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l := itemList(b)
		if l.check() != nil {
			return
		}
		_ = l.Extra()
		for i := 0; i < l.Len(); i++ {
			_, _, _ = l.Key(i), l.Aux(i), l.JSON(i)
			_ = l.run(0, i+1)
		}
		_ = l.after([]byte("m"))
		if !bytes.Equal(l, b) {
			t.Fatal("reading changed the list")
		}
	})
}

// TestTransientAnswerPooled: without the in-process tier an entry read
// from Redis serves one request, so a client that does not take gzip gets
// its body inflated into a pooled buffer, not into a new one kept on an
// entry nobody reads again. An entry the local tier keeps inflates once.
func TestTransientAnswerPooled(t *testing.T) {
	rs := testredis.Start(t)
	o := cache.Options{RedisURL: rs.URL(), Prefix: "pooltest:"}
	kept := redisCache(t, o)
	o.DisableLocal = true
	alone := redisCache(t, o)
	var sb strings.Builder
	for i := 0; sb.Len() < 60<<10; i++ {
		fmt.Fprintf(&sb, `{"hour":%d,"requests":%d},`, i, i*7%313)
	}
	body := sb.String()
	ctx := context.Background()
	fo := cache.FetchOptions{TTL: time.Minute}
	load := func(context.Context) ([]byte, error) { return []byte(body), nil }
	if _, _, err := kept.Fetch(ctx, "big", fo, load); err != nil {
		t.Fatal(err)
	}
	read := func(c *cache.Cache) Answer {
		t.Helper()
		e, res, err := c.Fetch(ctx, "big", fo, load)
		if err != nil || res != cache.Hit {
			t.Fatalf("Fetch = %v, %v; want a HIT", res, err)
		}
		return entryAnswer(e, res)
	}

	a := read(alone)
	b1, b2 := a.Body(), a.Body()
	if string(b1) != body || &b1[0] != &b2[0] {
		t.Fatalf("Body = %d bytes (twice the same: %v), want the %d-byte body once", len(b1), &b1[0] == &b2[0], len(body))
	}
	a.Release()
	// Each use inflates again, into a pooled buffer: far fewer bytes
	// allocated than the body (without the pool it is the whole body; the
	// race detector drops a quarter of what pools are given).
	e, res := a.entry, a.Result
	per := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			a := entryAnswer(e, res)
			if len(a.Body()) != len(body) {
				b.Fatal("wrong body")
			}
			a.Release()
		}
	}).AllocedBytesPerOp()
	t.Logf("%d bytes allocated per use of a %d-byte body", per, len(body))
	if per > int64(len(body)*3/4) {
		t.Errorf("%d bytes allocated per use, want well under the %d-byte body", per, len(body))
	}

	k := read(kept)
	k1 := k.Body()
	k.Release()
	k = read(kept)
	if k2 := k.Body(); string(k1) != body || &k1[0] != &k2[0] {
		t.Errorf("a kept entry: Body not the body inflated once (same bytes: %v)", &k1[0] == &k2[0])
	}
}
