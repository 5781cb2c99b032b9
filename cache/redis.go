package cache

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

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
	// tripCh wakes the manager when the breaker opens.
	tripCh chan struct{}

	// pending holds invalidations issued while Redis was unusable, replayed
	// before Redis is used again. mu also orders "append to pending" against
	// "declare Redis up", so none is stranded.
	mu        sync.Mutex
	pending   map[pendingInv]struct{} // a set: repeats collapse
	overflow  bool                    // too many: replay a full-prefix pattern instead
	announced bool                    // "unreachable at start" logged
	tlsLogged bool                    // "certificate does not verify" logged
}

type pendingInv struct {
	kind byte // 'k' key, 't' tag, 'p' pattern
	s    string
}

const maxPending = 10000

func (c *Cache) redisUp() bool { return c.useRed && c.r.up.Load() }

// fallback reports whether the local tier must cap its TTL: Redis is in use
// but its client has no tracking, so pushes cannot keep copies coherent.
func (c *Cache) fallback() bool {
	if !c.useRed {
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

var errNoRedis = errors.New("cache: redis not connected")

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
		c.log.Warn("cache: redis unavailable, serving from memory", "err", err)
		select {
		case c.r.tripCh <- struct{}{}:
		default:
		}
	}
}

// do runs one command with the RedisTimeout deadline.
func (c *Cache) do(ctx context.Context, op *fetchOp, cmd func(rueidis.Client) rueidis.Completed) rueidis.RedisResult {
	cl := c.client()
	if cl == nil {
		if op != nil {
			op.failed = true
		}
		return rueidis.RedisResult{}
	}
	rctx, cancel := context.WithTimeout(ctx, c.opts.RedisTimeout)
	res := cl.Do(rctx, cmd(cl))
	cancel()
	if c.observe(ctx, res.Error()) && op != nil {
		op.failed = true
	}
	return res
}

func (c *Cache) rkey(key string) string { return c.opts.Prefix + key }

// redisGet reads and decodes the entry of key. A nil entry with a nil error
// is a miss; a corrupt value is a miss counted as an error.
func (c *Cache) redisGet(ctx context.Context, op *fetchOp, key string) (*Entry, error) {
	if c.client() == nil {
		op.failed = true
		return nil, errNoRedis
	}
	res := c.do(ctx, op, func(cl rueidis.Client) rueidis.Completed {
		return cl.B().Hget().Key(c.rkey(key)).Field("v").Build()
	})
	b, err := res.AsBytes()
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return nil, nil
		}
		if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), "WRONGTYPE") {
			// Not ours (or an older layout): remove it so the fill can write.
			c.log.Debug("cache: wrong type in redis, unlinking", "key", key)
			op.failed = false
			c.do(ctx, op, func(cl rueidis.Client) rueidis.Completed {
				return cl.B().Unlink().Key(c.rkey(key)).Build()
			})
			return nil, nil
		}
		return nil, err
	}
	e, err := decodeEntry(b)
	if err != nil {
		c.stats.redisErrors.Add(1)
		c.log.Debug("cache: undecodable redis entry", "key", key, "err", err)
		return nil, nil
	}
	return e, nil
}

// The lease scripts. One hash per key: field v = encoded entry, field l =
// lease "token:expiresAtMs". Keeping both in one key makes every script
// single-key (cluster-safe without hash tags) and lets one UNLINK remove
// value and lease together.
var (
	// acquire: take l if absent or expired (server time), give the key a
	// PEXPIRE if it has none; return {acquired, v}.
	acquireScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local l = redis.call('HGET', KEYS[1], 'l')
if l then
  local i = string.find(l, ':', 1, true)
  local exp = i and tonumber(string.sub(l, i + 1))
  if exp and exp > now then
    return {0, redis.call('HGET', KEYS[1], 'v')}
  end
end
redis.call('HSET', KEYS[1], 'l', ARGV[1] .. ':' .. (now + tonumber(ARGV[2])))
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, redis.call('HGET', KEYS[1], 'v')}
`)
	// fill: write v and drop l only if l is still our lease.
	fillScript = rueidis.NewLuaScript(`
local l = redis.call('HGET', KEYS[1], 'l')
if not l or string.sub(l, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ':' then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2])
redis.call('HDEL', KEYS[1], 'l')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)
	// release: drop l if it is ours (load failed or was not needed).
	releaseScript = rueidis.NewLuaScript(`
local l = redis.call('HGET', KEYS[1], 'l')
if l and string.sub(l, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':' then
  redis.call('HDEL', KEYS[1], 'l')
  return 1
end
return 0
`)
)

func (c *Cache) script(ctx context.Context, op *fetchOp, s *rueidis.Lua, key string, args ...string) rueidis.RedisResult {
	cl := c.client()
	if cl == nil {
		op.failed = true
		return rueidis.RedisResult{}
	}
	rctx, cancel := context.WithTimeout(ctx, c.opts.RedisTimeout)
	res := s.Exec(rctx, cl, []string{c.rkey(key)}, args)
	cancel()
	if c.observe(ctx, res.Error()) {
		op.failed = true
	}
	return res
}

func (c *Cache) acquire(ctx context.Context, op *fetchOp, key, token string) (bool, *Entry, error) {
	lease := c.opts.LeaseTTL.Milliseconds()
	res := c.script(ctx, op, acquireScript, key, token, strconv.FormatInt(lease, 10), strconv.FormatInt(2*lease, 10))
	arr, err := res.ToArray()
	if err != nil {
		if !op.failed {
			op.failed = true // a script error: do not trust Redis for this call
		}
		return false, nil, err
	}
	if len(arr) == 0 {
		return false, nil, errCorrupt
	}
	n, _ := arr[0].AsInt64()
	var e *Entry
	if len(arr) > 1 {
		if b, err := arr[1].AsBytes(); err == nil {
			if e, err = decodeEntry(b); err != nil {
				c.stats.redisErrors.Add(1)
				c.log.Debug("cache: undecodable redis entry", "key", key, "err", err)
				e = nil
			}
		}
	}
	return n == 1, e, nil
}

// jitter returns d plus up to 10%, so keys written together do not expire
// together.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

func (c *Cache) fill(ctx context.Context, op *fetchOp, key, token string, e *Entry) (bool, error) {
	ttl := jitter(e.StaleUntil.Sub(e.FreshUntil) + e.FreshUntil.Sub(c.now()))
	ms := max(ttl.Milliseconds(), 1)
	res := c.script(ctx, op, fillScript, key, token, string(encodeEntry(e)), strconv.FormatInt(ms, 10))
	n, err := res.AsInt64()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

func (c *Cache) release(ctx context.Context, op *fetchOp, key, token string) {
	if op.failed {
		return
	}
	c.script(ctx, op, releaseScript, key, token)
}

const genTTL = 24 * time.Hour

func (c *Cache) genKey(tag string) string { return c.opts.Prefix + "gen:" + tag }

// redisGen reads the generation of tag, creating a random one if missing.
func (c *Cache) redisGen(ctx context.Context, op *fetchOp, tag string) (string, error) {
	res := c.do(ctx, op, func(cl rueidis.Client) rueidis.Completed {
		return cl.B().Get().Key(c.genKey(tag)).Build()
	})
	g, err := res.ToString()
	if err == nil {
		return g, nil
	}
	if !rueidis.IsRedisNil(err) {
		return "", err
	}
	mine := newGen()
	res = c.do(ctx, op, func(cl rueidis.Client) rueidis.Completed {
		return cl.B().Set().Key(c.genKey(tag)).Value(mine).Nx().Get().PxMilliseconds(jitter(genTTL).Milliseconds()).Build()
	})
	g, err = res.ToString()
	if rueidis.IsRedisNil(err) {
		return mine, nil // ours was set
	}
	return g, err
}

// manage builds the client (retrying with backoff: rueidis.NewClient fails
// while Redis is unreachable), then keeps the breaker: when it opens, PING
// every ProbeInterval and, when Redis answers, flush the local tier, replay
// pending invalidations and close it again.
func (c *Cache) manage() {
	defer c.wg.Done()
	backoff := 100 * time.Millisecond
	var subDone chan struct{}
	for {
		if c.r.conn.Load() == nil {
			rc, err := c.dial()
			if err != nil {
				c.r.mu.Lock()
				c.announceDialFailure(err)
				c.r.mu.Unlock()
				if !c.sleep(backoff) {
					return
				}
				backoff = min(backoff*2, 2*time.Second)
				continue
			}
			c.r.conn.Store(rc)
			if !rc.tracking {
				subDone = make(chan struct{})
				c.wg.Add(1)
				go c.subscribe(rc.client, subDone)
			}
		}
		if !c.r.up.Load() {
			if c.probe() && c.recover() {
				mode := "tracking"
				if c.fallback() {
					mode = "pubsub"
				}
				c.log.Info("cache: redis available", "coherence", mode)
			} else if !c.sleep(c.opts.ProbeInterval) {
				return
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

func (c *Cache) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.closeCtx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (c *Cache) dial() (*redisConn, error) {
	o := c.clientO
	o.DisableRetry = true // a retry would exceed RedisTimeout anyway
	o.ConnWriteTimeout = max(10*c.opts.RedisTimeout, time.Second)
	if o.Dialer.Timeout == 0 {
		o.Dialer.Timeout = time.Second
	}
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
		c.log.Info("cache: redis refuses CLIENT TRACKING; using short local TTL and pub/sub invalidation", "err", err)
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
		c.log.Debug("cache: redis probe failed", "err", err)
	}
	return err == nil
}

// recover runs when Redis answers again (or for the first time). If the
// local tier may have missed invalidations it is dropped: the first time
// (it was filled without Redis), after the tracking connection dropped, and
// always without tracking. Invalidations issued meanwhile are replayed
// before Redis is used again.
func (c *Cache) recover() bool {
	if !c.r.everUp.Load() || c.r.lost.Swap(false) || c.fallback() {
		c.flushLocal()
	}
	for {
		c.r.mu.Lock()
		batch := make([]pendingInv, 0, len(c.r.pending))
		for p := range c.r.pending {
			batch = append(batch, p)
		}
		overflow := c.r.overflow
		if len(batch) == 0 && !overflow {
			c.r.fails.Store(0)
			c.r.everUp.Store(true)
			c.r.up.Store(true)
			c.r.mu.Unlock()
			return true
		}
		c.r.pending, c.r.overflow = nil, false
		c.r.mu.Unlock()
		if overflow {
			batch = []pendingInv{{'p', "*"}}
		}
		// Replay is off the request path: generous deadlines, keys batched.
		var keys []string
		var rest []pendingInv
		for _, p := range batch {
			if p.kind == 'k' {
				keys = append(keys, p.s)
			} else {
				rest = append(rest, p)
			}
		}
		var err error
		for len(keys) > 0 && err == nil {
			n := min(len(keys), 500)
			if err = c.replayKeys(keys[:n]); err == nil {
				keys = keys[n:]
			}
		}
		for len(rest) > 0 && err == nil {
			if err = c.replay(rest[0]); err == nil {
				rest = rest[1:]
			}
		}
		if err != nil {
			c.log.Debug("cache: replay failed; staying in memory mode", "err", err)
			left := rest
			for _, k := range keys {
				left = append(left, pendingInv{'k', k})
			}
			c.r.mu.Lock()
			if c.r.pending == nil {
				c.r.pending = make(map[pendingInv]struct{})
			}
			for _, p := range left {
				c.r.pending[p] = struct{}{}
			}
			c.r.overflow = c.r.overflow || overflow
			c.r.mu.Unlock()
			return false
		}
	}
}

const replayTimeout = 5 * time.Second

func (c *Cache) replayKeys(keys []string) error {
	ctx, cancel := context.WithTimeout(c.closeCtx, replayTimeout)
	defer cancel()
	return c.redisUnlink(ctx, keys, replayTimeout)
}

func (c *Cache) replay(p pendingInv) error {
	ctx, cancel := context.WithTimeout(c.closeCtx, replayTimeout)
	defer cancel()
	switch p.kind {
	case 'k':
		return c.redisUnlink(ctx, []string{p.s}, replayTimeout)
	case 't':
		return c.redisBumpTag(ctx, p.s, newGen(), replayTimeout)
	case 'p':
		_, err := c.redisPattern(ctx, p.s)
		return err
	}
	return nil
}

// queue records an invalidation for replay. It returns false if Redis is up
// (the caller must then send it itself).
func (c *Cache) queue(p pendingInv) bool {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if c.r.up.Load() {
		return false
	}
	if len(c.r.pending) >= maxPending {
		c.r.pending, c.r.overflow = nil, true
	}
	if !c.r.overflow {
		if c.r.pending == nil {
			c.r.pending = make(map[pendingInv]struct{})
		}
		c.r.pending[p] = struct{}{}
	}
	return true
}

// failed handles an invalidation that Redis did not take: it is queued and
// the breaker is opened, so that the probe replays it (and flushes the local
// tiers) before Redis is trusted again.
func (c *Cache) failedInvalidation(p pendingInv, err error) {
	c.r.mu.Lock()
	wasUp := c.r.up.Swap(false) // under mu so that queue() below cannot lose it
	c.r.mu.Unlock()
	c.queue(p)
	if wasUp {
		c.log.Warn("cache: redis unavailable (an invalidation failed), serving from memory; invalidations will be replayed", "err", err)
	} else {
		c.log.Debug("cache: invalidation queued for replay", "kind", string(p.kind), "what", p.s, "err", err)
	}
	select {
	case c.r.tripCh <- struct{}{}:
	default:
	}
}

// onInvalidations receives tracking pushes (BCAST under the prefix). nil
// means "everything" (FLUSHDB, or the connection was lost: rueidis#857).
func (c *Cache) onInvalidations(msgs []rueidis.RedisMessage) {
	if len(msgs) == 0 {
		// Pushes are missed until rueidis reconnects: entries loaded
		// meanwhile are suspect too, so recovery flushes again.
		c.r.lost.Store(true)
		c.flushLocal()
		return
	}
	for i := range msgs {
		k, err := msgs[i].ToString()
		if err != nil || !strings.HasPrefix(k, c.opts.Prefix) {
			continue
		}
		k = k[len(c.opts.Prefix):]
		c.dropTrackedKey(k)
		if tag, ok := strings.CutPrefix(k, "gen:"); ok {
			c.dropLocalGen(tag)
		}
	}
}

func (c *Cache) dropLocalKey(k string) {
	c.bump(k)
	if c.local != nil {
		c.local.Invalidate(k)
	}
	c.retired.drop(k) // after the local copy is gone: see retiredSet
}

// dropTrackedKey is dropLocalKey for a tracking push. Pushes also follow
// this process's own lease writes on a miss, so while a load of k runs here
// its retired copy is kept: that load failing is when the copy is needed.
func (c *Cache) dropTrackedKey(k string) {
	c.fmu.Lock()
	_, loading := c.flights[k]
	c.fmu.Unlock()
	if !loading {
		c.dropLocalKey(k)
		return
	}
	c.bump(k)
	if c.local != nil {
		c.local.Invalidate(k)
	}
}

func (c *Cache) dropLocalGen(tag string) {
	c.genEpoch.Add(1)
	if c.gens != nil {
		c.gens.Invalidate(tag)
	}
	c.retired.dropTag(tag)
}

// Pub/sub messages of the fallback: kind byte, sender id, '\n', payload.
func (c *Cache) publish(ctx context.Context, kind byte, payload string) error {
	cl := c.client()
	if cl == nil {
		return errNoRedis
	}
	rctx, cancel := context.WithTimeout(ctx, c.opts.RedisTimeout)
	defer cancel()
	msg := string(kind) + c.id + "\n" + payload
	err := cl.Do(rctx, cl.B().Publish().Channel(c.channel).Message(msg).Build()).Error()
	c.observe(ctx, err)
	return err
}

func (c *Cache) subscribe(cl rueidis.Client, done chan struct{}) {
	defer c.wg.Done()
	defer close(done)
	for c.closeCtx.Err() == nil {
		err := cl.Receive(c.closeCtx, cl.B().Subscribe().Channel(c.channel).Build(), c.onMessage)
		if c.closeCtx.Err() != nil {
			return
		}
		// Messages may have been lost while unsubscribed.
		c.flushLocal()
		c.log.Debug("cache: invalidation subscription ended; resubscribing", "err", err)
		if !c.sleep(200 * time.Millisecond) {
			return
		}
	}
}

func (c *Cache) onMessage(m rueidis.PubSubMessage) {
	if len(m.Message) < 2 {
		return
	}
	kind := m.Message[0]
	sender, payload, ok := strings.Cut(m.Message[1:], "\n")
	if !ok || sender == c.id {
		return
	}
	switch kind {
	case 'k':
		for k := range strings.SplitSeq(payload, "\x00") {
			c.dropLocalKey(k)
			c.detachKey(k)
		}
	case 't':
		c.dropLocalGen(payload)
	case 'p':
		c.dropLocalPattern(payload)
	case '*':
		c.flushLocal()
	}
}

// redisUnlink removes keys (value and lease together). One command per key:
// keys of different slots cannot share a command in a cluster.
func (c *Cache) redisUnlink(ctx context.Context, keys []string, timeout time.Duration) error {
	cl := c.client()
	if cl == nil {
		return errNoRedis
	}
	cmds := make(rueidis.Commands, 0, len(keys))
	for _, k := range keys {
		cmds = append(cmds, cl.B().Unlink().Key(c.rkey(k)).Build())
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, r := range cl.DoMulti(rctx, cmds...) {
		if err := r.Error(); err != nil {
			c.observe(ctx, err)
			return err
		}
	}
	if c.fallback() {
		return c.publish(ctx, 'k', strings.Join(keys, "\x00"))
	}
	return nil
}

func (c *Cache) redisBumpTag(ctx context.Context, tag, gen string, timeout time.Duration) error {
	cl := c.client()
	if cl == nil {
		return errNoRedis
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := cl.Do(rctx, cl.B().Set().Key(c.genKey(tag)).Value(gen).PxMilliseconds(jitter(genTTL).Milliseconds()).Build()).Error()
	if err != nil {
		c.observe(ctx, err)
		return err
	}
	if c.fallback() {
		return c.publish(ctx, 't', tag)
	}
	return nil
}

// redisPattern removes every key matching Prefix+pattern with SCAN MATCH
// COUNT 500 + UNLINK in batches, on every master (every node of a cluster).
func (c *Cache) redisPattern(ctx context.Context, pattern string) (int, error) {
	cl := c.client()
	if cl == nil {
		return 0, errNoRedis
	}
	match := globEscape(c.opts.Prefix) + pattern
	callTimeout := max(c.opts.RedisTimeout, 2*time.Second)
	total := 0
	nodes := cl.Nodes()
	for _, node := range nodes {
		if len(nodes) > 1 {
			rctx, cancel := context.WithTimeout(ctx, callTimeout)
			role, err := node.Do(rctx, node.B().Role().Build()).ToArray()
			cancel()
			if err != nil {
				return total, err
			}
			if len(role) > 0 {
				if r, _ := role[0].ToString(); r != "master" {
					continue
				}
			}
		}
		var cursor uint64
		for {
			rctx, cancel := context.WithTimeout(ctx, callTimeout)
			se, err := node.Do(rctx, node.B().Scan().Cursor(cursor).Match(match).Count(500).Build()).AsScanEntry()
			cancel()
			if err != nil {
				return total, err
			}
			if len(se.Elements) > 0 {
				cmds := make(rueidis.Commands, 0, len(se.Elements))
				for _, k := range se.Elements {
					cmds = append(cmds, cl.B().Unlink().Key(k).Build())
				}
				rctx, cancel := context.WithTimeout(ctx, callTimeout)
				for _, r := range cl.DoMulti(rctx, cmds...) {
					n, err := r.AsInt64()
					if err != nil {
						cancel()
						return total, err
					}
					total += int(n)
				}
				cancel()
			}
			cursor = se.Cursor
			if cursor == 0 {
				break
			}
		}
	}
	if c.fallback() {
		if err := c.publish(ctx, 'p', pattern); err != nil {
			return total, err
		}
	}
	return total, nil
}
