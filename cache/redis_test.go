package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testredis"
	"github.com/redis/rueidis"
)

// twoInstances returns two caches sharing a Redis and a prefix.
func twoInstances(t *testing.T, o Options) (*Cache, *Cache) {
	t.Helper()
	if o.RedisURL == "" {
		o.RedisURL = sharedRedis
	}
	if o.Prefix == "" {
		o.Prefix = testPrefix(t, o.RedisURL)
	}
	return newRedisCache(t, o), newRedisCache(t, o)
}

func TestStaleSetRace(t *testing.T) {
	for _, mode := range []string{"memory", "redis"} {
		t.Run(mode, func(t *testing.T) {
			var a, b *Cache
			if mode == "memory" {
				a = newCache(t, Options{})
			} else {
				a, b = twoInstances(t, Options{})
			}
			var db atomic.Value
			db.Store("old")
			reached := make(chan struct{})
			release := make(chan struct{})
			var first atomic.Bool
			load := func(ctx context.Context) ([]byte, error) {
				v := db.Load().(string) // the "database read"
				if first.CompareAndSwap(false, true) {
					close(reached)
					<-release // paused between the read and the return
				}
				return []byte(v), nil
			}
			fo := FetchOptions{TTL: time.Minute}
			done := make(chan string)
			go func() {
				e, _, err := a.Fetch(context.Background(), "k", fo, load)
				if err != nil {
					done <- "error: " + err.Error()
					return
				}
				done <- string(e.Body())
			}()
			<-reached
			db.Store("new") // the write...
			a.Invalidate(context.Background(), "k")
			close(release) // ...then the slow reader returns its old rows
			if got := <-done; got != "old" {
				t.Fatalf("the paused Fetch returned %q, want old", got)
			}
			for _, c := range []*Cache{a, b} {
				if c == nil {
					continue
				}
				for i := 0; i < 3; i++ {
					if got, _ := fetch(t, c, "k", fo, load); got != "new" {
						t.Fatalf("after the race a Fetch served %q, want new", got)
					}
				}
			}
			if mode == "redis" {
				cl := adminClient(t, sharedRedis)
				v, err := cl.Do(context.Background(), cl.B().Hget().Key(a.rkey("k")).Field("v").Build()).AsBytes()
				if err != nil {
					t.Fatal(err)
				}
				if e, err := decodeEntry(v); err != nil || string(e.Body()) != "new" {
					t.Fatalf("redis holds %v, %v; want new", e, err)
				}
			}
		})
	}
}

func TestTagsAcrossInstances(t *testing.T) {
	a, b := twoInstances(t, Options{})
	ctx := context.Background()
	src := &source{val: "v1"}
	fo := FetchOptions{TTL: time.Minute, Tags: []string{"models:global"}}
	for _, key := range []string{"api:models:user:1", "api:models:user:2"} {
		fetch(t, a, key, fo, src.load)
		if _, res := fetch(t, b, key, fo, src.load); res != Hit {
			t.Fatalf("b: %v, want HIT", res)
		}
	}
	loads := src.loads.Load()
	oldIt, ok := b.gens.GetIfPresent("models:global")
	if !ok {
		t.Fatalf("b has no local generation")
	}
	oldGen := oldIt.gen
	src.set("v2")
	a.InvalidateTag(ctx, "models:global")
	// Immediately on the instance that bumped it.
	if got, res := fetch(t, a, "api:models:user:1", fo, src.load); got != "v2" || res != Miss {
		t.Fatalf("a after InvalidateTag: %q %v, want v2 MISS", got, res)
	}
	// On the other instance within 50ms: its view of the generation changes
	// (the push arrives), after which it no longer serves tagged entries.
	d := waitFor(t, time.Second, "b drops the old generation", func() bool {
		it, ok := b.gens.GetIfPresent("models:global")
		return !ok || it.gen != oldGen
	})
	t.Logf("b dropped the old generation %v after InvalidateTag returned", d)
	if d > coherenceBound {
		t.Errorf("b took %v to see the tag invalidation, want < %v", d, coherenceBound)
	}
	if got, _ := fetch(t, b, "api:models:user:2", fo, src.load); got != "v2" {
		t.Errorf("b serves %q after the tag bump, want v2", got)
	}
	if got := src.loads.Load() - loads; got != 2 {
		t.Errorf("loads after the bump = %d, want 2 (one per key)", got)
	}
	// The generation key exists, with a TTL.
	cl := adminClient(t, sharedRedis)
	if pttl, _ := cl.Do(ctx, cl.B().Pttl().Key(a.genKey("models:global")).Build()).AsInt64(); pttl <= 0 {
		t.Errorf("gen key PTTL = %d, want > 0", pttl)
	}
	// A deleted generation key is recreated at random: no ABA, entries miss.
	cl.Do(ctx, cl.B().Unlink().Key(a.genKey("models:global")).Build())
	src.set("v3")
	waitFor(t, time.Second, "b drops the generation", func() bool {
		got, _ := fetch(t, b, "api:models:user:2", fo, src.load)
		return got == "v3"
	})
}

func TestTagsMemory(t *testing.T) {
	c := newCache(t, Options{})
	src := &source{val: "v1"}
	fo := FetchOptions{TTL: time.Minute, Tags: []string{"t"}}
	fetch(t, c, "a", fo, src.load)
	fetch(t, c, "b", FetchOptions{TTL: time.Minute}, src.load)
	src.set("v2")
	c.InvalidateTag(context.Background(), "t")
	if got, _ := fetch(t, c, "a", fo, src.load); got != "v2" {
		t.Errorf("tagged entry after InvalidateTag = %q, want v2", got)
	}
	if got, _ := fetch(t, c, "b", FetchOptions{TTL: time.Minute}, src.load); got != "v1" {
		t.Errorf("untagged entry = %q, want v1 (not invalidated)", got)
	}
}

func testCoherence(t *testing.T, a, b *Cache) {
	t.Helper()
	src := &source{val: "v1"}
	fo := FetchOptions{TTL: time.Minute}
	fetch(t, a, "k", fo, src.load)
	// b's first read may be dropped by the push of a's fill arriving after
	// it; the next read stores it for good.
	waitFor(t, time.Second, "b holds a local copy", func() bool {
		fetch(t, b, "k", fo, src.load)
		return b.localHas("k")
	})
	src.set("v2")
	a.Invalidate(context.Background(), "k")
	if a.localHas("k") {
		t.Errorf("a kept its own copy after Invalidate returned")
	}
	d := waitFor(t, time.Second, "b drops its local copy", func() bool { return !b.localHas("k") })
	t.Logf("b dropped its copy %v after Invalidate returned", d)
	if d > coherenceBound {
		t.Errorf("b took %v to drop its copy, want < %v", d, coherenceBound)
	}
	if got, _ := fetch(t, b, "k", fo, src.load); got != "v2" {
		t.Errorf("b serves %q, want v2", got)
	}
}

func TestCrossInstanceCoherence(t *testing.T) {
	a, b := twoInstances(t, Options{})
	if st := a.Stats(); st.Coherence != "tracking" {
		t.Errorf("Coherence = %q, want tracking", st.Coherence)
	}
	testCoherence(t, a, b)
}

func TestFallbackForced(t *testing.T) {
	a, b := twoInstances(t, Options{DisableTracking: true, FallbackLocalTTL: 200 * time.Millisecond})
	if st := a.Stats(); st.Coherence != "pubsub" {
		t.Fatalf("Coherence = %q, want pubsub", st.Coherence)
	}
	time.Sleep(100 * time.Millisecond) // let both SUBSCRIBEs land
	testCoherence(t, a, b)
	testFallbackTags(t, a, b)
}

func testFallbackTags(t *testing.T, a, b *Cache) {
	t.Helper()
	src := &source{val: "t1"}
	fo := FetchOptions{TTL: time.Minute, Tags: []string{"g"}}
	fetch(t, a, "tagged", fo, src.load)
	fetch(t, b, "tagged", fo, src.load)
	src.set("t2")
	a.InvalidateTag(context.Background(), "g")
	d := waitFor(t, time.Second, "b sees the tag", func() bool {
		got, _ := fetch(t, b, "tagged", fo, src.load)
		return got == "t2"
	})
	if d > coherenceBound {
		t.Errorf("tag invalidation took %v on b, want < %v", d, coherenceBound)
	}
}

func TestFallbackDetected(t *testing.T) {
	srv := testredis.Start(t)
	// A managed-service-like server: CLIENT TRACKING is refused.
	if _, err := srv.Do("ACL", "SETUSER", "default", "-client|tracking"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	a, b := twoInstances(t, Options{RedisURL: srv.URL(), Prefix: "p:", FallbackLocalTTL: 200 * time.Millisecond})
	if st := a.Stats(); st.Coherence != "pubsub" {
		t.Fatalf("Coherence = %q, want pubsub (tracking refused)", st.Coherence)
	}
	time.Sleep(100 * time.Millisecond)
	testCoherence(t, a, b)
	testFallbackTags(t, a, b)

	// A local copy is not trusted past FallbackLocalTTL: a write that
	// bypasses the broadcast is seen after the cap.
	src := &source{val: "x1"}
	fo := FetchOptions{TTL: time.Minute}
	fetch(t, b, "capped", fo, src.load)
	cl := adminClient(t, srv.URL())
	e := newEntry([]byte("x2"), fillInfo{at: time.Now(), ttl: time.Minute, stale: time.Minute})
	cl.Do(context.Background(), cl.B().Hset().Key("p:capped").FieldValue().FieldValue("v", string(encodeEntry(e, -1))).Build())
	d := waitFor(t, 2*time.Second, "cap", func() bool { got, _ := fetch(t, b, "capped", fo, src.load); return got == "x2" })
	if d > 400*time.Millisecond {
		t.Errorf("local copy trusted for %v, want about FallbackLocalTTL (200ms)", d)
	}
}

func TestCorruptEntry(t *testing.T) {
	prefix := testPrefix(t, sharedRedis)
	c := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: prefix})
	cl := adminClient(t, sharedRedis)
	ctx := context.Background()
	key := prefix + "k"
	cl.Do(ctx, cl.B().Hset().Key(key).FieldValue().FieldValue("v", "\x01garbage").Build())
	cl.Do(ctx, cl.B().Pexpire().Key(key).Milliseconds(60000).Build())
	src := &source{val: "good"}
	if got, res := fetch(t, c, "k", FetchOptions{TTL: time.Minute}, src.load); got != "good" || res != Miss {
		t.Fatalf("Fetch over a corrupt value = %q %v, want good MISS", got, res)
	}
	if st := c.Stats(); st.Tiers.Redis.Errors == 0 {
		t.Errorf("corrupt value not counted as a redis error: %+v", st.Tiers.Redis)
	}
	v, err := cl.Do(ctx, cl.B().Hget().Key(key).Field("v").Build()).AsBytes()
	if e, derr := decodeEntry(v); err != nil || derr != nil || string(e.Body()) != "good" {
		t.Fatalf("value not overwritten: %q %v %v", v, err, derr)
	}
	// A key of the wrong type is replaced too.
	cl.Do(ctx, cl.B().Set().Key(prefix+"w").Value("x").ExSeconds(60).Build())
	if got, _ := fetch(t, c, "w", FetchOptions{TTL: time.Minute}, src.load); got != "good" {
		t.Fatalf("Fetch over a wrong-type key = %q", got)
	}
	if typ, _ := cl.Do(ctx, cl.B().Type().Key(prefix+"w").Build()).ToString(); typ != "hash" {
		t.Errorf("wrong-type key is now %q, want hash", typ)
	}
}

func TestRedisKilledUnderLoad(t *testing.T) {
	srv := testredis.Start(t)
	c := newRedisCache(t, Options{RedisURL: srv.URL(), Prefix: "p:", RedisTimeout: 50 * time.Millisecond, Logger: testLogger(t)})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var fails, calls atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("k%d", i%50)
				_, _, err := c.Fetch(context.Background(), key, FetchOptions{TTL: time.Minute}, func(context.Context) ([]byte, error) { return []byte("v"), nil })
				calls.Add(1)
				if err != nil {
					fails.Add(1)
				}
				if i%20 == 0 {
					c.Invalidate(context.Background(), key)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	srv.Kill()
	waitFor(t, 2*time.Second, "breaker open", func() bool { return c.Mode() == "memory" })
	if got := c.RedisState(); got != "down" {
		t.Errorf("RedisState = %q, want down", got)
	}
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	waitFor(t, 5*time.Second, "redis back", func() bool { return c.Mode() == "redis" })
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if fails.Load() != 0 {
		t.Errorf("%d of %d Fetches failed while Redis was killed", fails.Load(), calls.Load())
	}
}

func TestRedisFrozen(t *testing.T) {
	srv := testredis.Start(t)
	const timeout = 50 * time.Millisecond
	c := newRedisCache(t, Options{RedisURL: srv.URL(), Prefix: "p:", RedisTimeout: timeout})
	ctx := context.Background()
	fo := FetchOptions{TTL: time.Minute}
	fetch(t, c, "before", fo, (&source{val: "v"}).load)
	srv.Freeze()
	defer srv.Thaw()

	// Misses of distinct keys all go to Redis until the breaker opens.
	var wg sync.WaitGroup
	var worst atomic.Int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, _, err := c.Fetch(ctx, fmt.Sprintf("cold%d", i), fo, (&source{val: "v"}).load)
			if err != nil {
				t.Errorf("Fetch during freeze: %v", err)
			}
			d := int64(time.Since(start))
			for {
				w := worst.Load()
				if d <= w || worst.CompareAndSwap(w, d) {
					break
				}
			}
		}()
	}
	wg.Wait()
	if w := time.Duration(worst.Load()); w > timeout+100*time.Millisecond {
		t.Errorf("a Fetch waited %v on a frozen Redis, want <= %v", w, timeout+100*time.Millisecond)
	}
	waitFor(t, time.Second, "breaker open", func() bool { return c.Mode() == "memory" })
	// Once open, Redis adds nothing.
	start := time.Now()
	for i := 0; i < 50; i++ {
		fetch(t, c, fmt.Sprintf("after%d", i), fo, (&source{val: "v"}).load)
	}
	if d := time.Since(start) / 50; d > 5*time.Millisecond {
		t.Errorf("Fetch with the breaker open took %v on average, want ~0", d)
	}
	// An invalidation while frozen is replayed on recovery.
	fetch(t, c, "inv", fo, (&source{val: "v"}).load) // memory only now
	start = time.Now()
	c.Invalidate(ctx, "before")
	if d := time.Since(start); d > timeout+100*time.Millisecond {
		t.Errorf("Invalidate while frozen took %v", d)
	}
	srv.Thaw()
	waitFor(t, 5*time.Second, "recovery", func() bool { return c.Mode() == "redis" })
	cl := adminClient(t, srv.URL())
	// The Fetches whose GET failed sent nothing else: no lease, no fill
	// (commands stuck in the socket while frozen ran at SIGCONT).
	for i := 0; i < 20; i++ {
		if n, _ := cl.Do(ctx, cl.B().Exists().Key(fmt.Sprintf("p:cold%d", i)).Build()).AsInt64(); n != 0 {
			t.Errorf("p:cold%d was written after its GET failed", i)
		}
	}
	if n, _ := cl.Do(ctx, cl.B().Exists().Key("p:before").Build()).AsInt64(); n != 0 {
		t.Errorf("invalidation issued during the outage was not replayed")
	}
}

func TestRedisDownAtStart(t *testing.T) {
	srv := testredis.Start(t)
	srv.Kill()
	c := newCache(t, Options{RedisURL: srv.URL(), Prefix: "p:"})
	if c.Mode() != "memory" || c.RedisState() != "down" {
		t.Fatalf("Mode, RedisState = %s, %s; want memory, down", c.Mode(), c.RedisState())
	}
	src := &source{val: "v"}
	fo := FetchOptions{TTL: time.Minute}
	if got, res := fetch(t, c, "k", fo, src.load); got != "v" || res != Miss {
		t.Fatalf("Fetch with Redis down = %q %v", got, res)
	}
	if _, res := fetch(t, c, "k", fo, src.load); res != Hit {
		t.Fatalf("memory tier: %v, want HIT", res)
	}
	c.Invalidate(context.Background(), "queued")
	srv.Restart()
	waitFor(t, 5*time.Second, "redis used", func() bool { return c.Mode() == "redis" })
	if got := c.RedisState(); got != "up" {
		t.Errorf("RedisState = %q, want up", got)
	}
	fetch(t, c, "k2", fo, src.load)
	cl := adminClient(t, srv.URL())
	if n, _ := cl.Do(context.Background(), cl.B().Exists().Key("p:k2").Build()).AsInt64(); n != 1 {
		t.Errorf("the cache does not write to Redis after it came up")
	}
}

func fillKeys(t *testing.T, c *Cache, keys ...string) {
	t.Helper()
	for _, k := range keys {
		fetch(t, c, k, FetchOptions{TTL: time.Minute}, (&source{val: "v"}).load)
	}
}

func TestInvalidatePatternStandalone(t *testing.T) {
	a, b := twoInstances(t, Options{})
	var keys []string
	for i := 0; i < 1200; i++ { // more than one SCAN batch
		keys = append(keys, fmt.Sprintf("api:models:user:%d", i))
	}
	fillKeys(t, a, keys...)
	fillKeys(t, a, "api:servers:user:1")
	fillKeys(t, b, "api:models:user:1")
	n, err := a.InvalidatePattern(context.Background(), "api:models:*")
	if err != nil || n != len(keys) {
		t.Fatalf("InvalidatePattern = %d, %v; want %d", n, err, len(keys))
	}
	cl := adminClient(t, sharedRedis)
	if e, _ := cl.Do(context.Background(), cl.B().Exists().Key(a.rkey("api:models:user:7")).Build()).AsInt64(); e != 0 {
		t.Errorf("a matching key survived in Redis")
	}
	if e, _ := cl.Do(context.Background(), cl.B().Exists().Key(a.rkey("api:servers:user:1")).Build()).AsInt64(); e != 1 {
		t.Errorf("a non-matching key was removed")
	}
	if a.localHas("api:models:user:7") {
		t.Errorf("a kept a local copy")
	}
	waitFor(t, time.Second, "b drops its copy", func() bool { return !b.localHas("api:models:user:1") })
}

func TestInvalidatePatternCluster(t *testing.T) {
	cluster := testredis.StartCluster(t, 3)
	c := newRedisCache(t, Options{RedisURL: cluster.URL(), Prefix: "p:"})
	if m := c.client().Mode(); m != rueidis.ClientModeCluster {
		t.Fatalf("client mode = %s, want cluster", m)
	}
	var keys []string
	for i := 0; i < 60; i++ {
		keys = append(keys, fmt.Sprintf("api:models:%d", i))
	}
	fillKeys(t, c, keys...)
	fillKeys(t, c, "api:servers:1")
	for _, n := range cluster.Nodes {
		if s, _ := n.Do("DBSIZE"); s == "0" {
			t.Fatalf("node %s holds no key: the test would not prove every master is scanned", n.Addr())
		}
	}
	n, err := c.InvalidatePattern(context.Background(), "api:models:*")
	if err != nil || n != len(keys) {
		t.Fatalf("InvalidatePattern = %d, %v; want %d", n, err, len(keys))
	}
	total := 0
	for _, node := range cluster.Nodes {
		out, _ := node.Do("SCAN", "0", "MATCH", "p:api:models:*", "COUNT", "1000")
		for _, line := range strings.Split(out, "\n")[1:] {
			if line != "" {
				total++
			}
		}
	}
	if total != 0 {
		t.Errorf("%d matching keys left on the masters", total)
	}
	if _, res := fetch(t, c, "api:servers:1", FetchOptions{TTL: time.Minute}, (&source{val: "v"}).load); res != Hit {
		t.Errorf("non-matching key: %v, want HIT", res)
	}
	// Leases and tags work in cluster mode too.
	src := &source{val: "v"}
	if _, res := fetch(t, c, "x", FetchOptions{TTL: time.Minute, Tags: []string{"t"}}, src.load); res != Miss {
		t.Errorf("cluster miss: %v", res)
	}
}

// testLogger sends the cache's log to the test log (seen with -v or on failure).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestDeadLeaseHolder(t *testing.T) {
	prefix := testPrefix(t, sharedRedis)
	c := newRedisCache(t, Options{RedisURL: sharedRedis, Prefix: prefix, LeaseTTL: 2 * time.Second})
	cl := adminClient(t, sharedRedis)
	ctx := context.Background()
	// Another process took the lease and died: it expires in 300ms (server time).
	tm, err := cl.Do(ctx, cl.B().Time().Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	sec, _ := strconv.ParseInt(tm[0], 10, 64)
	usec, _ := strconv.ParseInt(tm[1], 10, 64)
	exp := sec*1000 + usec/1000 + 300
	cl.Do(ctx, cl.B().Hset().Key(prefix+"k").FieldValue().FieldValue("l", "dead:"+strconv.FormatInt(exp, 10)).Build())
	cl.Do(ctx, cl.B().Pexpire().Key(prefix+"k").Milliseconds(10000).Build())
	src := &source{val: "v"}
	start := time.Now()
	got, res := fetch(t, c, "k", FetchOptions{TTL: time.Minute}, src.load)
	d := time.Since(start)
	if got != "v" || res != Miss || src.loads.Load() != 1 {
		t.Fatalf("Fetch = %q %v (loads %d), want v MISS 1", got, res, src.loads.Load())
	}
	if d < 250*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("Fetch took %v; want it to wait for the dead lease to expire (~300ms)", d)
	}
}

// When Redis comes back, the local tier is flushed (invalidations may have
// been missed), but its copies still answer STALE if the loader then fails:
// the database being down right after a Redis outage must not turn
// servable entries into errors. Copies this process invalidated itself
// (by key or by tag) are not kept.
func TestRetiredEntriesServeStaleIfError(t *testing.T) {
	srv := testredis.Start(t)
	c := newRedisCache(t, Options{RedisURL: srv.URL(), Prefix: "p:", RedisTimeout: 50 * time.Millisecond})
	ctx := context.Background()
	plain := FetchOptions{TTL: time.Minute}
	tagged := FetchOptions{TTL: time.Minute, Tags: []string{"tg"}}
	src := &source{val: "v1"}
	fetch(t, c, "kept", plain, src.load)
	fetch(t, c, "invalidated", plain, src.load)
	fetch(t, c, "tagged", tagged, src.load)

	srv.Kill()
	misses := 0
	waitFor(t, 5*time.Second, "breaker open", func() bool {
		misses++ // Redis errors on misses trip the breaker
		fetch(t, c, fmt.Sprintf("miss%d", misses), plain, src.load)
		return c.Mode() == "memory"
	})
	// Losing the tracking connection flushed the tier already; the copy
	// served now comes from memory or from a load during the outage.
	if got, _ := fetch(t, c, "kept", plain, src.load); got != "v1" {
		t.Fatalf("during the outage: %q, want v1", got)
	}
	c.Invalidate(ctx, "invalidated")
	c.InvalidateTag(ctx, "tg")
	srv.Restart()
	waitFor(t, 5*time.Second, "redis back", func() bool { return c.Mode() == "redis" })

	down := errors.New("database down")
	src.setErr(down)
	tests := []struct {
		key     string
		o       FetchOptions
		wantErr bool
	}{
		{"kept", plain, false},
		{"invalidated", plain, true},
		{"tagged", tagged, true},
		{"never-cached", plain, true},
	}
	for _, tt := range tests {
		e, res, err := c.Fetch(ctx, tt.key, tt.o, src.load)
		if tt.wantErr {
			if !errors.Is(err, down) {
				t.Errorf("%s: Fetch = %v, %v; want the loader's error", tt.key, res, err)
			}
			continue
		}
		if err != nil || res != Stale || string(e.Body()) != "v1" {
			t.Errorf("%s: Fetch = %v, %v; want v1 STALE", tt.key, res, err)
		}
	}

	// Once the key is loaded again, the retired copy is gone: an
	// invalidation then leaves nothing to serve.
	src.setErr(nil)
	src.set("v2")
	if got, res := fetch(t, c, "kept", plain, src.load); got != "v2" || res != Miss {
		t.Fatalf("after the database returned: %q %v, want v2 MISS", got, res)
	}
	c.Invalidate(ctx, "kept")
	src.setErr(down)
	if _, res, err := c.Fetch(ctx, "kept", plain, src.load); !errors.Is(err, down) {
		t.Errorf("after reload and invalidation: %v, %v; want the loader's error", res, err)
	}
}

// A breaker opened by timeouts on a live tracking connection (a stalled or
// CPU-starved exchange, not a lost connection) does not cost the local tier
// at recovery: pushes kept the copies coherent, so they stay HITs, and a
// write on another instance during the stall still reaches them.
func TestRecoveryKeepsCoherentLocalTier(t *testing.T) {
	srv := testredis.Start(t)
	o := Options{RedisURL: srv.URL(), Prefix: "p:", RedisTimeout: 50 * time.Millisecond}
	a, b := twoInstances(t, o)
	ctx := context.Background()
	fo := FetchOptions{TTL: time.Minute}
	src := &source{val: "v1"}
	fetch(t, a, "k", fo, src.load)
	fetch(t, b, "k", fo, src.load)
	fetch(t, b, "other", fo, src.load)
	// A fill is announced like any write, so the filled copy is dropped;
	// the next read takes it from Redis into the local tier.
	waitFor(t, 2*time.Second, "other in b's local tier", func() bool {
		fetch(t, b, "other", fo, src.load)
		return b.localHas("other")
	})
	loads := src.loads.Load()

	srv.Freeze()
	for _, c := range []*Cache{a, b} {
		n := 0
		waitFor(t, 5*time.Second, "breaker open", func() bool {
			n++ // misses go to Redis and time out
			fetch(t, c, fmt.Sprintf("cold%d", n), fo, (&source{val: "x"}).load)
			return c.Mode() == "memory"
		})
	}
	src.set("v2")
	a.Invalidate(ctx, "k") // times out: queued, replayed at recovery
	srv.Thaw()
	waitFor(t, 5*time.Second, "a recovers", func() bool { return a.Mode() == "redis" })
	waitFor(t, 5*time.Second, "b recovers", func() bool { return b.Mode() == "redis" })

	if !b.localHas("other") {
		t.Errorf("after recovery: the local copy of other was dropped")
	}
	localHits := b.Stats().Tiers.Local.Hits
	if got, res := fetch(t, b, "other", fo, src.load); got != "v1" || res != Hit || b.Stats().Tiers.Local.Hits != localHits+1 {
		t.Errorf("after recovery: other = %q %v, want the kept local copy v1 HIT", got, res)
	}
	if n := src.loads.Load() - loads; n != 0 {
		t.Errorf("recovery cost %d loads of kept keys, want 0", n)
	}
	waitFor(t, 2*time.Second, "the write on a seen on b", func() bool {
		got, _ := fetch(t, b, "k", fo, src.load)
		return got == "v2"
	})
}

// FlushDelay reaches the Redis client: 50µs unless set, none when negative.
func TestFlushDelayOption(t *testing.T) {
	for _, tc := range []struct {
		set, want time.Duration
	}{{0, 50 * time.Microsecond}, {20 * time.Microsecond, 20 * time.Microsecond}, {-1, 0}} {
		c := &Cache{opts: withDefaults(Options{FlushDelay: tc.set})}
		if got := c.clientOption().MaxFlushDelay; got != tc.want {
			t.Errorf("FlushDelay %v: the client's MaxFlushDelay is %v, want %v", tc.set, got, tc.want)
		}
	}
}
