package cache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
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
	// DisableLocal turns the in-process tier off (to measure Redis alone),
	// except for keys under one of KeepLocal's prefixes.
	DisableLocal bool
	// KeepLocal lists key prefixes whose entries keep the in-process tier
	// under DisableLocal. The service keeps its token lookups there: what
	// DisableLocal measures is an answer read from Redis, not one more
	// round trip per request for the caller's token, which no deployment
	// with the local tier makes.
	KeepLocal []string
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
	// CompressAbove is the body size in bytes above which an entry is
	// stored gzip-compressed in Redis (less to move and to hold; the gzip
	// bytes read back serve gzip-accepting clients as they are, and the
	// body is inflated only if someone asks for it). Default 4096;
	// negative: never. Without the local tier (DisableLocal) a client that
	// does not accept gzip costs an inflate per request.
	CompressAbove int
	// FlushDelay lets the Redis connection's writer, after each write
	// while several commands are in flight, wait up to this long for more
	// to send in the same write: fewer system calls for this process and
	// for Redis, for at most that much more latency per call under load
	// (a command issued alone is never delayed). Default 50µs; negative:
	// none.
	FlushDelay time.Duration
	// BreakerThreshold is the number of consecutive Redis transport errors or
	// timeouts that open the circuit breaker. Default 3.
	BreakerThreshold int
	// ProbeInterval is how often a PING checks an open breaker. Default 500ms.
	ProbeInterval time.Duration
	// EarlyRefresh is the beta of probabilistic early expiration ("XFetch",
	// Vattani et al., VLDB 2015). A fresh hit starts a background refresh
	// (deduplicated per key, like stale-while-revalidate) when
	// now - delta*beta*ln(rand) >= FreshUntil, delta being the entry's
	// measured load time: a key read steadily is refreshed shortly before
	// it expires instead of expiring into a miss, and a key read rarely is
	// not refreshed at all. 0 means 1; larger refreshes earlier; negative
	// turns early refresh off.
	EarlyRefresh float64
	// Rand returns uniform numbers in [0, 1) for early refresh (default
	// math/rand/v2's Float64); tests inject a deterministic source.
	Rand func() float64
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
	// nanoseconds of the injected clock); 0 = until StaleUntil. Set in the
	// no-tracking fallback, and for a copy loaded when Redis failed the
	// key's read (storeUntracked).
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
	opts  Options      // defaults applied; Now is the coarse clock unless injected
	clock *coarseClock // nil when Options.Now is injected
	// redisOpts is the parsed RedisURL; redisOn says Redis is configured
	// and not disabled (whether it is reachable is redisState's business).
	redisOpts rueidis.ClientOption
	redisOn   bool
	id        string // instance id, to ignore our own pub/sub messages
	channel   string // pub/sub channel of the fallback

	local *otter.Cache[string, *localItem] // nil when Disabled, or DisableLocal without KeepLocal
	gens  *otter.Cache[string, genItem]

	// Invalidation sequences (stale-set protection inside the process): a
	// store into the local tier is dropped if the key's stripe or the global
	// epoch moved since the value was read. Striping keeps memory bounded;
	// a collision only skips a local store.
	seed     maphash.Seed
	stripes  [seqStripes]atomic.Uint64
	epoch    atomic.Uint64
	genEpoch atomic.Uint64
	// view counts the changes to what Peek reads (see Stamp); it starts
	// at 1 so that the zero Stamp is never valid.
	view atomic.Uint64

	refMu     sync.Mutex
	refreshed map[string]time.Time // last background refresh per key

	flightMu sync.Mutex
	flights  map[string]*flight // under flightMu
	reads    singleflight.Group
	// closed is set by Close under flightMu, so that no flight starts (and
	// no wg.Add happens) after Close began waiting; the hit path reads it
	// without the lock.
	closed atomic.Bool

	closeCtx context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once

	r redisState

	// retired holds what flushLocal dropped, for stale-if-error only.
	retired retiredSet
	// ownWrites holds the keys this process wrote itself in the last
	// ownWriteWindow without changing their value (a lease taken or
	// released, a tag generation created): the tracking pushes that follow
	// must not drop their retired copies (see dropTrackedKey).
	ownWrites *otter.Cache[string, struct{}]

	// births marks loads and invalidations in order; fences are what
	// Redis has not confirmed (see fenceSet).
	births atomic.Uint64
	fences fenceSet

	hot hotKeys // sampled reads, for HotKeys

	stats   counters
	groupMu sync.Mutex
	groups  atomic.Pointer[map[string]*groupCounters]
}

// withDefaults fills the zero fields of opts (Now stays nil: New decides).
func withDefaults(opts Options) Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.Stale, 10*time.Minute)
	def(&opts.RedisTimeout, 50*time.Millisecond)
	def(&opts.LeaseTTL, 3*time.Second)
	def(&opts.FallbackLocalTTL, time.Second)
	def(&opts.RefreshTimeout, 30*time.Second)
	def(&opts.ProbeInterval, 500*time.Millisecond)
	if opts.LocalMaxBytes <= 0 {
		opts.LocalMaxBytes = 256 << 20
	}
	if opts.CompressAbove == 0 {
		opts.CompressAbove = 4096
	}
	if opts.FlushDelay == 0 {
		opts.FlushDelay = 50 * time.Microsecond
	}
	if opts.BreakerThreshold <= 0 {
		opts.BreakerThreshold = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.EarlyRefresh == 0 {
		opts.EarlyRefresh = 1
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	return opts
}

// parseRedisURL checks RedisURL and turns it into client options.
func parseRedisURL(opts Options) (rueidis.ClientOption, error) {
	u, err := url.Parse(opts.RedisURL)
	if err != nil {
		return rueidis.ClientOption{}, fmt.Errorf("cache: bad RedisURL: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return rueidis.ClientOption{}, fmt.Errorf("cache: RedisURL scheme %q: want redis:// or rediss://", u.Scheme)
	}
	co, err := rueidis.ParseURL(opts.RedisURL)
	if err != nil {
		return rueidis.ClientOption{}, fmt.Errorf("cache: bad RedisURL: %w", err)
	}
	if opts.TLSConfig != nil && u.Scheme == "rediss" {
		co.TLSConfig = opts.TLSConfig.Clone()
	}
	return co, nil
}

// New builds a Cache. It fails only for bad options (an unparseable URL or
// an unknown scheme); an unreachable Redis is not an error: the cache serves
// from memory and connects in the background.
func New(opts Options) (*Cache, error) {
	opts = withDefaults(opts)
	c := &Cache{
		opts:    opts,
		id:      strconv.FormatUint(rand.Uint64(), 16),
		channel: opts.Prefix + "cache:invalidate",
		seed:    maphash.MakeSeed(),
		flights: make(map[string]*flight),
	}
	c.view.Store(1)
	if opts.RedisURL != "" && !opts.DisableRedis && !opts.Disabled {
		co, err := parseRedisURL(opts)
		if err != nil {
			return nil, err
		}
		c.redisOpts, c.redisOn = co, true
	}
	c.closeCtx, c.cancel = context.WithCancel(context.Background())
	empty := map[string]*groupCounters{}
	c.groups.Store(&empty)
	switch {
	case opts.Now != nil:
	case opts.Disabled:
		c.opts.Now = time.Now
	default:
		c.clock = newCoarseClock()
		c.opts.Now = c.clock.Now
	}
	if !opts.Disabled {
		if !opts.DisableLocal || len(opts.KeepLocal) > 0 {
			c.local = c.newLocalTier()
		}
		c.gens = otter.Must(&otter.Options[string, genItem]{MaximumSize: 1 << 16})
		c.ownWrites = otter.Must(&otter.Options[string, struct{}]{
			MaximumSize: 1 << 16, ExpiryCalculator: otter.ExpiryWriting[string, struct{}](ownWriteWindow)})
	}
	if c.redisOn {
		c.r.tripCh = make(chan struct{}, 1)
		c.wg.Add(1)
		go c.manage()
	}
	return c, nil
}

func (c *Cache) newLocalTier() *otter.Cache[string, *localItem] {
	return otter.Must(&otter.Options[string, *localItem]{
		MaximumWeight: uint64(c.opts.LocalMaxBytes),
		Weigher: func(k string, it *localItem) uint32 {
			w := len(k) + it.e.weight() + len(it.e.ETag) + 160
			return uint32(min(w, math.MaxUint32))
		},
		// Otter expires by wall time; freshness itself is checked against
		// the injected clock on every read, so this is only memory
		// reclamation.
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *localItem]) time.Duration {
			return max(e.Value.e.StaleUntil.Sub(c.now()), time.Millisecond)
		}),
		Clock: otterClock(c.clock),
	})
}

// Close stops every goroutine the cache started (background connects,
// probes, subscriptions, refreshes and loads in flight, whose contexts are
// canceled) and closes the Redis client. Fetch after Close just runs load.
func (c *Cache) Close() {
	c.once.Do(func() {
		c.flightMu.Lock()
		c.closed.Store(true)
		c.flightMu.Unlock()
		c.changed()
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
			c.ownWrites.StopAllGoroutines()
		}
		if c.clock != nil {
			c.clock.Close()
		}
	})
}

func (c *Cache) isClosed() bool { return c.closed.Load() }

// now is the cache's clock (Options.Now, or the coarse clock).
func (c *Cache) now() time.Time { return c.opts.Now() }

// Now is the cache's clock: Options.Now if one was given, else a clock
// read from an atomic, refreshed every millisecond (it stops at Close).
func (c *Cache) Now() time.Time { return c.now() }

// stopwatch is the clock that measures loads: the injected one in tests,
// else the monotonic clock (the coarse clock cannot time a load shorter
// than a millisecond).
func (c *Cache) stopwatch() time.Time {
	if c.clock == nil {
		return c.now()
	}
	return time.Now()
}

func (c *Cache) log() *slog.Logger { return c.opts.Logger }

func (c *Cache) hash(key string) uint64 { return maphash.String(c.seed, key) }

// seq is the invalidation sequence of key: it changes whenever key (or
// everything) is invalidated in this process.
func (c *Cache) seq(key string) uint64 {
	return c.stripes[c.hash(key)&(seqStripes-1)].Load() + c.epoch.Load()
}

func (c *Cache) bump(key string) { c.stripes[c.hash(key)&(seqStripes-1)].Add(1) }

// otterClock returns clock as an otter.Clock, or nil (otter's default) when
// the clock is injected.
func otterClock(clock *coarseClock) otter.Clock {
	if clock == nil {
		return nil
	}
	return clock
}
