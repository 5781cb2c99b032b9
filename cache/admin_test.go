package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testredis"
)

// HotKeys finds the most read keys under churn (thousands of keys read
// once), in order, with counts near the truth, in bounded memory.
func TestHotKeys(t *testing.T) {
	c := newCache(t, Options{})
	fo := FetchOptions{TTL: time.Minute}
	load := (&source{val: "v"}).load
	reads := map[string]int{"hot-a": 80000, "hot-b": 40000, "hot-c": 20000}
	for i := 0; i < 80000; i++ {
		for k, n := range reads {
			if i < n {
				if _, ok := c.Peek(k, ""); !ok { // the hit path the service takes
					c.Fetch(context.Background(), k, fo, load)
				}
			}
		}
		if i%20 == 0 {
			c.Fetch(context.Background(), fmt.Sprintf("cold-%d", i), fo, load) // 4,000 keys read once
		}
	}
	top := c.HotKeys(3)
	if len(top) != 3 || top[0].Key != "hot-a" || top[1].Key != "hot-b" || top[2].Key != "hot-c" {
		t.Fatalf("HotKeys(3) = %+v, want hot-a, hot-b, hot-c", top)
	}
	for _, kc := range top {
		want := float64(reads[kc.Key])
		if got := float64(kc.Count); got < 0.8*want || got > 1.25*want+float64(kc.Error) {
			t.Errorf("%s: count %d (error %d), want about %.0f", kc.Key, kc.Count, kc.Error, want)
		}
	}
	if all := c.HotKeys(0); len(all) > hotCapacity || len(c.hot.idx) > hotCapacity {
		t.Errorf("the sketch holds %d keys, want at most %d", len(all), hotCapacity)
	}
}

// fillBrowse fills n keys under "api:models:" (every tenth one tagged) and
// one key outside it.
func fillBrowse(t *testing.T, c *Cache, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		fo := FetchOptions{TTL: time.Minute}
		if i%10 == 0 {
			fo.Tags = []string{"models:global"}
		}
		fetch(t, c, fmt.Sprintf("api:models:%03d", i), fo, (&source{val: fmt.Sprintf("body-%d", i)}).load)
	}
	fetch(t, c, "api:servers:1", FetchOptions{TTL: time.Minute}, (&source{val: "s"}).load)
}

// browseAll walks every page and checks each key once, under the prefix.
func browseAll(t *testing.T, c *Cache, prefix string, limit int) (map[string]KeyInfo, int) {
	t.Helper()
	seen := map[string]KeyInfo{}
	cursor, pages := "", 0
	for {
		page, err := c.Browse(context.Background(), prefix, cursor, limit)
		if err != nil {
			t.Fatalf("Browse page %d: %v", pages, err)
		}
		pages++
		if len(page.Keys) > 2*limit {
			t.Fatalf("page %d: %d keys for a limit of %d", pages, len(page.Keys), limit)
		}
		for _, ki := range page.Keys {
			if !strings.HasPrefix(ki.Key, prefix) {
				t.Fatalf("Browse(%q) listed %q", prefix, ki.Key)
			}
			seen[ki.Key] = ki
		}
		if cursor = page.Cursor; cursor == "" || pages > 1000 {
			return seen, pages
		}
	}
}

func TestBrowse(t *testing.T) {
	for _, mode := range []string{"memory", "redis", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			clk := newFakeClock()
			o := Options{Now: clk.Now, Stale: time.Minute}
			switch mode {
			case "redis":
				o.RedisURL, o.Prefix = sharedRedis, testPrefix(t, sharedRedis)
			case "cluster":
				o.RedisURL, o.Prefix = testredis.StartCluster(t, 3).URL(), "p:"
			}
			c := newCache(t, o)
			if mode != "memory" {
				waitFor(t, 5*time.Second, "redis", func() bool { return c.Mode() == "redis" })
			}
			fillBrowse(t, c, 250)
			big := strings.Repeat(`{"name":"model"},`, 1000)
			fetch(t, c, "api:models:big", FetchOptions{TTL: time.Minute}, (&source{val: big}).load)
			const limit = 40
			seen, pages := browseAll(t, c, "api:models:", limit)
			// A page holds at most 2×limit keys (a SCAN step is not split,
			// and one step may return more than its COUNT), so 251 keys
			// take at least 4 pages; how many more depends on how SCAN's
			// steps fall on Redis's buckets (4 to 7 seen).
			if least := (251 + 2*limit - 1) / (2 * limit); len(seen) != 251 || pages < least {
				t.Fatalf("Browse listed %d keys in %d pages, want 251 in %d or more", len(seen), pages, least)
			}
			ki := seen["api:models:010"]
			if ki.State != "fresh" || ki.Size != len("body-10") || len(ki.Tags) != 1 || ki.Tags[0] != "models:global" || ki.Superseded {
				t.Errorf("api:models:010 = %+v, want fresh, 7 bytes, tag models:global", ki)
			}
			if b := seen["api:models:big"]; b.Size != len(big) || (mode != "memory" && b.StoredSize >= b.Size/4) {
				t.Errorf("big entry: size %d, stored %d; want %d, stored compressed in Redis", b.Size, b.StoredSize, len(big))
			}
			c.InvalidateTag(context.Background(), "models:global")
			clk.Add(90 * time.Second)
			page, err := c.Browse(context.Background(), "api:models:010", "", 10)
			if err != nil || len(page.Keys) != 1 {
				t.Fatalf("Browse one key: %+v, %v", page, err)
			}
			if ki := page.Keys[0]; ki.State != "stale" || !ki.Superseded {
				t.Errorf("after the TTL and a tag bump: %+v, want stale and superseded", ki)
			}
			if _, err := c.Browse(context.Background(), "", "x1-2", 10); !errors.Is(err, ErrBadCursor) {
				t.Errorf("a bad cursor: %v, want ErrBadCursor", err)
			}
		})
	}
}
