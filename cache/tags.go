package cache

import (
	"context"
	"math/rand/v2"
	"strconv"
)

// Tag generations, as this process sees them: a local copy (kept coherent
// like entries) in front of Redis.

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
	c.changed()
	return it.gen
}

// storeGen keeps a generation read from Redis unless a tag invalidation
// (or a flush) moved genEpoch since the read began.
func (c *Cache) storeGen(tag, gen string, epoch uint64) {
	if c.genEpoch.Load() != epoch {
		return
	}
	c.gens.Set(tag, c.genItem(gen))
	if c.genEpoch.Load() != epoch {
		c.gens.Invalidate(tag)
	}
	c.changed()
}

// setLocalGen installs a generation this process chose (InvalidateTag).
func (c *Cache) setLocalGen(tag, gen string) {
	c.genEpoch.Add(1)
	c.gens.Set(tag, c.genItem(gen))
	c.changed()
	c.retired.dropTag(tag) // after the new generation: see retiredSet
	c.genEpoch.Add(1)
}

func (c *Cache) dropLocalGen(tag string) {
	c.genEpoch.Add(1)
	if c.gens != nil {
		c.gens.Invalidate(tag)
	}
	c.changed()
	c.retired.dropTag(tag)
}

func (c *Cache) genItem(gen string) genItem {
	it := genItem{gen: gen}
	if c.fallback() {
		it.until = c.now().Add(c.opts.FallbackLocalTTL).UnixNano()
	}
	return it
}

func newGen() string {
	var b [16]byte
	return string(strconv.AppendUint(b[:0], rand.Uint64(), 36))
}
