package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

// The API tokens page: the caller's tokens, a form that mints one (its
// secret shown once, on the answer to the form, never again) and a revoke
// button per token. Every answer is no-store: it lists credentials.

type tokensData struct {
	Tokens  []tokenRow
	Form    tokenForm
	Created *createdToken // the token just minted, with its secret
	Revoked bool
}

type tokenRow struct {
	modellab.Token
	Expired bool
}

type createdToken struct {
	Name   string
	Secret string
}

type tokenForm struct {
	Name, ExpiresInHours string
	Error                string
	Errors               map[string]string
}

func (a *app) tokensPage(w http.ResponseWriter, r *http.Request, v *view) error {
	return a.renderTokens(w, r, v, http.StatusOK, tokensData{Revoked: r.URL.Query().Get("revoked") != ""})
}

func (a *app) renderTokens(w http.ResponseWriter, r *http.Request, v *view, status int, d tokensData) error {
	list, err := a.svc.ListTokens(r.Context(), v.User)
	if err != nil {
		return err
	}
	now := a.now()
	for _, t := range list {
		d.Tokens = append(d.Tokens, tokenRow{Token: t, Expired: t.Expired(now)})
	}
	w.Header().Set("Cache-Control", "no-store")
	v.Title, v.Nav, v.Data = "API tokens", "tokens", d
	a.renderPage(w, r, status, "tokens", v)
	return nil
}

// createToken mints a token from the form. The answer is the page itself
// (200), not a redirect: the secret must not travel in a URL or be kept
// anywhere it could be shown again.
func (a *app) createToken(w http.ResponseWriter, r *http.Request, v *view) error {
	f := tokenForm{Name: strings.TrimSpace(r.PostForm.Get("name")),
		ExpiresInHours: strings.TrimSpace(r.PostForm.Get("expires_in_hours")), Errors: map[string]string{}}
	spec := service.TokenSpec{Name: f.Name}
	if f.Name == "" {
		f.Errors["name"] = "Give the token a name, e.g. ci or laptop."
	}
	if f.ExpiresInHours != "" {
		h, err := strconv.ParseFloat(f.ExpiresInHours, 64)
		maxH := float64(modellab.MaxTokenLifetime / time.Hour)
		if err != nil || !(h > 0) || h > maxH {
			f.Errors["expires_in_hours"] = "Enter a positive number of hours (up to 87600), or leave it empty for no expiry."
		} else {
			spec.ExpiresIn = max(time.Duration(h*float64(time.Hour)), time.Second)
		}
	}
	if len(f.Errors) > 0 {
		return a.renderTokens(w, r, v, http.StatusBadRequest, tokensData{Form: f})
	}
	t, secret, err := a.svc.CreateToken(r.Context(), v.User, spec)
	if modellab.ErrorCode(err) == modellab.EINVALID {
		if field := modellab.ErrorField(err); field != "" {
			f.Errors[field] = sentence(modellab.ErrorMessage(err))
		} else {
			f.Error = sentence(modellab.ErrorMessage(err))
		}
		return a.renderTokens(w, r, v, http.StatusBadRequest, tokensData{Form: f})
	}
	if err != nil {
		return err
	}
	return a.renderTokens(w, r, v, http.StatusOK, tokensData{Created: &createdToken{Name: t.Name, Secret: secret}})
}

// revokeToken revokes one of the caller's tokens (an admin's page lists
// only the admin's own). Revoking the token of this very session ends it:
// the next page goes to /login.
func (a *app) revokeToken(w http.ResponseWriter, r *http.Request, v *view) error {
	if err := a.svc.RevokeToken(r.Context(), v.User, r.PathValue("id")); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/settings/tokens?revoked=1", http.StatusSeeOther)
	return nil
}
