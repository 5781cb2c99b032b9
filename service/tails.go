package service

import (
	"strings"
	"sync"

	"github.com/modellab/modellab"
)

// An ingest into a live run drops its cached histories, and the next poll
// reloads one. Reading the whole history again would make each reload of a
// long run cost as much as its first view (a hundred thousand rows for one
// new point); instead the service keeps the raw points of the last full
// read of each run and selection, and the reload fetches only the points
// from the run's last step at that read on, in the same one statement.
//
// That is exact as long as no ingest reached back below that step (a late
// point, a replaced one): every ingest that does bumps the run's rewrites,
// which the reload reads with the points, and a changed count makes it
// read everything again. Points at the last step itself are read again
// every time, so that a trainer logging one key per call at the same step
// stays on the cheap path. The tails are this process's; the database
// stays the truth, so instances need not agree.

// maxTailPoints bounds the points held by all tails together (24 bytes
// each: 48 MB at most).
const maxTailPoints = 2_000_000

// tail is the raw history of one selection of a run as of one read. Its
// series are never modified: a newer tail copies what it extends.
type tail struct {
	rewrites int64
	lastStep int64 // the run's last step then (-1: none): every point below it is here
	series   []modellab.MetricSeries
	points   int
}

type tailCache struct {
	mu     sync.Mutex
	runs   map[string]map[string]*tail // run ID -> selection (keys) -> tail
	points int
}

func newTailCache() *tailCache { return &tailCache{runs: map[string]map[string]*tail{}} }

func selection(keys []string) string { return strings.Join(keys, ",") }

func (c *tailCache) get(runID string, keys []string) *tail {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[runID][selection(keys)]
}

// put keeps t, emptying the cache first when it would go over its bound:
// crude, but bounded and cheap, and the runs being watched come back on
// their next read.
func (c *tailCache) put(runID string, keys []string, t *tail) {
	if t.points > maxTailPoints/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sel := selection(keys)
	if old := c.runs[runID][sel]; old != nil {
		c.points -= old.points
	}
	if c.points+t.points > maxTailPoints {
		clear(c.runs)
		c.points = 0
	}
	if c.runs[runID] == nil {
		c.runs[runID] = map[string]*tail{}
	}
	c.runs[runID][sel] = t
	c.points += t.points
}

// drop forgets a run (it is gone).
func (c *tailCache) drop(runID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.runs[runID] {
		c.points -= t.points
	}
	delete(c.runs, runID)
}

// newTail records a full or extended read.
func newTail(h *modellab.RunHistory) *tail {
	t := &tail{rewrites: h.Rewrites, lastStep: -1, series: h.Series}
	if h.LastStep != nil {
		t.lastStep = *h.LastStep
	}
	for _, s := range h.Series {
		t.points += len(s.Points)
	}
	return t
}

// extend replaces old's points from step from on by those read again from
// there, in new slices; both inputs are sorted by key and by step.
func extend(old, newer []modellab.MetricSeries, from int64) []modellab.MetricSeries {
	out := make([]modellab.MetricSeries, 0, max(len(old), len(newer)))
	i, j := 0, 0
	for i < len(old) || j < len(newer) {
		switch {
		case j == len(newer) || i < len(old) && old[i].Key < newer[j].Key:
			// No point of this key from step from on exists any more than
			// before (points are never removed, only replaced).
			out = append(out, old[i])
			i++
		case i == len(old) || newer[j].Key < old[i].Key:
			out = append(out, newer[j])
			j++
		default:
			keep := old[i].Points
			for len(keep) > 0 && keep[len(keep)-1].Step >= from {
				keep = keep[:len(keep)-1]
			}
			pts := make([]modellab.MetricSample, 0, len(keep)+len(newer[j].Points))
			pts = append(append(pts, keep...), newer[j].Points...)
			out = append(out, modellab.MetricSeries{Key: old[i].Key, Points: pts})
			i, j = i+1, j+1
		}
	}
	return out
}
