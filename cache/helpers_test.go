package cache

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sharedRedis is the machine's Redis. Tests use it with a unique prefix and
// never flush it.
const sharedRedis = "redis://127.0.0.1:6379"

// fakeClock is an injected clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// adminClient is a plain client to inspect and tamper with Redis.
func adminClient(t testing.TB, url string) rueidis.Client {
	t.Helper()
	o := rueidis.MustParseURL(url)
	o.DisableCache = true
	cl, err := rueidis.NewClient(o)
	if err != nil {
		t.Fatalf("redis at %s: %v (is redis-server running? `make test` starts it)", url, err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// testPrefix returns a unique prefix on the shared Redis. At cleanup it
// checks that every key under it has a TTL, then removes them (SCAN, never
// KEYS or FLUSH*).
func testPrefix(t testing.TB, url string) string {
	t.Helper()
	p := fmt.Sprintf("cachetest:%x:", rand.Uint64())
	cl := adminClient(t, url)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, node := range cl.Nodes() {
			var cursor uint64
			for {
				se, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(p+"*").Count(500).Build()).AsScanEntry()
				if err != nil {
					return // a test may have killed its server
				}
				for _, k := range se.Elements {
					pttl, err := cl.Do(ctx, cl.B().Pttl().Key(k).Build()).AsInt64()
					if err == nil && pttl < 0 && pttl != -2 {
						t.Errorf("key %q has no TTL (PTTL %d)", k, pttl)
					}
					cl.Do(ctx, cl.B().Unlink().Key(k).Build())
				}
				cursor = se.Cursor
				if cursor == 0 {
					break
				}
			}
		}
	})
	return p
}

func newCache(t testing.TB, o Options) *Cache {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RedisTimeout == 0 {
		// Tests share a small machine (and -race): a generous deadline keeps
		// the breaker out of tests that are not about it.
		o.RedisTimeout = time.Second
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newRedisCache builds a cache on url and waits until it uses Redis.
func newRedisCache(t testing.TB, o Options) *Cache {
	t.Helper()
	c := newCache(t, o)
	waitFor(t, 5*time.Second, "redis up", func() bool { return c.Mode() == "redis" })
	return c
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// source is a fake database: a value, and a count of loads.
type source struct {
	mu    sync.Mutex
	val   string
	loads atomic.Int64
	err   error
	delay time.Duration
}

func (s *source) set(v string) { s.mu.Lock(); s.val = v; s.mu.Unlock() }

func (s *source) setErr(err error) { s.mu.Lock(); s.err = err; s.mu.Unlock() }

func (s *source) load(ctx context.Context) ([]byte, error) {
	s.loads.Add(1)
	s.mu.Lock()
	v, err, d := s.val, s.err, s.delay
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
	if err != nil {
		return nil, err
	}
	return []byte(v), nil
}

func (c *Cache) localHas(key string) bool {
	if c.local == nil {
		return false
	}
	_, ok := c.local.GetIfPresent(key)
	return ok
}

func fetch(t testing.TB, c *Cache, key string, o FetchOptions, load Loader) (string, Result) {
	t.Helper()
	e, res, err := c.Fetch(context.Background(), key, o, load)
	if err != nil {
		t.Fatalf("Fetch(%q): %v", key, err)
	}
	return string(e.Body()), res
}
