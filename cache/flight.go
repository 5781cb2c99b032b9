package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// flight is one load of a key in this process, shared by its waiters.
type flight struct {
	done chan struct{}
	ans  answer
}

var errRefreshBusy = errors.New("cache: refresh in progress elsewhere")

// addFlightLocked registers a new flight of key; flightMu must be held and
// the cache not closed (Close waits for the flight's goroutine).
func (c *Cache) addFlightLocked(key string) *flight {
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	c.wg.Add(1)
	return f
}

// shared joins or starts the flight of r.key and waits for it (or for ctx).
func (c *Cache) shared(ctx context.Context, r *request) answer {
	c.flightMu.Lock()
	if c.isClosed() {
		c.flightMu.Unlock()
		e, res, err := c.bypass(ctx, r.g, r.load)
		return answer{e, res, err}
	}
	f, ok := c.flights[r.key]
	if !ok {
		f = c.addFlightLocked(r.key)
	}
	c.flightMu.Unlock()
	if !ok {
		go c.runFlight(ctx, f, *r)
	}
	select {
	case <-f.done:
		return f.ans
	case <-ctx.Done():
		return answer{err: ctx.Err()}
	}
}

// runFlight runs the load detached from the caller's cancellation (its
// waiters may outlive the caller that started it), but canceled by Close and,
// for background refreshes, bounded by RefreshTimeout.
func (c *Cache) runFlight(parent context.Context, f *flight, r request) {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	defer cancel()
	stop := context.AfterFunc(c.closeCtx, cancel)
	defer stop()
	if r.background {
		var cancelRefresh context.CancelFunc
		ctx, cancelRefresh = context.WithTimeout(ctx, c.opts.RefreshTimeout)
		defer cancelRefresh()
	}
	op := fetchOp{failed: r.redisFailed}
	func() {
		defer func() {
			if p := recover(); p != nil {
				f.ans = answer{err: fmt.Errorf("cache: loader panicked: %v", p)}
			}
		}()
		f.ans = c.loadAndFill(ctx, &op, &r)
	}()
	c.flightMu.Lock()
	if c.flights[r.key] == f {
		delete(c.flights, r.key)
	}
	c.flightMu.Unlock()
	close(f.done)
}

// loadAndFill is the miss path of one flight: check the local tier again,
// read tag generations, take the Redis lease (or wait on another process's),
// load with stale-if-error, fill both tiers.
func (c *Cache) loadAndFill(ctx context.Context, op *fetchOp, r *request) answer {
	if e := c.recheckLocal(ctx, op, r); e != nil {
		return answer{e, Hit, nil}
	}
	// Generations are read before the load: a write that bumps a tag after
	// this point makes whatever we store absent.
	r.gens = c.currentGens(ctx, op, r.opts.Tags)
	if c.redisUp() && !op.failed {
		if a, done := c.awaitLease(ctx, op, r); done {
			return a
		}
	}
	e, a, ok := c.loadStaleIfError(ctx, op, r)
	if !ok {
		return a
	}
	c.fillTiers(ctx, op, r, e)
	return answer{e, Miss, nil}
}

// recheckLocal returns a fresh, trusted local copy that a flight which just
// ended may have stored after our caller looked.
func (c *Cache) recheckLocal(ctx context.Context, op *fetchOp, r *request) *Entry {
	if !c.localFor(r.key) || r.background {
		return nil
	}
	it, ok := c.local.GetIfPresent(r.key)
	if ok && it.e.Fresh(c.now()) && it.until == 0 && !c.fences.blocks(r.key, it.e) && c.tagsCurrent(ctx, op, it.e.tags) {
		return it.e
	}
	return nil
}

// awaitLease takes key's fill lease in Redis (r.token). While another
// process holds it, a stale copy answers at once, or else it polls briefly
// for that process's fill; a holder too slow leaves us loading without the
// lease. done means the answer is settled and there is nothing to load.
func (c *Cache) awaitLease(ctx context.Context, op *fetchOp, r *request) (a answer, done bool) {
	if e := c.refreshedElsewhere(ctx, op, r); e != nil {
		return answer{e, Hit, nil}, true
	}
	token := strconv.FormatUint(rand.Uint64(), 36)
	deadline := time.Now().Add(c.opts.LeaseTTL)
	step := 2 * time.Millisecond
	waited := false
	for !op.failed {
		acquired, e, err := c.acquire(ctx, op, r.key, token)
		if err != nil {
			return answer{}, false
		}
		// Fenced: what Redis holds, or another holder will fill, may predate
		// a write Redis did not confirm.
		fenced := c.fences.covers(r.key, marks{seen: c.births.Load()}, r.gens)
		if now := c.now(); e != nil && !fenced && e.Usable(now) && c.tagsCurrent(ctx, op, e.tags) {
			if r.settledBy(e, now) {
				// Filled by someone else since our read.
				if acquired {
					c.release(ctx, op, r.key, token)
				}
				c.storeLocal(r.key, e, r.seq)
				if waited {
					return answer{e, Miss, nil}, true
				}
				return answer{e, Hit, nil}, true
			}
			if r.lastResort == nil || e.FreshUntil.After(r.lastResort.FreshUntil) {
				r.lastResort = e
			}
		}
		if acquired {
			r.token = token
			return answer{}, false
		}
		if fenced {
			// What the holder fills may predate the write we have not
			// confirmed: load ourselves, without the lease.
			return answer{}, false
		}
		if r.lastResort != nil {
			c.storeLocal(r.key, r.lastResort, r.seq)
			return answer{r.lastResort, Stale, nil}, true
		}
		if r.background {
			return answer{err: errRefreshBusy}, true
		}
		if time.Now().After(deadline) {
			return answer{}, false
		}
		waited = true
		if !sleepCtx(ctx, step) {
			return answer{err: ctx.Err()}, true
		}
		step = min(step*2, 10*time.Millisecond)
	}
	return answer{}, false
}

// settledBy reports whether e, found in Redis by the miss path, is the
// answer: any fresh entry for a miss; for a background refresh, only one
// fresher than the copy being refreshed (an early refresh starts while
// that copy is still fresh).
func (r *request) settledBy(e *Entry, now time.Time) bool {
	if !e.Fresh(now) {
		return false
	}
	return !r.background || r.lastResort == nil || e.FreshUntil.After(r.lastResort.FreshUntil)
}

// refreshedElsewhere returns the fresh entry that another instance may
// have filled while a background refresh of ours was getting started.
func (c *Cache) refreshedElsewhere(ctx context.Context, op *fetchOp, r *request) *Entry {
	if !r.background {
		return nil
	}
	e, err := c.redisGet(ctx, op, r.key)
	if err != nil || e == nil || !r.settledBy(e, c.now()) || c.fences.blocks(r.key, e) || !c.tagsCurrent(ctx, op, e.tags) {
		return nil
	}
	c.storeLocal(r.key, e, r.seq)
	return e
}

// sleepCtx sleeps for d unless ctx ends first (then it returns false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// loadStaleIfError runs the loader. When it fails, the best servable copy
// answers STALE: r.lastResort, else a retired one; else its error is the
// answer. ok means e was loaded and should be filled; an empty value is
// answered but never cached.
func (c *Cache) loadStaleIfError(ctx context.Context, op *fetchOp, r *request) (e *Entry, a answer, ok bool) {
	r.g.loads.Add(1)
	c.stats.loads.Add(1)
	born := c.births.Add(1) // before the data source is read
	start := c.stopwatch()
	body, err := r.load(ctx)
	delta := c.stopwatch().Sub(start)
	if err != nil {
		c.stats.loadErrors.Add(1)
		r.g.loadErrors.Add(1)
		c.releaseIfHeld(ctx, op, r)
		now := c.now()
		if lr := r.lastResort; lr != nil && lr.Usable(now) && !c.fences.blocks(r.key, lr) {
			return nil, answer{lr, Stale, nil}, false
		}
		if re := c.retired.get(r.key, now); re != nil && !c.fences.blocks(r.key, re) {
			return nil, answer{re, Stale, nil}, false
		}
		return nil, answer{err: err}, false
	}
	e = newEntry(body, fillInfo{at: c.now(), ttl: r.opts.TTL, stale: c.opts.Stale, tags: r.gens, born: born, delta: delta})
	c.setEarly(e)
	if len(body) == 0 {
		c.releaseIfHeld(ctx, op, r)
		return nil, answer{e, Miss, nil}, false
	}
	return e, answer{}, true
}

func (c *Cache) releaseIfHeld(ctx context.Context, op *fetchOp, r *request) {
	if r.token != "" {
		c.release(ctx, op, r.key, r.token)
	}
}

// fillTiers stores a loaded entry. With the lease, Redis is filled only if
// the lease is still ours: an invalidation (UNLINK) since we took it removed
// it, and then our rows may predate the write, so the local tier is not
// filled either. Without the lease (Redis unusable, or a lease holder too
// slow, whose fill wins) only the local tier is.
func (c *Cache) fillTiers(ctx context.Context, op *fetchOp, r *request, e *Entry) {
	if r.token != "" {
		if ok, err := c.fillRedis(ctx, op, r, e); !ok || err != nil {
			return
		}
		c.fences.filled(r.key, e.born, func() uint64 { return c.births.Add(1) })
	}
	if op.failed {
		c.storeUntracked(r.key, e, r.seq)
		return
	}
	c.storeLocal(r.key, e, r.seq)
}
