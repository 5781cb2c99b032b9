package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// KeyInfo describes one cached entry, for an admin view.
type KeyInfo struct {
	// Key is the cache key (without Options.Prefix).
	Key string `json:"key"`
	// State is "fresh" (a HIT), "stale" (served STALE while refreshed),
	// "expired" (past StaleUntil, not yet removed), at the cache's clock, or
	// "unknown" (a value in Redis whose header does not decode).
	State      string    `json:"state"`
	FreshUntil time.Time `json:"fresh_until"`
	StaleUntil time.Time `json:"stale_until"`
	// Size is the body's length; StoredSize what the entry takes where it
	// was found (in Redis: the encoded value, compressed or not).
	Size       int `json:"size"`
	StoredSize int `json:"stored_size"`
	// Tags are the tags the entry depends on; Superseded says one of them
	// was invalidated since it was loaded (the entry is then absent).
	Tags       []string `json:"tags,omitempty"`
	Superseded bool     `json:"superseded,omitempty"`
}

// BrowsePage is one page of Browse.
type BrowsePage struct {
	Keys []KeyInfo `json:"keys"`
	// Cursor continues the walk; "" when it is over.
	Cursor string `json:"cursor"`
	// Tier is where the walk looks: "redis" or "local".
	Tier string `json:"tier"`
}

// ErrBadCursor is returned by Browse for a cursor it did not hand out (or
// one of the other tier, after Redis went down or came back).
var ErrBadCursor = errors.New("cache: bad browse cursor")

const (
	browseDefault = 100
	browseMax     = 1000
	// scanStepMin is the smallest COUNT of a Browse step.
	scanStepMin = 10
)

// Browse lists the entries whose keys start with prefix, about limit of
// them a page (<= 0: 100; at most 1000), from cursor ("" to begin). With
// Redis in use it walks Redis: SCAN with MATCH Prefix+prefix* on every
// master, in turn (never KEYS), and reads each entry's header only; a page
// may hold a few more than limit keys (a SCAN step is not split), keys
// changed during the walk may be missed or seen twice, as with SCAN. In
// memory-only mode, or while Redis is down, it walks the local tier in key
// order. Tag generation keys and fill leases are not entries and are not
// listed.
func (c *Cache) Browse(ctx context.Context, prefix, cursor string, limit int) (BrowsePage, error) {
	if limit <= 0 {
		limit = browseDefault
	}
	limit = min(limit, browseMax)
	if c.redisUp() {
		if cursor != "" && cursor[0] != 'r' {
			return BrowsePage{}, ErrBadCursor
		}
		return c.browseRedis(ctx, prefix, cursor, limit)
	}
	if cursor != "" && cursor[0] != 'l' {
		return BrowsePage{}, ErrBadCursor
	}
	return c.browseLocal(ctx, prefix, strings.TrimPrefix(cursor, "l"), limit), nil
}

// browseLocal pages the local tier in key order: the cursor is the last
// key handed out.
func (c *Cache) browseLocal(ctx context.Context, prefix, after string, limit int) BrowsePage {
	page := BrowsePage{Keys: []KeyInfo{}, Tier: "local"}
	if c.local == nil {
		return page
	}
	var keys []string
	for k := range c.local.Keys() {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > limit {
		keys = keys[:limit]
		page.Cursor = "l" + keys[len(keys)-1]
	}
	var op fetchOp
	for _, k := range keys {
		if it, ok := c.local.GetIfPresent(k); ok {
			ki := c.keyInfo(ctx, &op, k, it.e)
			ki.StoredSize = it.e.weight()
			page.Keys = append(page.Keys, ki)
		}
	}
	return page
}

// keyInfo describes e, stored under key.
func (c *Cache) keyInfo(ctx context.Context, op *fetchOp, key string, e *Entry) KeyInfo {
	ki := KeyInfo{Key: key, FreshUntil: e.FreshUntil, StaleUntil: e.StaleUntil, Size: e.Size(), State: "expired"}
	switch now := c.now(); {
	case e.Fresh(now):
		ki.State = "fresh"
	case e.Usable(now):
		ki.State = "stale"
	}
	for _, t := range e.tags {
		ki.Tags = append(ki.Tags, t.tag)
		if c.currentGen(ctx, op, t.tag) != t.gen {
			ki.Superseded = true
		}
	}
	return ki
}

// browseRedis pages Redis: the cursor is "r", the index of the master
// (masters sorted by address) and its SCAN cursor.
func (c *Cache) browseRedis(ctx context.Context, prefix, cursor string, limit int) (BrowsePage, error) {
	page := BrowsePage{Keys: []KeyInfo{}, Tier: "redis"}
	node, scanAt, err := parseRedisCursor(cursor)
	if err != nil {
		return page, err
	}
	cl := c.client()
	if cl == nil {
		return page, errNoRedis
	}
	nodes, err := c.masters(ctx, cl)
	if err != nil {
		return page, err
	}
	match := globEscape(c.opts.Prefix) + globEscape(prefix) + "*"
	for node < len(nodes) && len(page.Keys) < limit {
		// Each step asks for what the page still lacks, so that a page
		// holds a few more than limit keys at most, not two steps' worth;
		// never for fewer than scanStepMin, or sparse matches on a large
		// keyspace would take a round trip each.
		count := int64(max(limit-len(page.Keys), scanStepMin))
		keys, next, err := c.scan(ctx, nodes[node], scanStep{scanAt, match, count})
		if err != nil {
			return page, err
		}
		infos, err := c.describe(ctx, keys)
		if err != nil {
			return page, err
		}
		page.Keys = append(page.Keys, infos...)
		if scanAt = next; scanAt == 0 {
			node++
		}
	}
	if node < len(nodes) {
		page.Cursor = "r" + strconv.Itoa(node) + "-" + strconv.FormatUint(scanAt, 10)
	}
	return page, nil
}

func parseRedisCursor(cursor string) (node int, scanAt uint64, err error) {
	if cursor == "" {
		return 0, 0, nil
	}
	n, s, ok := strings.Cut(cursor[1:], "-")
	node, err1 := strconv.Atoi(n)
	scanAt, err2 := strconv.ParseUint(s, 10, 64)
	if !ok || err1 != nil || err2 != nil || node < 0 {
		return 0, 0, ErrBadCursor
	}
	return node, scanAt, nil
}

// browseHead is how much of an entry Browse reads: its header (times,
// tags, ETag, the body's length) fits unless its tags are very long.
const browseHead = 4096

// peekScript returns, for an entry, the length of its encoded value, its
// first browseHead bytes and its last 4 (a compressed body's length), or
// nil for a key without a value (a lease alone).
var peekScript = rueidis.NewLuaScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return false end
return {string.len(v), string.sub(v, 1, ` + strconv.Itoa(browseHead) + `), string.sub(v, -4)}
`)

// describe reads the headers of Redis keys (full names) in one round trip
// and describes the entries among them.
func (c *Cache) describe(ctx context.Context, keys []string) ([]KeyInfo, error) {
	var calls []rueidis.LuaExec
	var names []string
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, c.opts.Prefix)
		if ok && !strings.HasPrefix(name, "gen:") {
			calls = append(calls, rueidis.LuaExec{Keys: []string{k}})
			names = append(names, name)
		}
	}
	if len(calls) == 0 {
		return nil, nil
	}
	var res []rueidis.RedisResult
	err := c.exchange(ctx, nil, c.adminTimeout(), func(ctx context.Context, cl rueidis.Client) error {
		res = peekScript.ExecMulti(ctx, cl, calls...)
		for _, r := range res {
			if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var op fetchOp
	out := make([]KeyInfo, 0, len(res))
	for i, r := range res {
		if ki, ok := c.describeOne(ctx, &op, names[i], r); ok {
			out = append(out, ki)
		}
	}
	return out, nil
}

// describeOne turns one peekScript reply into a KeyInfo; false for a key
// without a value or with one that does not decode.
func (c *Cache) describeOne(ctx context.Context, op *fetchOp, name string, r rueidis.RedisResult) (KeyInfo, bool) {
	arr, err := r.ToArray()
	if err != nil || len(arr) != 3 {
		return KeyInfo{}, false
	}
	stored, _ := arr[0].AsInt64()
	head, _ := arr[1].AsBytes()
	tail, _ := arr[2].AsBytes()
	d := decoder{r: head}
	e, flags, ok := decodeHead(&d)
	bodyLen := d.uvarint()
	if !ok || d.bad {
		return KeyInfo{Key: name, State: "unknown", StoredSize: int(stored)}, true
	}
	e.size = int(bodyLen)
	if flags&flagGzip != 0 && len(tail) == 4 {
		e.size = int(binary.LittleEndian.Uint32(tail))
	}
	ki := c.keyInfo(ctx, op, name, e)
	ki.StoredSize = int(stored)
	return ki, true
}
