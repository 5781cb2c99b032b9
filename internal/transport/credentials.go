package transport

import (
	"net/http"
	"strings"

	"github.com/modellab/modellab"
)

// SessionCookie is the cookie the pages authenticate with; it holds the API
// token itself (HttpOnly).
const SessionCookie = "modellab_session"

// Sources says where a request's credentials may come from.
type Sources uint8

const (
	// Bearer accepts the Authorization header only (the JSON API).
	Bearer Sources = iota
	// BearerOrSession also accepts the session cookie (the pages).
	BearerOrSession
)

// Credentials returns the token a request carries: the bearer token, or
// the session cookie when there is no Authorization header and from allows
// it. ok is false when the request carries none; a malformed Authorization
// header is an EUNAUTHORIZED error.
func Credentials(r *http.Request, from Sources) (token string, ok bool, err error) {
	if h := HeaderGet(r.Header, "Authorization"); h != "" {
		scheme, tok, found := strings.Cut(h, " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", false, modellab.Errorf(modellab.EUNAUTHORIZED, "the Authorization header must be \"Bearer <token>\"")
		}
		return strings.TrimSpace(tok), true, nil
	}
	if from == BearerOrSession {
		if c, cerr := r.Cookie(SessionCookie); cerr == nil && c.Value != "" {
			return c.Value, true, nil
		}
	}
	return "", false, nil
}

// The challenges of a 401 (RFC 6750 §3), shared slices: assigning one to a
// header map allocates nothing.
var (
	challengeNone    = []string{`Bearer realm="modellab"`}
	challengeInvalid = []string{`Bearer realm="modellab", error="invalid_token"`}
	challengeRequest = []string{`Bearer realm="modellab", error="invalid_request"`}
)

// Challenge sets the WWW-Authenticate header that every 401 carries: the
// Bearer scheme and realm, plus error="invalid_token" when r carried a
// token (from the sources the answering handler reads) that was refused,
// or error="invalid_request" when its Authorization header is malformed.
// A request without credentials gets no error code (RFC 6750 §3.1).
func Challenge(h http.Header, r *http.Request, from Sources) {
	switch _, ok, err := Credentials(r, from); {
	case err != nil:
		h["Www-Authenticate"] = challengeRequest
	case ok:
		h["Www-Authenticate"] = challengeInvalid
	default:
		h["Www-Authenticate"] = challengeNone
	}
}
