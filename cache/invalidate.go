package cache

import (
	"context"
	"strings"
)

// Invalidate removes keys from both tiers, here and — through Redis — on
// every instance. The local copies are dropped synchronously before and
// after Redis is told (a push for our own write may arrive after the reply,
// rueidis#534, and a concurrent read may re-store a copy in between). An
// UNLINK removes value and lease together, so a load that began before the
// write can no longer fill. A load in flight in this process will not store
// its result.
//
// The invalidation does not depend on ctx's cancellation (the write it
// follows is done whatever the caller does), only on its own deadline.
// When Redis does not take it (down, an error, a timeout) it is queued and
// replayed as soon as Redis answers, and until then this instance serves
// nothing older than the write for those keys (see the package doc), so
// there is no error to return.
func (c *Cache) Invalidate(ctx context.Context, keys ...string) {
	if c.opts.Disabled || len(keys) == 0 {
		return
	}
	mark := c.births.Add(1)
	c.dropKeys(keys)
	if !c.redisOn {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var todo []string
	for _, k := range keys {
		if !c.queueIfDown(queued{pendingInv{invKey, k}, mark}) {
			todo = append(todo, k)
		}
	}
	if len(todo) > 0 {
		if err := c.redisUnlink(ctx, todo, c.opts.RedisTimeout); err != nil {
			for _, k := range todo {
				c.unconfirmed(queued{pendingInv{invKey, k}, mark}, err)
			}
		}
	}
	c.dropKeys(keys)
}

// InvalidateTag gives each tag a new random generation, here and in Redis
// (key Prefix+"gen:"+tag, 24h TTL re-set on each bump): every entry that
// recorded an older generation becomes absent on every instance, in O(1).
// A random generation (not a counter) stays correct if the key is lost.
// Like Invalidate, it is detached from ctx's cancellation and queues (and
// fences) what Redis does not take.
func (c *Cache) InvalidateTag(ctx context.Context, tags ...string) {
	if c.opts.Disabled || len(tags) == 0 {
		return
	}
	mark := c.births.Add(1)
	gens := make([]string, len(tags))
	for i, t := range tags {
		gens[i] = newGen()
		c.setLocalGen(t, gens[i])
	}
	// Loads in flight recorded old generations; later Fetches must not join them.
	c.detach(func(string) bool { return true })
	if !c.redisOn {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for i, t := range tags {
		q := queued{pendingInv{invTag, t}, mark}
		if c.queueIfDown(q) {
			continue
		}
		if err := c.redisBumpTag(ctx, t, gens[i], c.opts.RedisTimeout); err != nil {
			c.unconfirmed(q, err)
		}
		// A concurrent reader may have stored the old generation meanwhile.
		c.setLocalGen(t, gens[i])
	}
}

// InvalidatePattern removes every key matching the glob pattern (Redis
// syntax: * ? [abc] [^a] [a-z] \x), e.g. "api:models:*", from the local
// tier and from Redis (SCAN MATCH + UNLINK in batches on every master; never
// KEYS). It returns the number of keys removed: from Redis when Redis took
// part, else from the local tier. An empty pattern is rejected. Like
// Invalidate, it is detached from ctx's cancellation and queues (and
// fences) what Redis does not take.
func (c *Cache) InvalidatePattern(ctx context.Context, pattern string) (int, error) {
	if pattern == "" {
		return 0, ErrEmptyPattern
	}
	if c.opts.Disabled {
		return 0, nil
	}
	q := queued{pendingInv{invPattern, pattern}, c.births.Add(1)}
	n := c.dropLocalPattern(pattern)
	if !c.redisOn || c.queueIfDown(q) {
		return n, nil
	}
	rn, err := c.redisPattern(context.WithoutCancel(ctx), pattern)
	if err != nil {
		c.unconfirmed(q, err)
	}
	n2 := c.dropLocalPattern(pattern)
	if err != nil {
		return max(n, n2, rn), nil
	}
	return rn, nil
}

// globEscape quotes the glob metacharacters of s (the prefix is literal).
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// globMatch matches s against a Redis-style glob (as SCAN MATCH does).
func globMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if globMatch(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
			p = p[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			rest, ok := matchClass(p[1:], s[0])
			if !ok {
				return false
			}
			p, s = rest, s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || p[0] != s[0] {
				return false
			}
			s = s[1:]
			p = p[1:]
		}
	}
	return len(s) == 0
}

// matchClass matches ch against the class that p starts with (just past
// its '['), and returns the pattern after the class's ']'.
func matchClass(p string, ch byte) (rest string, ok bool) {
	not := len(p) > 0 && p[0] == '^'
	if not {
		p = p[1:]
	}
	matched := false
	for len(p) > 0 && p[0] != ']' {
		switch {
		case p[0] == '\\' && len(p) >= 2:
			matched = matched || p[1] == ch
			p = p[2:]
		case len(p) >= 3 && p[1] == '-':
			lo, hi := min(p[0], p[2]), max(p[0], p[2])
			matched = matched || (ch >= lo && ch <= hi)
			p = p[3:]
		default:
			matched = matched || p[0] == ch
			p = p[1:]
		}
	}
	if len(p) > 0 {
		p = p[1:] // ']'
	}
	return p, matched != not
}
