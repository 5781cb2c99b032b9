// Package cache is a two-tier response cache: an in-process tier (otter,
// bounded by bytes) in front of Redis (rueidis: standalone or Cluster, TLS),
// with exactly-once loading, coherent invalidation across instances, and
// graceful degradation when Redis or the data source fails. It knows nothing
// of HTTP or of the application's data: values are opaque bytes.
//
// # Read path
//
// Fetch looks in the local tier, then in Redis, then runs the Loader:
//
//   - HIT: a fresh entry from either tier.
//   - MISS: a value loaded for this call, or for a call it was deduplicated
//     with (one load per key per process; across processes a Redis lease).
//   - STALE: an entry past FreshUntil but before StaleUntil. It is returned at
//     once and refreshed in the background (stale-while-revalidate), and it is
//     returned instead of the loader's error (stale-if-error).
//   - BYPASS: caching is off (Options.Disabled or TTL <= 0).
//
// Past StaleUntil the loader's error is returned unchanged; callers map it
// (typically to 503). Errors and empty values are never cached. A caller
// that waited on another process's lease and got its value sees MISS.
//
// Peek is the allocation-free front of Fetch for callers whose loader is a
// closure: it answers only a fresh, trusted local HIT, so the caller builds
// its loader (and pays its allocation) only when it must call Fetch.
//
// An *Entry is shared by every caller that gets it and must be treated as
// read-only; its ETag is computed once at fill and Gzip compresses once.
// Bodies longer than Options.CompressAbove (4 KiB by default) are stored
// gzip-compressed in Redis: an entry read back holds those bytes, which
// Gzip returns as they are (for clients that accept gzip), and Body inflates
// them once, on first use; Size is known without inflating.
//
// # Early refresh
//
// A fresh hit may start a background refresh before the entry expires
// (probabilistic early expiration, "XFetch", Vattani et al., VLDB 2015):
// each entry records how long its load took (delta, also stored in Redis),
// and a hit at now refreshes when now - delta*beta*ln(rand) >= FreshUntil
// (beta is Options.EarlyRefresh, default 1; Options.Rand the random
// source). The probability is negligible until FreshUntil is a few deltas
// away, so a key read steadily is refreshed just before it expires and
// never expires into a synchronous miss, while a rarely read key costs
// nothing. The refresh is the stale-while-revalidate one: one per key at a
// time, throttled per key, the old entry served until the new one is
// stored. Peek, which has no loader, answers false when a refresh is due
// and leaves it to the caller's Fetch. Stats.EarlyRefreshes counts them.
//
// A load runs detached from the cancellation of the caller that started it
// (other callers may be waiting for it); Close cancels it. A background
// refresh is bounded by Options.RefreshTimeout.
//
// With tracking, a fill is itself a write that Redis announces: the local
// copy of a freshly filled key is usually taken on the next read (one Redis
// round trip), not at the fill.
//
// # Redis layout
//
// Each key is one Redis hash, Prefix+key, with field v (the encoded entry: a
// versioned binary format with fresh/stale times, the load time, tag
// generations, ETag and body, possibly gzip-compressed; older versions are
// still decoded) and field l (the fill lease, "token:expiresAtMs"). Lua
// scripts take the lease (server TIME) and fill v only if the lease is
// still ours. An
// invalidation UNLINKs the key, removing value and lease together, so a load
// that read the database before a write can never store its result after it
// (the stale-set race of "Scaling Memcache at Facebook", §3.2.1). Inside a
// process, per-key invalidation sequences give the same guarantee for the
// local tier. Every key written carries a TTL with jitter; KEYS, FLUSHALL
// and FLUSHDB are never sent.
//
// Tags are generations: InvalidateTag writes a new random generation to
// Prefix+"gen:"+tag; entries record the generations of their tags as read
// before their load and are absent once one differs. Keys passed to Fetch
// should therefore not start with "gen:".
//
// # Administration
//
// What an admin view needs, all bounded:
//
//   - Stats: counters per tier and per group, the Redis state.
//   - HotKeys(n): this instance's most read keys, estimated from a sample of
//     the reads by a space-saving sketch of 128 counters (memory bounded
//     whatever the key space; counts decay so they follow current traffic).
//     Keys are for display, not metric labels.
//   - Browse(ctx, prefix, cursor, limit): a page of entries under a key
//     prefix, each with its state (fresh, stale, expired, with the times),
//     size (body and stored), tags, and whether a tag invalidation
//     superseded it; SCAN MATCH over every master (never KEYS), reading
//     only each entry's header, or the local tier in memory-only mode.
//   - Purges: Invalidate (exact keys), InvalidatePattern (a glob, SCAN +
//     UNLINK on every master) and InvalidateTag (exact tags, O(1)).
//
// # Coherence and staleness bounds
//
// With Redis server-assisted client-side caching (CLIENT TRACKING BCAST on
// the prefix, the default), Redis pushes the name of every modified key to
// every instance, which drops its local copy: a write on one instance is
// visible on the others after the push latency (about a millisecond on a
// LAN). The writing instance drops its own copy synchronously.
//
// When the server refuses CLIENT TRACKING (some managed services) or
// Options.DisableTracking is set, local copies are trusted for at most
// Options.FallbackLocalTTL (default 1s) and invalidations are broadcast with
// PUBLISH on Prefix+"cache:invalidate": staleness is the pub/sub latency, and
// never more than FallbackLocalTTL if a message is lost.
//
// In memory-only mode (no Redis) each instance is coherent only with itself.
//
// # Failure of Redis
//
// Redis never fails a request. Every call has a deadline (RedisTimeout); a
// request makes no further Redis call after one failed; after
// BreakerThreshold consecutive transport errors or timeouts the breaker opens
// and Redis is skipped until a PING probe succeeds. Redis unreachable at New
// is the same state: the client is built in the background. Before Redis is
// used again, invalidations issued meanwhile are replayed, and the local
// tier is dropped if it may have missed some: the first time Redis is used,
// after the tracking connection was lost, and always in the pub/sub
// fallback. A breaker opened by timeouts on a live tracking connection
// keeps the tier (pushes kept arriving), so a CPU-starved process whose
// breaker flaps does not lose its local copies each time. The dropped
// entries are retired, not forgotten: if a load then fails (the data source
// is down as well), a retired copy within its stale bound answers STALE. A
// retired copy is never a HIT, and one this process invalidated is not
// kept. An invalidation that fails while Redis is in use does not open the
// breaker by itself: see Read-your-writes.
//
// # Read-your-writes
//
// A write followed by Invalidate (or InvalidateTag, InvalidatePattern) is
// visible to the very next Fetch in this process, whatever state Redis is
// in. Three things make it so:
//
//   - Invalidations are detached from the caller's cancellation: the write
//     is done, whether or not its client is still there.
//   - Concurrent Redis reads of a key are shared only among Fetches that saw
//     the same invalidation sequence: a read that began before a write is
//     never handed to a Fetch that began after it (the answer of a read
//     sent before the UNLINK can still be on its way to the goroutine that
//     shares it when the write returns).
//   - An invalidation that Redis did not confirm (an error, a timeout, the
//     breaker open, a cluster slot without a master) is fenced: every load
//     in this process carries a birth mark taken before it reads its data
//     source, and an entry born before the invalidation — or read from
//     Redis, whoever filled it — is not served for what the invalidation
//     names (key, tag, pattern, or everything once the replay queue
//     overflowed), neither from Redis nor from the local tier nor as a
//     retired copy, as a HIT or as STALE. Such keys load from the data
//     source. A key's fence is lifted, for Redis reads sent after it, when
//     this process fills the key in Redis with an entry born after the
//     write (the fill overwrote what Redis held; the lease kept older loads
//     from filling since), and every fence when the invalidation is
//     replayed, which the cache does as soon
//     as Redis takes writes again (while Redis stays in use for the rest:
//     one master of a cluster away does not take the others out of use).
//     Stats.UnconfirmedInvalidations counts the fences.
//
// Other instances cannot see an invalidation that Redis did not take; they
// see it when it is replayed.
package cache
