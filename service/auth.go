package service

import (
	"context"
	"crypto/subtle"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"

	"github.com/modellab/modellab"
)

// Token lookups are cached so that a recently seen token keeps working while
// the database is unreachable (a minute at most). Unknown tokens are
// remembered briefly too, so a flood of bad tokens does not reach the
// database on every request.
const (
	tokenCacheTTL    = time.Minute
	tokenNegativeTTL = 10 * time.Second
	// tokenLookupTimeout bounds a shared lookup, which no single caller's
	// context may cancel (see userFor).
	tokenLookupTimeout = 5 * time.Second
	maxTokenLen        = 512
)

// tokenEntry is a cached lookup. user is shared by every request with the
// token, so callers treat the *User they get as read-only.
type tokenEntry struct {
	user    *modellab.User
	expires time.Time
}

type authConfig struct {
	store      Store
	adminToken string
	admin      modellab.User
	now        func() time.Time
}

type authenticator struct {
	authConfig
	tokens *otter.Cache[string, *tokenEntry]
	// lookups merges concurrent database lookups of one token: a burst of
	// requests with a token not yet cached costs one query.
	lookups singleflight.Group
}

func newAuthenticator(cfg authConfig) *authenticator {
	c := otter.Must(&otter.Options[string, *tokenEntry]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryWriting[string, *tokenEntry](tokenCacheTTL),
	})
	return &authenticator{authConfig: cfg, tokens: c}
}

func (a *authenticator) close() { a.tokens.StopAllGoroutines() }

func errInvalidToken() error { return modellab.Errorf(modellab.EUNAUTHORIZED, "invalid token") }

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
	// The cache is keyed by the token itself: hashing on every request would
	// cost a SHA-256 and three allocations; the process sees the token
	// anyway, and only the database must never hold it in clear.
	now := a.now()
	if e, ok := a.tokens.GetIfPresent(token); ok && now.Before(e.expires) {
		if e.user == nil {
			return nil, errInvalidToken()
		}
		return e.user, nil
	}
	u, err := a.lookup(ctx, modellab.HashToken(token))
	switch modellab.ErrorCode(err) {
	case "":
		a.tokens.Set(token, &tokenEntry{user: &u, expires: now.Add(tokenCacheTTL)})
		return &u, nil
	case modellab.ENOTFOUND:
		a.tokens.Set(token, &tokenEntry{expires: now.Add(tokenNegativeTTL)})
		return nil, errInvalidToken()
	case modellab.EUNAVAILABLE:
		return nil, err
	default:
		return nil, modellab.WrapError(modellab.EUNAVAILABLE, err, "could not check the token, try again")
	}
}

// lookup asks the database once for every concurrent caller of one hash.
// The shared query runs detached from the first caller's context (bounded
// by its own deadline): a client that leaves must not fail every request
// waiting on the same lookup. A caller that leaves stops waiting.
func (a *authenticator) lookup(ctx context.Context, hash string) (modellab.User, error) {
	ch := a.lookups.DoChan(hash, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenLookupTimeout)
		defer cancel()
		return a.store.UserByTokenHash(lctx, hash)
	})
	select {
	case r := <-ch:
		u, _ := r.Val.(modellab.User)
		return u, r.Err
	case <-ctx.Done():
		return modellab.User{}, modellab.WrapError(modellab.EUNAVAILABLE, ctx.Err(), "the request was cancelled")
	}
}

// Authenticate resolves an API token or session credential to its user.
// An unknown token is EUNAUTHORIZED; one that cannot be checked right now
// is EUNAVAILABLE.
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
