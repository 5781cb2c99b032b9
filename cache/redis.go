package cache

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// The Redis commands of the cache. Every one goes through exchange, so
// every one has a deadline and feeds the breaker.

var errNoRedis = errors.New("cache: redis not connected")

// exchange is the sequence every command repeats: no client yet is a
// failure; the call gets a deadline; its outcome feeds the breaker (see
// observe) and a failure marks op (which may be nil) failed.
func (c *Cache) exchange(ctx context.Context, op *fetchOp, timeout time.Duration, call func(context.Context, rueidis.Client) error) error {
	cl := c.client()
	if cl == nil {
		op.fail()
		return errNoRedis
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	err := call(rctx, cl)
	cancel()
	if c.observe(ctx, err) {
		op.fail()
	}
	return err
}

// do runs one command with the RedisTimeout deadline. A nil reply comes
// back as rueidis.Nil, which is not a failure.
func (c *Cache) do(ctx context.Context, op *fetchOp, cmd func(rueidis.Builder) rueidis.Completed) (rueidis.RedisResult, error) {
	var res rueidis.RedisResult
	err := c.exchange(ctx, op, c.opts.RedisTimeout, func(ctx context.Context, cl rueidis.Client) error {
		res = cl.Do(ctx, cmd(cl.B()))
		return res.Error()
	})
	return res, err
}

// luaCall is one run of a single-key script: on key, with args.
type luaCall struct {
	script *rueidis.Lua
	key    string
	args   []string
}

// run runs a script call with the RedisTimeout deadline.
func (c *Cache) run(ctx context.Context, op *fetchOp, call luaCall) (rueidis.RedisResult, error) {
	var res rueidis.RedisResult
	err := c.exchange(ctx, op, c.opts.RedisTimeout, func(ctx context.Context, cl rueidis.Client) error {
		res = call.script.Exec(ctx, cl, []string{c.rkey(call.key)}, call.args)
		return res.Error()
	})
	return res, err
}

func (c *Cache) rkey(key string) string { return c.opts.Prefix + key }

func (c *Cache) genKey(tag string) string { return c.opts.Prefix + "gen:" + tag }

// redisGet reads and decodes the entry of key. A nil entry with a nil error
// is a miss; a corrupt value is a miss counted as an error.
func (c *Cache) redisGet(ctx context.Context, op *fetchOp, key string) (*Entry, error) {
	seen := c.births.Load()
	res, err := c.do(ctx, op, func(b rueidis.Builder) rueidis.Completed {
		return b.Hget().Key(c.rkey(key)).Field("v").Build()
	})
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), "WRONGTYPE") {
		// Not ours (or an older layout): remove it so the fill can write.
		c.log().Debug("cache: wrong type in redis, unlinking", "key", key)
		op.failed = false
		c.do(ctx, op, func(b rueidis.Builder) rueidis.Completed { return b.Unlink().Key(c.rkey(key)).Build() })
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	raw, err := res.AsBytes()
	if err != nil {
		return nil, err
	}
	return c.decodeOrMiss(key, raw, seen), nil
}

// decodeOrMiss decodes a value of key that a read sent after mark seen
// returned; an undecodable one is counted as a Redis error and treated as
// absent.
func (c *Cache) decodeOrMiss(key string, raw []byte, seen uint64) *Entry {
	e, err := decodeEntry(raw)
	if err != nil {
		c.stats.redisErrors.Add(1)
		c.log().Debug("cache: undecodable redis entry", "key", key, "err", err)
		return nil
	}
	e.seen = seen
	e.transient.Store(!c.localFor(key))
	c.setEarly(e)
	return e
}

// The lease scripts. One hash per key: field v = encoded entry, field l =
// lease "token:expiresAtMs". Keeping both in one key makes every script
// single-key (cluster-safe without hash tags) and lets one UNLINK remove
// value and lease together.
var (
	// acquire: take l if absent or expired (server time), give the key a
	// PEXPIRE if it has none; return {acquired, v}.
	acquireScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local l = redis.call('HGET', KEYS[1], 'l')
if l then
  local i = string.find(l, ':', 1, true)
  local exp = i and tonumber(string.sub(l, i + 1))
  if exp and exp > now then
    return {0, redis.call('HGET', KEYS[1], 'v')}
  end
end
redis.call('HSET', KEYS[1], 'l', ARGV[1] .. ':' .. (now + tonumber(ARGV[2])))
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, redis.call('HGET', KEYS[1], 'v')}
`)
	// fill: write v and drop l only if l is still our lease.
	fillScript = rueidis.NewLuaScript(`
local l = redis.call('HGET', KEYS[1], 'l')
if not l or string.sub(l, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ':' then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2])
redis.call('HDEL', KEYS[1], 'l')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)
	// release: drop l if it is ours (load failed or was not needed).
	releaseScript = rueidis.NewLuaScript(`
local l = redis.call('HGET', KEYS[1], 'l')
if l and string.sub(l, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':' then
  redis.call('HDEL', KEYS[1], 'l')
  return 1
end
return 0
`)
)

// acquire tries to take key's fill lease and returns the value already
// there, if any.
func (c *Cache) acquire(ctx context.Context, op *fetchOp, key, token string) (bool, *Entry, error) {
	lease := c.opts.LeaseTTL.Milliseconds()
	seen := c.births.Load()
	c.markOwnWrite(key)
	res, _ := c.run(ctx, op, luaCall{acquireScript, key, []string{token, strconv.FormatInt(lease, 10), strconv.FormatInt(2*lease, 10)}})
	arr, err := res.ToArray()
	if err != nil {
		op.failed = true // a script error too: do not trust Redis for this call
		return false, nil, err
	}
	if len(arr) == 0 {
		return false, nil, errCorrupt
	}
	n, _ := arr[0].AsInt64()
	var e *Entry
	if len(arr) > 1 {
		if raw, err := arr[1].AsBytes(); err == nil {
			e = c.decodeOrMiss(key, raw, seen)
		}
	}
	return n == 1, e, nil
}

// jitter returns d plus up to 10%, so keys written together do not expire
// together.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// fillRedis writes e under r.key if our lease (r.token) is still there.
func (c *Cache) fillRedis(ctx context.Context, op *fetchOp, r *request, e *Entry) (bool, error) {
	ttl := jitter(e.StaleUntil.Sub(e.FreshUntil) + e.FreshUntil.Sub(c.now()))
	ms := max(ttl.Milliseconds(), 1)
	res, _ := c.run(ctx, op, luaCall{fillScript, r.key, []string{r.token, string(encodeEntry(e, c.opts.CompressAbove)), strconv.FormatInt(ms, 10)}})
	n, err := res.AsInt64()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

func (c *Cache) release(ctx context.Context, op *fetchOp, key, token string) {
	if op.failed {
		return
	}
	c.markOwnWrite(key)
	c.run(ctx, op, luaCall{releaseScript, key, []string{token}})
}

// markOwnWrite notes that this process is about to write key (unprefixed)
// without changing what it holds.
func (c *Cache) markOwnWrite(key string) {
	if c.ownWrites != nil {
		c.ownWrites.Set(key, struct{}{})
	}
}

// ownWrite reports whether key was marked by markOwnWrite within
// ownWriteWindow.
func (c *Cache) ownWrite(key string) bool {
	if c.ownWrites == nil {
		return false
	}
	_, ok := c.ownWrites.GetIfPresent(key)
	return ok
}

const genTTL = 24 * time.Hour

// redisGen reads the generation of tag, creating a random one if missing.
func (c *Cache) redisGen(ctx context.Context, op *fetchOp, tag string) (string, error) {
	res, err := c.do(ctx, op, func(b rueidis.Builder) rueidis.Completed {
		return b.Get().Key(c.genKey(tag)).Build()
	})
	if err == nil {
		return res.ToString()
	}
	if !rueidis.IsRedisNil(err) {
		return "", err
	}
	mine := newGen()
	c.markOwnWrite("gen:" + tag)
	res, err = c.do(ctx, op, func(b rueidis.Builder) rueidis.Completed {
		return b.Set().Key(c.genKey(tag)).Value(mine).Nx().Get().PxMilliseconds(jitter(genTTL).Milliseconds()).Build()
	})
	if rueidis.IsRedisNil(err) {
		return mine, nil // ours was set
	}
	if err != nil {
		return "", err
	}
	return res.ToString()
}

// redisUnlink removes keys (value and lease together). One command per key:
// keys of different slots cannot share a command in a cluster.
func (c *Cache) redisUnlink(ctx context.Context, keys []string, timeout time.Duration) error {
	err := c.exchange(ctx, nil, timeout, func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, 0, len(keys))
		for _, k := range keys {
			cmds = append(cmds, cl.B().Unlink().Key(c.rkey(k)).Build())
		}
		for _, r := range cl.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && c.fallback() {
		return c.publish(ctx, invKey, strings.Join(keys, "\x00"))
	}
	return err
}

// redisBumpTag writes gen as the generation of tag.
func (c *Cache) redisBumpTag(ctx context.Context, tag, gen string, timeout time.Duration) error {
	err := c.exchange(ctx, nil, timeout, func(ctx context.Context, cl rueidis.Client) error {
		return cl.Do(ctx, cl.B().Set().Key(c.genKey(tag)).Value(gen).PxMilliseconds(jitter(genTTL).Milliseconds()).Build()).Error()
	})
	if err == nil && c.fallback() {
		return c.publish(ctx, invTag, tag)
	}
	return err
}

// publish broadcasts an invalidation on the fallback channel: kind byte,
// sender id, '\n', payload.
func (c *Cache) publish(ctx context.Context, kind invKind, payload string) error {
	msg := string(kind) + c.id + "\n" + payload
	return c.exchange(ctx, nil, c.opts.RedisTimeout, func(ctx context.Context, cl rueidis.Client) error {
		return cl.Do(ctx, cl.B().Publish().Channel(c.channel).Message(msg).Build()).Error()
	})
}

// redisPattern removes every key matching Prefix+pattern with SCAN MATCH
// COUNT 500 + UNLINK in batches, on every master (every node of a cluster).
func (c *Cache) redisPattern(ctx context.Context, pattern string) (int, error) {
	cl := c.client()
	if cl == nil {
		return 0, errNoRedis
	}
	match := globEscape(c.opts.Prefix) + pattern
	nodes, err := c.masters(ctx, cl)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, node := range nodes {
		var cursor uint64
		for {
			keys, next, err := c.scan(ctx, node, scanStep{cursor, match, 500})
			if err != nil {
				return total, err
			}
			n, err := c.unlinkCounted(ctx, keys)
			total += n
			if err != nil {
				return total, err
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	if c.fallback() {
		if err := c.publish(ctx, invPattern, pattern); err != nil {
			return total, err
		}
	}
	return total, nil
}

// adminTimeout bounds one call of a pattern invalidation or a browse: off
// the hot path, and a SCAN over a big keyspace may take a while.
func (c *Cache) adminTimeout() time.Duration { return max(c.opts.RedisTimeout, 2*time.Second) }

// masters lists the nodes to scan, in the order of their addresses: the
// only node of a standalone server, the masters of a cluster.
func (c *Cache) masters(ctx context.Context, cl rueidis.Client) ([]rueidis.Client, error) {
	nodes := cl.Nodes()
	if len(nodes) == 1 {
		for _, n := range nodes {
			return []rueidis.Client{n}, nil
		}
	}
	var out []rueidis.Client
	for _, addr := range slices.Sorted(maps.Keys(nodes)) {
		node := nodes[addr]
		var role []rueidis.RedisMessage
		err := c.exchange(ctx, nil, c.adminTimeout(), func(ctx context.Context, _ rueidis.Client) error {
			var err error
			role, err = node.Do(ctx, node.B().Role().Build()).ToArray()
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(role) > 0 {
			if r, _ := role[0].ToString(); r != "master" {
				continue
			}
		}
		out = append(out, node)
	}
	return out, nil
}

// scanStep is one SCAN call: from cursor, keys matching match, about
// count of them.
type scanStep struct {
	cursor uint64
	match  string
	count  int64
}

// scan runs one SCAN step on node; it returns the keys and the next cursor.
func (c *Cache) scan(ctx context.Context, node rueidis.Client, s scanStep) ([]string, uint64, error) {
	var se rueidis.ScanEntry
	err := c.exchange(ctx, nil, c.adminTimeout(), func(ctx context.Context, _ rueidis.Client) error {
		var err error
		se, err = node.Do(ctx, node.B().Scan().Cursor(s.cursor).Match(s.match).Count(s.count).Build()).AsScanEntry()
		return err
	})
	return se.Elements, se.Cursor, err
}

// unlinkCounted UNLINKs full Redis key names and counts the removed ones.
func (c *Cache) unlinkCounted(ctx context.Context, keys []string) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	total := 0
	err := c.exchange(ctx, nil, c.adminTimeout(), func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, 0, len(keys))
		for _, k := range keys {
			cmds = append(cmds, cl.B().Unlink().Key(k).Build())
		}
		for _, r := range cl.DoMulti(ctx, cmds...) {
			n, err := r.AsInt64()
			if err != nil {
				return err
			}
			total += int(n)
		}
		return nil
	})
	return total, err
}
