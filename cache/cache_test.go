package cache

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMissThenHit(t *testing.T) {
	tests := []struct {
		name  string
		opts  func(t *testing.T) Options
		redis bool
	}{
		{"memory", func(t *testing.T) Options { return Options{} }, false},
		{"redis", func(t *testing.T) Options {
			return Options{RedisURL: sharedRedis, Prefix: testPrefix(t, sharedRedis)}
		}, true},
		{"redis-only", func(t *testing.T) Options {
			return Options{RedisURL: sharedRedis, Prefix: testPrefix(t, sharedRedis), DisableLocal: true}
		}, true},
		{"redis-disabled", func(t *testing.T) Options {
			return Options{RedisURL: sharedRedis, DisableRedis: true}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts(t)
			var c *Cache
			if tt.redis {
				c = newRedisCache(t, o)
			} else {
				c = newCache(t, o)
			}
			src := &source{val: "v1"}
			fo := FetchOptions{TTL: time.Minute, Group: "models"}
			e1, res, err := c.Fetch(context.Background(), "k", fo, src.load)
			if err != nil || res != Miss || string(e1.Body()) != "v1" {
				t.Fatalf("first Fetch = %q, %v, %v; want v1, MISS, nil", e1.Body(), res, err)
			}
			if !strings.HasPrefix(e1.ETag, `"`) || !strings.HasSuffix(e1.ETag, `"`) || len(e1.ETag) < 10 {
				t.Errorf("ETag = %s, want a quoted strong tag", e1.ETag)
			}
			for i := 0; i < 3; i++ {
				e2, res, err := c.Fetch(context.Background(), "k", fo, src.load)
				if err != nil || res != Hit || string(e2.Body()) != "v1" {
					t.Fatalf("Fetch #%d = %q, %v, %v; want v1, HIT, nil", i+2, e2.Body(), res, err)
				}
				if e2.ETag != e1.ETag {
					t.Errorf("ETag changed: %s -> %s", e1.ETag, e2.ETag)
				}
			}
			if got := src.loads.Load(); got != 1 {
				t.Errorf("loads = %d, want 1", got)
			}
			st := c.Stats()
			g := st.Groups["models"]
			if g.Miss != 1 || g.Hit != 3 || g.Loads != 1 {
				t.Errorf("group stats = %+v, want miss 1, hit 3, loads 1", g)
			}
			if o.DisableLocal && st.Tiers.Redis.Hits != 3 {
				t.Errorf("redis tier hits = %d, want 3", st.Tiers.Redis.Hits)
			}
			if !tt.redis && st.Tiers.Local.Hits != 3 {
				t.Errorf("local tier hits = %d, want 3", st.Tiers.Local.Hits)
			}
			if gz := e1.Gzip(); len(gz) < 10 || &gz[0] != &e1.Gzip()[0] {
				t.Errorf("Gzip not computed once")
			}
		})
	}
}

func TestResultString(t *testing.T) {
	for r, want := range map[Result]string{Hit: "HIT", Miss: "MISS", Stale: "STALE", Bypass: "BYPASS", 0: "UNKNOWN"} {
		if got := r.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", r, got, want)
		}
	}
}

func TestTTLExpiryAndRevalidate(t *testing.T) {
	for _, mode := range []string{"memory", "redis", "redis-only"} {
		t.Run(mode, func(t *testing.T) {
			clk := newFakeClock()
			o := Options{Now: clk.Now, Stale: time.Minute}
			if mode != "memory" {
				o.RedisURL, o.Prefix = sharedRedis, testPrefix(t, sharedRedis)
				o.DisableLocal = mode == "redis-only"
			}
			c := newCache(t, o)
			if mode != "memory" {
				waitFor(t, 5*time.Second, "redis", func() bool { return c.Mode() == "redis" })
			}
			src := &source{val: "v1"}
			fo := FetchOptions{TTL: 10 * time.Second}
			if got, res := fetch(t, c, "k", fo, src.load); got != "v1" || res != Miss {
				t.Fatalf("got %q %v, want v1 MISS", got, res)
			}
			clk.Add(9 * time.Second)
			if got, res := fetch(t, c, "k", fo, src.load); got != "v1" || res != Hit {
				t.Fatalf("before TTL: got %q %v, want v1 HIT", got, res)
			}
			src.set("v2")
			clk.Add(2 * time.Second) // past FreshUntil, within Stale
			if got, res := fetch(t, c, "k", fo, src.load); got != "v1" || res != Stale {
				t.Fatalf("past TTL: got %q %v, want v1 STALE", got, res)
			}
			// The background refresh replaces it.
			waitFor(t, 2*time.Second, "refresh", func() bool {
				e, res, err := c.Fetch(context.Background(), "k", fo, src.load)
				return err == nil && res == Hit && string(e.Body()) == "v2"
			})
			if got := src.loads.Load(); got != 2 {
				t.Errorf("loads = %d, want 2", got)
			}
			// Past StaleUntil the entry is gone: a synchronous miss.
			src.set("v3")
			clk.Add(10*time.Second + time.Minute + time.Second)
			if got, res := fetch(t, c, "k", fo, src.load); got != "v3" || res != Miss {
				t.Fatalf("past stale: got %q %v, want v3 MISS", got, res)
			}
		})
	}
}

func TestStaleIfError(t *testing.T) {
	for _, mode := range []string{"memory", "redis"} {
		t.Run(mode, func(t *testing.T) {
			clk := newFakeClock()
			o := Options{Now: clk.Now, Stale: time.Minute}
			if mode == "redis" {
				o.RedisURL, o.Prefix = sharedRedis, testPrefix(t, sharedRedis)
			}
			c := newCache(t, o)
			if mode == "redis" {
				waitFor(t, 5*time.Second, "redis", func() bool { return c.Mode() == "redis" })
			}
			src := &source{val: "v1"}
			fo := FetchOptions{TTL: 10 * time.Second}
			fetch(t, c, "k", fo, src.load)
			dbDown := errors.New("database down")
			src.setErr(dbDown)
			clk.Add(30 * time.Second)
			for i := 0; i < 5; i++ {
				e, res, err := c.Fetch(context.Background(), "k", fo, src.load)
				if err != nil || res != Stale || string(e.Body()) != "v1" {
					t.Fatalf("within stale bound: %v %v %v; want v1 STALE nil", e, res, err)
				}
			}
			// The failing refresh is attempted once, not once per hit.
			time.Sleep(50 * time.Millisecond)
			if got := src.loads.Load(); got > 2 {
				t.Errorf("loads = %d while the database is down, want <= 2", got)
			}
			clk.Add(time.Minute)
			_, _, err := c.Fetch(context.Background(), "k", fo, src.load)
			if !errors.Is(err, dbDown) {
				t.Fatalf("past stale bound: err = %v, want %v", err, dbDown)
			}
			// Errors are not cached.
			src.setErr(nil)
			src.set("v2")
			if got, res := fetch(t, c, "k", fo, src.load); got != "v2" || res != Miss {
				t.Fatalf("after recovery: %q %v, want v2 MISS", got, res)
			}
		})
	}
}

func TestEmptyValueNotCached(t *testing.T) {
	c := newCache(t, Options{})
	src := &source{val: ""}
	for i := 0; i < 2; i++ {
		if _, res := fetch(t, c, "k", FetchOptions{TTL: time.Minute}, src.load); res != Miss {
			t.Fatalf("res = %v, want MISS", res)
		}
	}
	if got := src.loads.Load(); got != 2 {
		t.Errorf("loads = %d, want 2 (empty values are not cached)", got)
	}
}

func TestStampedeOneProcess(t *testing.T) {
	for _, mode := range []string{"memory", "redis"} {
		t.Run(mode, func(t *testing.T) {
			// A generous RedisTimeout: 1,000 goroutines under -race on a
			// small machine must not trip the breaker, which is not under test.
			o := Options{RedisTimeout: time.Second}
			if mode == "redis" {
				o.RedisURL, o.Prefix = sharedRedis, testPrefix(t, sharedRedis)
			}
			c := newCache(t, o)
			if mode == "redis" {
				waitFor(t, 5*time.Second, "redis", func() bool { return c.Mode() == "redis" })
			}
			src := &source{val: "v", delay: 50 * time.Millisecond}
			var wg sync.WaitGroup
			errs := make(chan error, 1000)
			for i := 0; i < 1000; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e, _, err := c.Fetch(context.Background(), "cold", FetchOptions{TTL: time.Minute}, src.load)
					if err == nil && string(e.Body()) != "v" {
						err = errors.New("wrong body " + string(e.Body()))
					}
					if err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := src.loads.Load(); got != 1 {
				t.Errorf("loads = %d, want exactly 1", got)
			}
		})
	}
}

func TestStampedeTwoInstances(t *testing.T) {
	prefix := testPrefix(t, sharedRedis)
	a := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: prefix, RedisTimeout: time.Second})
	b := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: prefix, RedisTimeout: time.Second})
	src := &source{val: "v", delay: 50 * time.Millisecond}
	var wg sync.WaitGroup
	var failed sync.Once
	for _, c := range []*Cache{a, b} {
		for i := 0; i < 500; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, _, err := c.Fetch(context.Background(), "cold", FetchOptions{TTL: time.Minute}, src.load)
				if err != nil || string(e.Body()) != "v" {
					failed.Do(func() { t.Errorf("Fetch: %v", err) })
				}
			}()
		}
	}
	wg.Wait()
	if got := src.loads.Load(); got != 1 {
		t.Errorf("loads across two instances = %d, want exactly 1", got)
	}
}

func TestDisabledModes(t *testing.T) {
	c := newCache(t, Options{Disabled: true, RedisURL: sharedRedis})
	src := &source{val: "v"}
	for i := 0; i < 3; i++ {
		e, res, err := c.Fetch(context.Background(), "k", FetchOptions{TTL: time.Minute, Group: "models"}, src.load)
		if err != nil || res != Bypass || string(e.Body()) != "v" || e.ETag == "" {
			t.Fatalf("Disabled Fetch = %v, %v, %v; want v BYPASS nil", e, res, err)
		}
	}
	if got := src.loads.Load(); got != 3 {
		t.Errorf("loads = %d, want 3", got)
	}
	st := c.Stats()
	if st.Mode != "off" || st.Redis != "disabled" || st.Groups["models"].Bypass != 3 || st.Groups["models"].Loads != 3 {
		t.Errorf("Stats = %+v; want mode off, redis disabled, 3 bypass/loads", st)
	}
	c.Invalidate(context.Background(), "k")

	dbErr := errors.New("boom")
	if _, res, err := c.Fetch(context.Background(), "k", FetchOptions{TTL: time.Minute}, func(context.Context) ([]byte, error) { return nil, dbErr }); res != Bypass || !errors.Is(err, dbErr) {
		t.Errorf("Disabled Fetch with failing load = %v, %v; want BYPASS, boom", res, err)
	}

	for _, tt := range []struct {
		name             string
		opts             Options
		mode, redisState string
	}{
		{"no url", Options{}, "memory", "disabled"},
		{"DisableRedis", Options{RedisURL: sharedRedis, DisableRedis: true}, "memory", "disabled"},
		{"unreachable", Options{RedisURL: "redis://127.0.0.1:1"}, "memory", "down"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, tt.opts)
			if c.Mode() != tt.mode || c.RedisState() != tt.redisState {
				t.Errorf("Mode, RedisState = %s, %s; want %s, %s", c.Mode(), c.RedisState(), tt.mode, tt.redisState)
			}
			if got, res := fetch(t, c, "k", FetchOptions{TTL: time.Minute}, (&source{val: "x"}).load); got != "x" || res != Miss {
				t.Errorf("Fetch = %q %v", got, res)
			}
		})
	}
}

func TestNewBadOptions(t *testing.T) {
	for _, u := range []string{"http://localhost", "::not a url", "redis://localhost/1/2"} {
		if c, err := New(Options{RedisURL: u}); err == nil {
			c.Close()
			t.Errorf("New(%q) succeeded, want an error", u)
		}
	}
	for _, u := range []string{"redis://localhost:1", "rediss://localhost:1"} {
		c, err := New(Options{RedisURL: u})
		if err != nil {
			t.Errorf("New(%q): %v, want nil (unreachable is not an error)", u, err)
			continue
		}
		c.Close()
	}
}

func TestInvalidateMemory(t *testing.T) {
	c := newCache(t, Options{})
	src := &source{val: "v1"}
	fo := FetchOptions{TTL: time.Minute}
	fetch(t, c, "k", fo, src.load)
	src.set("v2")
	c.Invalidate(context.Background(), "k")
	if got, res := fetch(t, c, "k", fo, src.load); got != "v2" || res != Miss {
		t.Fatalf("after Invalidate: %q %v, want v2 MISS", got, res)
	}
	if _, err := c.InvalidatePattern(context.Background(), ""); !errors.Is(err, ErrEmptyPattern) {
		t.Errorf("empty pattern: err = %v, want ErrEmptyPattern", err)
	}
	fetch(t, c, "api:models:1", fo, src.load)
	fetch(t, c, "api:models:2", fo, src.load)
	fetch(t, c, "api:servers:1", fo, src.load)
	n, err := c.InvalidatePattern(context.Background(), "api:models:*")
	if err != nil || n != 2 {
		t.Fatalf("InvalidatePattern = %d, %v; want 2", n, err)
	}
	if !c.localHas("api:servers:1") || c.localHas("api:models:1") {
		t.Errorf("pattern removed the wrong keys")
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"api:models:*", "api:models:user:1", true},
		{"api:models:*", "api:servers:1", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a[bc]d", "acd", true},
		{"a[^bc]d", "acd", false},
		{"a[a-c]d", "abd", true},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"*:1", "x:y:1", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
	} {
		if got := globMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
	if got := globEscape("a*b[c]"); got != `a\*b\[c\]` {
		t.Errorf("globEscape = %q", got)
	}
}

func TestEntryEncoding(t *testing.T) {
	now := time.Now()
	e := newEntry([]byte(`{"a":1}`), fillInfo{at: now, ttl: time.Minute, stale: time.Hour, tags: []tagGen{{"global", "abc"}, {"u:1", "x"}}})
	b := encodeEntry(e, -1)
	d, err := decodeEntry(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if string(d.Body()) != string(e.Body()) || d.ETag != e.ETag || !d.FreshUntil.Equal(e.FreshUntil) || !d.StaleUntil.Equal(e.StaleUntil) || len(d.tags) != 2 || d.tags[1] != e.tags[1] {
		t.Errorf("round trip: got %+v, want %+v", d, e)
	}
	for i, bad := range [][]byte{nil, []byte("garbage"), append([]byte{entryVersion + 1}, b[1:]...), b[:len(b)-1], append(b, 'x')} {
		if _, err := decodeEntry(bad); err == nil {
			t.Errorf("case %d: decoded a corrupt value", i)
		}
	}
}

func TestStatsJSON(t *testing.T) {
	c := newCache(t, Options{})
	fetch(t, c, "k", FetchOptions{TTL: time.Minute, Group: "models"}, (&source{val: "v"}).load)
	fetch(t, c, "k", FetchOptions{TTL: time.Minute, Group: "models"}, (&source{val: "v"}).load)
	b, err := json.Marshal(c.Stats())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(b, &got)
	for _, k := range []string{"mode", "redis", "tiers", "stale_serves", "loads", "groups"} {
		if _, ok := got[k]; !ok {
			t.Errorf("Stats JSON lacks %q: %s", k, b)
		}
	}
	want := `"models":{"hit":1,"miss":1,"stale":0,"bypass":0,"loads":1}`
	if !strings.Contains(string(b), want) {
		t.Errorf("Stats JSON = %s, want it to contain %s", b, want)
	}
}

// Peek answers only what Fetch would answer as a local HIT: fresh, with
// current tag generations, not invalidated.
func TestPeek(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		before func(c *Cache, clk *fakeClock)
		want   bool
	}{
		{"fresh", func(*Cache, *fakeClock) {}, true},
		{"expired", func(_ *Cache, clk *fakeClock) { clk.Add(2 * time.Minute) }, false},
		{"key invalidated", func(c *Cache, _ *fakeClock) { c.Invalidate(ctx, "k") }, false},
		{"tag invalidated", func(c *Cache, _ *fakeClock) { c.InvalidateTag(ctx, "t") }, false},
		{"other tag invalidated", func(c *Cache, _ *fakeClock) { c.InvalidateTag(ctx, "u") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			c := newCache(t, Options{Now: clk.Now})
			if _, ok := c.Peek("k", "g"); ok {
				t.Fatalf("Peek before any Fetch = true")
			}
			src := &source{val: "v1"}
			fo := FetchOptions{TTL: time.Minute, Group: "g", Tags: []string{"t"}}
			fetch(t, c, "k", fo, src.load)
			tt.before(c, clk)
			e, ok := c.Peek("k", "g")
			if ok != tt.want {
				t.Fatalf("Peek = %v, want %v", ok, tt.want)
			}
			if ok && string(e.Body()) != "v1" {
				t.Errorf("Peek body = %q, want v1", e.Body())
			}
			if got := c.Stats().Groups["g"].Hit; ok && got != 1 {
				t.Errorf("group hits after a Peek hit = %d, want 1", got)
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		c := newCache(t, Options{Disabled: true})
		if _, ok := c.Peek("k", "g"); ok {
			t.Fatalf("Peek on a disabled cache = true")
		}
	})
}

// TestKeepLocal: without the local tier, keys under KeepLocal still keep
// it, and stay coherent with another instance's invalidation; other keys
// are read from Redis every time.
func TestKeepLocal(t *testing.T) {
	prefix := testPrefix(t, sharedRedis)
	o := Options{RedisURL: sharedRedis, Prefix: prefix, DisableLocal: true, KeepLocal: []string{"auth:"}}
	a, b := newRedisCache(t, o), newRedisCache(t, o)
	ctx := context.Background()
	fo := FetchOptions{TTL: time.Minute}
	// As with the local tier on, the first read after our own fill goes
	// to Redis; a kept key's later reads are local hits. minLocal: a
	// local copy may also be dropped and read again (a reconnect of the
	// tracking connection drops them all, which a loaded machine causes
	// now and then), so a kept key is held to at least one local hit out
	// of its three; any other key to none.
	tests := []struct {
		key                string
		wantLocal          bool
		minLocal, maxLocal uint64
	}{
		{"auth:token:x", true, 1, 2},
		{"api:models:y", false, 0, 0},
	}
	for _, tt := range tests {
		src := &source{val: "v1"}
		before := a.Stats().Tiers
		for i, want := range []Result{Miss, Hit, Hit, Hit} {
			if got, res := fetch(t, a, tt.key, fo, src.load); got != "v1" || res != want {
				t.Fatalf("%s: Fetch #%d = %q %v, want v1 %v", tt.key, i+1, got, res, want)
			}
		}
		after := a.Stats().Tiers
		local, redis := after.Local.Hits-before.Local.Hits, after.Redis.Hits-before.Redis.Hits
		if local < tt.minLocal || local > tt.maxLocal || local+redis != 3 {
			t.Errorf("%s: %d local hits, %d Redis hits; want %d to %d local of 3", tt.key, local, redis, tt.minLocal, tt.maxLocal)
		}
		if _, ok := a.Peek(tt.key, ""); ok != tt.wantLocal {
			t.Errorf("%s: Peek found it = %v, want %v", tt.key, ok, tt.wantLocal)
		}
	}
	b.Invalidate(ctx, "auth:token:x")
	waitFor(t, 2*time.Second, "the invalidation on the other instance", func() bool {
		_, ok := a.Peek("auth:token:x", "")
		return !ok
	})
	src := &source{val: "v2"}
	if got, res := fetch(t, a, "auth:token:x", fo, src.load); got != "v2" || res != Miss {
		t.Fatalf("after the invalidation: %q %v, want v2 MISS", got, res)
	}
}
