package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAdminCachePage: admins see the tiers, the endpoints' hit ratios, the
// hottest keys and the entries under a prefix, and purge through the
// CSRF-protected form; anyone else is refused.
func TestAdminCachePage(t *testing.T) {
	e := newEnv(t, time.Now)
	alice, _ := e.user("alice")
	e.model(adminToken, map[string]any{"name": "g1", "provider": "p", "visibility": "global"})
	for i := 0; i < 3; i++ {
		e.api("GET", "/api/models", "", nil, 200)
	}
	admin := e.client()
	csrf := e.login(admin, adminToken)
	r := e.get(admin, "/admin/cache?prefix=api:models:")
	if r.status != 200 {
		t.Fatalf("GET /admin/cache as admin: %d %s", r.status, r.body)
	}
	for _, want := range []string{`id="cache-mode">memory<`, `id="ratio-table"`, "api:models:global", `id="entries-table"`, `data-state="fresh"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("admin page lacks %q", want)
		}
	}
	// Purge the global list by key: the next read is a miss.
	p := e.post(admin, "/admin/cache/purge", url.Values{"csrf": {csrf}, "kind": {"key"}, "value": {"api:models:global"}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/admin/cache?purged=") {
		t.Fatalf("purge: %d Location %q", p.status, p.header.Get("Location"))
	}
	if x := e.getHeader("/api/models", "X-Cache"); x != "MISS" {
		t.Errorf("after the purge the list is %s, want MISS", x)
	}
	// Without the form's token the purge is refused.
	if p := e.post(admin, "/admin/cache/purge", url.Values{"kind": {"pattern"}, "value": {"*"}}); p.status != http.StatusForbidden {
		t.Errorf("purge without CSRF: %d, want 403", p.status)
	}
	// A user who is not an admin gets 403, the page and the purge alike.
	c := e.client()
	ucsrf := e.login(c, alice)
	if r := e.get(c, "/admin/cache"); r.status != http.StatusForbidden {
		t.Errorf("GET /admin/cache as alice: %d, want 403", r.status)
	}
	if p := e.post(c, "/admin/cache/purge", url.Values{"csrf": {ucsrf}, "kind": {"pattern"}, "value": {"*"}}); p.status != http.StatusForbidden {
		t.Errorf("purge as alice: %d, want 403", p.status)
	}
	if r := e.get(e.client(), "/admin/cache"); r.status != http.StatusSeeOther {
		t.Errorf("GET /admin/cache without a session: %d, want 303", r.status)
	}
}
