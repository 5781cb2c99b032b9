package service

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// Token lookups are cached so that a recently seen token keeps working while
// the database is unreachable (a minute at most). Unknown tokens are
// remembered briefly too, so a flood of bad tokens does not reach the
// database on every request.
//
// A lookup is an entry of the shared response cache (key auth:token:<hash>,
// group GroupAuth), so that a revocation, which invalidates that key, drops
// it from every instance's in-process tier through Redis (tracking pushes,
// or the pub/sub fallback within FallbackLocalTTL). In front of it sits a
// small map keyed by the token itself, which spares the hit path a SHA-256
// (the process sees the token anyway; only the database and Redis must
// never hold it in clear): an entry of that map is used only while the
// shared cache still holds the very entry it was decoded from (a Peek, no
// Redis call). Expiry is checked on every request against the expires_at
// the entry carries. With caching off (DISABLE_CACHE) the map alone serves,
// for tokenCacheTTL, and a revocation reaches other instances within that.
const (
	tokenCacheTTL    = time.Minute
	tokenNegativeTTL = 10 * time.Second
	// tokenLookupTimeout bounds a shared lookup, which no single caller's
	// context may cancel (see lookup).
	tokenLookupTimeout = 5 * time.Second
	maxTokenLen        = 512
)

// GroupAuth is the cache group of token lookups. It is not one of Groups:
// lookups are not an endpoint of the metrics.
const GroupAuth = "auth"

// TokenKeyPrefix starts the cache key of every token lookup.
const TokenKeyPrefix = "auth:token:"

func keyToken(hash string) string { return TokenKeyPrefix + hash }

// tokenDoc is a cached lookup as stored in the shared cache.
type tokenDoc struct {
	User      modellab.User `json:"user"`
	TokenID   string        `json:"token_id"`
	ExpiresAt *time.Time    `json:"expires_at"`
}

// tokenEntry is a lookup in the front map. user is shared by every request
// with the token, so callers treat the *User they get as read-only.
type tokenEntry struct {
	user       *modellab.User // nil: the token is unknown
	tokenID    string
	expiresAt  int64 // unix nanoseconds; 0: never
	trustUntil time.Time
	key        string
	shared     *cache.Entry // the cache entry it was decoded from; nil: caching is off
	// stamp, while valid, says a Peek of key would still return shared,
	// so the check is an atomic load rather than a lookup.
	stamp atomic.Pointer[cache.Stamp]
	used  atomic.Int64 // unix nanoseconds of the last use recorded
}

func (e *tokenEntry) expired(now time.Time) bool {
	return e.expiresAt != 0 && now.UnixNano() >= e.expiresAt
}

type authConfig struct {
	store      Store
	cache      *cache.Cache
	adminToken string
	admin      modellab.User
	now        func() time.Time
	clock      otter.Clock // of the token caches' expiry; nil: otter's
	log        *slog.Logger
}

// coarseClock is the cache's clock as the token caches' expiry clock. It
// has no ticks: expired lookups go when read or evicted, not on a timer.
type coarseClock struct{ c *cache.Cache }

func (k coarseClock) NowNano() int64                      { return k.c.Now().UnixNano() }
func (k coarseClock) Tick(time.Duration) <-chan time.Time { return nil }

type authenticator struct {
	authConfig
	tokens *otter.Cache[string, *tokenEntry]
	// revoked holds the IDs of tokens revoked by this instance for as long
	// as a front entry may live: with caching off, it is what drops them.
	revoked *otter.Cache[string, struct{}]
	// lookups merges concurrent database lookups of one token: a burst of
	// requests with a token not yet cached costs one query.
	lookups singleflight.Group
	uses    *tokenUses
}

func newAuthenticator(cfg authConfig) *authenticator {
	c := otter.Must(&otter.Options[string, *tokenEntry]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryWriting[string, *tokenEntry](tokenCacheTTL),
		Clock:            cfg.clock,
	})
	r := otter.Must(&otter.Options[string, struct{}]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryWriting[string, struct{}](tokenCacheTTL),
		Clock:            cfg.clock,
	})
	return &authenticator{authConfig: cfg, tokens: c, revoked: r, uses: newTokenUses(cfg.store, cfg.log)}
}

func (a *authenticator) close() {
	a.uses.close()
	a.tokens.StopAllGoroutines()
	a.revoked.StopAllGoroutines()
}

func errInvalidToken() error { return modellab.Errorf(modellab.EUNAUTHORIZED, "invalid token") }
func errExpiredToken() error { return modellab.Errorf(modellab.EUNAUTHORIZED, "the token has expired") }

// shared reports whether lookups go through the response cache.
func (a *authenticator) shared() bool { return a.cache != nil && a.cache.Mode() != "off" }

// userFor resolves a token. A token that cannot be checked because the
// database is down answers EUNAVAILABLE, never EUNAUTHORIZED.
func (a *authenticator) userFor(ctx context.Context, token string) (*modellab.User, error) {
	if a.adminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.adminToken)) == 1 {
		u := a.admin
		return &u, nil
	}
	if len(token) > maxTokenLen {
		return nil, errInvalidToken()
	}
	now := a.now()
	e, ok := a.tokens.GetIfPresent(token)
	if ok && now.Before(e.trustUntil) {
		if u, err, decided := a.fromEntry(token, e, now); decided {
			return u, err
		}
	}
	u, err := a.resolve(ctx, token, now)
	if ok && modellab.ErrorCode(err) == modellab.EUNAVAILABLE && a.stillTrusted(e, now) {
		// The database cannot be asked and the shared cache lost the
		// lookup (a Redis restart empties the local tier): a token seen
		// within tokenCacheTTL keeps working, the bound that holds for
		// revocations whenever Redis cannot carry them.
		return e.user, nil
	}
	return u, err
}

// stillTrusted reports whether a front entry may answer while its lookup
// cannot be confirmed: a known user, seen within tokenCacheTTL, not
// expired, not revoked here.
func (a *authenticator) stillTrusted(e *tokenEntry, now time.Time) bool {
	if e.user == nil || !now.Before(e.trustUntil) || e.expired(now) {
		return false
	}
	_, gone := a.revoked.GetIfPresent(e.tokenID)
	return !gone
}

// fromEntry answers from a front entry; decided is false when the entry
// may be out of date (the shared cache no longer holds it).
func (a *authenticator) fromEntry(token string, e *tokenEntry, now time.Time) (u *modellab.User, err error, decided bool) {
	switch {
	case e.user == nil:
		return nil, errInvalidToken(), true
	case e.expired(now):
		return nil, errExpiredToken(), true
	case e.shared != nil:
		if !a.sharedHeld(e) {
			return nil, nil, false
		}
	default:
		if _, gone := a.revoked.GetIfPresent(e.tokenID); gone {
			a.tokens.Invalidate(token)
			return nil, errInvalidToken(), true
		}
	}
	a.uses.mark(e, now)
	return e.user, nil, true
}

// sharedHeld reports whether the shared cache still holds the lookup e was
// decoded from (a revocation anywhere drops it), counting the hit.
func (a *authenticator) sharedHeld(e *tokenEntry) bool {
	if st := e.stamp.Load(); st != nil && a.cache.Valid(*st) {
		a.cache.CountHit(e.key, GroupAuth)
		return true
	}
	got, st, ok := a.cache.PeekStamp(e.key, GroupAuth)
	if !ok || got != e.shared {
		return false
	}
	e.stamp.Store(&st)
	return true
}

// resolve looks a token up in the shared cache, else in the database.
func (a *authenticator) resolve(ctx context.Context, token string, now time.Time) (*modellab.User, error) {
	hash := modellab.HashToken(token)
	if !a.shared() {
		e, err := a.resolveDirect(ctx, token, hash, now)
		if err != nil {
			return nil, err
		}
		a.keep(token, e)
		return a.answer(e, now)
	}
	key := keyToken(hash)
	ent, res, err := a.cache.Fetch(ctx, key, cache.FetchOptions{TTL: tokenCacheTTL, Group: GroupAuth},
		func(ctx context.Context) ([]byte, error) { return a.load(ctx, hash) })
	if err != nil {
		return a.failed(token, now, err)
	}
	if res != cache.Hit && res != cache.Miss {
		// A stale lookup is older than tokenCacheTTL: ask the database
		// (the cache refreshes the entry meanwhile), and keep nothing
		// that the shared cache could not take back.
		e, err := a.resolveDirect(ctx, token, hash, now)
		if err != nil {
			return nil, err
		}
		return a.answer(e, now)
	}
	e, err := a.fromShared(token, key, ent, now)
	if err != nil {
		return nil, err
	}
	a.keep(token, e)
	return a.answer(e, now)
}

// fromShared is the front entry of a lookup read from the shared cache.
// When the front map holds one decoded from the same bytes, its user is
// taken as it is: without the local tier every request reads its lookup
// from Redis, and decoding the same JSON again was a tenth of such a
// request.
func (a *authenticator) fromShared(token, key string, ent *cache.Entry, now time.Time) (*tokenEntry, error) {
	if old, ok := a.tokens.GetIfPresent(token); ok && old.user != nil && old.shared != nil && old.key == key &&
		bytes.Equal(old.shared.Body(), ent.Body()) {
		return &tokenEntry{user: old.user, tokenID: old.tokenID, expiresAt: old.expiresAt,
			trustUntil: now.Add(tokenCacheTTL), key: key, shared: ent}, nil
	}
	var doc tokenDoc
	if err := json.Unmarshal(ent.Body(), &doc); err != nil {
		return nil, modellab.WrapError(modellab.EINTERNAL, err, "could not read a cached token lookup")
	}
	e := newTokenEntry(doc, now)
	e.key, e.shared = key, ent
	return e, nil
}

// answer is the user of a fresh lookup, unless the token has expired.
func (a *authenticator) answer(e *tokenEntry, now time.Time) (*modellab.User, error) {
	if e.expired(now) {
		return nil, errExpiredToken()
	}
	a.uses.mark(e, now)
	return e.user, nil
}

// resolveDirect asks the database, bypassing the shared cache.
func (a *authenticator) resolveDirect(ctx context.Context, token, hash string, now time.Time) (*tokenEntry, error) {
	doc, err := a.lookup(ctx, hash)
	if err != nil {
		_, err = a.failed(token, now, err)
		return nil, err
	}
	e := newTokenEntry(doc, now)
	if _, gone := a.revoked.GetIfPresent(e.tokenID); gone {
		// Revoked here while the lookup was on its way.
		return nil, errInvalidToken()
	}
	return e, nil
}

func newTokenEntry(doc tokenDoc, now time.Time) *tokenEntry {
	u := doc.User
	e := &tokenEntry{user: &u, tokenID: doc.TokenID, trustUntil: now.Add(tokenCacheTTL)}
	if doc.ExpiresAt != nil {
		e.expiresAt = doc.ExpiresAt.UnixNano()
	}
	return e
}

// keep stores e in the front map, carrying over when the token's last use
// was recorded, so that a refreshed entry does not record it again.
func (a *authenticator) keep(token string, e *tokenEntry) {
	if old, ok := a.tokens.GetIfPresent(token); ok && old.tokenID == e.tokenID {
		e.used.Store(old.used.Load())
	}
	a.tokens.Set(token, e)
}

// failed maps a failed lookup: unknown tokens are remembered briefly.
func (a *authenticator) failed(token string, now time.Time, err error) (*modellab.User, error) {
	switch modellab.ErrorCode(err) {
	case modellab.ENOTFOUND:
		a.tokens.Set(token, &tokenEntry{trustUntil: now.Add(tokenNegativeTTL)})
		return nil, errInvalidToken()
	case modellab.EUNAVAILABLE:
		return nil, err
	default:
		return nil, modellab.WrapError(modellab.EUNAVAILABLE, err, "could not check the token, try again")
	}
}

// load is the shared cache's loader of a lookup.
func (a *authenticator) load(ctx context.Context, hash string) ([]byte, error) {
	doc, err := a.lookup(ctx, hash)
	if err != nil {
		return nil, err
	}
	return encode(doc)
}

// lookup asks the database once for every concurrent caller of one hash.
// The shared query runs detached from the first caller's context (bounded
// by its own deadline): a client that leaves must not fail every request
// waiting on the same lookup. A caller that leaves stops waiting.
func (a *authenticator) lookup(ctx context.Context, hash string) (tokenDoc, error) {
	ch := a.lookups.DoChan(hash, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenLookupTimeout)
		defer cancel()
		u, t, err := a.store.TokenByHash(lctx, hash)
		return tokenDoc{User: u, TokenID: t.ID, ExpiresAt: t.ExpiresAt}, err
	})
	select {
	case r := <-ch:
		doc, _ := r.Val.(tokenDoc)
		return doc, r.Err
	case <-ctx.Done():
		return tokenDoc{}, modellab.WrapError(modellab.EUNAVAILABLE, ctx.Err(), "the request was cancelled")
	}
}

// revoke drops every cached lookup of a token: in the shared cache (here
// and, through Redis, on every instance) and in this front map.
func (a *authenticator) revoke(ctx context.Context, id, hash string) {
	a.revoked.Set(id, struct{}{})
	if a.cache != nil {
		a.cache.Invalidate(ctx, keyToken(hash))
	}
}

// Authenticate resolves an API token or session credential to its user.
// An unknown, revoked or expired token is EUNAUTHORIZED; one that cannot be
// checked right now is EUNAVAILABLE.
//
// The user is recorded on ctx's Caller, if any: the request's
// database-bound work is then admitted as that user's.
func (s *Service) Authenticate(ctx context.Context, token string) (*modellab.User, error) {
	u, err := s.auth.userFor(ctx, token)
	if err == nil {
		recordUser(ctx, u)
	}
	return u, err
}
