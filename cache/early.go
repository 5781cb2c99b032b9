package cache

import (
	"math"
	"time"
)

// earlyHorizon bounds the XFetch draw: further than this many delta*beta
// from FreshUntil its probability, exp(-left/(delta*beta)), is below e^-40,
// so the hit skips the random draw and the logarithm.
const earlyHorizon = 40

// refreshEarly reports whether a fresh hit of e at now should start a
// background refresh (see Options.EarlyRefresh). The probability grows as
// e nears FreshUntil: exp(-(FreshUntil-now) / (delta*beta)).
func (c *Cache) refreshEarly(e *Entry, now time.Time) bool {
	beta := c.opts.EarlyRefresh
	if beta <= 0 || e.delta <= 0 {
		return false
	}
	// Unix nanoseconds: cheaper than Time.Sub on the hit path.
	left := float64(e.FreshUntil.UnixNano() - now.UnixNano())
	scale := float64(e.delta) * beta
	if left > earlyHorizon*scale {
		return false
	}
	return left <= -scale*math.Log(1-c.opts.Rand())
}

// wantsRefresh reports whether a fresh Fetch hit of e starts a background
// refresh: a Peek asked for one, or the draw says so.
func (c *Cache) wantsRefresh(e *Entry, now time.Time) bool {
	if e.refreshWanted.Load() && e.refreshWanted.CompareAndSwap(true, false) {
		return true
	}
	return c.refreshEarly(e, now)
}
