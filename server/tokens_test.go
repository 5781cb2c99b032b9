package server_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

type tokenList struct {
	Tokens []modellab.Token `json:"tokens"`
}

type createdToken struct {
	Token  modellab.Token `json:"token"`
	Secret string         `json:"secret"`
}

func (e *env) tokens(token string) []modellab.Token {
	e.t.Helper()
	var out tokenList
	e.must(200, "GET", "/api/tokens", token, nil).json(e.t, &out)
	return out.Tokens
}

func (e *env) newToken(token string, body map[string]any) createdToken {
	e.t.Helper()
	var out createdToken
	e.must(201, "POST", "/api/tokens", token, body).json(e.t, &out)
	return out
}

const (
	challenge        = `Bearer realm="modellab"`
	challengeInvalid = `Bearer realm="modellab", error="invalid_token"`
)

func TestTokensAPI(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, _ := e.user("alice")
	bob, _ := e.user("bob")

	list := e.tokens(alice)
	if len(list) != 1 || list[0].Name != "initial" || !strings.HasPrefix(list[0].ID, modellab.PrefixToken) || list[0].ExpiresAt != nil {
		t.Fatalf("a new user's tokens = %+v, want the initial one", list)
	}
	before := time.Now()
	ci := e.newToken(alice, map[string]any{"name": "ci", "expires_in_hours": 720})
	if !strings.HasPrefix(ci.Secret, modellab.TokenPrefix) || ci.Token.Name != "ci" || ci.Token.ExpiresAt == nil ||
		ci.Token.ExpiresAt.Before(before.Add(719*time.Hour)) || ci.Token.ExpiresAt.After(time.Now().Add(721*time.Hour)) {
		t.Fatalf("POST /api/tokens = %+v, want ci expiring in 720h", ci)
	}
	raw := e.must(201, "POST", "/api/tokens", alice, map[string]any{"name": "raw"})
	if strings.Contains(string(raw.body), "hash") || raw.header.Get("Cache-Control") != "no-store" {
		t.Errorf("POST /api/tokens: Cache-Control %q, body %s", raw.header.Get("Cache-Control"), raw.body)
	}
	if !strings.Contains(string(raw.body), `"expires_at":null`) || !strings.Contains(string(raw.body), `"last_used_at":null`) {
		t.Errorf("a token that never expires: %s, want expires_at and last_used_at null", raw.body)
	}
	list = e.tokens(ci.Secret) // the new secret authenticates as alice
	if len(list) != 3 || list[0].ID == "" || list[2].Name != "initial" {
		t.Fatalf("alice's tokens = %+v, want raw, ci, initial", list)
	}
	if got := e.tokens(bob); len(got) != 1 {
		t.Errorf("bob sees %d tokens, want his own one", len(got))
	}

	for _, c := range []struct {
		name  string
		body  any
		field string
	}{
		{"no name", map[string]any{}, "name"},
		{"blank name", map[string]any{"name": "  "}, "name"},
		{"name over the limit", map[string]any{"name": strings.Repeat("n", modellab.MaxTokenNameLen+1)}, "name"},
		{"expiry now", map[string]any{"name": "x", "expires_in_hours": 0}, "expires_in_hours"},
		{"expiry in the past", map[string]any{"name": "x", "expires_in_hours": -5}, "expires_in_hours"},
		{"expiry too far", map[string]any{"name": "x", "expires_in_hours": 1e12}, "expires_in_hours"},
		{"expiry not a number", map[string]any{"name": "x", "expires_in_hours": "soon"}, "expires_in_hours"},
		{"unknown field", map[string]any{"name": "x", "ttl": 3}, "ttl"},
	} {
		r := e.do("POST", "/api/tokens", alice, c.body)
		if r.status != 400 || r.errorCode(t) != modellab.EINVALID || !strings.Contains(string(r.body), c.field) {
			t.Errorf("%s: %d %s, want 400 invalid_argument naming %s", c.name, r.status, r.body, c.field)
		}
	}

	// Revocation: unknown, malformed and other users' tokens are 404.
	bobs := e.tokens(bob)[0].ID
	for _, id := range []string{"tok_doesnotexist000000", "not%20an%20id", bobs} {
		if r := e.do("DELETE", "/api/tokens/"+id, alice, nil); r.status != 404 || r.errorCode(t) != modellab.ENOTFOUND {
			t.Errorf("alice DELETE %s: %d %s, want 404", id, r.status, r.body)
		}
	}
	e.must(200, "GET", "/api/tokens", bob, nil) // still valid
	e.must(204, "DELETE", "/api/tokens/"+ci.Token.ID, alice, nil)
	r := e.do("GET", "/api/tokens", ci.Secret, nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") != challengeInvalid {
		t.Errorf("a revoked token: %d WWW-Authenticate %q, want 401 %s", r.status, r.header.Get("WWW-Authenticate"), challengeInvalid)
	}
	e.must(404, "DELETE", "/api/tokens/"+ci.Token.ID, alice, nil)
	// An admin revokes anyone's.
	e.must(204, "DELETE", "/api/tokens/"+bobs, adminToken, nil)
	e.must(401, "GET", "/api/tokens", bob, nil)
	e.must(200, "GET", "/api/tokens", alice, nil)
}

// TestUnauthorizedChallenge: every 401 says how to authenticate (RFC 6750),
// and whether the token it got was refused.
func TestUnauthorizedChallenge(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, c := range []struct {
		name, method, path, auth, want string
	}{
		{"no token", "GET", "/api/tokens", "", challenge},
		{"unknown token", "GET", "/api/tokens", "Bearer mlk_nope", challengeInvalid},
		{"malformed header", "GET", "/api/servers/status", "Basic eDp5", `Bearer realm="modellab", error="invalid_request"`},
		{"gateway, no token", "GET", "/v1/models", "", challenge},
		{"gateway, unknown token", "POST", "/v1/chat/completions", "Bearer mlk_nope", challengeInvalid},
	} {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		r := e.do(c.method, c.path, "", map[string]any{}, hdr...)
		if r.status != 401 || r.header.Get("WWW-Authenticate") != c.want {
			t.Errorf("%s: %d WWW-Authenticate %q, want 401 %q", c.name, r.status, r.header.Get("WWW-Authenticate"), c.want)
		}
	}
}

// TestMethodNotAllowed: a 405 carries the contract's error body and an
// Allow header that lists HEAD wherever GET is allowed.
func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, _ := e.user("alice")
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/api/tokens", "GET, HEAD, POST"},
		{"GET", "/api/tokens/tok_x", "DELETE"},
		{"POST", "/api/analytics/data", "GET, HEAD"},
		{"DELETE", "/healthz", "GET, HEAD"},
	} {
		r := e.do(c.method, c.path, alice, nil)
		if r.status != 405 || r.header.Get("Allow") != c.allow || r.errorCode(t) != modellab.EINVALID {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q", c.method, c.path, r.status, r.header.Get("Allow"), r.body, c.allow)
		}
	}
}

// TestTokenExpiry: an expired token is refused (401) although its lookup
// is cached: expiry is checked on every request.
func TestTokenExpiry(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	e := newEnv(t, envOpts{now: now})
	alice, _ := e.user("alice")
	short := e.newToken(alice, map[string]any{"name": "short", "expires_in_hours": 1})
	e.must(200, "GET", "/api/tokens", short.Secret, nil) // cached now
	skew.Store(int64(59 * time.Minute))
	e.must(200, "GET", "/api/tokens", short.Secret, nil)
	skew.Store(int64(61 * time.Minute))
	r := e.do("GET", "/api/tokens", short.Secret, nil)
	if r.status != 401 || !strings.Contains(string(r.body), "expired") || r.header.Get("WWW-Authenticate") != challengeInvalid {
		t.Errorf("an expired token: %d %s, want 401 expired", r.status, r.body)
	}
	e.must(200, "GET", "/api/tokens", alice, nil)
}

// TestTokenLastUsed: a use shows in last_used_at once the batch is
// written (within a few seconds), without slowing the request.
func TestTokenLastUsed(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, _ := e.user("alice")
	e.must(200, "GET", "/api/models", alice, nil)
	waitFor(t, 15*time.Second, func() bool {
		l := e.tokens(alice)
		return len(l) == 1 && l[0].LastUsedAt != nil && time.Since(*l[0].LastUsedAt) < time.Minute
	})
}

// TestTokenRevokedOnEveryInstance: two instances share the database and
// Redis; a token revoked on one is refused by the other within 1 s,
// although the other had its lookup cached.
func TestTokenRevokedOnEveryInstance(t *testing.T) {
	a := newEnv(t, envOpts{redis: true, engine: "postgres"})
	b := newEnv(t, envOpts{redis: true, dbURL: a.dbURL(), prefix: a.pfx})
	alice, _ := a.user("alice")
	for i := 0; i < 5; i++ {
		tok := a.newToken(alice, map[string]any{"name": "ci"})
		b.must(200, "GET", "/api/models", tok.Secret, nil)
		b.must(200, "GET", "/api/models", tok.Secret, nil) // from b's own tier
		a.must(204, "DELETE", "/api/tokens/"+tok.Token.ID, alice, nil)
		start := time.Now()
		for {
			r := b.do("GET", "/api/models", tok.Secret, nil)
			if r.status == 401 {
				break
			}
			if r.status != 200 || time.Since(start) > time.Second {
				t.Fatalf("round %d: b answers %d %s %s after the revocation", i, r.status, r.body, time.Since(start))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
