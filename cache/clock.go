package cache

import (
	"sync/atomic"
	"time"
)

// coarseClock is the default clock: a time read from an atomic, refreshed
// every millisecond by one goroutine. Reading the system clock costs from
// ~20ns on bare metal to ~1µs in some VMs and sandboxes, and the hit path
// would pay it twice (our freshness check and otter's expiry); a coarse
// clock makes a hit cost the same everywhere. Millisecond precision is far
// below any TTL. It also drives otter's once-a-second clean-up ticks, so that
// Close can stop everything.
type coarseClock struct {
	nanos atomic.Int64
	ticks chan time.Time
	stop  chan struct{}
	done  chan struct{}
}

func newCoarseClock() *coarseClock {
	c := &coarseClock{ticks: make(chan time.Time, 1), stop: make(chan struct{}), done: make(chan struct{})}
	c.nanos.Store(time.Now().UnixNano())
	go c.run()
	return c
}

func (c *coarseClock) run() {
	defer close(c.done)
	defer close(c.ticks)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	lastTick := time.Now()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.nanos.Store(time.Now().UnixNano())
			if now.Sub(lastTick) >= time.Second {
				lastTick = now
				select {
				case c.ticks <- now:
				default:
				}
			}
		}
	}
}

func (c *coarseClock) Now() time.Time { return time.Unix(0, c.nanos.Load()) }

// NowNano and Tick implement otter.Clock.
func (c *coarseClock) NowNano() int64 { return c.nanos.Load() }

func (c *coarseClock) Tick(time.Duration) <-chan time.Time { return c.ticks }

func (c *coarseClock) Close() {
	close(c.stop)
	<-c.done
}
