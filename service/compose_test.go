package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/modellab/modellab/cache"
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
