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

// pendingSet is the replay queue: a set (repeats collapse), bounded by
// maxPending, past which it is replaced by everything.
type pendingSet struct {
	m        map[pendingInv]struct{}
	overflow bool
}

func (p *pendingSet) add(inv pendingInv) {
	if inv == everything || len(p.m) >= maxPending {
		p.m, p.overflow = nil, true
	}
	if p.overflow {
		return
	}
	if p.m == nil {
		p.m = make(map[pendingInv]struct{})
	}
	p.m[inv] = struct{}{}
}

// take empties the set and returns what it held.
func (p *pendingSet) take() []pendingInv {
	if p.overflow {
		p.m, p.overflow = nil, false
		return []pendingInv{everything}
	}
	batch := make([]pendingInv, 0, len(p.m))
	for inv := range p.m {
		batch = append(batch, inv)
	}
	p.m = nil
	return batch
}

func (p *pendingSet) empty() bool { return len(p.m) == 0 && !p.overflow }

// queue records an invalidation for replay. It returns false if Redis is up
// (the caller must then send it itself).
func (c *Cache) queue(p pendingInv) bool {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if c.r.up.Load() {
		return false
	}
	c.r.pending.add(p)
	return true
}

// failedInvalidation handles an invalidation that Redis did not take: it is
// queued and the breaker is opened, so that the probe replays it (and
// flushes the local tiers) before Redis is trusted again.
func (c *Cache) failedInvalidation(p pendingInv, err error) {
	c.r.mu.Lock()
	wasUp := c.r.up.Swap(false) // under mu so that queue() below cannot lose it
	c.r.mu.Unlock()
	c.queue(p)
	if wasUp {
		c.log().Warn("cache: redis unavailable (an invalidation failed), serving from memory; invalidations will be replayed", "err", err)
	} else {
		c.log().Debug("cache: invalidation queued for replay", "kind", string(p.kind), "what", p.s, "err", err)
	}
	c.wakeManager()
}

// takePendingOrClose returns the queued invalidations; with none left it
// closes the breaker instead, under the lock that queue takes, so that an
// invalidation is either taken here or sent by its caller.
func (c *Cache) takePendingOrClose() ([]pendingInv, bool) {
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
// trip. On failure what was not sent goes back to the queue.
func (c *Cache) replayBatch(batch []pendingInv) error {
	var keys []string
	var rest []pendingInv
	for _, p := range batch {
		if p.kind == invKey {
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
		c.r.mu.Lock()
		for _, p := range rest {
			c.r.pending.add(p)
		}
		for _, k := range keys {
			c.r.pending.add(pendingInv{invKey, k})
		}
		c.r.mu.Unlock()
	}
	return err
}

func (c *Cache) replayKeys(keys []string) error {
	ctx, cancel := context.WithTimeout(c.closeCtx, replayTimeout)
	defer cancel()
	return c.redisUnlink(ctx, keys, replayTimeout)
}

func (c *Cache) replay(p pendingInv) error {
	ctx, cancel := context.WithTimeout(c.closeCtx, replayTimeout)
	defer cancel()
	switch p.kind {
	case invKey:
		return c.redisUnlink(ctx, []string{p.s}, replayTimeout)
	case invTag:
		return c.redisBumpTag(ctx, p.s, newGen(), replayTimeout)
	case invPattern:
		_, err := c.redisPattern(ctx, p.s)
		return err
	}
	return nil
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

// dropTrackedKey is dropLocalKey for a tracking push. Pushes also follow
// this process's own lease writes on a miss, so while a load of k runs here
// its retired copy is kept: that load failing is when the copy is needed.
func (c *Cache) dropTrackedKey(k string) {
	if !c.loading(k) {
		c.dropLocalKey(k)
		return
	}
	c.bump(k)
	if c.local != nil {
		c.local.Invalidate(k)
	}
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
