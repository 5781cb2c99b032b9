package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/modellab/modellab"
)

// oaCheck validates real exchanges with the server against the embedded
// OpenAPI document: the request must match a documented operation, the
// response status must be documented for it and the body and headers must
// match. It records which operations were exercised, so that the test can
// insist on every one of them.
type oaCheck struct {
	t      *testing.T
	e      *env
	doc    *openapi3.T
	router routers.Router
	seen   map[string]bool // "METHOD /path/template"
}

// textDecoder lets kin-openapi check the pages, whose bodies are text: the
// document says only that they are strings of the given media type.
func textDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	return string(b), err
}

func init() {
	for _, ct := range []string{"text/html", "text/css", "text/javascript"} {
		openapi3filter.RegisterBodyDecoder(ct, textDecoder)
	}
}

func newOACheck(t *testing.T, e *env) *oaCheck {
	t.Helper()
	spec, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	// The router matches on the server URL: point it at the test server.
	doc.Servers = openapi3.Servers{{URL: e.url}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &oaCheck{t: t, e: e, doc: doc, router: router, seen: map[string]bool{}}
}

// exchange sends a request and validates both sides. body is sent with
// contentType; c may carry a session cookie; want is the expected status.
func (o *oaCheck) exchange(c *http.Client, method, path, token, contentType string, body []byte, want int, hdr ...string) resp {
	o.t.Helper()
	newReq := func() *http.Request {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, o.e.url+path, rd)
		if err != nil {
			o.t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return req
	}
	r := o.e.send(c, newReq())
	if r.status != want {
		o.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}

	req := newReq()
	route, params, err := o.router.FindRoute(req)
	if err != nil {
		o.t.Fatalf("%s %s is not documented in openapi.json: %v", method, path, err)
	}
	key := method + " " + route.Path
	o.seen[key] = true
	opts := &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	// Requests the server accepted must match the documented body too.
	if r.status < 400 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			o.t.Errorf("%s %s: the request does not match the document: %v", method, path, err)
		}
	}
	if route.Operation.Responses.Status(r.status) == nil {
		o.t.Errorf("%s: status %d is not documented", key, r.status)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: r.header,
		Body: io.NopCloser(strings.NewReader(r.body)), Options: opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		o.t.Errorf("%s %s → %d: the response does not match the document: %v", method, path, r.status, err)
	}
	return r
}

func (o *oaCheck) json(method, path, token string, body any, want int, hdr ...string) resp {
	o.t.Helper()
	var b []byte
	ct := ""
	if body != nil {
		switch v := body.(type) {
		case []byte:
			b = v
		default:
			var err error
			if b, err = json.Marshal(body); err != nil {
				o.t.Fatal(err)
			}
		}
		ct = "application/json"
	}
	return o.exchange(http.DefaultClient, method, path, token, ct, b, want, hdr...)
}

func (o *oaCheck) form(c *http.Client, path string, v url.Values, want int, hdr ...string) resp {
	o.t.Helper()
	return o.exchange(c, "POST", path, "", "application/x-www-form-urlencoded", []byte(v.Encode()), want, hdr...)
}

// errorShape validates a body against the Error schema, for the answers
// that no operation owns (unknown paths, wrong methods).
func (o *oaCheck) errorShape(r resp) {
	o.t.Helper()
	var v any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		o.t.Fatalf("error body %q: %v", r.body, err)
	}
	if err := o.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		o.t.Errorf("error body %s does not match Error: %v", r.body, err)
	}
}

func TestOpenAPI(t *testing.T) {
	e := newEnv(t, time.Now)
	o := newOACheck(t, e)
	var out struct {
		User  modellab.User `json:"user"`
		Token string        `json:"token"`
	}

	// Users.
	if err := json.Unmarshal([]byte(o.json("POST", "/api/users", adminToken, map[string]any{"name": "alice"}, 201).body), &out); err != nil {
		t.Fatal(err)
	}
	alice := out.Token
	bob, _ := e.user("bob")
	o.json("POST", "/api/users", "", map[string]any{"name": "x"}, 401)
	o.json("POST", "/api/users", alice, map[string]any{"name": "x"}, 403)
	o.json("POST", "/api/users", adminToken, map[string]any{"name": ""}, 400)
	big := []byte(`{"name": "` + strings.Repeat("x", 2<<20) + `"}`) // over the 1 MiB body limit
	o.json("POST", "/api/users", adminToken, big, 413)

	// Tokens.
	var ct struct {
		Token  modellab.Token `json:"token"`
		Secret string         `json:"secret"`
	}
	if err := json.Unmarshal([]byte(o.json("POST", "/api/tokens", alice, map[string]any{"name": "ci", "expires_in_hours": 720}, 201).body), &ct); err != nil {
		t.Fatal(err)
	}
	o.json("POST", "/api/tokens", alice, map[string]any{"name": "forever"}, 201)
	o.json("POST", "/api/tokens", alice, map[string]any{"name": "x", "expires_in_hours": 0}, 400)
	o.json("POST", "/api/tokens", "", map[string]any{"name": "x"}, 401)
	o.json("POST", "/api/tokens", alice, big, 413)
	o.json("GET", "/api/tokens", ct.Secret, nil, 200)
	o.json("GET", "/api/tokens", "", nil, 401)
	o.json("DELETE", "/api/tokens/"+ct.Token.ID, bob, nil, 404)
	o.json("DELETE", "/api/tokens/"+ct.Token.ID, alice, nil, 204)
	o.json("DELETE", "/api/tokens/"+ct.Token.ID, alice, nil, 404)
	o.json("GET", "/api/tokens", ct.Secret, nil, 401)
	o.json("DELETE", "/api/tokens/"+ct.Token.ID, "", nil, 401)

	// Models.
	var m modellab.Model
	r := o.json("POST", "/api/models", alice, map[string]any{"name": "m1", "provider": "meta", "context_length": 8192, "description": "d"}, 201)
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatal(err)
	}
	o.json("POST", "/api/models", adminToken, map[string]any{"name": "g1", "provider": "meta", "visibility": "global"}, 201)
	o.json("POST", "/api/models", alice, map[string]any{"name": "m1", "provider": "meta"}, 409)
	o.json("POST", "/api/models", alice, map[string]any{"name": "g2", "provider": "meta", "visibility": "global"}, 403)
	o.json("POST", "/api/models", alice, map[string]any{"name": "", "provider": "meta"}, 400)
	o.json("POST", "/api/models", "", map[string]any{"name": "x", "provider": "meta"}, 401)
	o.json("POST", "/api/models", alice, big, 413)
	o.json("GET", "/api/models", "", nil, 200)
	r = o.json("GET", "/api/models", alice, nil, 200)
	o.json("GET", "/api/models", alice, nil, 304, "If-None-Match", r.header.Get("ETag"))
	var page struct {
		Next string `json:"next_page_token"`
	}
	if err := json.Unmarshal([]byte(o.json("GET", "/api/models?limit=1", alice, nil, 200).body), &page); err != nil || page.Next == "" {
		t.Fatalf("first page: %v %+v", err, page)
	}
	o.json("GET", "/api/models?limit=1&page_token="+url.QueryEscape(page.Next), alice, nil, 200)
	o.json("GET", "/api/models?limit=0", alice, nil, 400)
	o.json("GET", "/api/models", "mlk_wrong", nil, 401)
	o.json("GET", "/api/models/"+m.ID, alice, nil, 200)
	o.json("GET", "/api/models/"+m.ID, bob, nil, 404)
	o.json("GET", "/api/models/"+m.ID, "mlk_wrong", nil, 401)
	o.json("PATCH", "/api/models/"+m.ID, alice, map[string]any{"description": "new", "context_length": nil}, 200)
	o.json("PATCH", "/api/models/"+m.ID, alice, map[string]any{"name": nil}, 400)
	o.json("PATCH", "/api/models/"+m.ID, bob, map[string]any{"description": "x"}, 404)
	o.json("PATCH", "/api/models/"+m.ID, "", map[string]any{"description": "x"}, 401)
	o.json("PATCH", "/api/models/"+m.ID, alice, big, 413)
	m1b := e.model(alice, map[string]any{"name": "m1b", "provider": "meta"})
	o.json("PATCH", "/api/models/"+m1b.ID, alice, map[string]any{"name": "m1"}, 409)
	g1 := e.model(adminToken, map[string]any{"name": "g3", "provider": "meta", "visibility": "global"})
	o.json("PATCH", "/api/models/"+g1.ID, alice, map[string]any{"description": "mine now"}, 403)
	o.json("DELETE", "/api/models/"+g1.ID, alice, nil, 403)
	o.json("DELETE", "/api/models/"+g1.ID, "", nil, 401)

	// Servers.
	var s modellab.Server
	r = o.json("POST", "/api/servers", alice, map[string]any{"name": "node-1", "model_id": m.ID, "gpu": "A100", "endpoint": "http://10.0.0.1:8000"}, 201)
	if err := json.Unmarshal([]byte(r.body), &s); err != nil {
		t.Fatal(err)
	}
	o.json("POST", "/api/servers", alice, map[string]any{"name": "node-2", "model_id": "mdl_nope0000000000000000"}, 400)
	o.json("POST", "/api/servers", alice, map[string]any{"name": "node-1"}, 409)
	o.json("POST", "/api/servers", "", map[string]any{"name": "node-3"}, 401)
	o.json("POST", "/api/servers", alice, big, 413)
	o.json("GET", "/api/servers/"+s.ID, alice, nil, 200)
	o.json("GET", "/api/servers/"+s.ID, bob, nil, 404)
	o.json("GET", "/api/servers/"+s.ID, "", nil, 401)
	o.json("PATCH", "/api/servers/"+s.ID, alice, map[string]any{"status": "running", "last_heartbeat": time.Now().UTC().Format(time.RFC3339)}, 200)
	o.json("PATCH", "/api/servers/"+s.ID, alice, map[string]any{"status": "flying"}, 400)
	o.json("PATCH", "/api/servers/"+s.ID, bob, map[string]any{"status": "stopped"}, 404)
	o.json("PATCH", "/api/servers/"+s.ID, "", map[string]any{"status": "stopped"}, 401)
	o.json("PATCH", "/api/servers/"+s.ID, alice, big, 413)
	s2 := e.server(alice, map[string]any{"name": "node-2"})
	o.json("PATCH", "/api/servers/"+s2.ID, alice, map[string]any{"name": "node-1"}, 409)
	r = o.json("GET", "/api/servers/status", alice, nil, 200)
	o.json("GET", "/api/servers/status", alice, nil, 304, "If-None-Match", r.header.Get("ETag"))
	o.json("GET", "/api/servers/status", "", nil, 401)
	o.json("GET", "/api/servers/status", bob, nil, 200) // empty list

	// Analytics.
	now := time.Now().UTC()
	o.json("POST", "/api/analytics/events", alice, map[string]any{"events": []map[string]any{
		{"model_id": m.ID, "timestamp": now.Add(-time.Hour).Format(time.RFC3339), "input_tokens": 10, "output_tokens": 20, "latency_ms": 120.5, "status": "ok", "cost_usd": 0.001},
		{"model_id": m.ID, "input_tokens": 1, "output_tokens": 2, "latency_ms": 80, "status": "error"},
	}}, 202)
	o.json("POST", "/api/analytics/events", alice, map[string]any{"events": []any{}}, 400)
	o.json("POST", "/api/analytics/events", "", map[string]any{"events": []any{}}, 401)
	o.json("POST", "/api/analytics/events", alice, big, 413)
	r = o.json("GET", "/api/analytics/data", alice, nil, 200)
	o.json("GET", "/api/analytics/data", alice, nil, 304, "If-None-Match", r.header.Get("ETag"))
	o.json("GET", "/api/analytics/data?interval=hour&model_id="+m.ID+"&from="+now.Add(-48*time.Hour).Format(time.RFC3339), alice, nil, 200)
	o.json("GET", "/api/analytics/data?interval=week", alice, nil, 400)
	o.json("GET", "/api/analytics/data", "", nil, 401)

	// Lab Academy.
	r = o.json("GET", "/api/academy/courses", "", nil, 200)
	o.json("GET", "/api/academy/courses", alice, nil, 304, "If-None-Match", r.header.Get("ETag"))
	r = o.json("GET", "/api/academy/lessons/welcome", "", nil, 200)
	o.json("GET", "/api/academy/lessons/welcome", "", nil, 304, "If-None-Match", r.header.Get("ETag"))
	o.json("GET", "/api/academy/lessons/composed-pages", alice, nil, 200) // the last: next is null
	o.json("GET", "/api/academy/lessons/no-such-lesson", "", nil, 404)
	o.json("POST", "/api/academy/lessons/welcome/complete", alice, nil, 200)
	o.json("POST", "/api/academy/lessons/welcome/complete", "", nil, 401)
	o.json("POST", "/api/academy/lessons/no-such-lesson/complete", alice, nil, 404)
	r = o.json("GET", "/api/academy/progress", alice, nil, 200)
	o.json("GET", "/api/academy/progress", alice, nil, 304, "If-None-Match", r.header.Get("ETag"))
	o.json("GET", "/api/academy/progress", "", nil, 401)

	// Training runs.
	var run modellab.Run
	r = o.json("POST", "/api/runs", alice, map[string]any{"name": "sweep-1", "model_id": m.ID, "params": map[string]any{"lr": 3e-4, "batch_size": 32, "optimizer": "adamw", "fp16": true}}, 201)
	if err := json.Unmarshal([]byte(r.body), &run); err != nil {
		t.Fatal(err)
	}
	o.json("POST", "/api/runs", alice, map[string]any{"name": "x", "model_id": "mdl_nope0000000000000000"}, 400)
	o.json("POST", "/api/runs", "", map[string]any{"name": "x"}, 401)
	o.json("GET", "/api/runs/"+run.ID, alice, nil, 200)
	o.json("GET", "/api/runs/"+run.ID, bob, nil, 404)
	o.json("POST", "/api/runs/"+run.ID+"/metrics", alice, map[string]any{"points": []map[string]any{
		{"key": "loss", "step": 0, "value": 2.5}, {"key": "loss", "step": 10, "value": 2.1, "timestamp": now.Add(-time.Minute).Format(time.RFC3339)},
		{"key": "lr", "step": 10, "value": 3e-4},
	}}, 202)
	o.json("POST", "/api/runs/"+run.ID+"/metrics", alice, []byte(`{"points": [{"key": "loss", "step": 20, "value": NaN}]}`), 400)
	o.json("POST", "/api/runs/"+run.ID+"/metrics", bob, map[string]any{"points": []map[string]any{{"key": "loss", "step": 1, "value": 1}}}, 404)
	r = o.json("GET", "/api/runs", alice, nil, 200)
	o.json("GET", "/api/runs", alice, nil, 304, "If-None-Match", r.header.Get("ETag"))
	o.json("GET", "/api/runs", "", nil, 401)
	r = o.json("GET", "/api/runs/"+run.ID+"/metrics?keys=loss,lr&after_step=0&max_points=2", alice, nil, 200)
	o.json("GET", "/api/runs/"+run.ID+"/metrics?keys=loss,lr&after_step=0&max_points=2", alice, nil, 304, "If-None-Match", r.header.Get("ETag"))
	o.json("GET", "/api/runs/"+run.ID+"/metrics", alice, nil, 200)
	o.json("GET", "/api/runs/"+run.ID+"/metrics?max_points=1", alice, nil, 400)
	o.json("GET", "/api/runs/"+run.ID+"/metrics", bob, nil, 404)
	o.json("PATCH", "/api/runs/"+run.ID, alice, map[string]any{"name": "sweep-1b"}, 200)
	o.json("PATCH", "/api/runs/"+run.ID, alice, map[string]any{"status": "paused"}, 400)

	// Cache and operations.
	o.json("GET", "/api/cache/stats", adminToken, nil, 200)
	o.json("GET", "/api/cache/stats", alice, nil, 403)
	o.json("GET", "/api/cache/stats", "", nil, 401)
	o.json("POST", "/api/cache/invalidate", adminToken, map[string]any{"pattern": "api:models:*"}, 200)
	o.json("POST", "/api/cache/invalidate", adminToken, map[string]any{"pattern": ""}, 400)
	o.json("POST", "/api/cache/invalidate", adminToken, map[string]any{"tag": "models:global"}, 200)
	o.json("POST", "/api/cache/invalidate", adminToken, map[string]any{"key": "api:models:global"}, 200)
	o.json("POST", "/api/cache/invalidate", alice, map[string]any{"pattern": "api:models:*"}, 403)
	o.json("POST", "/api/cache/invalidate", "", map[string]any{"pattern": "api:models:*"}, 401)
	o.json("POST", "/api/cache/invalidate", adminToken, big, 413)
	o.json("GET", "/healthz", "", nil, 200)
	o.json("GET", "/readyz", "", nil, 200)
	o.json("GET", "/metrics", "", nil, 200)

	// Pages.
	c := e.client()
	bigForm := []byte("token=" + strings.Repeat("x", 2<<20))
	o.exchange(c, "GET", "/", "", "", nil, 303)
	login := o.exchange(c, "GET", "/login", "", "", nil, 200)
	lcsrf := csrfOf(t, login.body)
	o.form(c, "/login", url.Values{"token": {"mlk_wrong"}, "csrf": {lcsrf}}, 401)
	o.form(c, "/login", url.Values{"token": {alice}, "csrf": {"nope"}}, 403)
	o.exchange(c, "POST", "/login", "", "application/x-www-form-urlencoded", []byte("token=%zz"), 400)
	o.exchange(c, "POST", "/login", "", "application/x-www-form-urlencoded", bigForm, 413)
	o.form(c, "/login", url.Values{"token": {alice}, "csrf": {lcsrf}}, 303)
	home := o.exchange(c, "GET", "/", "", "", nil, 200)
	csrf := csrfOf(t, home.body)
	o.exchange(c, "GET", "/login", "", "", nil, 303)
	o.exchange(c, "GET", "/models?scope=mine&page=1&q=m", "", "", nil, 200)
	o.form(c, "/models", url.Values{"csrf": {csrf}, "name": {"page-model"}, "provider": {"local"}, "context_length": {"4096"}, "visibility": {"private"}}, 303)
	o.form(c, "/models", url.Values{"csrf": {csrf}, "name": {""}, "provider": {"local"}}, 400)
	o.form(c, "/models", url.Values{"csrf": {csrf}, "name": {"page-model"}, "provider": {"local"}}, 409)
	o.form(c, "/models", url.Values{"csrf": {"wrong"}, "name": {"x"}, "provider": {"local"}}, 403)
	o.exchange(c, "POST", "/models", "", "application/x-www-form-urlencoded", bigForm, 413)
	o.exchange(c, "POST", "/models/"+m.ID+"/delete", "", "application/x-www-form-urlencoded", []byte("csrf=%zz"), 400)
	o.form(c, "/models/"+m.ID+"/delete", url.Values{"csrf": {"wrong"}}, 403)
	o.form(c, "/models/mdl_nope0000000000000000/delete", url.Values{"csrf": {csrf}}, 404)
	o.exchange(c, "GET", "/monitor", "", "", nil, 200)
	mon := o.exchange(c, "GET", "/monitor/data", "", "", nil, 200)
	o.exchange(c, "GET", "/monitor/data", "", "", nil, 304, "If-None-Match", mon.header.Get("ETag"))
	o.exchange(e.client(), "GET", "/monitor/data", "", "", nil, 401)
	o.exchange(c, "GET", "/monitor/runs/"+run.ID, "", "", nil, 200)
	o.exchange(c, "GET", "/monitor/runs/run_nope00000000000000000", "", "", nil, 404)
	live := o.exchange(c, "GET", "/monitor/runs/"+run.ID+"/live", "", "", nil, 200)
	o.exchange(c, "GET", "/monitor/runs/"+run.ID+"/live", "", "", nil, 304, "If-None-Match", live.header.Get("ETag"))
	o.exchange(c, "GET", "/monitor/runs/run_nope00000000000000000/live", "", "", nil, 404)
	o.exchange(e.client(), "GET", "/monitor/runs/"+run.ID+"/live", "", "", nil, 401)
	o.exchange(e.client(), "GET", "/monitor/runs/"+run.ID, "", "", nil, 303)
	o.exchange(c, "GET", "/analytics?interval=hour", "", "", nil, 200)
	o.exchange(c, "GET", "/analytics?interval=week", "", "", nil, 400)
	o.exchange(c, "GET", "/docs", "", "", nil, 200)
	o.exchange(e.client(), "GET", "/academy", "", "", nil, 200)
	o.exchange(c, "GET", "/academy", "", "", nil, 200)
	o.exchange(c, "GET", "/academy/tokens", "", "", nil, 200)
	o.exchange(c, "GET", "/academy/no-such-lesson", "", "", nil, 404)
	o.form(c, "/academy/tokens/complete", url.Values{"csrf": {csrf}}, 303)
	o.form(c, "/academy/tokens/complete", url.Values{"csrf": {"wrong"}}, 403)
	o.form(c, "/academy/no-such-lesson/complete", url.Values{"csrf": {csrf}}, 404)
	o.exchange(c, "GET", "/admin/cache", "", "", nil, 403)
	o.form(c, "/admin/cache/purge", url.Values{"csrf": {csrf}, "kind": {"key"}, "value": {"x"}}, 403)
	ac := e.client()
	o.form(ac, "/login", url.Values{"token": {adminToken}, "csrf": {csrfOf(t, o.exchange(ac, "GET", "/login", "", "", nil, 200).body)}}, 303)
	acsrf := csrfOf(t, o.exchange(ac, "GET", "/", "", "", nil, 200).body)
	o.exchange(ac, "GET", "/admin/cache?prefix=api:", "", "", nil, 200)
	o.form(ac, "/admin/cache/purge", url.Values{"csrf": {acsrf}, "kind": {"pattern"}, "value": {"api:academy:*"}}, 303)
	o.form(ac, "/admin/cache/purge", url.Values{"csrf": {acsrf}, "kind": {"pattern"}, "value": {""}}, 400)
	o.exchange(ac, "POST", "/admin/cache/purge", "", "application/x-www-form-urlencoded", bigForm, 413)
	spec := o.exchange(c, "GET", "/openapi.json", "", "", nil, 200)
	o.exchange(c, "GET", "/openapi.json", "", "", nil, 304, "If-None-Match", spec.header.Get("ETag"))
	css := o.exchange(c, "GET", "/static/style.css?v=1", "", "", nil, 200)
	o.exchange(c, "GET", "/static/style.css", "", "", nil, 304, "If-None-Match", css.header.Get("ETag"))
	o.exchange(c, "GET", "/static/monitor.js", "", "", nil, 200)
	o.exchange(c, "GET", "/static/nope.js", "", "", nil, 404)
	o.form(c, "/models/"+m.ID+"/delete", url.Values{"csrf": {csrf}}, 303)
	o.exchange(c, "GET", "/settings/tokens", "", "", nil, 200)
	o.exchange(e.client(), "GET", "/settings/tokens", "", "", nil, 303)
	created := o.form(c, "/settings/tokens", url.Values{"csrf": {csrf}, "name": {"laptop"}, "expires_in_hours": {"24"}}, 200)
	if !strings.Contains(created.body, modellab.TokenPrefix) {
		t.Errorf("the token form's answer shows no secret")
	}
	o.form(c, "/settings/tokens", url.Values{"csrf": {csrf}, "name": {"x"}, "expires_in_hours": {"-1"}}, 400)
	o.form(c, "/settings/tokens", url.Values{"csrf": {"wrong"}, "name": {"x"}}, 403)
	o.exchange(c, "POST", "/settings/tokens", "", "application/x-www-form-urlencoded", bigForm, 413)
	var mine struct {
		Tokens []modellab.Token `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(o.json("GET", "/api/tokens", alice, nil, 200).body), &mine); err != nil || len(mine.Tokens) == 0 {
		t.Fatalf("alice's tokens: %v %+v", err, mine)
	}
	o.form(c, "/settings/tokens/"+mine.Tokens[0].ID+"/revoke", url.Values{"csrf": {"wrong"}}, 403)
	o.exchange(c, "POST", "/settings/tokens/"+mine.Tokens[0].ID+"/revoke", "", "application/x-www-form-urlencoded", []byte("csrf=%zz"), 400)
	o.exchange(c, "POST", "/settings/tokens/"+mine.Tokens[0].ID+"/revoke", "", "application/x-www-form-urlencoded", bigForm, 413)
	o.form(c, "/settings/tokens/tok_nope00000000000000000/revoke", url.Values{"csrf": {csrf}}, 404)
	o.form(c, "/settings/tokens/"+mine.Tokens[0].ID+"/revoke", url.Values{"csrf": {csrf}}, 303)
	exerciseChat(t, chatOA{o: o, c: c, csrf: csrf, alice: alice, bob: bob})
	o.form(c, "/logout", url.Values{"csrf": {csrf}}, 303)

	// Deletes last: they remove what the rest used.
	o.json("PATCH", "/api/runs/"+run.ID, alice, map[string]any{"status": "finished"}, 200)
	o.json("DELETE", "/api/runs/"+run.ID, bob, nil, 404)
	o.json("DELETE", "/api/runs/"+run.ID, alice, nil, 204)
	o.json("DELETE", "/api/servers/"+s.ID, alice, nil, 204)
	o.json("DELETE", "/api/servers/"+s.ID, alice, nil, 404)
	m2 := e.model(alice, map[string]any{"name": "m2", "provider": "x"})
	o.json("DELETE", "/api/models/"+m2.ID, bob, nil, 404)
	o.json("DELETE", "/api/models/"+m2.ID, alice, nil, 204)

	// Answers no operation owns still have the Error shape.
	o.errorShape(e.get(e.client(), "/api/nope"))
	r = e.send(http.DefaultClient, mustRequest(t, "PUT", e.url+"/api/models"))
	if r.status != 405 || r.header.Get("Allow") == "" {
		t.Errorf("PUT /api/models: %d Allow %q, want 405 with Allow", r.status, r.header.Get("Allow"))
	}
	o.errorShape(r)

	// Every documented operation was exercised.
	var missing []string
	for path, item := range o.doc.Paths.Map() {
		for method := range item.Operations() {
			if !o.seen[method+" "+path] {
				missing = append(missing, method+" "+path)
			}
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("operations of openapi.json that no request exercised:\n  %s", strings.Join(missing, "\n  "))
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestOpenAPIErrorResponses holds the document to the error rules of the
// contract where no exchange can reach cheaply (a database that is down, a
// bug): every operation has a camelCase operationId; every operation of
// the JSON API documents 500 and 503 (with Retry-After), 401 unless it is
// public, 400 and 413 when it takes a body, and answers its errors in the Error shape, whose
// code lists every code of the domain.
func TestOpenAPIErrorResponses(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("openapi.json")
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	errorRef := "#/components/schemas/Error"
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if !operationIDRE.MatchString(op.OperationID) {
				t.Errorf("%s: operationId %q, want camelCase", name, op.OperationID)
			}
			if !strings.HasPrefix(path, "/api/") {
				continue
			}
			// A public operation (security: []) never looks at
			// credentials, so it cannot answer 401; any operation can be
			// shed with 503.
			want := []int{500, 503}
			if op.Security == nil || len(*op.Security) > 0 {
				want = append(want, 401)
			}
			if op.RequestBody != nil {
				want = append(want, 400, 413)
			}
			for _, code := range want {
				if op.Responses.Status(code) == nil {
					t.Errorf("%s: status %d is not documented", name, code)
				}
			}
			if r := op.Responses.Status(401); r != nil {
				if h := r.Value.Headers["WWW-Authenticate"]; h == nil || !h.Value.Required {
					t.Errorf("%s: 401 without a required WWW-Authenticate header", name)
				}
			}
			if r := op.Responses.Status(503); r != nil {
				if h := r.Value.Headers["Retry-After"]; h == nil || !h.Value.Required {
					t.Errorf("%s: 503 without a required Retry-After header", name)
				}
			}
			for code, r := range op.Responses.Map() {
				if code[0] < '4' {
					continue
				}
				mt := r.Value.Content.Get("application/json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != errorRef {
					t.Errorf("%s: %s is not an Error", name, code)
				}
			}
		}
	}
	codes := doc.Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value.Enum
	for _, code := range []string{modellab.EINVALID, modellab.EUNAUTHORIZED, modellab.EFORBIDDEN, modellab.ENOTFOUND,
		modellab.ECONFLICT, modellab.ETOOLARGE, modellab.EUNAVAILABLE, modellab.EINTERNAL} {
		if !slices.Contains(codes, any(code)) {
			t.Errorf("Error.code does not list %q", code)
		}
	}
}

var operationIDRE = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
