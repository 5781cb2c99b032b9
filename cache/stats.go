package cache

import (
	"sync/atomic"
)

type counters struct {
	localHits, localMisses              atomic.Uint64
	redisHits, redisMisses, redisErrors atomic.Uint64
	stale, loads, loadErrors, early     atomic.Uint64
}

type groupCounters struct {
	hit, miss, stale, bypass, loads, loadErrors atomic.Uint64
}

// TierStats counts one tier's lookups.
type TierStats struct {
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	Errors uint64 `json:"errors"`
}

// GroupStats counts the results of one FetchOptions.Group.
type GroupStats struct {
	Hit    uint64 `json:"hit"`
	Miss   uint64 `json:"miss"`
	Stale  uint64 `json:"stale"`
	Bypass uint64 `json:"bypass"`
	Loads  uint64 `json:"loads"`
	// LoadErrors counts the loads that failed; /metrics exports it
	// (modellab_cache_load_errors_total), the stats document keeps its shape.
	LoadErrors uint64 `json:"-"`
}

// Stats is a JSON-friendly snapshot of the cache's state and counters.
type Stats struct {
	// Mode is "redis" (both tiers), "memory" (in-process tier alone, by
	// choice or because Redis is down) or "off" (Disabled).
	Mode string `json:"mode"`
	// Redis is "up", "down" or "disabled".
	Redis string `json:"redis"`
	// Coherence is how local copies follow other instances' writes:
	// "tracking" (Redis pushes), "pubsub" (fallback broadcast + short local
	// TTL) or "" when Redis is not connected.
	Coherence string `json:"coherence,omitempty"`
	// RedisMode is "standalone", "cluster" or "sentinel" once connected, and
	// RedisNodes the number of nodes the client routes to (the masters of a
	// cluster): pattern invalidation scans every master.
	RedisMode  string `json:"redis_mode,omitempty"`
	RedisNodes int    `json:"redis_nodes,omitempty"`
	// Tiers: hits, misses and errors of the local and Redis tiers. A stale
	// serve counts as a tier hit; Redis errors include undecodable values.
	Tiers struct {
		Local TierStats `json:"local"`
		Redis TierStats `json:"redis"`
	} `json:"tiers"`
	StaleServes uint64 `json:"stale_serves"`
	Loads       uint64 `json:"loads"`
	LoadErrors  uint64 `json:"load_errors"`
	// EarlyRefreshes counts background refreshes started by early
	// expiration (see Options.EarlyRefresh) before an entry went stale.
	EarlyRefreshes uint64 `json:"early_refreshes"`
	// UnconfirmedInvalidations counts the keys, tags and patterns whose
	// invalidation Redis has not confirmed yet: this instance fences them
	// (serves nothing older than the write) until they are replayed.
	UnconfirmedInvalidations int `json:"unconfirmed_invalidations"`
	// LocalEntries and LocalBytes describe the in-process tier.
	LocalEntries int    `json:"local_entries"`
	LocalBytes   uint64 `json:"local_bytes"`
	// Groups has per-FetchOptions.Group counters ("" for no group).
	Groups map[string]GroupStats `json:"groups"`
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	var s Stats
	s.Mode, s.Redis = c.Mode(), c.RedisState()
	if rc := c.r.conn.Load(); rc != nil && s.Redis == "up" {
		s.Coherence = "pubsub"
		if rc.tracking {
			s.Coherence = "tracking"
		}
	}
	s.RedisMode, s.RedisNodes = c.redisTopology()
	s.Tiers.Local = TierStats{Hits: c.stats.localHits.Load(), Misses: c.stats.localMisses.Load()}
	s.Tiers.Redis = TierStats{Hits: c.stats.redisHits.Load(), Misses: c.stats.redisMisses.Load(), Errors: c.stats.redisErrors.Load()}
	s.StaleServes = c.stats.stale.Load()
	s.UnconfirmedInvalidations = c.fences.count()
	s.Loads = c.stats.loads.Load()
	s.LoadErrors = c.stats.loadErrors.Load()
	s.EarlyRefreshes = c.stats.early.Load()
	if c.local != nil {
		s.LocalEntries = c.local.EstimatedSize()
		s.LocalBytes = c.local.WeightedSize()
	}
	gm := *c.groups.Load()
	s.Groups = make(map[string]GroupStats, len(gm))
	for name, g := range gm {
		s.Groups[name] = GroupStats{Hit: g.hit.Load(), Miss: g.miss.Load(), Stale: g.stale.Load(), Bypass: g.bypass.Load(), Loads: g.loads.Load(),
			LoadErrors: g.loadErrors.Load()}
	}
	return s
}

// Mode is "off" (Disabled), "redis" (Redis in use) or "memory".
func (c *Cache) Mode() string {
	switch {
	case c.opts.Disabled:
		return "off"
	case c.redisUp():
		return "redis"
	}
	return "memory"
}

// RedisState is "disabled" (no Redis configured, DisableRedis or Disabled),
// "up" or "down" (unreachable, or breaker open).
func (c *Cache) RedisState() string {
	switch {
	case !c.redisOn:
		return "disabled"
	case c.redisUp():
		return "up"
	}
	return "down"
}

// group returns the counters of name. The map is copy-on-write so that the
// hit path reads it without a lock or an allocation.
func (c *Cache) group(name string) *groupCounters {
	if g, ok := (*c.groups.Load())[name]; ok {
		return g
	}
	c.groupMu.Lock()
	defer c.groupMu.Unlock()
	old := *c.groups.Load()
	if g, ok := old[name]; ok {
		return g
	}
	m := make(map[string]*groupCounters, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	g := &groupCounters{}
	m[name] = g
	c.groups.Store(&m)
	return g
}

// Record counts one result of group that no single Fetch produced: an
// answer a caller composed from several entries (fetched under a group of
// their own) counts once, as the request it answers.
func (c *Cache) Record(group string, res Result) {
	g := c.group(group)
	switch res {
	case Hit:
		g.hit.Add(1)
	case Miss:
		g.miss.Add(1)
	case Stale:
		g.stale.Add(1)
	case Bypass:
		g.bypass.Add(1)
	}
}
