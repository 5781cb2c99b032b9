package cache

import (
	"context"
	"testing"
	"time"
)

// A stamp holds exactly while a Peek would answer the same entry: every
// way an entry stops being servable (invalidated here or by another
// instance, its tag invalidated, its TTL or its early-refresh window
// reached, a fence, Close) makes it invalid, and a change to any other key
// does too (the view is one counter: conservative, never wrong).
func TestStamp(t *testing.T) {
	ctx := context.Background()
	const ttl = 10 * time.Second
	for _, tc := range []struct {
		name  string
		redis bool
		// change does something after the stamp was taken; valid is
		// whether the stamp must still hold afterwards.
		change func(t *testing.T, c, peer *Cache, clk *fakeClock)
		valid  bool
	}{
		{"nothing", false, func(*testing.T, *Cache, *Cache, *fakeClock) {}, true},
		{"time short of the window", false, func(_ *testing.T, _, _ *Cache, clk *fakeClock) { clk.Add(ttl / 10) }, true},
		{"fresh time over", false, func(_ *testing.T, _, _ *Cache, clk *fakeClock) { clk.Add(ttl) }, false},
		{"early window reached", false, func(_ *testing.T, _, _ *Cache, clk *fakeClock) { clk.Add(ttl - time.Millisecond) }, false},
		{"key invalidated", false, func(_ *testing.T, c, _ *Cache, _ *fakeClock) { c.Invalidate(ctx, "k") }, false},
		{"tag invalidated", false, func(_ *testing.T, c, _ *Cache, _ *fakeClock) { c.InvalidateTag(ctx, "t") }, false},
		{"pattern purged", false, func(_ *testing.T, c, _ *Cache, _ *fakeClock) { _, _ = c.InvalidatePattern(ctx, "k*") }, false},
		{"other key stored", false, func(t *testing.T, c, _ *Cache, _ *fakeClock) {
			fetch(t, c, "other", FetchOptions{TTL: ttl}, constLoad("x"))
		}, false},
		{"closed", false, func(_ *testing.T, c, _ *Cache, _ *fakeClock) { c.Close() }, false},
		{"invalidated by another instance", true, func(t *testing.T, c, peer *Cache, _ *fakeClock) {
			peer.Invalidate(ctx, "k")
			waitFor(t, 5*time.Second, "push", func() bool { return !c.localHas("k") })
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			o := Options{Now: clk.Now, EarlyRefresh: 1}
			if tc.redis {
				o.RedisURL, o.Prefix = sharedRedis, testPrefix(t, sharedRedis)
			}
			c := newCache(t, o)
			peer := c
			if tc.redis {
				peer = newCache(t, o)
				waitFor(t, 5*time.Second, "redis", func() bool { return c.Mode() == "redis" && peer.Mode() == "redis" })
			}
			load := func(context.Context) ([]byte, error) {
				clk.Add(100 * time.Millisecond) // the measured load time sets the early window
				return []byte("v"), nil
			}
			fo := FetchOptions{TTL: ttl, Tags: []string{"t"}}
			fetch(t, c, "k", fo, load)
			if tc.redis {
				// The fill's own tracking pushes may drop the first local
				// copy; the next read stores one that Redis tracks.
				waitFor(t, 5*time.Second, "a tracked local copy", func() bool {
					fetch(t, c, "k", fo, load)
					_, ok := c.Peek("k", "g")
					return ok
				})
			}
			e, st, ok := c.PeekStamp("k", "g")
			if !ok || !c.Valid(st) {
				t.Fatalf("PeekStamp after a fill: ok=%v valid=%v, want both", ok, c.Valid(st))
			}
			tc.change(t, c, peer, clk)
			if got := c.Valid(st); got != tc.valid {
				t.Fatalf("Valid = %v, want %v", got, tc.valid)
			}
			if tc.valid {
				if got, ok := c.Peek("k", "g"); !ok || got != e {
					t.Fatalf("a valid stamp, but Peek = %p, %v; want the stamped entry %p", got, ok, e)
				}
			}
		})
	}
}

// Joined stamps hold while both do; stamps of different views never join.
func TestStampJoin(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, Options{Now: clk.Now, EarlyRefresh: -1})
	fetch(t, c, "a", FetchOptions{TTL: time.Second}, constLoad("a"))
	fetch(t, c, "b", FetchOptions{TTL: 2 * time.Second}, constLoad("b"))
	_, sa, _ := c.PeekStamp("a", "g")
	_, sb, _ := c.PeekStamp("b", "g")
	j := sa.Join(sb)
	if !c.Valid(j) {
		t.Fatal("the join of two valid stamps is not valid")
	}
	clk.Add(time.Second)
	if c.Valid(j) || !c.Valid(sb) {
		t.Fatalf("at a's expiry: join valid %v (want false), b valid %v (want true)", c.Valid(j), c.Valid(sb))
	}
	fetch(t, c, "c", FetchOptions{TTL: time.Second}, constLoad("c"))
	_, sc, _ := c.PeekStamp("c", "g")
	if j := sb.Join(sc); j != (Stamp{}) {
		t.Fatalf("stamps of two views joined into %+v, want the zero stamp", j)
	}
	if c.Valid(Stamp{}) {
		t.Fatal("the zero stamp is valid")
	}
}

// constLoad loads v.
func constLoad(v string) Loader {
	return func(context.Context) ([]byte, error) { return []byte(v), nil }
}
