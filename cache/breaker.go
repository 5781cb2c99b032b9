package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// The Redis connection's lifecycle: building the client in the background,
// the circuit breaker, the probe, and recovery.

// redisConn is a built client and whether it has server-assisted tracking.
type redisConn struct {
	client   rueidis.Client
	tracking bool
}

// redisState is the connection, the breaker and the replay queue.
type redisState struct {
	conn  atomic.Pointer[redisConn]
	up    atomic.Bool  // breaker closed and client built
	fails atomic.Int32 // consecutive transport failures
	// lost is set when invalidations may have been missed (the tracking
	// connection dropped) and cleared when recover flushes the local tier.
	// A breaker opened by timeouts on a live tracking connection leaves it
	// false: pushes kept arriving, the local tier stayed coherent, and
	// recovery need not throw it away (under CPU starvation the breaker can
	// open and close every second or so).
	lost   atomic.Bool
	everUp atomic.Bool // recover has completed once
	// tripCh wakes the manager: the breaker opened, or an invalidation
	// waits for replay.
	tripCh chan struct{}

	// mu guards what follows. It also orders "queue an invalidation"
	// against "declare Redis up", so that none is stranded: see queue.
	mu        sync.Mutex
	pending   pendingSet // invalidations to replay before Redis is used again
	announced bool       // "unreachable at start" logged
	tlsLogged bool       // "certificate does not verify" logged
}

func (c *Cache) redisUp() bool { return c.redisOn && c.r.up.Load() }

// fallback reports whether the local tier must cap its TTL: Redis is in use
// but its client has no tracking, so pushes cannot keep copies coherent.
func (c *Cache) fallback() bool {
	if !c.redisOn {
		return false
	}
	rc := c.r.conn.Load()
	return rc != nil && !rc.tracking
}

func (c *Cache) client() rueidis.Client {
	if rc := c.r.conn.Load(); rc != nil {
		return rc.client
	}
	return nil
}

// observe classifies the outcome of a Redis call and feeds the breaker. It
// returns true if the call failed (the caller must not rely on Redis for
// the rest of the request). A nil reply is a miss, not a failure; a
// cancellation by the caller, or a server error reply, does not count
// towards opening the breaker.
func (c *Cache) observe(parent context.Context, err error) bool {
	if err == nil || rueidis.IsRedisNil(err) {
		c.r.fails.Store(0)
		return false
	}
	c.stats.redisErrors.Add(1)
	if parent.Err() != nil {
		return true
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return true
	}
	if n := c.r.fails.Add(1); int(n) >= c.opts.BreakerThreshold {
		c.trip(err)
	}
	return true
}

// trip opens the breaker: Redis is skipped until a probe succeeds.
func (c *Cache) trip(err error) {
	if c.r.up.CompareAndSwap(true, false) {
		c.log().Warn("cache: redis unavailable, serving from memory", "err", err)
		c.wakeManager()
	}
}

func (c *Cache) wakeManager() {
	select {
	case c.r.tripCh <- struct{}{}:
	default:
	}
}

// manage builds the client (retrying with backoff: rueidis.NewClient fails
// while Redis is unreachable), then keeps the breaker: when it opens, PING
// every ProbeInterval and, when Redis answers, flush the local tier, replay
// pending invalidations and close it again. While the breaker is closed it
// replays the invalidations that Redis did not take.
func (c *Cache) manage() {
	defer c.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		if c.r.conn.Load() == nil {
			if !c.connect() {
				if !c.sleep(backoff) {
					return
				}
				backoff = min(backoff*2, 2*time.Second)
				continue
			}
		}
		if !c.r.up.Load() {
			if c.probe() && c.recover() {
				mode := "tracking"
				if c.fallback() {
					mode = "pubsub"
				}
				c.log().Info("cache: redis available", "coherence", mode)
			} else if !c.sleep(c.opts.ProbeInterval) {
				return
			}
			continue
		}
		if c.hasPending() {
			// Invalidations Redis did not take while it was in use.
			if err := c.replayBatch(c.takePending()); err != nil {
				c.log().Debug("cache: replay failed; retrying", "err", err)
				if !c.sleep(c.opts.ProbeInterval) {
					return
				}
			} else if c.fences.count() == 0 {
				c.log().Info("cache: pending invalidations replayed")
			}
			continue
		}
		select {
		case <-c.closeCtx.Done():
			return
		case <-c.r.tripCh:
		}
	}
}

// connect builds the client once, and the pub/sub subscription of the
// fallback; false means Redis is not reachable yet.
func (c *Cache) connect() bool {
	rc, err := c.dial()
	if err != nil {
		c.r.mu.Lock()
		c.announceDialFailure(err)
		c.r.mu.Unlock()
		return false
	}
	c.r.conn.Store(rc)
	if !rc.tracking {
		c.wg.Add(1)
		go c.subscribe(rc.client)
	}
	return true
}

func (c *Cache) sleep(d time.Duration) bool { return sleepCtx(c.closeCtx, d) }

// clientOption is the parsed RedisURL with the settings every connection
// of the cache uses.
func (c *Cache) clientOption() rueidis.ClientOption {
	o := c.redisOpts
	o.DisableRetry = true // a retry would exceed RedisTimeout anyway
	o.MaxFlushDelay = max(c.opts.FlushDelay, 0)
	o.ConnWriteTimeout = max(10*c.opts.RedisTimeout, time.Second)
	if o.Dialer.Timeout == 0 {
		o.Dialer.Timeout = time.Second
	}
	return o
}

func (c *Cache) dial() (*redisConn, error) {
	o := c.clientOption()
	if !c.opts.DisableTracking {
		t := o
		// BCAST: Redis pushes the name of every modified key under the prefix
		// (no per-key bookkeeping on the server). NOLOOP: not for our own
		// writes on the same connection (we drop those copies ourselves).
		t.ClientTrackingOptions = []string{"BCAST", "NOLOOP"}
		if c.opts.Prefix != "" {
			t.ClientTrackingOptions = append(t.ClientTrackingOptions, "PREFIX", c.opts.Prefix)
		}
		t.OnInvalidations = c.onInvalidations
		// One pipelined connection per node: NOLOOP is per connection, so with
		// several, our own fills would come back as pushes on the others and
		// evict the copy we just stored. Auto-pipelining keeps one connection
		// fast.
		t.PipelineMultiplex = -1
		cl, err := rueidis.NewClient(t)
		if err == nil {
			return &redisConn{client: cl, tracking: true}, nil
		}
		if !errors.Is(err, rueidis.ErrNoCache) {
			return nil, err
		}
		c.log().Info("cache: redis refuses CLIENT TRACKING; using short local TTL and pub/sub invalidation", "err", err)
	}
	o.DisableCache = true
	cl, err := rueidis.NewClient(o)
	if err != nil {
		return nil, err
	}
	return &redisConn{client: cl}, nil
}

func (c *Cache) probe() bool {
	cl := c.client()
	if cl == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(c.closeCtx, max(c.opts.RedisTimeout, 250*time.Millisecond))
	defer cancel()
	err := cl.Do(ctx, cl.B().Ping().Build()).Error()
	if err != nil {
		c.log().Debug("cache: redis probe failed", "err", err)
	}
	return err == nil
}

// recover runs when Redis answers again (or for the first time). If the
// local tier may have missed invalidations it is dropped: the first time
// (it was filled without Redis), after the tracking connection dropped, and
// always without tracking. Invalidations issued meanwhile are replayed
// before Redis is used again: the breaker closes only once none is left.
func (c *Cache) recover() bool {
	if !c.r.everUp.Load() || c.r.lost.Swap(false) || c.fallback() {
		c.flushLocal()
	}
	for {
		batch, ok := c.takePendingOrClose()
		if ok {
			return true
		}
		if err := c.replayBatch(batch); err != nil {
			c.log().Debug("cache: replay failed; staying in memory mode", "err", err)
			return false
		}
	}
}
