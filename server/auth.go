package server

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"

	"github.com/modellab/modellab"
)

// SessionCookie is the cookie the pages authenticate with.
const SessionCookie = "modellab_session"

// Token lookups are cached so that a recently seen token keeps working while
// the database is unreachable (SPEC: a minute at most). Unknown tokens are
// remembered briefly too, so a flood of bad tokens does not reach the
// database on every request.
const (
	tokenCacheTTL    = time.Minute
	tokenNegativeTTL = 10 * time.Second
)

// tokenEntry is a cached lookup. user is shared by every request with the
// token, so callers treat the *User they get as read-only.
type tokenEntry struct {
	user    *modellab.User
	expires time.Time
}

type authenticator struct {
	store      Store
	adminToken string
	admin      modellab.User
	now        func() time.Time
	tokens     *otter.Cache[string, *tokenEntry]
	// lookups merges concurrent database lookups of one token: a burst of
	// requests with a token not yet cached costs one query.
	lookups singleflight.Group
}

func newAuthenticator(st Store, adminToken string, admin modellab.User, now func() time.Time) *authenticator {
	c := otter.Must(&otter.Options[string, *tokenEntry]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryWriting[string, *tokenEntry](tokenCacheTTL),
	})
	if admin.ID == "" {
		admin = modellab.User{ID: "usr_admin", Name: "admin", Admin: true}
	}
	admin.Admin = true
	return &authenticator{store: st, adminToken: adminToken, admin: admin, now: now, tokens: c}
}

// credentials returns the token a request carries: the bearer token, or the
// session cookie when there is no Authorization header. ok is false when
// the request carries none; a malformed Authorization header is an error.
func credentials(r *http.Request, cookie bool) (token string, ok bool, err error) {
	if h := headerGet(r.Header, "Authorization"); h != "" {
		scheme, tok, found := strings.Cut(h, " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", false, modellab.Errorf(modellab.EUNAUTHORIZED, "the Authorization header must be \"Bearer <token>\"")
		}
		return strings.TrimSpace(tok), true, nil
	}
	if cookie {
		if c, cerr := r.Cookie(SessionCookie); cerr == nil && c.Value != "" {
			return c.Value, true, nil
		}
	}
	return "", false, nil
}

// userFor resolves a token. A token that cannot be checked because the
// database is down answers EUNAVAILABLE, never EUNAUTHORIZED.
func (a *authenticator) userFor(ctx context.Context, token string) (*modellab.User, error) {
	if a.adminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.adminToken)) == 1 {
		u := a.admin
		return &u, nil
	}
	if len(token) > 512 {
		return nil, modellab.Errorf(modellab.EUNAUTHORIZED, "invalid token")
	}
	// The cache is keyed by the token itself: hashing on every request would
	// cost a SHA-256 and three allocations; the process sees the token
	// anyway, and only the database must never hold it in clear.
	now := a.now()
	if e, ok := a.tokens.GetIfPresent(token); ok && now.Before(e.expires) {
		if e.user == nil {
			return nil, modellab.Errorf(modellab.EUNAUTHORIZED, "invalid token")
		}
		return e.user, nil
	}
	hash := modellab.HashToken(token)
	v, err, _ := a.lookups.Do(hash, func() (any, error) {
		return a.store.UserByTokenHash(ctx, hash)
	})
	u, _ := v.(modellab.User)
	switch modellab.ErrorCode(err) {
	case "":
		a.tokens.Set(token, &tokenEntry{user: &u, expires: now.Add(tokenCacheTTL)})
		return &u, nil
	case modellab.ENOTFOUND:
		a.tokens.Set(token, &tokenEntry{expires: now.Add(tokenNegativeTTL)})
		return nil, modellab.Errorf(modellab.EUNAUTHORIZED, "invalid token")
	case modellab.EUNAVAILABLE:
		return nil, err
	default:
		return nil, modellab.WrapError(modellab.EUNAVAILABLE, err, "could not check the token, try again")
	}
}

// Authenticate returns the caller, nil for an anonymous request. Pages pass
// cookie=true to accept the session cookie as well as the bearer token.
func (s *Server) Authenticate(r *http.Request, cookie bool) (*modellab.User, error) {
	tok, ok, err := credentials(r, cookie)
	if err != nil || !ok {
		return nil, err
	}
	return s.auth.userFor(r.Context(), tok)
}

// CheckToken resolves a plain token (the login form).
func (s *Server) CheckToken(ctx context.Context, token string) (*modellab.User, error) {
	return s.auth.userFor(ctx, token)
}

// requireUser is for handlers that need a caller.
func (s *Server) requireUser(r *http.Request) (*modellab.User, error) {
	u, err := s.Authenticate(r, false)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, modellab.Errorf(modellab.EUNAUTHORIZED, "authentication required: send Authorization: Bearer <token>")
	}
	return u, nil
}

func (s *Server) requireAdmin(r *http.Request) (*modellab.User, error) {
	u, err := s.requireUser(r)
	if err != nil {
		return nil, err
	}
	if !u.Admin {
		return nil, modellab.Errorf(modellab.EFORBIDDEN, "admin only")
	}
	return u, nil
}
