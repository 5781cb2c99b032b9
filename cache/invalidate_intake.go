package cache

import (
	"context"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Invalidation intake: what other instances' writes send us (tracking pushes,
// or pub/sub messages in the fallback), and the queue of our own
// invalidations that Redis has not taken yet, replayed before Redis is used
// again.

// invKind says what an invalidation names. It is also the first byte of a
// message on the fallback's pub/sub channel.
type invKind byte

const (
	invKey     invKind = 'k' // keys (a message lists them NUL-separated)
	invTag     invKind = 't' // a tag generation
	invPattern invKind = 'p' // a glob pattern over keys
	invAll     invKind = '*' // everything under the prefix
)

// pendingInv is one invalidation waiting for replay.
type pendingInv struct {
	kind invKind
	s    string
}

// everything replaces a queue grown too long: one pattern covering all.
var everything = pendingInv{invPattern, "*"}

const maxPending = 10000

// queued is a pending invalidation with the birth mark of its latest issue
// (see fenceSet).
type queued struct {
	inv  pendingInv
	mark uint64
}

// pendingSet is the replay queue: a set (repeats collapse, the newest mark
// kept), bounded by maxPending, past which it is replaced by everything.
type pendingSet struct {
	m        map[pendingInv]uint64
	overflow uint64 // non-zero: replaced by everything, with this mark
}

// add queues inv; it reports whether the queue collapsed to everything.
func (p *pendingSet) add(inv pendingInv, mark uint64) (collapsed bool) {
	if p.overflow != 0 {
		p.overflow = max(p.overflow, mark)
		return false
	}
	if inv == everything || len(p.m) >= maxPending {
		for _, m := range p.m {
			mark = max(mark, m)
		}
		p.m, p.overflow = nil, mark
		return true
	}
	if p.m == nil {
		p.m = make(map[pendingInv]uint64)
	}
	p.m[inv] = max(p.m[inv], mark)
	return false
}

// take empties the set and returns what it held.
func (p *pendingSet) take() []queued {
	if p.overflow != 0 {
		q := []queued{{everything, p.overflow}}
		p.m, p.overflow = nil, 0
		return q
	}
	batch := make([]queued, 0, len(p.m))
	for inv, mark := range p.m {
		batch = append(batch, queued{inv, mark})
	}
	p.m = nil
	return batch
}

func (p *pendingSet) empty() bool { return len(p.m) == 0 && p.overflow == 0 }

// recordLocked queues an invalidation Redis has not confirmed and fences
// what it names; c.r.mu is held.
func (c *Cache) recordLocked(q queued) {
	defer c.changed() // a new fence can only hide entries
	if c.r.pending.add(q.inv, q.mark) {
		c.fences.collapse(q.mark)
		return
	}
	c.fences.add(q.inv, q.mark)
}

// queueIfDown records an invalidation for replay if Redis is down, and
// returns false if Redis is up (the caller must then send it itself). The
// lock is the one under which recover closes the breaker once the queue is
// empty: an invalidation is either replayed before Redis is used again or
// sent by its caller.
func (c *Cache) queueIfDown(q queued) bool {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if c.r.up.Load() {
		return false
	}
	c.recordLocked(q)
	return true
}

// unconfirmed handles an invalidation that Redis did not take (an error or
// a timeout; the breaker counts it like any failed call): it is fenced and
// queued, and the manager replays it when Redis answers. Redis stays in
// use for everything else: a cluster with one master away still serves the
// other slots.
func (c *Cache) unconfirmed(q queued, err error) {
	c.r.mu.Lock()
	first := c.fences.count() == 0
	c.recordLocked(q)
	c.r.mu.Unlock()
	if first {
		c.log().Warn("cache: an invalidation did not reach redis; this instance will not serve what it names from redis or old copies until it is replayed", "kind", string(q.inv.kind), "what", q.inv.s, "err", err)
	} else {
		c.log().Debug("cache: invalidation queued for replay", "kind", string(q.inv.kind), "what", q.inv.s, "err", err)
	}
	c.wakeManager()
}

// hasPending reports whether invalidations wait for replay.
func (c *Cache) hasPending() bool {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	return !c.r.pending.empty()
}

// takePending empties the replay queue.
func (c *Cache) takePending() []queued {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	return c.r.pending.take()
}

// takePendingOrClose returns the queued invalidations; with none left it
// closes the breaker instead, under the lock that queueIfDown takes.
func (c *Cache) takePendingOrClose() ([]queued, bool) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if c.r.pending.empty() {
		c.r.fails.Store(0)
		c.r.everUp.Store(true)
		c.r.up.Store(true)
		return nil, true
	}
	return c.r.pending.take(), false
}

// replayTimeout bounds one replay call: replay is off the request path.
const replayTimeout = 5 * time.Second

// replayBatch sends a batch of queued invalidations, keys 500 to a round
// trip, and lifts the fence of each one sent. On failure what was not sent
// goes back to the queue.
func (c *Cache) replayBatch(batch []queued) error {
	var keys, rest []queued
	for _, q := range batch {
		if q.inv.kind == invKey {
			keys = append(keys, q)
		} else {
			rest = append(rest, q)
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
		c.r.mu.Lock()
		for _, q := range append(keys, rest...) {
			c.recordLocked(q)
		}
		c.r.mu.Unlock()
	}
	return err
}

func (c *Cache) replayKeys(batch []queued) error {
	ctx, cancel := context.WithTimeout(c.closeCtx, replayTimeout)
	defer cancel()
	keys := make([]string, len(batch))
	for i, q := range batch {
		keys[i] = q.inv.s
	}
	if err := c.redisUnlink(ctx, keys, replayTimeout); err != nil {
		return err
	}
	for _, q := range batch {
		c.fences.confirm(q.inv, q.mark)
	}
	return nil
}

func (c *Cache) replay(q queued) error {
	ctx, cancel := context.WithTimeout(c.closeCtx, replayTimeout)
	defer cancel()
	var err error
	switch q.inv.kind {
	case invKey:
		err = c.redisUnlink(ctx, []string{q.inv.s}, replayTimeout)
	case invTag:
		if err = c.redisBumpTag(ctx, q.inv.s, newGen(), replayTimeout); err == nil {
			// Our local generation is not the one just written: read it again.
			c.dropLocalGen(q.inv.s)
		}
	case invPattern:
		_, err = c.redisPattern(ctx, q.inv.s)
	}
	if err == nil {
		c.fences.confirm(q.inv, q.mark)
	}
	return err
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
			c.dropTrackedGen(tag)
		}
	}
}

// dropTrackedKey is dropLocalKey for a tracking push. Pushes also follow
// this process's own lease writes on a miss, so while a load of k runs here
// its retired copy is kept: that load failing is when the copy is needed.
func (c *Cache) dropTrackedKey(k string) {
	if !c.loading(k) && !c.ownWrite(k) {
		c.dropLocalKey(k)
		return
	}
	c.bump(k)
	if c.local != nil {
		c.local.Invalidate(k)
	}
	c.changed()
}

// ownWriteWindow is how long after this process wrote a key itself (see
// Cache.ownWrites) a push for it is taken for that write: longer than a
// load that began with the write may take to fail.
const ownWriteWindow = 10 * time.Second

// dropTrackedGen is dropLocalGen for a tracking push. A push also follows
// this process's own creation of a generation (a load after Redis came back
// empty creates it with SET NX): the local generation is dropped either
// way, but the retired copies of the tag are kept after our own write,
// since the load that made it failing is when they are needed. A tag
// invalidation by another instance inside that window leaves them retired:
// they are served only if the database fails too, and then as STALE.
func (c *Cache) dropTrackedGen(tag string) {
	if !c.ownWrite("gen:" + tag) {
		c.dropLocalGen(tag)
		return
	}
	c.genEpoch.Add(1)
	if c.gens != nil {
		c.gens.Invalidate(tag)
	}
	c.changed()
}

// subscribe listens to the fallback's invalidation channel until Close.
func (c *Cache) subscribe(cl rueidis.Client) {
	defer c.wg.Done()
	for c.closeCtx.Err() == nil {
		err := cl.Receive(c.closeCtx, cl.B().Subscribe().Channel(c.channel).Build(), c.onMessage)
		if c.closeCtx.Err() != nil {
			return
		}
		// Messages may have been lost while unsubscribed.
		c.flushLocal()
		c.log().Debug("cache: invalidation subscription ended; resubscribing", "err", err)
		if !c.sleep(200 * time.Millisecond) {
			return
		}
	}
}

// onMessage applies another instance's broadcast (see publish).
func (c *Cache) onMessage(m rueidis.PubSubMessage) {
	if len(m.Message) < 2 {
		return
	}
	kind := invKind(m.Message[0])
	sender, payload, ok := strings.Cut(m.Message[1:], "\n")
	if !ok || sender == c.id {
		return
	}
	switch kind {
	case invKey:
		for k := range strings.SplitSeq(payload, "\x00") {
			c.dropLocalKey(k)
			c.detachKey(k)
		}
	case invTag:
		c.dropLocalGen(payload)
	case invPattern:
		c.dropLocalPattern(payload)
	case invAll:
		c.flushLocal()
	}
}
