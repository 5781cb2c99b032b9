//go:build race

package cache

import "time"

// coherenceBound is the cross-instance staleness the tests hold the cache
// to: the contract's 50 ms, loosened under the race detector, whose
// instrumentation makes a loaded 2-core machine 5-10x slower.
const coherenceBound = 250 * time.Millisecond
