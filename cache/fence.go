package cache

import (
	"sync"
	"sync/atomic"
)

// Read-your-writes through a Redis that does not take an invalidation.
//
// Every load in this process gets a birth mark before it reads its data
// source (Cache.births, increasing); an invalidation takes a mark when it
// starts, after the caller's write. When Redis does not confirm the
// invalidation (an error, a timeout, Redis down), a fence with that mark
// is put over what it names: a key, a tag, a pattern, or everything. An
// entry born at or before the fence (loaded before the write) or read from
// Redis (birth 0: whoever filled it, it may predate the write) is then not
// served for anything the fence covers, from Redis, the local tier or the
// retired copies. A fence goes when the replay of its invalidation
// succeeds; a key's fence also goes when this process fills the key in
// Redis with an entry born after the fence (the fill overwrote whatever
// Redis held, and the lease kept older loads from filling since).

// fenceSet holds the fences. The hot path reads only n while it is 0.
type fenceSet struct {
	n        atomic.Int32
	mu       sync.RWMutex
	keys     map[string]uint64
	tags     map[string]uint64
	patterns map[string]uint64
	all      uint64 // over everything (the replay queue overflowed); 0 = none
}

func (f *fenceSet) mapOf(kind invKind) *map[string]uint64 {
	switch kind {
	case invKey:
		return &f.keys
	case invTag:
		return &f.tags
	}
	return &f.patterns
}

// add fences what p names with mark (a newer mark wins).
func (f *fenceSet) add(p pendingInv, mark uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p == everything {
		f.collapseLocked(mark)
		return
	}
	m := f.mapOf(p.kind)
	if *m == nil {
		*m = make(map[string]uint64)
	}
	(*m)[p.s] = max((*m)[p.s], mark)
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
	for _, m := range []map[string]uint64{f.keys, f.tags, f.patterns} {
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
	if p == everything {
		if f.all == mark {
			f.all = 0
		}
	} else if m := f.mapOf(p.kind); (*m)[p.s] == mark {
		delete(*m, p.s)
	}
	f.countLocked()
}

// filled removes key's own fence after this process filled the key in
// Redis with an entry born after it.
func (f *fenceSet) filled(key string, born uint64) {
	if f.n.Load() == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.keys[key]; ok && born > m {
		delete(f.keys, key)
		f.countLocked()
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
	if f.n.Load() == 0 {
		return false
	}
	return f.covers(key, e.born, e.tags)
}

// covers reports whether a fence over key, one of tags or everything is
// newer than born (0: covered by any fence).
func (f *fenceSet) covers(key string, born uint64, tags []tagGen) bool {
	if f.n.Load() == 0 {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.all != 0 && born <= f.all {
		return true
	}
	if m, ok := f.keys[key]; ok && born <= m {
		return true
	}
	for _, t := range tags {
		if m, ok := f.tags[t.tag]; ok && born <= m {
			return true
		}
	}
	for p, m := range f.patterns {
		if born <= m && globMatch(p, key) {
			return true
		}
	}
	return false
}

// count is the number of fences held.
func (f *fenceSet) count() int { return int(f.n.Load()) }
