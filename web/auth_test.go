package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
	"github.com/modellab/modellab/service"
)

func TestPagesNeedASession(t *testing.T) {
	e := newEnv(t, time.Now)
	tests := []struct {
		method, path string
	}{
		{"GET", "/"},
		{"GET", "/models"},
		{"GET", "/models?scope=mine"},
		{"GET", "/monitor"},
		{"GET", "/analytics"},
		{"POST", "/models"},
		{"POST", "/models/mdl_x0000/delete"},
		{"POST", "/logout"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			c := e.client()
			var r resp
			if tt.method == "GET" {
				r = e.get(c, tt.path)
			} else {
				r = e.post(c, tt.path, url.Values{"csrf": {"x"}})
			}
			if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login" {
				t.Errorf("status %d Location %q, want 303 to /login", r.status, r.header.Get("Location"))
			}
		})
	}
	// The monitor's polling gets a 401 it can show, not a login page.
	if r := e.get(e.client(), "/monitor/data"); r.status != http.StatusUnauthorized {
		t.Errorf("GET /monitor/data without a session: %d, want 401", r.status)
	}
	// A cookie that does not authenticate is dropped on the way to /login.
	r := e.get(e.client(), "/", "Cookie", transport.SessionCookie+"=mlk_revoked")
	if r.status != http.StatusSeeOther || !strings.Contains(r.header.Get("Set-Cookie"), transport.SessionCookie+"=;") {
		t.Errorf("stale cookie: status %d Set-Cookie %q, want 303 clearing the cookie", r.status, r.header.Get("Set-Cookie"))
	}
}

func TestPublicPages(t *testing.T) {
	e := newEnv(t, time.Now)
	tests := []struct {
		path, ctype string
	}{
		{"/docs", "text/html; charset=utf-8"},
		{"/login", "text/html; charset=utf-8"},
		{"/openapi.json", "application/json"},
		{"/static/style.css", "text/css; charset=utf-8"},
		{"/static/monitor.js", "text/javascript; charset=utf-8"},
	}
	for _, tt := range tests {
		r := e.get(e.client(), tt.path)
		if r.status != 200 || r.header.Get("Content-Type") != tt.ctype {
			t.Errorf("GET %s: %d %q, want 200 %q", tt.path, r.status, r.header.Get("Content-Type"), tt.ctype)
		}
	}
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(e.get(e.client(), "/openapi.json").body), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Paths) < 10 {
		t.Errorf("/openapi.json: %v, openapi %q, %d paths", err, doc.OpenAPI, len(doc.Paths))
	}
	// Everything else that is not a page keeps the API's JSON 404.
	for _, p := range []string{"/nope", "/static/nope.css", "/models/extra/path"} {
		r := e.get(e.client(), p)
		if r.status != 404 {
			t.Errorf("GET %s: %d, want 404", p, r.status)
		}
	}
	if r := e.get(e.client(), "/nope"); !strings.Contains(r.body, `"not_found"`) {
		t.Errorf("GET /nope: body %s, want the JSON error", r.body)
	}
	// Pages are embedded: nothing refers to another origin.
	r := e.get(e.client(), "/login")
	for _, bad := range []string{"http://", "https://", "//cdn"} {
		if strings.Contains(r.body, bad) {
			t.Errorf("/login refers to %q", bad)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t, time.Now)
	tok, _ := e.user("alice")

	tests := []struct {
		name       string
		token      string
		csrf       string // "" means the form's own value
		hdr        []string
		wantStatus int
		wantSecure bool
	}{
		{name: "right token", token: tok, wantStatus: 303},
		{name: "right token behind TLS proxy", token: tok, hdr: []string{"X-Forwarded-Proto", "https"}, wantStatus: 303, wantSecure: true},
		{name: "token with spaces around", token: "  " + tok + "\n", wantStatus: 303},
		{name: "wrong token", token: "mlk_wrong", wantStatus: 401},
		{name: "empty token", token: "", wantStatus: 401},
		{name: "odd characters", token: "a;b c", wantStatus: 401},
		{name: "missing csrf", token: tok, csrf: "-", wantStatus: 403},
		{name: "wrong csrf", token: tok, csrf: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", wantStatus: 403},
		{name: "cross-site", token: tok, hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.client()
			form := e.get(c, "/login")
			csrf := csrfOf(t, form.body)
			switch tt.csrf {
			case "":
			case "-":
				csrf = ""
			default:
				csrf = tt.csrf
			}
			r := e.post(c, "/login", url.Values{"token": {tt.token}, "csrf": {csrf}}, tt.hdr...)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			var session *http.Cookie
			for _, ck := range (&http.Response{Header: r.header}).Cookies() {
				if ck.Name == transport.SessionCookie {
					session = ck
				}
			}
			if tt.wantStatus != 303 {
				if session != nil {
					t.Errorf("a failed login set the session cookie")
				}
				if tt.wantStatus == 401 && !strings.Contains(r.body, `id="token-error"`) {
					t.Errorf("the form was not shown again with the error")
				}
				if strings.Contains(r.body, tok) {
					t.Errorf("the page echoes the token")
				}
				return
			}
			if got := r.header.Get("Location"); got != "/" {
				t.Errorf("Location = %q, want /", got)
			}
			if session == nil {
				t.Fatalf("no %s cookie", transport.SessionCookie)
			}
			if session.Value != tok || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" || session.Secure != tt.wantSecure {
				t.Errorf("cookie %+v, want the token, HttpOnly, SameSite=Lax, Path=/, Secure=%v", session, tt.wantSecure)
			}
			if got := e.get(c, "/"); got.status != 200 {
				t.Errorf("GET / after login: %d", got.status)
			}
		})
	}

	// Logout drops the cookie; the pages go back to /login.
	c := e.client()
	csrf := e.login(c, tok)
	r := e.post(c, "/logout", url.Values{"csrf": {csrf}})
	if r.status != 303 || r.header.Get("Location") != "/login" || !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d Location %q Set-Cookie %q", r.status, r.header.Get("Location"), r.header.Get("Set-Cookie"))
	}
	if r := e.get(c, "/"); r.status != 303 {
		t.Errorf("GET / after logout: %d, want 303", r.status)
	}
	// A logged-in visitor of /login goes home.
	c = e.client()
	e.login(c, tok)
	if r := e.get(c, "/login"); r.status != 303 || r.header.Get("Location") != "/" {
		t.Errorf("GET /login with a session: %d %q", r.status, r.header.Get("Location"))
	}
}

// Pages take a bearer token too, so the load tester can fetch them.
func TestPagesAcceptBearer(t *testing.T) {
	e := newEnv(t, time.Now)
	tok, _ := e.user("alice")
	for _, p := range []string{"/", "/models", "/monitor", "/monitor/data", "/analytics"} {
		r := e.get(e.client(), p, "Authorization", "Bearer "+tok)
		if r.status != 200 {
			t.Errorf("GET %s with a bearer token: %d", p, r.status)
		}
		if r.header.Get("Cache-Control") != "private, no-cache" && p != "/monitor/data" {
			t.Errorf("GET %s: Cache-Control %q, want private", p, r.header.Get("Cache-Control"))
		}
	}
	if r := e.get(e.client(), "/", "Authorization", "Bearer mlk_wrong"); r.status != 303 {
		t.Errorf("GET / with a wrong bearer token: %d, want 303", r.status)
	}
}

func TestModelForms(t *testing.T) {
	e := newEnv(t, time.Now)
	alice, _ := e.user("alice")
	bob, _ := e.user("bob")
	bobs := e.model(bob, map[string]any{"name": "bobs-model", "provider": "x"})
	c := e.client()
	csrf := e.login(c, alice)

	count := func() int {
		var out struct{ Models []modellab.Model }
		if err := json.Unmarshal(e.api("GET", "/api/models", alice, nil, 200), &out); err != nil {
			t.Fatal(err)
		}
		return len(out.Models)
	}

	tests := []struct {
		name       string
		form       url.Values
		hdr        []string
		wantStatus int
		wantInBody []string
		created    bool
	}{
		{"valid", url.Values{"name": {"m1"}, "provider": {"local"}, "context_length": {"8,192"}}, nil, 303, nil, true},
		{"no csrf", url.Values{"csrf": {""}, "name": {"m2"}, "provider": {"local"}}, nil, 403, []string{"Form expired"}, false},
		{"wrong csrf", url.Values{"csrf": {strings.Repeat("A", 43)}, "name": {"m2"}, "provider": {"local"}}, nil, 403, nil, false},
		{"cross-site", url.Values{"name": {"m2"}, "provider": {"local"}}, []string{"Sec-Fetch-Site", "cross-site"}, 403, nil, false},
		{"missing fields", url.Values{"name": {" "}, "provider": {""}}, nil, 400, []string{`id="name-error"`, `id="provider-error"`}, false},
		{"bad context length", url.Values{"name": {"m3"}, "provider": {"x"}, "context_length": {"0"}}, nil, 400, []string{`id="context_length-error"`, `value="m3"`}, false},
		{"too long name", url.Values{"name": {strings.Repeat("n", 201)}, "provider": {"x"}}, nil, 400, []string{`id="name-error">Name must be 1 to 200 characters.`}, false},
		{"duplicate", url.Values{"name": {"m1"}, "provider": {"x"}}, nil, 409, []string{"You already have a model with this name."}, false},
		{"global by non-admin", url.Values{"name": {"g"}, "provider": {"x"}, "visibility": {"global"}}, nil, 403, []string{`id="visibility-error"`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := count()
			form := cloneValues(tt.form)
			if !form.Has("csrf") {
				form.Set("csrf", csrf)
			}
			r := e.post(c, "/models", form, tt.hdr...)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			for _, s := range tt.wantInBody {
				if !strings.Contains(r.body, s) {
					t.Errorf("body lacks %q", s)
				}
			}
			if got, want := count()-before, map[bool]int{true: 1, false: 0}[tt.created]; got != want {
				t.Errorf("models created: %d, want %d", got, want)
			}
			if tt.created && !strings.HasPrefix(r.header.Get("Location"), "/models?created=mdl_") {
				t.Errorf("Location = %q", r.header.Get("Location"))
			}
		})
	}

	// The new model is listed (the write invalidated the cached list) and
	// can be deleted; bob's cannot (404: existence does not leak).
	page := e.get(c, "/models")
	if !strings.Contains(page.body, `<span class="model-name">m1</span>`) {
		t.Fatalf("m1 is not listed after creation")
	}
	id := strings.Split(strings.Split(page.body, `<tr data-id="`)[1], `"`)[0]
	if r := e.post(c, "/models/"+bobs.ID+"/delete", url.Values{"csrf": {csrf}}); r.status != 404 {
		t.Errorf("deleting another user's model: %d, want 404", r.status)
	}
	if r := e.post(c, "/models/"+id+"/delete", url.Values{}); r.status != 403 {
		t.Errorf("delete without csrf: %d, want 403", r.status)
	}
	r := e.post(c, "/models/"+id+"/delete", url.Values{"csrf": {csrf}})
	if r.status != 303 || r.header.Get("Location") != "/models?deleted=1" {
		t.Fatalf("delete: %d %q", r.status, r.header.Get("Location"))
	}
	if page := e.get(c, "/models?deleted=1"); strings.Contains(page.body, `data-id="`+id+`"`) || !strings.Contains(page.body, "Model deleted.") {
		t.Errorf("the deleted model is still listed, or no confirmation")
	}
}

func TestMonitorData(t *testing.T) {
	e := newEnv(t, time.Now)
	tok, _ := e.user("alice")
	s := e.server(tok, map[string]any{"name": "node-1", "status": "starting"})
	c := e.client()
	e.login(c, tok)

	r := e.get(c, "/monitor/data")
	etag := r.header.Get("ETag")
	if r.status != 200 || etag == "" || !strings.Contains(r.body, `data-status="starting"`) || strings.Contains(r.body, "<html") {
		t.Fatalf("first poll: %d ETag %q body %s", r.status, etag, r.body)
	}
	if r := e.get(c, "/monitor/data", "If-None-Match", etag); r.status != 304 {
		t.Errorf("unchanged poll: %d, want 304", r.status)
	}
	e.api("PATCH", "/api/servers/"+s.ID, tok, map[string]any{"status": "error"}, 200)
	r = e.get(c, "/monitor/data", "If-None-Match", etag)
	if r.status != 200 || !strings.Contains(r.body, `data-status="error"`) || r.header.Get("ETag") == etag {
		t.Errorf("poll after the change: %d ETag %q body %s", r.status, r.header.Get("ETag"), r.body)
	}
}

// TestMonitorDataReadsOnce: one poll is one read of the status entry (the
// handler used to read it twice: once for the ETag, again for the HTML).
func TestMonitorDataReadsOnce(t *testing.T) {
	e := newEnv(t, time.Now)
	tok, _ := e.user("alice")
	e.server(tok, map[string]any{"name": "node-1", "status": "running"})
	c := e.client()
	e.login(c, tok)
	reads := func() uint64 {
		g := e.svc.Cache().Stats().Groups[service.GroupServers]
		return g.Hit + g.Miss + g.Stale + g.Bypass
	}
	for _, inm := range []string{"", `W/"mon-other"`} {
		before := reads()
		if r := e.get(c, "/monitor/data", "If-None-Match", inm); r.status != 200 {
			t.Fatalf("poll: %d", r.status)
		}
		if got := reads() - before; got != 1 {
			t.Errorf("If-None-Match %q: %d reads of the status, want 1", inm, got)
		}
	}
}

func TestAnalyticsPage(t *testing.T) {
	e := newEnv(t, time.Now)
	tok, _ := e.user("alice")
	c := e.client()
	e.login(c, tok)
	tests := []struct {
		query  string
		status int
		want   string
	}{
		{"", 200, `<svg class="chart"`},
		{"?from=&to=&interval=", 200, `<svg class="chart"`},
		{"?interval=hour", 200, `value="hour" selected`},
		{"?interval=week", 400, `id="range-error"`},
		{"?from=2025-01-10&to=2025-01-01", 400, "From must be before to."},
		{"?from=2020-01-01&to=2025-01-01", 400, "366 days"},
		{"?from=yesterday", 400, "From must be an RFC 3339 time"},
	}
	for _, tt := range tests {
		r := e.get(c, "/analytics"+tt.query)
		if r.status != tt.status || !strings.Contains(r.body, tt.want) {
			t.Errorf("GET /analytics%s: %d, want %d with %q", tt.query, r.status, tt.status, tt.want)
		}
	}
}

// Rendered pages are reused only for the same session and the same cache
// entries: a write through the API shows on the next view, and two users
// whose data happen to be identical never get each other's page.
func TestRenderedPagesFollowWrites(t *testing.T) {
	e := newEnv(t, time.Now)
	alice, _ := e.user("alice")
	bob, _ := e.user("bob")
	ca, cb := e.client(), e.client()
	e.login(ca, alice)
	e.login(cb, bob)
	for _, p := range []string{"/", "/models", "/monitor", "/analytics"} {
		ra, rb := e.get(ca, p), e.get(cb, p)
		if !strings.Contains(ra.body, ">alice") || strings.Contains(ra.body, ">bob") ||
			!strings.Contains(rb.body, ">bob") || strings.Contains(rb.body, ">alice") {
			t.Errorf("GET %s: a user got the other's page", p)
		}
	}
	e.get(ca, "/models")
	e.model(alice, map[string]any{"name": "made-through-the-api", "provider": "x"})
	if r := e.get(ca, "/models"); !strings.Contains(r.body, "made-through-the-api") {
		t.Errorf("a model created through the API is missing from the next /models")
	}
	e.get(ca, "/monitor")
	e.server(alice, map[string]any{"name": "node-from-api"})
	if r := e.get(ca, "/monitor"); !strings.Contains(r.body, "node-from-api") {
		t.Errorf("a server created through the API is missing from the next /monitor")
	}
	if r := e.get(cb, "/models"); strings.Contains(r.body, "made-through-the-api") {
		t.Errorf("bob sees alice's private model")
	}
}
