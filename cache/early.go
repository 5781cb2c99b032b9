package cache

import (
	"math"
	"time"
)

// earlyHorizon bounds the XFetch draw: further than this many delta*beta
// from FreshUntil its probability, exp(-left/(delta*beta)), is below e^-40,
// so the hit skips the random draw and the logarithm.
const earlyHorizon = 40

// setEarly records when e enters its early-refresh window (unix
// nanoseconds; 0: never), before e is published: a hit outside the window
// pays one comparison.
func (c *Cache) setEarly(e *Entry) {
	if beta := c.opts.EarlyRefresh; beta > 0 && e.delta > 0 {
		e.earlyFrom = e.FreshUntil.UnixNano() - int64(earlyHorizon*beta*float64(e.delta))
	}
}

// inEarlyWindow reports whether e, fresh at now, is close enough to
// FreshUntil for an early refresh to be drawn: the hit path's one test.
func inEarlyWindow(e *Entry, now time.Time) bool {
	return e.earlyFrom != 0 && now.UnixNano() >= e.earlyFrom
}

// refreshEarly reports whether a fresh hit of e at now should start a
// background refresh (see Options.EarlyRefresh). The probability grows as
// e nears FreshUntil: exp(-(FreshUntil-now) / (delta*beta)).
func (c *Cache) refreshEarly(e *Entry, now time.Time) bool {
	if !inEarlyWindow(e, now) {
		return false
	}
	scale := float64(e.delta) * c.opts.EarlyRefresh
	left := float64(e.FreshUntil.UnixNano() - now.UnixNano())
	return left <= -scale*math.Log(1-c.opts.Rand())
}

// wantsRefresh reports whether a fresh Fetch hit of e starts a background
// refresh: a Peek asked for one (it does so only within the window), or
// the draw says so.
func (c *Cache) wantsRefresh(e *Entry, now time.Time) bool {
	if !inEarlyWindow(e, now) {
		return false
	}
	if e.refreshWanted.Load() && e.refreshWanted.CompareAndSwap(true, false) {
		return true
	}
	return c.refreshEarly(e, now)
}
