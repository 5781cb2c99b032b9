package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
)

const (
	// csrfField is the hidden form field of every state-changing form.
	csrfField = "csrf"
	// loginCSRFCookie carries the double-submit value of the login form,
	// which has no session to derive a token from yet.
	loginCSRFCookie = "modellab_login_csrf"
	// sessionMaxAge bounds how long a browser keeps the session; the token
	// itself stays valid until it is revoked.
	sessionMaxAge = 7 * 24 * time.Hour
)

// credential returns the token the request authenticates with: the bearer
// token, else the session cookie; empty when there is none.
func credential(r *http.Request) string {
	tok, _, _ := transport.Credentials(r, transport.BearerOrSession)
	return tok
}

// authenticate returns the caller of a page (nil when anonymous): a bearer
// token or the session cookie, resolved by the service's cached lookup.
func (a *app) authenticate(r *http.Request) (*modellab.User, error) {
	tok, ok, err := transport.Credentials(r, transport.BearerOrSession)
	if err != nil || !ok {
		return nil, err
	}
	return a.svc.Authenticate(r.Context(), tok)
}

// csrfToken derives the anti-CSRF token of a session from its credential.
// The credential is the HMAC key, so only someone who holds the session (or
// can read our pages, which the same-origin policy prevents) can form it.
func csrfToken(cred string) string {
	if cred == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(cred))
	m.Write([]byte("modellab csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func validCSRF(cred, got string) bool {
	want := csrfToken(cred)
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// secure reports whether the client talks to us over TLS, directly or
// through a proxy that says so.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// user resolves the caller of a page. ok is false when the response has
// been written: a redirect to /login, or an error page when the token
// cannot be checked right now (503, never a redirect: the session is fine).
func (a *app) user(w http.ResponseWriter, r *http.Request) (*modellab.User, bool) {
	u, err := a.authenticate(r)
	if err != nil && modellab.ErrorCode(err) != modellab.EUNAUTHORIZED {
		a.fail(w, r, nil, err)
		return nil, false
	}
	if u == nil {
		if err != nil {
			// A cookie that no longer authenticates is dropped, so the
			// login page does not keep bouncing on it.
			clearCookie(w, r, transport.SessionCookie, "/")
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil, false
	}
	return u, true
}

// page wraps a GET page handler: it needs a session.
func (a *app) page(h func(w http.ResponseWriter, r *http.Request, v *view) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := a.user(w, r)
		if !ok {
			return
		}
		v := &view{User: u, CSRF: csrfToken(credential(r))}
		if err := h(w, r, v); err != nil {
			a.fail(w, r, v, err)
		}
	}
}

// form wraps a POST handler: a session, a same-origin request and a valid
// anti-CSRF field, in that order.
func (a *app) form(h func(w http.ResponseWriter, r *http.Request, v *view) error) http.Handler {
	return a.cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := a.user(w, r)
		if !ok {
			return
		}
		cred := credential(r)
		v := &view{User: u, CSRF: csrfToken(cred)}
		if err := r.ParseForm(); err != nil {
			a.fail(w, r, v, formError(err))
			return
		}
		if !validCSRF(cred, r.PostForm.Get(csrfField)) {
			a.renderError(w, r, v, http.StatusForbidden, "Form expired",
				"This form could not be verified (its security token is missing or out of date). Go back, reload the page and send it again.")
			return
		}
		if err := h(w, r, v); err != nil {
			a.fail(w, r, v, err)
		}
	}))
}

func formError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return modellab.Errorf(modellab.ETOOLARGE, "the form is too large")
	}
	return modellab.WrapError(modellab.EINVALID, err, "the form could not be read")
}

type loginData struct {
	Token string // never echoed back: kept empty on purpose
	Error string
}

// loginForm shows the form. A visitor with a valid session goes home.
func (a *app) loginForm(w http.ResponseWriter, r *http.Request) {
	if u, err := a.authenticate(r); err == nil && u != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	a.renderLogin(w, r, http.StatusOK, "")
}

// renderLogin reuses the browser's login CSRF value when it has one, so
// two open login tabs both work.
func (a *app) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	val := ""
	if c, err := r.Cookie(loginCSRFCookie); err == nil && len(c.Value) == 43 {
		val = c.Value
	} else {
		var b [32]byte
		_, _ = rand.Read(b[:])
		val = base64.RawURLEncoding.EncodeToString(b[:])
		http.SetCookie(w, &http.Cookie{
			Name: loginCSRFCookie, Value: val, Path: "/login", MaxAge: 3600,
			HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode,
		})
	}
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		transport.Challenge(w.Header(), r, transport.BearerOrSession)
	}
	a.renderPage(w, r, status, "login", &view{Title: "Log in", Nav: "login", CSRF: val, Data: loginData{Error: msg}})
}

// login checks the token and opens the session: the cookie holds the token
// itself (HttpOnly, so scripts cannot read it), resolved on every request by
// the server's cached token lookup.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		a.fail(w, r, nil, formError(err))
		return
	}
	c, err := r.Cookie(loginCSRFCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get(csrfField))) != 1 {
		a.renderError(w, r, nil, http.StatusForbidden, "Form expired",
			"The login form could not be verified. Open the login page again and retry.")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		a.renderLogin(w, r, http.StatusUnauthorized, "Paste your API token.")
		return
	}
	if !cookieSafe(token) {
		a.renderLogin(w, r, http.StatusUnauthorized, "That token is not valid.")
		return
	}
	u, err := a.svc.Authenticate(r.Context(), token)
	switch {
	case modellab.ErrorCode(err) == modellab.EUNAUTHORIZED || err == nil && u == nil:
		a.renderLogin(w, r, http.StatusUnauthorized, "That token is not valid.")
		return
	case err != nil:
		w.Header().Set("Retry-After", "1")
		a.renderLogin(w, r, transport.StatusOf(err), "The token could not be checked right now. Try again in a moment.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: transport.SessionCookie, Value: token, Path: "/", MaxAge: int(sessionMaxAge / time.Second),
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode,
	})
	clearCookie(w, r, loginCSRFCookie, "/login")
	a.log.InfoContext(r.Context(), "page login", "user_id", u.ID)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout drops the session cookie. The token stays valid: it is an API
// token, revoked through the API, not by closing a browser session.
func (a *app) logout(w http.ResponseWriter, r *http.Request, _ *view) error {
	clearCookie(w, r, transport.SessionCookie, "/")
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

func clearCookie(w http.ResponseWriter, r *http.Request, name, path string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode})
}

// cookieSafe reports whether tok can be a cookie value unchanged
// (RFC 6265 cookie-octets); anything else is not one of our tokens.
func cookieSafe(tok string) bool {
	if len(tok) > 512 {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}
