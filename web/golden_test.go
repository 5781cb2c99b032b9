package web_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The golden tests render every page through the real server (fixed clock,
// the demo data set entered through the API) and compare the HTML with
// testdata/*.golden. Random parts — IDs, anti-CSRF values, asset hashes —
// are replaced by stable placeholders first. Run with -update to accept a
// change after looking at the diff.

var update = flag.Bool("update", false, "rewrite the golden files of the page tests")

// goldenNow is the fixed clock of the golden tests.
var goldenNow = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

var (
	idRE = regexp.MustCompile(`\b(mdl|srv|usr|run|cnv|msg|tok)_[0-9a-z]{20}\b`)
	// Token secrets are random: a page shows one once, after creating it.
	secretRE = regexp.MustCompile(`\bmlk_[A-Za-z0-9_-]{43}`)
	// Token lookups are cache entries named by the hash of a random token.
	tokenKeyRE = regexp.MustCompile(`\bauth:token:[0-9a-f]{64}\b`)
	assetRE    = regexp.MustCompile(`\?v=[0-9a-f]{12}`)
	// The tags of live parts hash bodies that hold random IDs.
	liveTagRE = regexp.MustCompile(`W/&#34;(mon|run)-[0-9a-f]+&#34;`)
)

// normalise replaces what differs between runs by stable placeholders.
// IDs are numbered in order of appearance, so that a page still shows which
// rows share an ID.
func normalise(body string) string {
	body = csrfRE.ReplaceAllString(body, `name="csrf" value="CSRF"`)
	body = assetRE.ReplaceAllString(body, "?v=HASH")
	body = secretRE.ReplaceAllString(body, "mlk_SECRET")
	body = tokenKeyRE.ReplaceAllString(body, "auth:token:HASH")
	body = liveTagRE.ReplaceAllString(body, "W/&#34;$1-TAG&#34;")
	seen := map[string]string{}
	counts := map[string]int{}
	return idRE.ReplaceAllStringFunc(body, func(id string) string {
		if p, ok := seen[id]; ok {
			return p
		}
		prefix := id[:3]
		counts[prefix]++
		p := fmt.Sprintf("%s_%020d", prefix, counts[prefix])
		seen[id] = p
		return p
	})
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	got = normalise(got)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./web -run TestGolden -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from %s at line %d:\n got: %s\nwant: %s\n(run with -update to accept)", name, path, i+1, g, w)
			}
		}
	}
}

func TestGolden(t *testing.T) {
	e := newEnv(t, func() time.Time { return goldenNow })
	d := seedDemo(e, goldenNow)
	c := e.client()
	csrf := e.login(c, d.token)

	// Alice has done two lessons of Lab Academy.
	for _, slug := range []string{"welcome", "tokens"} {
		e.api("POST", "/api/academy/lessons/"+slug+"/complete", d.token, nil, 200)
	}

	// A second user with nothing yet: the empty states.
	emptyTok, _ := e.user("bob")
	ec := e.client()
	e.login(ec, emptyTok)

	// Alice's tokens: the initial one, whose use (recorded in the
	// background, within seconds) the page shows, and one that expires.
	e.api("POST", "/api/tokens", d.token, map[string]any{"name": "ci", "expires_in_hours": 720}, 201)
	waitUsed(t, e, d.token)

	// The admin, for the cache view (last: it shows what the others read).
	ac := e.client()
	e.login(ac, adminToken)

	tests := []struct {
		name   string
		client *http.Client
		method string
		path   string
		form   url.Values
		status int
	}{
		{"login", e.client(), "GET", "/login", nil, 200},
		{"login-wrong-token", e.client(), "POST-LOGIN", "/login", url.Values{"token": {"mlk_wrong"}}, 401},
		{"home", c, "GET", "/", nil, 200},
		{"home-empty", ec, "GET", "/", nil, 200},
		{"models", c, "GET", "/models", nil, 200},
		{"models-filtered", c, "GET", "/models?scope=mine&q=bot", nil, 200},
		{"models-no-match", c, "GET", "/models?q=nothing-like-this", nil, 200},
		{"models-empty", ec, "GET", "/models?scope=mine", nil, 200},
		{"models-invalid", c, "POST", "/models", url.Values{"name": {""}, "provider": {" "}, "context_length": {"-3"}, "description": {"kept <b>escaped</b>"}}, 400},
		{"models-conflict", c, "POST", "/models", url.Values{"name": {"support-bot-ft"}, "provider": {"meta"}}, 409},
		{"monitor", c, "GET", "/monitor", nil, 200},
		{"monitor-data", c, "GET", "/monitor/data", nil, 200},
		{"monitor-empty", ec, "GET", "/monitor", nil, 200},
		{"run", c, "GET", "/monitor/runs/" + d.runs[0].ID, nil, 200},
		{"run-live", c, "GET", "/monitor/runs/" + d.runs[0].ID + "/live", nil, 200},
		{"run-finished", c, "GET", "/monitor/runs/" + d.runs[1].ID, nil, 200},
		{"run-not-found", ec, "GET", "/monitor/runs/" + d.runs[0].ID, nil, 404},
		{"analytics", c, "GET", "/analytics", nil, 200},
		{"analytics-hourly-model", c, "GET", "/analytics?from=2025-03-13&to=2025-03-14&interval=hour&model_id=" + d.models[0].ID, nil, 200},
		{"analytics-invalid", c, "GET", "/analytics?from=2025-03-14&to=2025-03-01", nil, 400},
		{"analytics-empty", ec, "GET", "/analytics", nil, 200},
		{"docs", e.client(), "GET", "/docs", nil, 200},
		{"academy", e.client(), "GET", "/academy", nil, 200},
		{"academy-progress", c, "GET", "/academy", nil, 200},
		{"lesson", e.client(), "GET", "/academy/first-model", nil, 200},
		{"lesson-progress", c, "GET", "/academy/tokens", nil, 200},
		{"lesson-not-found", e.client(), "GET", "/academy/no-such-lesson", nil, 404},
		{"error-forbidden", c, "POST", "/models/" + d.models[0].ID + "/delete", url.Values{"csrf": {"wrong"}}, 403},
		{"error-not-found", c, "POST", "/models/mdl_doesnotexist000000000/delete", nil, 404},
		{"tokens", c, "GET", "/settings/tokens", nil, 200},
		{"tokens-invalid", c, "POST", "/settings/tokens", url.Values{"name": {""}, "expires_in_hours": {"-1"}}, 400},
		{"tokens-created", c, "POST", "/settings/tokens", url.Values{"name": {"laptop"}, "expires_in_hours": {""}}, 200},
		{"admin-cache", ac, "GET", "/admin/cache?prefix=api:models:global", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r resp
			switch tt.method {
			case "GET":
				r = e.get(tt.client, tt.path)
			case "POST-LOGIN":
				form := e.get(tt.client, "/login")
				tt.form.Set("csrf", csrfOf(t, form.body))
				r = e.post(tt.client, tt.path, tt.form)
			default:
				if !tt.form.Has("csrf") {
					tt.form = cloneValues(tt.form)
					tt.form.Set("csrf", csrf)
				}
				r = e.post(tt.client, tt.path, tt.form)
			}
			if r.status != tt.status {
				t.Fatalf("%s %s: status %d, want %d; body:\n%s", tt.method, tt.path, r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			checkGolden(t, tt.name, r.body)
		})
	}
}

// waitUsed waits until the use of token shows in its last_used_at. It
// reads the service directly: requests would add token lookups, in
// numbers that vary, to the cache figures that the admin page shows.
func waitUsed(t *testing.T, e *env, token string) {
	t.Helper()
	ctx := context.Background()
	u, err := e.svc.Authenticate(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		list, err := e.svc.ListTokens(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range list {
			if tk.Name == "initial" && tk.LastUsedAt != nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the token's use was not recorded within 15s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
