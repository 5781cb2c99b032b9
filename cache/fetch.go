package cache

import (
	"context"
	"strconv"
	"time"
)

// fetchOp carries per-call Redis state: after one failed Redis call, the
// same call makes no other (in particular no SET after a failed GET).
type fetchOp struct{ failed bool }

// fail marks the call failed; op may be nil (calls outside a Fetch).
func (op *fetchOp) fail() {
	if op != nil {
		op.failed = true
	}
}

// request is one Fetch on its way down the tiers, and what its miss path
// needs to load and fill the key.
type request struct {
	key  string
	opts FetchOptions
	load Loader
	g    *groupCounters
	// seq is key's invalidation sequence read before the Redis lookup: a
	// store into the local tier is dropped if it moved since.
	seq uint64
	// redisFailed says a Redis call of this Fetch failed already: its load
	// makes no other.
	redisFailed bool
	// lastResort is served if the load fails (stale-if-error): a local copy
	// past its fallback cap when Redis failed, or the stale entry that a
	// background refresh replaces; the miss path replaces it with a better
	// stale copy found in Redis.
	lastResort *Entry
	// background marks a stale-while-revalidate refresh: bounded by
	// RefreshTimeout, it never waits on another process's lease.
	background bool

	// Set by the miss path (on the flight's own copy):
	token string   // our fill lease in Redis, while we hold it
	gens  []tagGen // tag generations read before the load
}

// answer is what a step of the read or miss path settled on.
type answer struct {
	e   *Entry
	res Result
	err error
}

// Fetch returns the entry of key: from the local tier, else Redis, else by
// running load (once per key across concurrent callers and, through a Redis
// lease, across processes) and storing the result in both tiers. The error
// is load's (when no stale copy can be served instead) or ctx.Err() if ctx
// ends while waiting for another caller's load. Redis failures are never
// returned.
func (c *Cache) Fetch(ctx context.Context, key string, o FetchOptions, load Loader) (*Entry, Result, error) {
	g := c.group(o.Group)
	if c.opts.Disabled || o.TTL <= 0 || c.isClosed() {
		return c.bypass(ctx, g, load)
	}
	var op fetchOp
	e, now, st := c.localCopy(ctx, &op, key)
	if st == trustedCopy && e.Fresh(now) {
		// The common hit, kept free of the miss path's request.
		c.stats.localHits.Add(1)
		c.hot.seen(g.hit.Add(1), key)
		if inEarlyWindow(e, now) && c.wantsRefresh(e, now) && c.revalidate(ctx, &request{key: key, opts: o, load: load, g: g}, e) {
			c.stats.early.Add(1)
		}
		return e, Hit, nil
	}
	r := request{key: key, opts: o, load: load, g: g}
	switch {
	case st == trustedCopy:
		c.stats.localHits.Add(1)
		a := c.serveStale(ctx, &r, e)
		return a.e, a.res, a.err
	case st == untrustedCopy:
		r.lastResort = e // only if Redis fails
	}
	if c.localFor(key) {
		c.stats.localMisses.Add(1)
	}
	a := c.fetchBelow(ctx, &op, &r)
	return a.e, a.res, a.err
}

// fetchBelow is Fetch past the local tier: Redis, then the miss path.
func (c *Cache) fetchBelow(ctx context.Context, op *fetchOp, r *request) answer {
	r.seq = c.seq(r.key)
	if c.redisUp() && !op.failed {
		if a, ok := c.fetchRedis(ctx, op, r); ok {
			return a
		}
	}
	if !op.failed {
		r.lastResort = nil // only a failed Redis makes an untrusted copy the best answer
	}
	r.redisFailed = op.failed
	a := c.shared(ctx, r)
	c.hot.seen(c.count(r.g, a), r.key)
	return a
}

// copyState is what the local tier holds for a key.
type copyState uint8

const (
	noCopy        copyState = iota // nothing servable
	trustedCopy                    // servable now: fresh (HIT) or stale (STALE)
	untrustedCopy                  // past its fallback cap: served only if Redis fails
)

// localCopy looks key up in the in-process tier, at now.
func (c *Cache) localCopy(ctx context.Context, op *fetchOp, key string) (*Entry, time.Time, copyState) {
	now := c.now()
	if !c.localFor(key) {
		return nil, now, noCopy
	}
	it, ok := c.local.GetIfPresent(key)
	if !ok || !it.e.Usable(now) || c.fences.blocks(key, it.e) || !c.tagsCurrent(ctx, op, it.e.tags) {
		return nil, now, noCopy
	}
	if !c.trusted(it.until, now) {
		return it.e, now, untrustedCopy
	}
	return it.e, now, trustedCopy
}

// fetchRedis answers from Redis: an entry there is copied into the local
// tier and served as a HIT, or as STALE and refreshed.
func (c *Cache) fetchRedis(ctx context.Context, op *fetchOp, r *request) (answer, bool) {
	e, err := c.redisGetShared(ctx, op, r.key, r.seq)
	if err != nil {
		return answer{}, false
	}
	now := c.now()
	if e == nil || !e.Usable(now) || c.fences.blocks(r.key, e) || !c.tagsCurrent(ctx, op, e.tags) {
		c.stats.redisMisses.Add(1)
		return answer{}, false
	}
	c.stats.redisHits.Add(1)
	c.storeLocal(r.key, e, r.seq)
	if e.Fresh(now) {
		c.freshHit(ctx, r, e, now)
		return answer{e, Hit, nil}, true
	}
	return c.serveStale(ctx, r, e), true
}

// freshHit counts a HIT and starts an early refresh if it is due.
func (c *Cache) freshHit(ctx context.Context, r *request, e *Entry, now time.Time) {
	c.hot.seen(r.g.hit.Add(1), r.key)
	if c.wantsRefresh(e, now) && c.revalidate(ctx, r, e) {
		c.stats.early.Add(1)
	}
}

// serveStale answers with a stale entry and refreshes it in the background.
func (c *Cache) serveStale(ctx context.Context, r *request, e *Entry) answer {
	c.revalidate(ctx, r, e)
	c.hot.seen(r.g.stale.Add(1), r.key)
	c.stats.stale.Add(1)
	return answer{e, Stale, nil}
}

// Peek returns key's entry when the in-process tier holds it fresh and
// trusted, touching neither Redis nor a loader: the common hit of Fetch,
// callable before the caller builds its loader closure, which would
// otherwise be allocated on every hit. false means "call Fetch"; a Peek
// that finds an entry counts as a hit of group.
func (c *Cache) Peek(key, group string) (*Entry, bool) {
	e, _, ok := c.PeekStamp(key, group)
	return e, ok
}

// PeekStamp is Peek that also returns a Stamp of the answer: while the
// stamp is Valid, a Peek of key would return the same entry, so a caller
// that built something from it (a composed answer) may serve that again
// without looking the key up.
func (c *Cache) PeekStamp(key, group string) (*Entry, Stamp, bool) {
	if !c.localFor(key) || c.isClosed() {
		return nil, Stamp{}, false
	}
	// Read before the lookup: a change applied after this load moves the
	// view past it, so the stamp can only be too old, never too new.
	st := Stamp{view: c.view.Load()}
	it, ok := c.local.GetIfPresent(key)
	if !ok {
		return nil, Stamp{}, false
	}
	now := c.now()
	e := it.e
	if !e.Fresh(now) || !c.trusted(it.until, now) || c.fences.blocks(key, e) {
		return nil, Stamp{}, false
	}
	st.until = e.FreshUntil.UnixNano()
	st.cap(it.until)
	for _, t := range e.tags {
		g, ok := c.gens.GetIfPresent(t.tag)
		if !ok || g.gen != t.gen || !c.trusted(g.until, now) {
			return nil, Stamp{}, false
		}
		st.cap(g.until)
	}
	if inEarlyWindow(e, now) && c.refreshEarly(e, now) {
		// Peek has no loader to refresh with: the caller's Fetch does it.
		e.refreshWanted.Store(true)
		return nil, Stamp{}, false
	}
	// Past the start of the early window every hit draws for a refresh,
	// which a stamp would skip.
	st.cap(e.earlyFrom)
	c.CountHit(key, group)
	return e, st, true
}

// CountHit counts a hit of key in group as Peek does: for a caller that
// served a key's entry on a Valid stamp instead of a Peek.
func (c *Cache) CountHit(key, group string) {
	c.stats.localHits.Add(1)
	c.hot.seen(c.group(group).hit.Add(1), key)
}

// Stamp is a proof that Peeks would still answer what they answered when
// it was taken; see PeekStamp. The zero Stamp is never valid.
type Stamp struct {
	view  uint64 // the local view's version (Cache.view), 0 for none
	until int64  // Unix nanoseconds (the cache's clock) it expires at
}

// cap shortens the stamp to end at until (0: no bound).
func (s *Stamp) cap(until int64) {
	if until != 0 && until < s.until {
		s.until = until
	}
}

// IsZero reports whether s is the zero Stamp (taken by no Peek).
func (s Stamp) IsZero() bool { return s.view == 0 }

// Join returns a stamp valid while both s and o are.
func (s Stamp) Join(o Stamp) Stamp {
	if s.view != o.view {
		return Stamp{}
	}
	s.cap(o.until)
	return s
}

// Valid reports whether a stamp still holds: nothing in the local tier has
// changed since it was taken (any store, drop, tag generation or fence
// moves the view), and its entries are still fresh, trusted and short of
// their early-refresh window. Close moves the view too.
func (c *Cache) Valid(s Stamp) bool {
	return s.view != 0 && s.view == c.view.Load() && c.now().UnixNano() < s.until
}

// changed moves the local view: every stamp taken before is invalid. It is
// called after each change to what Peek reads (never before it, or a
// concurrent PeekStamp could see the old state under the new view).
func (c *Cache) changed() { c.view.Add(1) }

// trusted reports whether a local copy with the fallback cap until may be
// used without asking Redis.
func (c *Cache) trusted(until int64, now time.Time) bool {
	return until == 0 || now.UnixNano() < until || !c.redisUp()
}

// testHookSharedRead, set by tests, runs inside a coalesced Redis read
// once Redis has answered, before the callers sharing it get the answer.
var testHookSharedRead func(key string)

// readResult is what one shared Redis read hands to every caller.
type readResult struct {
	e      *Entry
	failed bool
	seq    uint64 // the key's invalidation sequence before the read began
}

// redisGetShared is redisGet with concurrent reads of one key merged: a
// burst of misses costs one Redis round trip per process, not one per
// request, which also keeps a CPU-starved process from tripping its own
// breaker with a thousand timeouts at once. The read runs detached from the
// first caller's cancellation (it is bounded by RedisTimeout), so one
// client going away does not fail the read of the others.
//
// A read is shared only by callers that saw the same invalidation sequence
// of the key (seq, read before the call): a caller that arrives after an
// invalidation must not get an answer Redis gave before it, even if that
// answer is handed out later (the goroutine that ran the read may not have
// been scheduled yet), or it would store and serve the pre-write entry.
// It shares a read of its own sequence instead.
func (c *Cache) redisGetShared(ctx context.Context, op *fetchOp, key string, seq uint64) (*Entry, error) {
	read := func() (any, error) {
		var rop fetchOp
		e, err := c.redisGet(context.WithoutCancel(ctx), &rop, key)
		if testHookSharedRead != nil {
			testHookSharedRead(key)
		}
		return readResult{e: e, failed: rop.failed, seq: seq}, err
	}
	v, err, shared := c.reads.Do(key, read)
	r, _ := v.(readResult)
	if r.seq != seq {
		v, err, shared = c.reads.Do(key+"\x00"+strconv.FormatUint(seq, 10), read)
		r, _ = v.(readResult)
	}
	if r.failed {
		op.fail()
	}
	if shared && r.e != nil {
		// Several requests hold this entry: what one of them derives
		// from it (the inflated body) is worth keeping for the others.
		// Each stores this before it uses the entry.
		r.e.transient.Store(false)
	}
	return r.e, err
}

// count counts the answer of a miss path; it returns the counter's new
// value (0 for an error).
func (c *Cache) count(g *groupCounters, a answer) uint64 {
	if a.err != nil {
		return 0
	}
	switch a.res {
	case Hit:
		return g.hit.Add(1)
	case Miss:
		return g.miss.Add(1)
	case Stale:
		c.stats.stale.Add(1)
		return g.stale.Add(1)
	}
	return 0
}

func (c *Cache) bypass(ctx context.Context, g *groupCounters, load Loader) (*Entry, Result, error) {
	g.bypass.Add(1)
	g.loads.Add(1)
	c.stats.loads.Add(1)
	body, err := load(ctx)
	if err != nil {
		c.stats.loadErrors.Add(1)
		g.loadErrors.Add(1)
		return nil, Bypass, err
	}
	return newEntry(body, fillInfo{at: c.now()}), Bypass, nil
}

// revalidate starts a background refresh of an entry (stale, or fresh and
// due for early refresh), at most one per key per throttle interval and one
// per key at a time. It reports whether it started one.
func (c *Cache) revalidate(ctx context.Context, r *request, old *Entry) bool {
	if !c.refreshAllowed(r.key) {
		return false
	}
	bg := request{key: r.key, opts: r.opts, load: r.load, g: r.g, seq: c.seq(r.key), lastResort: old, background: true}
	c.flightMu.Lock()
	if _, busy := c.flights[r.key]; busy || c.isClosed() {
		c.flightMu.Unlock()
		return false
	}
	f := c.addFlightLocked(r.key)
	c.flightMu.Unlock()
	go c.runFlight(ctx, f, bg)
	return true
}

// refreshAllowed throttles background refreshes per key: one per key per
// interval of the cache's clock, so that a burst of stale hits — or a
// database that keeps failing — costs one load, not one per hit. (Entries
// decoded from Redis are new instances each time, so the throttle cannot
// live on the entry.)
func (c *Cache) refreshAllowed(key string) bool {
	now := c.now()
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
