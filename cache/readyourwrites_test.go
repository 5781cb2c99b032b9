package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testredis"
	"github.com/redis/rueidis"
)

// holdSharedReads makes the coalesced Redis read of key wait, once Redis
// has answered, until release is called: the interleaving where a read
// that began before a write is still being handed out after the write
// returned (on a busy process the goroutine that ran the read may simply
// not be scheduled yet). held is closed when the read is waiting.
func holdSharedReads(t *testing.T, key string) (held <-chan struct{}, release func()) {
	t.Helper()
	h := make(chan struct{})
	r := make(chan struct{})
	var once sync.Once
	testHookSharedRead = func(k string) {
		if k != key {
			return
		}
		first := false
		once.Do(func() { first = true })
		if first {
			close(h)
			<-r
		}
	}
	var rel sync.Once
	release = func() { rel.Do(func() { close(r) }) }
	t.Cleanup(func() {
		release()
		testHookSharedRead = nil
	})
	return h, release
}

// The cause of lost writes seen in the field: a read of Redis that began
// before a write, shared (coalesced) with a Fetch that began after the
// write returned, handed that Fetch the pre-write entry, which it stored
// locally and served as a HIT until the TTL. The read after a write must
// not take a Redis answer older than the write, whether the write's UNLINK
// reached Redis or not.
func TestReadYourWritesSharedRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block string // ACL rule applied before the write ("" = none)
	}{
		{"unlink confirmed", ""},
		{"unlink refused", "-unlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testredis.Start(t)
			o := Options{RedisURL: srv.URL(), Prefix: "p:"}
			writer, reader := twoInstances(t, o)
			src := &source{val: "v1"}
			fo := FetchOptions{TTL: time.Minute}
			fetch(t, writer, "k", fo, src.load) // Redis holds v1; reader has no local copy
			if tc.block != "" {
				if _, err := srv.Do("ACL", "SETUSER", "default", tc.block); err != nil {
					t.Fatal(err)
				}
			}
			held, release := holdSharedReads(t, "k")
			before := make(chan string, 1)
			go func() { // a reader whose read began before the write
				e, _, _ := reader.Fetch(context.Background(), "k", fo, src.load)
				before <- string(e.Body())
			}()
			<-held
			src.set("v2")
			reader.Invalidate(context.Background(), "k") // the write, on the reader's instance
			type result struct {
				body string
				res  Result
				err  error
			}
			after := make(chan result, 1)
			go func() { // the read after the write
				e, res, err := reader.Fetch(context.Background(), "k", fo, src.load)
				after <- result{string(e.Body()), res, err}
			}()
			time.Sleep(200 * time.Millisecond) // let it reach the shared read
			release()
			if got := <-after; got.err != nil || got.body != "v2" {
				t.Fatalf("the read after the write returned %q (%v, %v), want v2", got.body, got.res, got.err)
			}
			<-before
			if got, res := fetch(t, reader, "k", fo, src.load); got != "v2" {
				t.Fatalf("a later read returned %q (%v), want v2", got, res)
			}
		})
	}
}

// A write whose caller went away (its context canceled) while the
// invalidation was on its way still invalidates: the database has
// changed whatever the client does.
func TestInvalidationDetachedFromCaller(t *testing.T) {
	c := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: testPrefix(t, sharedRedis)})
	other := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: c.opts.Prefix})
	src := &source{val: "v1"}
	plain := FetchOptions{TTL: time.Minute}
	tagged := FetchOptions{TTL: time.Minute, Tags: []string{"tg"}}
	fetch(t, c, "k", plain, src.load)
	fetch(t, c, "tagged", tagged, src.load)
	src.set("v2")
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	c.Invalidate(gone, "k")
	c.InvalidateTag(gone, "tg")
	for _, tc := range []struct {
		c    *Cache
		name string
	}{{other, "another instance"}, {c, "the writing instance"}} {
		if got, _ := fetch(t, tc.c, "k", plain, src.load); got != "v2" {
			t.Errorf("%s: key = %q after a canceled caller's Invalidate, want v2", tc.name, got)
		}
		if got, _ := fetch(t, tc.c, "tagged", tagged, src.load); got != "v2" {
			t.Errorf("%s: tagged = %q after a canceled caller's InvalidateTag, want v2", tc.name, got)
		}
	}
}

// denyWrites makes the server refuse every command the cache writes with
// (UNLINK, the generation SET, the lease scripts) while GETs still answer:
// a slot whose writes fail, the way a cluster looks for a moment around a
// failover. allow undoes it.
func denyWrites(t *testing.T, srv *testredis.Server) (allow func()) {
	t.Helper()
	rules := []string{"-unlink", "-del", "-set", "-eval", "-evalsha"}
	if _, err := srv.Do(append([]string{"ACL", "SETUSER", "default"}, rules...)...); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	return func() {
		if _, err := srv.Do("ACL", "SETUSER", "default", "+@all"); err != nil {
			t.Fatalf("ACL SETUSER: %v", err)
		}
	}
}

// After an invalidation that Redis did not take, this instance never
// serves what it names older than the write — from Redis, whose GETs still
// answer, or from its own tiers — until the invalidation is replayed,
// which happens as soon as Redis takes writes again. Redis stays in use
// for everything else.
func TestUnconfirmedInvalidationIsFenced(t *testing.T) {
	tests := []struct {
		name       string
		fo         FetchOptions
		invalidate func(c *Cache)
		replayed   func(cl rueidis.Client) bool
	}{
		{"key", FetchOptions{TTL: time.Minute},
			func(c *Cache) { c.Invalidate(context.Background(), "k") },
			func(cl rueidis.Client) bool {
				n, err := cl.Do(context.Background(), cl.B().Exists().Key("p:k").Build()).AsInt64()
				return err == nil && n == 0
			}},
		{"tag", FetchOptions{TTL: time.Minute, Tags: []string{"tg"}},
			func(c *Cache) { c.InvalidateTag(context.Background(), "tg") },
			nil},
		{"pattern", FetchOptions{TTL: time.Minute},
			func(c *Cache) { c.InvalidatePattern(context.Background(), "k*") },
			func(cl rueidis.Client) bool {
				n, err := cl.Do(context.Background(), cl.B().Exists().Key("p:k").Build()).AsInt64()
				return err == nil && n == 0
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testredis.Start(t)
			c := newRedisCache(t, Options{RedisURL: srv.URL(), Prefix: "p:"})
			src := &source{val: "v1"}
			other := &source{val: "o"}
			fetch(t, c, "k", tt.fo, src.load)
			fetch(t, c, "other", FetchOptions{TTL: time.Minute}, other.load)
			allow := denyWrites(t, srv)
			src.set("v2")
			tt.invalidate(c)
			if st := c.Stats(); st.Redis != "up" || st.UnconfirmedInvalidations != 1 {
				t.Fatalf("after the refused invalidation: redis %q, unconfirmed %d; want up, 1", st.Redis, st.UnconfirmedInvalidations)
			}
			for i := 0; i < 3; i++ {
				// The local tier is dropped as when the tracking connection
				// is lost: Redis, which still holds v1, is asked again.
				c.flushLocal()
				if got, res := fetch(t, c, "k", tt.fo, src.load); got != "v2" {
					t.Fatalf("read %d after the write: %q (%v), want v2", i, got, res)
				}
			}
			c.flushLocal()
			if got, res := fetch(t, c, "other", FetchOptions{TTL: time.Minute}, other.load); got != "o" || res != Hit {
				t.Errorf("another key: %q %v, want o HIT from Redis", got, res)
			}
			allow()
			waitFor(t, 10*time.Second, "replay", func() bool { return c.Stats().UnconfirmedInvalidations == 0 })
			if tt.replayed != nil && !tt.replayed(adminClient(t, srv.URL())) {
				t.Errorf("the invalidation was not replayed in Redis")
			}
			c.flushLocal()
			if got, _ := fetch(t, c, "k", tt.fo, src.load); got != "v2" {
				t.Errorf("after the replay: %q, want v2", got)
			}
		})
	}
}

// Stale-if-error with an unconfirmed invalidation: the database fails
// right after a write whose invalidation Redis refused. A copy loaded after
// the write (kept as a retired copy when the local tier was dropped) is
// served STALE; the pre-write entry Redis still holds is never served, as
// a HIT or as STALE: without a newer copy the loader's error passes.
func TestUnconfirmedInvalidationStaleIfError(t *testing.T) {
	srv := testredis.Start(t)
	clk := newFakeClock()
	c := newRedisCache(t, Options{RedisURL: srv.URL(), Prefix: "p:", Now: clk.Now, Stale: time.Minute})
	ctx := context.Background()
	fo := FetchOptions{TTL: 10 * time.Second}
	src := &source{val: "v1"}
	fetch(t, c, "reloaded", fo, src.load)
	fetch(t, c, "untouched", fo, src.load)
	denyWrites(t, srv)
	src.set("v2")
	c.Invalidate(ctx, "reloaded", "untouched")
	if got, _ := fetch(t, c, "reloaded", fo, src.load); got != "v2" {
		t.Fatalf("read after the write: %q, want v2", got)
	}
	c.flushLocal() // retires the v2 copy
	down := errors.New("database down")
	src.setErr(down)
	for _, at := range []time.Duration{0, 20 * time.Second} { // fresh, then stale in Redis
		clk.Add(at)
		e, res, err := c.Fetch(ctx, "reloaded", fo, src.load)
		if err != nil || res != Stale || string(e.Body()) != "v2" {
			t.Errorf("+%v: reloaded = %v %v; want the retired v2 STALE", at, res, err)
		}
		if e, res, err := c.Fetch(ctx, "untouched", fo, src.load); !errors.Is(err, down) {
			t.Errorf("+%v: untouched = %v %v, %v; want the loader's error, not Redis's pre-write entry", at, res, err, e)
		}
	}
}

// A key whose Redis read failed while Redis stays in use (in a cluster: its
// master dead, its slots not failed over yet) is loaded and kept locally
// without a tracking registration: a write on another instance sends this
// one no push. The copy must not be trusted for its TTL: after
// FallbackLocalTTL it is read from Redis again, and the write shows. (Found
// by scaletest.TestClusterFailoverTwoInstances: a write on A was not
// visible on B 15 s after a master was killed.)
func TestUntrackedLoadIsNotTrustedForItsTTL(t *testing.T) {
	srv := testredis.Start(t)
	b := newRedisCache(t, Options{RedisURL: srv.URL(), Prefix: "p:", FallbackLocalTTL: 300 * time.Millisecond})
	a := newRedisCache(t, Options{RedisURL: srv.URL(), Prefix: "p:"})
	src := &source{val: "v1"}
	fo := FetchOptions{TTL: time.Minute}
	if _, err := srv.Do("ACL", "SETUSER", "default", "-hget"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	if got, _ := fetch(t, b, "k", fo, src.load); got != "v1" {
		t.Fatalf("b with its read refused: %q, want v1", got)
	}
	if _, err := srv.Do("ACL", "SETUSER", "default", "+@all"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	if st := b.Stats(); st.Redis != "up" {
		t.Fatalf("one failed read opened the breaker (%q): not the case this is about", st.Redis)
	}
	src.set("v2")
	a.Invalidate(context.Background(), "k")
	start := time.Now()
	waitFor(t, 5*time.Second, "the write visible on b", func() bool {
		got, _ := fetch(t, b, "k", fo, src.load)
		return got == "v2"
	})
	t.Logf("visible on b %s after the write", time.Since(start).Round(time.Millisecond))
}
