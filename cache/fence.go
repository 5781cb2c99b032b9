package cache

import (
	"sync"
	"sync/atomic"
)

// Read-your-writes through a Redis that does not take an invalidation.
//
// Every load in this process gets a birth mark before it reads its data
// source (Cache.births, increasing); an invalidation takes a mark when it
// starts, after the caller's write; a Redis read notes the current mark
// before it is sent. When Redis does not confirm the invalidation (an
// error, a timeout, Redis down), a fence with that mark is put over what
// it names: a key, a tag, a pattern, or everything. An entry born at or
// before the fence (loaded before the write) or read from Redis (whoever
// filled it, it may predate the write) is then not served for anything
// the fence covers, from Redis, the local tier or the retired copies.
//
// A fence goes when the replay of its invalidation succeeds. A key's fence
// is also lifted for Redis when this process fills the key in Redis with an
// entry born after the fence: the fill overwrote whatever Redis held, and
// the lease kept older loads from filling since, so what a read sent after
// that fill returns is no older than the write. A read sent before it (its
// answer may still be on its way) stays fenced.

// fenceSet holds the fences. The hot path reads only n while it is 0.
type fenceSet struct {
	n        atomic.Int32
	mu       sync.RWMutex
	keys     map[string]keyFence
	tags     map[string]uint64
	patterns map[string]uint64
	all      uint64 // over everything (the replay queue overflowed); 0 = none
}

// keyFence is a key's fence: its mark and, once this process filled the
// key after it, the mark from which Redis reads are trusted again.
type keyFence struct{ mark, lifted uint64 }

// marks are what an entry carries for the fences: born is its load's
// birth mark here (0 if read from Redis), seen the mark before the Redis
// read that returned it.
type marks struct{ born, seen uint64 }

func (e *Entry) marks() marks { return marks{e.born, e.seen} }

// before reports whether an entry with m may predate an invalidation
// marked mark.
func (m marks) before(mark uint64) bool { return m.born == 0 || m.born <= mark }

func (f *fenceSet) mapOf(kind invKind) *map[string]uint64 {
	if kind == invTag {
		return &f.tags
	}
	return &f.patterns
}

// add fences what p names with mark (a newer mark wins).
func (f *fenceSet) add(p pendingInv, mark uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case p == everything:
		f.collapseLocked(mark)
		return
	case p.kind == invKey:
		if f.keys == nil {
			f.keys = make(map[string]keyFence)
		}
		f.keys[p.s] = keyFence{mark: max(f.keys[p.s].mark, mark)}
	default:
		m := f.mapOf(p.kind)
		if *m == nil {
			*m = make(map[string]uint64)
		}
		(*m)[p.s] = max((*m)[p.s], mark)
	}
	f.countLocked()
}

// collapse replaces every fence by one over everything, at least as new
// as all of them (memory stays bounded however long Redis is away).
func (f *fenceSet) collapse(mark uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.collapseLocked(mark)
}

func (f *fenceSet) collapseLocked(mark uint64) {
	for _, kf := range f.keys {
		mark = max(mark, kf.mark)
	}
	for _, m := range []map[string]uint64{f.tags, f.patterns} {
		for _, v := range m {
			mark = max(mark, v)
		}
	}
	f.keys, f.tags, f.patterns = nil, nil, nil
	f.all = max(f.all, mark)
	f.countLocked()
}

// confirm removes p's fence once its replay succeeded, unless a newer
// invalidation of the same thing fenced it again since (mark differs).
func (f *fenceSet) confirm(p pendingInv, mark uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case p == everything:
		if f.all == mark {
			f.all = 0
		}
	case p.kind == invKey:
		if f.keys[p.s].mark == mark {
			delete(f.keys, p.s)
		}
	default:
		if m := f.mapOf(p.kind); (*m)[p.s] == mark {
			delete(*m, p.s)
		}
	}
	f.countLocked()
}

// filled lifts key's own fence for Redis reads sent from now (lift, a
// fresh mark) after this process filled the key in Redis with an entry
// born after the fence.
func (f *fenceSet) filled(key string, born uint64, lift func() uint64) {
	if f.n.Load() == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if kf, ok := f.keys[key]; ok && born > kf.mark && kf.lifted == 0 {
		kf.lifted = lift()
		f.keys[key] = kf
	}
}

func (f *fenceSet) countLocked() {
	n := len(f.keys) + len(f.tags) + len(f.patterns)
	if f.all != 0 {
		n++
	}
	f.n.Store(int32(n))
}

// blocks reports whether e may not be served for key.
func (f *fenceSet) blocks(key string, e *Entry) bool {
	return f.n.Load() != 0 && f.blocksHeld(key, e)
}

// blocksHeld is blocks while fences are held. Kept out of line, so that
// blocks, on every hit, inlines to one atomic load.
//
//go:noinline
func (f *fenceSet) blocksHeld(key string, e *Entry) bool { return f.covers(key, e.marks(), e.tags) }

// covers reports whether a fence over key, one of tags or everything
// holds for an entry with m.
func (f *fenceSet) covers(key string, m marks, tags []tagGen) bool {
	if f.n.Load() == 0 {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.all != 0 && m.before(f.all) {
		return true
	}
	if kf, ok := f.keys[key]; ok && m.before(kf.mark) && !(m.born == 0 && kf.lifted != 0 && m.seen >= kf.lifted) {
		return true
	}
	for _, t := range tags {
		if mark, ok := f.tags[t.tag]; ok && m.before(mark) {
			return true
		}
	}
	for p, mark := range f.patterns {
		if m.before(mark) && globMatch(p, key) {
			return true
		}
	}
	return false
}

// count is the number of fences held.
func (f *fenceSet) count() int { return int(f.n.Load()) }
