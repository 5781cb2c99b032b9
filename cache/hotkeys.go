package cache

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// KeyCount is a key and an estimate of how often this instance read it.
type KeyCount struct {
	Key string `json:"key"`
	// Count estimates the reads (Fetch and Peek calls) of Key: sampled,
	// halved from time to time so that it follows current traffic, and an
	// overestimate by at most Error.
	Count uint64 `json:"count"`
	Error uint64 `json:"error"`
}

// The hot-key sketch: the space-saving algorithm (Metwally, Agrawal, El
// Abbadi, ICDT 2005) over a sample of the reads. It tracks hotCapacity keys;
// a key not tracked replaces the least counted one and inherits its count
// (as its error bound), so a key read more often than 1/hotCapacity of the
// time is always tracked. Memory is bounded by hotCapacity keys whatever
// the key space; keys never become metric labels.
const (
	hotCapacity   = 128
	hotSampleBits = 6       // one read in 64 is recorded
	hotDecayEvery = 1 << 14 // samples between two halvings of every count
)

type hotCounter struct {
	key        string
	count, err uint64
}

// hotKeys is a min-heap of counters on count, with an index by key.
type hotKeys struct {
	mu      sync.Mutex
	heap    []hotCounter
	idx     map[string]int
	samples uint64
}

// seen records a read of key one time in 2^hotSampleBits. n is the value
// the read's own counter (Stats) just took, so the hit path pays a multiply
// and a lock only when sampled: the top bits of n times the golden ratio
// (a Weyl sequence) are spread evenly over every arithmetic progression of
// n, so keys read in turn are sampled alike.
func (h *hotKeys) seen(n uint64, key string) {
	if (n*0x9E3779B97F4A7C15)>>(64-hotSampleBits) == 0 {
		h.record(key)
	}
}

func (h *hotKeys) record(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.idx == nil {
		h.idx = make(map[string]int, hotCapacity)
	}
	switch i, ok := h.idx[key]; {
	case ok:
		h.heap[i].count++
		h.down(i)
	case len(h.heap) < hotCapacity:
		h.heap = append(h.heap, hotCounter{key: key, count: 1})
		h.idx[key] = len(h.heap) - 1
		h.up(len(h.heap) - 1)
	default:
		least := h.heap[0]
		delete(h.idx, least.key)
		h.heap[0] = hotCounter{key: key, count: least.count + 1, err: least.count}
		h.idx[key] = 0
		h.down(0)
	}
	if h.samples++; h.samples%hotDecayEvery == 0 {
		for i := range h.heap { // halving keeps the heap order
			h.heap[i].count /= 2
			h.heap[i].err /= 2
		}
	}
}

func (h *hotKeys) swap(i, j int) {
	h.heap[i], h.heap[j] = h.heap[j], h.heap[i]
	h.idx[h.heap[i].key] = i
	h.idx[h.heap[j].key] = j
}

func (h *hotKeys) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.heap[p].count <= h.heap[i].count {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *hotKeys) down(i int) {
	for {
		l, least := 2*i+1, i
		if l < len(h.heap) && h.heap[l].count < h.heap[least].count {
			least = l
		}
		if r := l + 1; r < len(h.heap) && h.heap[r].count < h.heap[least].count {
			least = r
		}
		if least == i {
			return
		}
		h.swap(i, least)
		i = least
	}
}

// top returns the n most counted keys, most counted first, with counts
// scaled back from the sample.
func (h *hotKeys) top(n int) []KeyCount {
	h.mu.Lock()
	out := make([]KeyCount, len(h.heap))
	for i, hc := range h.heap {
		out[i] = KeyCount{Key: hc.key, Count: hc.count << hotSampleBits, Error: hc.err << hotSampleBits}
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b KeyCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	if n > 0 && n < len(out) {
		out = out[:n]
	}
	return out
}

// HotKeys returns this instance's n most read keys (n <= 0: all it
// tracks, at most 128), most read first: an estimate from a sample of the
// Fetch and Peek calls, following current traffic (older reads count less
// and less). For an admin view; the memory it takes is bounded, whatever
// the number of keys.
func (c *Cache) HotKeys(n int) []KeyCount { return c.hot.top(n) }
