package web_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

// TestTokensPage: a token created on the page shows its secret once; a
// session whose token is revoked (here through the API) goes to /login,
// and its cookie is dropped.
func TestTokensPage(t *testing.T) {
	e := newEnv(t, time.Now)
	alice, _ := e.user("alice")
	var out struct {
		Token  modellab.Token `json:"token"`
		Secret string         `json:"secret"`
	}
	if err := json.Unmarshal(e.api("POST", "/api/tokens", alice, map[string]any{"name": "browser"}, 201), &out); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	csrf := e.login(c, out.Secret)

	r := e.post(c, "/settings/tokens", url.Values{"csrf": {csrf}, "name": {"laptop"}, "expires_in_hours": {"2"}})
	if r.status != 200 || strings.Count(r.body, modellab.TokenPrefix) != 1 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create on the page: %d Cache-Control %q, want 200 no-store with the secret once", r.status, r.header.Get("Cache-Control"))
	}
	page := e.get(c, "/settings/tokens")
	if page.status != 200 || !strings.Contains(page.body, "laptop") || strings.Contains(page.body, modellab.TokenPrefix) {
		t.Errorf("the list: %d, want laptop listed and no secret shown again", page.status)
	}
	r = e.post(c, "/settings/tokens", url.Values{"csrf": {csrf}, "name": {strings.Repeat("n", modellab.MaxTokenNameLen+1)}})
	if r.status != 400 || !strings.Contains(r.body, `id="name-error"`) {
		t.Errorf("a name over the limit: %d, want 400 with the error on name", r.status)
	}

	e.api("DELETE", "/api/tokens/"+out.Token.ID, alice, nil, 204)
	r = e.get(c, "/settings/tokens")
	if r.status != 303 || r.header.Get("Location") != "/login" || !strings.Contains(r.header.Get("Set-Cookie"), "modellab_session=;") {
		t.Errorf("a revoked session: %d Location %q Set-Cookie %q, want 303 to /login clearing the cookie",
			r.status, r.header.Get("Location"), r.header.Get("Set-Cookie"))
	}
}
