package cache

import (
	"iter"
	"strings"
)

// The in-process tier: stores guarded by invalidation sequences, drops, and
// the flush that retires everything when invalidations may have been missed.

// storeLocal stores e under key unless key was invalidated since seq was
// read. The check runs again after the store (an invalidation increments the
// sequence before deleting), so an invalidation racing with the store either
// is seen here or deletes what we stored.
func (c *Cache) storeLocal(key string, e *Entry, seq uint64) {
	var until int64
	if c.fallback() {
		until = c.now().Add(c.opts.FallbackLocalTTL).UnixNano()
	}
	c.storeLocalUntil(key, e, seq, until)
}

// storeUntracked is storeLocal for an entry loaded by a Fetch whose Redis
// call failed while Redis is otherwise in use (one master of a cluster
// dead, its slots not failed over yet): Redis registered no tracking of the
// key for this process, so a write on another instance would send it no
// push, and the copy would be served until its TTL. Its trust is capped as
// in the pub/sub fallback; past it the key is read from Redis again (which
// tracks it), and the copy is served only if Redis fails again.
func (c *Cache) storeUntracked(key string, e *Entry, seq uint64) {
	c.storeLocalUntil(key, e, seq, c.now().Add(c.opts.FallbackLocalTTL).UnixNano())
}

// storeLocalUntil stores e trusted until the Unix time until (0: until an
// invalidation).
func (c *Cache) storeLocalUntil(key string, e *Entry, seq uint64, until int64) {
	if !c.localFor(key) || c.seq(key) != seq || c.fences.blocks(key, e) {
		return
	}
	c.retired.drop(key)
	it := &localItem{e: e, until: until}
	c.local.Set(key, it)
	if c.seq(key) != seq {
		if cur, ok := c.local.GetIfPresent(key); ok && cur == it {
			c.local.Invalidate(key)
		}
	}
	c.changed()
}

// localFor reports whether key's entries use the in-process tier.
func (c *Cache) localFor(key string) bool {
	if c.local == nil {
		return false
	}
	if !c.opts.DisableLocal {
		return true
	}
	for _, p := range c.opts.KeepLocal {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (c *Cache) dropLocalKey(k string) {
	c.bump(k)
	if c.local != nil {
		c.local.Invalidate(k)
	}
	c.changed()
	c.retired.drop(k) // after the local copy is gone: see retiredSet
}

// dropKeys drops keys from this process: local copies, retired copies, and
// the right of loads in flight to be joined.
func (c *Cache) dropKeys(keys []string) {
	for _, k := range keys {
		c.dropLocalKey(k)
	}
	c.flightMu.Lock()
	for _, k := range keys {
		delete(c.flights, k)
	}
	c.flightMu.Unlock()
}

func (c *Cache) dropLocalPattern(pattern string) int {
	// In-flight loads of any key may match: let none of them store.
	c.epoch.Add(1)
	match := func(k string) bool { return globMatch(pattern, k) }
	c.detach(match)
	n := 0
	if c.local != nil {
		var hit []string
		for k := range c.local.Keys() {
			if match(k) {
				hit = append(hit, k)
			}
		}
		for _, k := range hit {
			if _, ok := c.local.Invalidate(k); ok {
				n++
			}
		}
	}
	c.changed()
	c.retired.dropMatching(match) // after the local copies: see retiredSet
	c.epoch.Add(1)
	return n
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
	c.changed()
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

// detach makes later Fetches of matching keys start a new flight instead of
// joining a load that began before an invalidation (read-your-writes).
func (c *Cache) detach(match func(string) bool) {
	c.flightMu.Lock()
	for k := range c.flights {
		if match(k) {
			delete(c.flights, k)
		}
	}
	c.flightMu.Unlock()
}

func (c *Cache) detachKey(key string) {
	c.flightMu.Lock()
	delete(c.flights, key)
	c.flightMu.Unlock()
}

// loading reports whether a load of key is in flight in this process.
func (c *Cache) loading(key string) bool {
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	_, ok := c.flights[key]
	return ok
}
