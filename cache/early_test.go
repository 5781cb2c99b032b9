package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// A key read steadily across many TTLs, with early refresh (XFetch), is
// refreshed in the background before it expires: after the first MISS no
// read is a MISS, and it costs about one load per TTL. Without early
// refresh the same reads miss once per TTL (the stale window is 1 ms here,
// so stale-while-revalidate does not hide it). The clock is injected; the
// loader advances it by the load time it measures (200 ms), and the random
// source is seeded.
func TestEarlyRefresh(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		beta  float64
		early bool
	}{
		{"memory", 0, true}, // 0 = the default beta, 1
		{"redis", 1, true},
		{"memory", -1, false},
	} {
		t.Run(fmt.Sprintf("%s/beta=%v", tc.mode, tc.beta), func(t *testing.T) {
			clk := newFakeClock()
			o := Options{Now: clk.Now, Stale: time.Millisecond, EarlyRefresh: tc.beta, Rand: rand.New(rand.NewPCG(1, 2)).Float64}
			if tc.mode == "redis" {
				o.RedisURL, o.Prefix = sharedRedis, testPrefix(t, sharedRedis)
			}
			c := newCache(t, o)
			if tc.mode == "redis" {
				waitFor(t, 5*time.Second, "redis", func() bool { return c.Mode() == "redis" })
			}
			loads := 0
			load := func(context.Context) ([]byte, error) {
				loads++ // loads never overlap: the test waits for each
				clk.Add(200 * time.Millisecond)
				return []byte(fmt.Sprintf("v%d", loads)), nil
			}
			const ttl, step, reads = 10 * time.Second, 97 * time.Millisecond, 1000 // about 10 TTLs
			counts := map[Result]int{}
			for i := 0; i < reads; i++ {
				_, res, err := c.Fetch(context.Background(), "hot", FetchOptions{TTL: ttl}, load)
				if err != nil {
					t.Fatalf("read %d: %v", i, err)
				}
				counts[res]++
				if res == Miss && i > 0 && tc.early {
					t.Fatalf("read %d (t=+%v) was a MISS: the key expired into a synchronous load", i, time.Duration(i)*step)
				}
				waitFor(t, 5*time.Second, "refresh done", func() bool { return !c.loading("hot") })
				clk.Add(step)
			}
			t.Logf("results %v, loads %d, early refreshes %d", counts, loads, c.Stats().EarlyRefreshes)
			if !tc.early {
				if counts[Miss] < 5 {
					t.Errorf("without early refresh: %d misses, want one per TTL (about 10)", counts[Miss])
				}
				return
			}
			// 1000 reads 97 ms apart (plus 200 ms per load) span about 10 TTLs.
			if loads < 10 || loads > 16 {
				t.Errorf("loads = %d, want about one per TTL (10-16)", loads)
			}
			if got := c.Stats().EarlyRefreshes; got != uint64(loads-1) {
				t.Errorf("early refreshes = %d, want %d (every load but the first)", got, loads-1)
			}
		})
	}
}

// Peek cannot refresh (it has no loader): when early refresh is due it
// says "call Fetch", and that Fetch serves the entry as a HIT and starts
// the refresh.
func TestPeekEarlyRefresh(t *testing.T) {
	clk := newFakeClock()
	// Rand close to 1 makes -ln(1-u) large: due as soon as within the horizon.
	c := newCache(t, Options{Now: clk.Now, Rand: func() float64 { return 0.9999 }})
	loads := 0
	load := func(context.Context) ([]byte, error) {
		loads++
		clk.Add(100 * time.Millisecond)
		return []byte(fmt.Sprintf("v%d", loads)), nil
	}
	fo := FetchOptions{TTL: time.Minute}
	fetch(t, c, "k", fo, load)
	if _, ok := c.Peek("k", ""); !ok {
		t.Fatalf("Peek of a fresh entry far from expiry = false")
	}
	clk.Add(time.Minute - 500*time.Millisecond) // within 9.2 deltas of FreshUntil
	if _, ok := c.Peek("k", ""); ok {
		t.Fatalf("Peek with early refresh due = true, want false")
	}
	if got, res := fetch(t, c, "k", fo, load); got != "v1" || res != Hit {
		t.Fatalf("Fetch after Peek: %q %v, want v1 HIT", got, res)
	}
	waitFor(t, 5*time.Second, "refresh", func() bool { return !c.loading("k") })
	if got, res := fetch(t, c, "k", fo, load); got != "v2" || res != Hit || loads != 2 {
		t.Fatalf("after the refresh: %q %v (loads %d), want v2 HIT, 2 loads", got, res, loads)
	}
}
