// Package heapfloor keeps the garbage collector from collecting a heap
// smaller than a floor.
//
// The Go collector starts a cycle when the heap has grown by GOGC percent
// of what the last cycle found live. A server whose live heap is small
// but which allocates a lot per request (modellab without its in-process
// tier: every request reads a reply from Redis and drops it) then collects
// many times a second, each cycle costing about the same however little
// is live. A floor lets the heap grow to at least that size before a
// cycle: after every cycle, GOGC is raised just enough that the next goal
// is the floor, and set back to its base once the live heap alone needs
// more. GOMEMLIMIT, when set, still bounds the heap: the runtime enforces
// it whatever GOGC is.
package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// maxPercent bounds the GOGC the floor sets, so that a nearly empty heap
// (at start) does not get an absurd one.
const maxPercent = 5000

// Percent is the GOGC that makes the heap goal after a cycle that found
// live bytes live at least floor: never below base.
func Percent(live, floor uint64, base int) int {
	if live == 0 || floor <= live {
		return base
	}
	p := int((floor-live)*100/live) + 1 // round up: the goal reaches the floor
	return min(max(p, base), maxPercent)
}

// Floor adjusts GOGC after every garbage-collection cycle while it runs.
type Floor struct {
	floor   uint64
	base    int
	mu      sync.Mutex // orders adjustments against Stop
	stopped bool
	sample  []metrics.Sample
	set     int
}

// active is set while a Floor runs: GOGC is one setting of the process,
// so a second Start (several servers in one test binary) adjusts nothing.
var active atomic.Bool

// Start keeps the heap goal at floor bytes or more, GOGC base percent at
// least (the collector's default is 100). Stop ends it and sets GOGC back
// to base. While another Floor runs, Start returns one that does nothing.
func Start(floor uint64, base int) *Floor {
	if !active.CompareAndSwap(false, true) {
		return &Floor{stopped: true}
	}
	f := &Floor{
		floor:  floor,
		base:   base,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
		set:    base,
	}
	debug.SetGCPercent(base)
	f.arm()
	return f
}

// arm runs adjust after the next cycle: a cleanup runs once its object has
// been found unreachable, i.e. after a cycle, and arms the next one.
func (f *Floor) arm() {
	sentinel := new([16]byte) // big enough not to share a tiny-allocator block
	runtime.AddCleanup(sentinel, func(f *Floor) {
		if f.adjust() {
			f.arm()
		}
	}, f)
}

// adjust sets GOGC from the live heap the last cycle found; false once
// stopped.
func (f *Floor) adjust() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	metrics.Read(f.sample)
	if f.sample[0].Value.Kind() != metrics.KindUint64 {
		return false // the runtime no longer reports it: leave GOGC alone
	}
	if p := Percent(f.sample[0].Value.Uint64(), f.floor, f.base); p != f.set {
		debug.SetGCPercent(p)
		f.set = p
	}
	return true
}

// Stop ends the adjustments and sets GOGC back to the base.
func (f *Floor) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.stopped = true
		debug.SetGCPercent(f.base)
		active.Store(false)
	}
}
