package cache

import (
	"iter"
	"sync"
	"time"
)

// retiredSet keeps the entries that flushLocal dropped. A flush happens
// when invalidations may have been missed (Redis came back, the tracking
// connection or the subscription was lost), so those copies can no longer
// answer as HITs. They are still the best answer when the loader then fails
// (the database is down too): stale-if-error serves them, labelled STALE,
// within their StaleUntil. Nothing else reads them. An entry leaves the set
// when its key is stored again or invalidated by a write this process sees;
// a tag invalidation drops the entries that carry the tag.
//
// The set is read only when a load fails and written on misses and
// invalidations, never on a hit, so one mutex is enough. add iterates the
// local tier under that mutex: an invalidation removes the local copy
// before it drops the retired one, so either add does not see the copy or
// the drop comes after it.
type retiredSet struct {
	mu sync.Mutex
	m  map[string]*Entry
}

// add retires entries, keeping those still servable, up to maxBytes of
// bodies in all (the in-process tier's own bound).
func (r *retiredSet) add(entries iter.Seq2[string, *Entry], now time.Time, maxBytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]*Entry, len(r.m))
	var size int64
	keep := func(k string, e *Entry) {
		if e.Usable(now) && size+int64(e.weight()) <= maxBytes {
			next[k] = e
			size += int64(e.weight())
		}
	}
	// Newer copies first, so that they win the space.
	for k, e := range entries {
		keep(k, e)
	}
	for k, e := range r.m {
		if _, ok := next[k]; !ok {
			keep(k, e)
		}
	}
	r.m = next
}

// get returns key's retired entry if it is still servable.
func (r *retiredSet) get(key string, now time.Time) *Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[key]
	if e == nil || !e.Usable(now) {
		return nil
	}
	return e
}

func (r *retiredSet) drop(key string) {
	r.mu.Lock()
	delete(r.m, key)
	r.mu.Unlock()
}

func (r *retiredSet) dropMatching(match func(key string) bool) {
	r.dropIf(func(k string, _ *Entry) bool { return match(k) })
}

func (r *retiredSet) dropTag(tag string) {
	r.dropIf(func(_ string, e *Entry) bool {
		for _, t := range e.tags {
			if t.tag == tag {
				return true
			}
		}
		return false
	})
}

func (r *retiredSet) dropIf(f func(string, *Entry) bool) {
	r.mu.Lock()
	for k, e := range r.m {
		if f(k, e) {
			delete(r.m, k)
		}
	}
	r.mu.Unlock()
}
