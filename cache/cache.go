package cache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"iter"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/rueidis"
	"golang.org/x/sync/singleflight"
)

// Options configures a Cache. The zero value is a memory-only cache with
// the defaults below.
type Options struct {
	// Prefix is prepended to every Redis key (and to the pub/sub channel).
	// "" is allowed and then means the whole database belongs to the cache.
	Prefix string
	// RedisURL is redis:// or rediss:// (TLS, system roots; SSL_CERT_FILE is
	// honoured by Go), naming a standalone server or any node of a Redis
	// Cluster: the mode is discovered. "" means no Redis.
	RedisURL string
	// TLSConfig overrides the TLS configuration of a rediss:// URL.
	TLSConfig *tls.Config
	// DisableRedis keeps the memory tier alone, on purpose.
	DisableRedis bool
	// Disabled turns caching off: Fetch always runs load and returns Bypass.
	Disabled bool
	// DisableLocal turns the in-process tier off (to measure Redis alone).
	DisableLocal bool
	// DisableTracking forces the fallback without CLIENT TRACKING (short
	// local TTL + pub/sub broadcast). It is also chosen automatically when
	// the server refuses tracking.
	DisableTracking bool
	// Stale is how long past its TTL an entry may still be served (stale-
	// while-revalidate and stale-if-error). Default 10m.
	Stale time.Duration
	// RedisTimeout is the deadline of every Redis call. Default 50ms.
	RedisTimeout time.Duration
	// LeaseTTL is the lifetime of a fill lease. Waiters on another process's
	// lease poll Redis for at most about this long. Default 3s.
	LeaseTTL time.Duration
	// LocalMaxBytes bounds the in-process tier, weighted by entry size.
	// Default 256 MiB.
	LocalMaxBytes int64
	// FallbackLocalTTL caps how long a local copy is trusted without
	// re-reading Redis when tracking is unavailable. Default 1s.
	FallbackLocalTTL time.Duration
	// RefreshTimeout bounds a background (stale-while-revalidate) refresh.
	// Default 30s.
	RefreshTimeout time.Duration
	// BreakerThreshold is the number of consecutive Redis transport errors or
	// timeouts that open the circuit breaker. Default 3.
	BreakerThreshold int
	// ProbeInterval is how often a PING checks an open breaker. Default 500ms.
	ProbeInterval time.Duration
	// Now is the clock used for freshness (default time.Now).
	Now func() time.Time
	// Logger receives state changes (default slog.Default()).
	Logger *slog.Logger
}

// Result says where a Fetch's entry came from.
type Result uint8

const (
	// Hit is a fresh entry from the local or the Redis tier.
	Hit Result = iota + 1
	// Miss is a value freshly loaded for this call (or for the call it
	// was deduplicated with, in this process or, via the lease, another).
	Miss
	// Stale is an entry served past its FreshUntil (stale-while-revalidate
	// or stale-if-error).
	Stale
	// Bypass means caching was off (Disabled, or TTL <= 0) and load ran.
	Bypass
)

// String returns "HIT", "MISS", "STALE" or "BYPASS" (the X-Cache values).
func (r Result) String() string {
	switch r {
	case Hit:
		return "HIT"
	case Miss:
		return "MISS"
	case Stale:
		return "STALE"
	case Bypass:
		return "BYPASS"
	}
	return "UNKNOWN"
}

// Loader produces the value of a key on a miss, e.g. from the database. Its
// error is returned unchanged by Fetch (unless a stale copy can be served).
type Loader func(ctx context.Context) ([]byte, error)

// FetchOptions are per-call settings.
type FetchOptions struct {
	// TTL is how long a loaded value is fresh. TTL <= 0 means "do not cache":
	// load runs and the result is Bypass.
	TTL time.Duration
	// Group labels the counters in Stats (e.g. "models").
	Group string
	// Tags name generations the entry depends on; InvalidateTag of any of
	// them makes the entry absent everywhere in O(1).
	Tags []string
}

// ErrEmptyPattern is returned by InvalidatePattern for an empty pattern.
var ErrEmptyPattern = errors.New("cache: empty invalidation pattern")

// localItem is what the in-process tier stores.
type localItem struct {
	e *Entry
	// until caps how long this copy is trusted without asking Redis (unix
	// nanoseconds of the injected clock); 0 = until StaleUntil. Set only in
	// the no-tracking fallback.
	until int64
}

type genItem struct {
	gen   string
	until int64 // as localItem.until
}

const seqStripes = 4096

// Cache is a two-tier (in-process + Redis) response cache. It is safe for
// concurrent use. Create it with New and stop it with Close.
type Cache struct {
	opts    Options
	now     func() time.Time
	clock   *coarseClock // nil when Options.Now is injected
	log     *slog.Logger
	useRed  bool // Redis configured and not disabled
	clientO rueidis.ClientOption
	id      string // instance id, to ignore our own pub/sub messages
	channel string // pub/sub channel of the fallback

	local *otter.Cache[string, *localItem] // nil when DisableLocal/Disabled
	gens  *otter.Cache[string, genItem]

	// Invalidation sequences (stale-set protection inside the process): a
	// store into the local tier is dropped if the key's stripe or the global
	// epoch moved since the value was read. Striping keeps memory bounded;
	// a collision only skips a local store.
	seed     maphash.Seed
	stripes  [seqStripes]atomic.Uint64
	epoch    atomic.Uint64
	genEpoch atomic.Uint64

	refMu     sync.Mutex
	refreshed map[string]time.Time // last background refresh per key

	fmu        sync.Mutex
	flights    map[string]*flight
	reads      singleflight.Group
	closed     bool        // under fmu: no flight starts after Close
	closedFlag atomic.Bool // the same, lock-free for the hit path

	closeCtx context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once

	r redisState

	// retired holds what flushLocal dropped, for stale-if-error only.
	retired retiredSet

	stats   counters
	groupMu sync.Mutex
	groups  atomic.Pointer[map[string]*groupCounters]
}

// New builds a Cache. It fails only for bad options (an unparseable URL or
// an unknown scheme); an unreachable Redis is not an error: the cache serves
// from memory and connects in the background.
func New(opts Options) (*Cache, error) {
	if opts.Stale <= 0 {
		opts.Stale = 10 * time.Minute
	}
	if opts.RedisTimeout <= 0 {
		opts.RedisTimeout = 50 * time.Millisecond
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 3 * time.Second
	}
	if opts.LocalMaxBytes <= 0 {
		opts.LocalMaxBytes = 256 << 20
	}
	if opts.FallbackLocalTTL <= 0 {
		opts.FallbackLocalTTL = time.Second
	}
	if opts.RefreshTimeout <= 0 {
		opts.RefreshTimeout = 30 * time.Second
	}
	if opts.BreakerThreshold <= 0 {
		opts.BreakerThreshold = 3
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = 500 * time.Millisecond
	}
	injected := opts.Now != nil
	if !injected {
		opts.Now = time.Now // replaced by a coarse clock below, once options are valid
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Cache{
		opts:    opts,
		now:     opts.Now,
		log:     opts.Logger,
		id:      strconv.FormatUint(rand.Uint64(), 16),
		channel: opts.Prefix + "cache:invalidate",
		seed:    maphash.MakeSeed(),
		flights: make(map[string]*flight),
	}
	c.closeCtx, c.cancel = context.WithCancel(context.Background())
	empty := map[string]*groupCounters{}
	c.groups.Store(&empty)

	if opts.RedisURL != "" && !opts.DisableRedis && !opts.Disabled {
		u, err := url.Parse(opts.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("cache: bad RedisURL: %w", err)
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return nil, fmt.Errorf("cache: RedisURL scheme %q: want redis:// or rediss://", u.Scheme)
		}
		co, err := rueidis.ParseURL(opts.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("cache: bad RedisURL: %w", err)
		}
		if opts.TLSConfig != nil && u.Scheme == "rediss" {
			co.TLSConfig = opts.TLSConfig.Clone()
		}
		c.clientO = co
		c.useRed = true
	}

	if !opts.Disabled && !injected {
		c.clock = newCoarseClock()
		c.opts.Now, c.now = c.clock.Now, c.clock.Now
	}
	if !opts.Disabled {
		if !opts.DisableLocal {
			c.local = otter.Must(&otter.Options[string, *localItem]{
				MaximumWeight: uint64(opts.LocalMaxBytes),
				Weigher: func(k string, it *localItem) uint32 {
					w := len(k) + len(it.e.Body) + len(it.e.ETag) + 160
					return uint32(min(w, math.MaxUint32))
				},
				// Otter expires by wall time; freshness itself is checked
				// against the injected clock on every read, so this is only
				// memory reclamation.
				ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *localItem]) time.Duration {
					return max(e.Value.e.StaleUntil.Sub(c.now()), time.Millisecond)
				}),
				Clock: otterClock(c.clock),
			})
		}
		c.gens = otter.Must(&otter.Options[string, genItem]{MaximumSize: 1 << 16})
	}
	if c.useRed {
		c.r.tripCh = make(chan struct{}, 1)
		c.wg.Add(1)
		go c.manage()
	}
	return c, nil
}

// Close stops every goroutine the cache started (background connects,
// probes, subscriptions, refreshes and loads in flight, whose contexts are
// canceled) and closes the Redis client. Fetch after Close just runs load.
func (c *Cache) Close() {
	c.once.Do(func() {
		c.fmu.Lock()
		c.closed = true
		c.closedFlag.Store(true)
		c.fmu.Unlock()
		c.cancel()
		c.wg.Wait()
		if rc := c.r.conn.Load(); rc != nil {
			rc.client.Close()
		}
		if c.local != nil {
			c.local.StopAllGoroutines()
		}
		if c.gens != nil {
			c.gens.StopAllGoroutines()
		}
		if c.clock != nil {
			c.clock.Close()
		}
	})
}

func (c *Cache) hash(key string) uint64 { return maphash.String(c.seed, key) }

// seq is the invalidation sequence of key: it changes whenever key (or
// everything) is invalidated in this process.
func (c *Cache) seq(key string) uint64 {
	return c.stripes[c.hash(key)&(seqStripes-1)].Load() + c.epoch.Load()
}

func (c *Cache) bump(key string) { c.stripes[c.hash(key)&(seqStripes-1)].Add(1) }

// fetchOp carries per-call Redis state: after one failed Redis call, the
// same call makes no other (in particular no SET after a failed GET).
type fetchOp struct{ failed bool }

// Fetch returns the entry of key: from the local tier, else Redis, else by
// running load (once per key per process, and once across processes thanks
// to a Redis lease). See the package documentation for the semantics.
//
// The error is load's error, unchanged, when nothing servable exists; it is
// ctx.Err() if ctx ends while waiting for another caller's load. Redis
// failures are never returned.
func (c *Cache) Fetch(ctx context.Context, key string, o FetchOptions, load Loader) (*Entry, Result, error) {
	g := c.group(o.Group)
	if c.opts.Disabled || o.TTL <= 0 || c.isClosed() {
		return c.bypass(ctx, g, o, load)
	}
	now := c.now()
	var op fetchOp
	var lastResort *Entry // a local copy past its fallback cap: only if Redis fails
	if c.local != nil {
		if it, ok := c.local.GetIfPresent(key); ok {
			e := it.e
			if now.Before(e.StaleUntil) && c.tagsCurrent(ctx, &op, e.tags) {
				if c.trusted(it.until, now) {
					if now.Before(e.FreshUntil) {
						c.stats.localHits.Add(1)
						g.hit.Add(1)
						return e, Hit, nil
					}
					c.stats.localHits.Add(1)
					c.revalidate(ctx, key, o, load, e)
					g.stale.Add(1)
					c.stats.stale.Add(1)
					return e, Stale, nil
				}
				lastResort = e
			}
		}
		c.stats.localMisses.Add(1)
	}

	seq := c.seq(key)
	if c.redisUp() && !op.failed {
		e, err := c.redisGetShared(ctx, &op, key)
		if err == nil && e != nil && now.Before(e.StaleUntil) && c.tagsCurrent(ctx, &op, e.tags) {
			c.stats.redisHits.Add(1)
			c.storeLocal(key, e, seq)
			if now.Before(e.FreshUntil) {
				g.hit.Add(1)
				return e, Hit, nil
			}
			c.revalidate(ctx, key, o, load, e)
			g.stale.Add(1)
			c.stats.stale.Add(1)
			return e, Stale, nil
		}
		if err == nil {
			c.stats.redisMisses.Add(1)
		}
	}
	if !op.failed || lastResort == nil {
		lastResort = nil
	}
	e, res, err := c.shared(ctx, key, o, load, seq, op.failed, lastResort, false)
	c.count(g, res, err)
	return e, res, err
}

// Peek returns key's entry when the in-process tier holds it fresh and
// trusted, touching neither Redis nor a loader: the common hit of Fetch,
// callable before the caller builds its loader closure, which would
// otherwise be allocated on every hit. false means "call Fetch"; a Peek
// that finds an entry counts as a hit of group.
func (c *Cache) Peek(key, group string) (*Entry, bool) {
	if c.local == nil || c.isClosed() {
		return nil, false
	}
	it, ok := c.local.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	now := c.now()
	e := it.e
	if !now.Before(e.FreshUntil) || !c.trusted(it.until, now) {
		return nil, false
	}
	for _, t := range e.tags {
		g, ok := c.gens.GetIfPresent(t.tag)
		if !ok || g.gen != t.gen || !c.trusted(g.until, now) {
			return nil, false
		}
	}
	c.stats.localHits.Add(1)
	c.group(group).hit.Add(1)
	return e, true
}

// trusted reports whether a local copy with the fallback cap until may be
// used without asking Redis.
func (c *Cache) trusted(until int64, now time.Time) bool {
	return until == 0 || now.UnixNano() < until || !c.redisUp()
}

// readResult is what one shared Redis read hands to every caller.
type readResult struct {
	e      *Entry
	failed bool
}

// redisGetShared is redisGet with concurrent reads of one key merged: a
// burst of misses costs one Redis round trip per process, not one per
// request, which also keeps a CPU-starved process from tripping its own
// breaker with a thousand timeouts at once. The read runs detached from the
// first caller's cancellation (it is bounded by RedisTimeout), so one
// client going away does not fail the read of the others.
func (c *Cache) redisGetShared(ctx context.Context, op *fetchOp, key string) (*Entry, error) {
	v, err, _ := c.reads.Do(key, func() (any, error) {
		var rop fetchOp
		e, err := c.redisGet(context.WithoutCancel(ctx), &rop, key)
		return readResult{e: e, failed: rop.failed}, err
	})
	r, _ := v.(readResult)
	if r.failed {
		op.failed = true
	}
	return r.e, err
}

func (c *Cache) count(g *groupCounters, res Result, err error) {
	if err != nil {
		return
	}
	switch res {
	case Hit:
		g.hit.Add(1)
	case Miss:
		g.miss.Add(1)
	case Stale:
		g.stale.Add(1)
		c.stats.stale.Add(1)
	}
}

func (c *Cache) isClosed() bool { return c.closedFlag.Load() }

func (c *Cache) bypass(ctx context.Context, g *groupCounters, o FetchOptions, load Loader) (*Entry, Result, error) {
	g.bypass.Add(1)
	g.loads.Add(1)
	c.stats.loads.Add(1)
	body, err := load(ctx)
	if err != nil {
		c.stats.loadErrors.Add(1)
		g.loadErrors.Add(1)
		return nil, Bypass, err
	}
	now := c.now()
	return newEntry(body, now, 0, 0, nil), Bypass, nil
}

// revalidate starts a background refresh of a stale entry, at most one per
// entry per throttle interval and one per key at a time.
func (c *Cache) revalidate(ctx context.Context, key string, o FetchOptions, load Loader, stale *Entry) {
	if !c.refreshAllowed(key) {
		return
	}
	seq := c.seq(key)
	c.fmu.Lock()
	if _, busy := c.flights[key]; busy || c.closed {
		c.fmu.Unlock()
		return
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	c.wg.Add(1)
	c.fmu.Unlock()
	go c.runFlight(ctx, f, key, o, load, seq, false, stale, true)
}

// refreshAllowed throttles stale-while-revalidate per key: one background
// refresh per key per interval, so that a burst of stale hits — or a
// database that keeps failing — costs one load, not one per hit. (Entries
// decoded from Redis are new instances each time, so the throttle cannot
// live on the entry.)
func (c *Cache) refreshAllowed(key string) bool {
	now := time.Now()
	every := min(c.opts.LeaseTTL, time.Second)
	c.refMu.Lock()
	defer c.refMu.Unlock()
	if last, ok := c.refreshed[key]; ok && now.Sub(last) < every {
		return false
	}
	if len(c.refreshed) >= 10000 {
		for k, t := range c.refreshed {
			if now.Sub(t) >= every {
				delete(c.refreshed, k)
			}
		}
	}
	if c.refreshed == nil {
		c.refreshed = make(map[string]time.Time)
	}
	c.refreshed[key] = now
	return true
}

// flight is one load of a key in this process, shared by its waiters.
type flight struct {
	done chan struct{}
	e    *Entry
	res  Result
	err  error
}

// shared joins or starts the flight of key and waits for it (or for ctx).
func (c *Cache) shared(ctx context.Context, key string, o FetchOptions, load Loader, seq uint64, redisFailed bool, lastResort *Entry, background bool) (*Entry, Result, error) {
	c.fmu.Lock()
	if c.closed {
		c.fmu.Unlock()
		return c.bypass(ctx, c.group(o.Group), o, load)
	}
	f, ok := c.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		c.flights[key] = f
		c.wg.Add(1)
		c.fmu.Unlock()
		go c.runFlight(ctx, f, key, o, load, seq, redisFailed, lastResort, background)
	} else {
		c.fmu.Unlock()
	}
	select {
	case <-f.done:
		return f.e, f.res, f.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// runFlight runs the load detached from the caller's cancellation (its
// waiters may outlive the caller that started it), but canceled by Close and,
// for background refreshes, bounded by RefreshTimeout.
func (c *Cache) runFlight(parent context.Context, f *flight, key string, o FetchOptions, load Loader, seq uint64, redisFailed bool, lastResort *Entry, background bool) {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	defer cancel()
	stop := context.AfterFunc(c.closeCtx, cancel)
	defer stop()
	if background {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, c.opts.RefreshTimeout)
		defer c2()
	}
	op := fetchOp{failed: redisFailed}
	func() {
		defer func() {
			if p := recover(); p != nil {
				f.e, f.res, f.err = nil, 0, fmt.Errorf("cache: loader panicked: %v", p)
			}
		}()
		f.e, f.res, f.err = c.loadAndFill(ctx, &op, key, o, load, seq, lastResort, background)
	}()
	c.fmu.Lock()
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	c.fmu.Unlock()
	close(f.done)
}

// loadAndFill is the miss path of one flight: read tag generations, take the
// Redis lease (or wait on another process's), load, fill both tiers.
func (c *Cache) loadAndFill(ctx context.Context, op *fetchOp, key string, o FetchOptions, load Loader, seq uint64, lastResort *Entry, background bool) (*Entry, Result, error) {
	g := c.group(o.Group)
	// A flight that just ended may have stored the value after our caller
	// looked: check again before going further.
	if c.local != nil && !background {
		if it, ok := c.local.GetIfPresent(key); ok && c.now().Before(it.e.FreshUntil) && it.until == 0 && c.tagsCurrent(ctx, op, it.e.tags) {
			return it.e, Hit, nil
		}
	}
	// Generations are read before the load: a write that bumps a tag after
	// this point makes whatever we store absent.
	gens := c.currentGens(ctx, op, o.Tags)
	stale := lastResort
	token := ""
	leased := false
	if c.redisUp() && !op.failed {
		if background {
			// Another instance may have refreshed it already.
			if e, err := c.redisGet(ctx, op, key); err == nil && e != nil && c.now().Before(e.FreshUntil) && c.tagsCurrent(ctx, op, e.tags) {
				c.storeLocal(key, e, seq)
				return e, Hit, nil
			}
		}
		token = strconv.FormatUint(rand.Uint64(), 36)
		deadline := time.Now().Add(c.opts.LeaseTTL)
		step := 2 * time.Millisecond
		waited := false
		for !op.failed {
			acquired, e, err := c.acquire(ctx, op, key, token)
			if err != nil {
				break
			}
			now := c.now()
			if e != nil && now.Before(e.StaleUntil) && c.tagsCurrent(ctx, op, e.tags) {
				if now.Before(e.FreshUntil) {
					// Filled by someone else since our read.
					if acquired {
						c.release(ctx, op, key, token)
					}
					c.storeLocal(key, e, seq)
					if waited {
						return e, Miss, nil
					}
					return e, Hit, nil
				}
				if stale == nil || e.FreshUntil.After(stale.FreshUntil) {
					stale = e
				}
			}
			if acquired {
				leased = true
				break
			}
			// Someone else holds the lease: take the stale copy if there
			// is one, else poll briefly.
			if stale != nil {
				c.storeLocal(key, stale, seq)
				return stale, Stale, nil
			}
			if background || time.Now().After(deadline) {
				if background {
					return nil, 0, errRefreshBusy
				}
				break // the holder is too slow: load without the lease
			}
			waited = true
			t := time.NewTimer(step)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, 0, ctx.Err()
			case <-t.C:
			}
			step = min(step*2, 10*time.Millisecond)
		}
	}

	g.loads.Add(1)
	c.stats.loads.Add(1)
	body, err := load(ctx)
	if err != nil {
		c.stats.loadErrors.Add(1)
		g.loadErrors.Add(1)
		if leased {
			c.release(ctx, op, key, token)
		}
		// Stale-if-error.
		if stale != nil && c.now().Before(stale.StaleUntil) {
			return stale, Stale, nil
		}
		if r := c.retired.get(key, c.now()); r != nil {
			return r, Stale, nil
		}
		return nil, 0, err
	}
	e := newEntry(body, c.now(), o.TTL, c.opts.Stale, gens)
	if len(body) == 0 {
		// Never cache an empty value.
		if leased {
			c.release(ctx, op, key, token)
		}
		return e, Miss, nil
	}
	store := true
	if c.useRed {
		if leased {
			// The fill only writes if our lease is still there: an
			// invalidation (UNLINK) since we took it removed it, and then
			// our rows may predate the write.
			ok, err := c.fill(ctx, op, key, token, e)
			store = ok && err == nil
		} else if c.redisUp() && !op.failed {
			// We gave up waiting for a slow lease holder; its fill wins.
			store = true
		}
	}
	if store {
		c.storeLocal(key, e, seq)
	}
	return e, Miss, nil
}

var errRefreshBusy = errors.New("cache: refresh in progress elsewhere")

// storeLocal stores e under key unless key was invalidated since seq was
// read. The check runs again after the store (an invalidation increments the
// sequence before deleting), so an invalidation racing with the store either
// is seen here or deletes what we stored.
func (c *Cache) storeLocal(key string, e *Entry, seq uint64) {
	if c.local == nil || c.seq(key) != seq {
		return
	}
	c.retired.drop(key)
	it := &localItem{e: e}
	if c.fallback() {
		it.until = c.now().Add(c.opts.FallbackLocalTTL).UnixNano()
	}
	c.local.Set(key, it)
	if c.seq(key) != seq {
		if cur, ok := c.local.GetIfPresent(key); ok && cur == it {
			c.local.Invalidate(key)
		}
	}
}

// tagsCurrent reports whether every recorded generation is still current.
func (c *Cache) tagsCurrent(ctx context.Context, op *fetchOp, tags []tagGen) bool {
	for _, t := range tags {
		if g := c.currentGen(ctx, op, t.tag); g != t.gen {
			return false
		}
	}
	return true
}

func (c *Cache) currentGens(ctx context.Context, op *fetchOp, tags []string) []tagGen {
	if len(tags) == 0 {
		return nil
	}
	out := make([]tagGen, len(tags))
	for i, t := range tags {
		out[i] = tagGen{t, c.currentGen(ctx, op, t)}
	}
	return out
}

// currentGen returns the current generation of tag: the local copy (kept
// coherent like entries), else Redis (created with SET NX if missing, so no
// entry ever records "absent"), else — Redis unusable — a new local random
// generation, which conservatively makes older tagged entries miss.
func (c *Cache) currentGen(ctx context.Context, op *fetchOp, tag string) string {
	if it, ok := c.gens.GetIfPresent(tag); ok && c.trusted(it.until, c.now()) {
		return it.gen
	}
	if c.redisUp() && !op.failed {
		ep := c.genEpoch.Load()
		if g, err := c.redisGen(ctx, op, tag); err == nil {
			c.storeGen(tag, g, ep)
			return g
		}
	}
	g := newGen()
	it, _ := c.gens.SetIfAbsent(tag, genItem{gen: g})
	return it.gen
}

func (c *Cache) storeGen(tag, gen string, epoch uint64) {
	if c.genEpoch.Load() != epoch {
		return
	}
	it := genItem{gen: gen}
	if c.fallback() {
		it.until = c.now().Add(c.opts.FallbackLocalTTL).UnixNano()
	}
	c.gens.Set(tag, it)
	if c.genEpoch.Load() != epoch {
		c.gens.Invalidate(tag)
	}
}

func newGen() string {
	var b [16]byte
	return string(strconv.AppendUint(b[:0], rand.Uint64(), 36))
}

// flushLocal drops the whole in-process state: entries, generations, and
// the right of in-flight loads to store. The entries are retired rather
// than forgotten: see retiredSet.
func (c *Cache) flushLocal() {
	c.epoch.Add(1)
	c.genEpoch.Add(1)
	if c.local != nil {
		c.retired.add(c.retirable(), c.now(), c.opts.LocalMaxBytes)
		c.local.InvalidateAll()
	}
	if c.gens != nil {
		c.gens.InvalidateAll()
	}
	c.epoch.Add(1)
	c.genEpoch.Add(1)
}

// retirable yields the local entries worth retiring: those whose tag
// generations are still the current local ones (an entry a tag
// invalidation made absent is still in the tier until it is read).
func (c *Cache) retirable() iter.Seq2[string, *Entry] {
	return func(yield func(string, *Entry) bool) {
	next:
		for k, it := range c.local.All() {
			for _, t := range it.e.tags {
				if g, ok := c.gens.GetIfPresent(t.tag); !ok || g.gen != t.gen {
					continue next
				}
			}
			if !yield(k, it.e) {
				return
			}
		}
	}
}

// detach makes later Fetches of key start a new flight instead of joining a
// load that began before an invalidation (read-your-writes).
func (c *Cache) detach(match func(string) bool) {
	c.fmu.Lock()
	for k := range c.flights {
		if match(k) {
			delete(c.flights, k)
		}
	}
	c.fmu.Unlock()
}

func (c *Cache) detachKey(key string) {
	c.fmu.Lock()
	delete(c.flights, key)
	c.fmu.Unlock()
}

// otterClock returns clock as an otter.Clock, or nil (otter's default) when
// the clock is injected.
func otterClock(clock *coarseClock) otter.Clock {
	if clock == nil {
		return nil
	}
	return clock
}
