package web_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/internal/testenv"
	"github.com/modellab/modellab/server"
	"github.com/modellab/modellab/service"
	"github.com/modellab/modellab/store"
	"github.com/modellab/modellab/web"
)

const adminToken = "test-admin-token-0123456789"

// env is a real server (SQLite in a temp dir, memory-only cache) with the
// pages mounted, as cmd/modellab wires it.
type env struct {
	t     *testing.T
	svc   *service.Service
	pages *web.Pages
	hs    *httptest.Server
	url   string
}

// newEnv starts the server; opts adjust the service's configuration (the
// chat tests give it a gateway of their own).
func newEnv(t *testing.T, now func() time.Time, opts ...func(*service.Config)) *env {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A generous statement timeout: under -race on a busy machine the
	// analytics queries can take seconds, which is not what these tests test.
	db, err := testenv.OpenStore(ctx, t, "sqlite://"+filepath.Join(t.TempDir(), "test.db"), store.Options{Logger: log, QueryTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Options{Logger: log, DisableRedis: true, Now: now})
	if err != nil {
		t.Fatalf("cache: %v", err)
	}
	t.Cleanup(c.Close)
	scfg := service.Config{Store: db, Cache: c, Logger: log, AdminToken: adminToken, Now: now}
	for _, o := range opts {
		o(&scfg)
	}
	st := testenv.NewStack(t, testenv.StackConfig{
		Service: scfg,
		Server:  server.Config{Logger: log},
		Pages:   true,
	})
	hs := httptest.NewServer(st.Handler)
	t.Cleanup(hs.Close)
	return &env{t: t, svc: st.Service, pages: st.Pages, hs: hs, url: hs.URL}
}

// resp is a response read whole.
type resp struct {
	status int
	header http.Header
	body   string
}

// client returns a browser-like client: a cookie jar, no redirect following
// (tests look at the 303s themselves).
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) send(c *http.Client, req *http.Request) resp {
	e.t.Helper()
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (e *env) get(c *http.Client, path string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.send(c, req)
}

func (e *env) post(c *http.Client, path string, form url.Values, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.send(c, req)
}

func (e *env) apiClient() *testenv.Client {
	return &testenv.Client{T: e.t, URL: e.url, AdminToken: adminToken}
}

// api calls the JSON API with a bearer token; body may be nil.
func (e *env) api(method, path, token string, body any, want int) []byte {
	e.t.Helper()
	return e.apiClient().Must(want, method, path, token, body).Body
}

func (e *env) user(name string) (token, id string) {
	e.t.Helper()
	return e.apiClient().User(name)
}

func (e *env) model(token string, body map[string]any) modellab.Model {
	e.t.Helper()
	return e.apiClient().Model(token, body)
}

func (e *env) server(token string, body map[string]any) modellab.Server {
	e.t.Helper()
	var s modellab.Server
	e.apiClient().Must(201, "POST", "/api/servers", token, body).JSON(e.t, &s)
	return s
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// csrfOf returns the anti-CSRF value of the first form of a page.
func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in the page:\n%s", body)
	}
	return m[1]
}

// login logs c in with token through the form and returns the page's
// anti-CSRF value for later forms.
func (e *env) login(c *http.Client, token string) string {
	e.t.Helper()
	form := e.get(c, "/login")
	if form.status != 200 {
		e.t.Fatalf("GET /login: %d", form.status)
	}
	r := e.post(c, "/login", url.Values{"token": {token}, "csrf": {csrfOf(e.t, form.body)}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		e.t.Fatalf("POST /login: %d Location %q; body %s", r.status, r.header.Get("Location"), r.body)
	}
	home := e.get(c, "/")
	if home.status != 200 {
		e.t.Fatalf("GET / after login: %d", home.status)
	}
	return csrfOf(e.t, home.body)
}

// demo is the data set of the golden and browser tests.
type demo struct {
	token   string // alice's
	models  []modellab.Model
	servers []modellab.Server
	runs    []modellab.Run // running, finished, failed
}

// seedDemo fills e through the API with a small, deterministic lab for
// alice: private and global models, servers in every state, and a week of
// hourly usage ending at now.
func seedDemo(e *env, now time.Time) demo {
	e.t.Helper()
	var d demo
	d.token, _ = e.user("alice")
	e.model(adminToken, map[string]any{"name": "llama-3.1-8b-instruct", "provider": "meta", "base_model": "llama-3.1-8b", "context_length": 131072, "visibility": "global", "description": "General-purpose instruction model."})
	e.model(adminToken, map[string]any{"name": "mistral-7b-v0.3", "provider": "mistral", "base_model": "mistral-7b", "context_length": 32768, "visibility": "global"})
	for _, m := range []map[string]any{
		{"name": "support-bot-ft", "provider": "meta", "base_model": "llama-3.1-8b-instruct", "context_length": 8192, "description": "Fine-tuned on 40k support tickets."},
		{"name": "code-review-lora", "provider": "local", "base_model": "qwen2.5-coder-7b", "context_length": 16384},
		{"name": "summarizer-small", "provider": "local"},
	} {
		d.models = append(d.models, e.model(d.token, m))
	}
	hb := now.Add(-90 * time.Second).UTC().Format(time.RFC3339)
	for i, s := range []map[string]any{
		{"name": "a100-node-1", "status": "running", "gpu": "A100 80GB", "endpoint": "http://10.0.0.11:8000", "last_heartbeat": hb},
		{"name": "a100-node-2", "status": "running", "gpu": "A100 80GB", "endpoint": "http://10.0.0.12:8000", "last_heartbeat": hb},
		{"name": "h100-train-1", "status": "starting", "gpu": "H100", "endpoint": "http://10.0.0.21:8000"},
		{"name": "l4-batch", "status": "stopped", "gpu": "L4", "endpoint": ""},
		{"name": "t4-legacy", "status": "error", "gpu": "T4", "endpoint": "http://10.0.0.41:8000", "last_heartbeat": hb},
	} {
		s["model_id"] = d.models[i%len(d.models)].ID
		d.servers = append(d.servers, e.server(d.token, s))
	}
	// A week of traffic: a daily wave, a few errors, deterministic.
	var events []map[string]any
	end := now.UTC().Truncate(time.Hour)
	for h := 0; h < 7*24; h++ {
		t := end.Add(-time.Duration(h) * time.Hour)
		hour := t.Hour()
		n := 2 + (hour*7+h)%5
		if hour >= 8 && hour <= 18 {
			n += 6
		}
		for i := 0; i < n; i++ {
			m := d.models[(h+i)%len(d.models)]
			status := "ok"
			if (h*31+i*17)%23 == 0 {
				status = "error"
			}
			events = append(events, map[string]any{
				"model_id": m.ID, "timestamp": t.Add(time.Duration(i) * time.Minute).Format(time.RFC3339),
				"input_tokens": 200 + (h*13+i*29)%400, "output_tokens": 100 + (h*7+i*11)%900,
				"latency_ms": float64(180 + (h*37+i*53)%600), "status": status, "cost_usd": 0.0004 * float64(1+i%3),
			})
		}
	}
	for len(events) > 0 {
		n := min(len(events), 1000)
		e.api("POST", "/api/analytics/events", d.token, map[string]any{"events": events[:n]}, 202)
		events = events[n:]
	}
	d.runs = seedRuns(e, d, now)
	return d
}

// getHeader GETs an API path anonymously and returns one header of the
// answer.
func (e *env) getHeader(path, name string) string {
	e.t.Helper()
	return e.apiClient().Must(200, "GET", path, "", nil).Header.Get(name)
}

// seedRuns gives alice three training runs with deterministic curves: one
// running, one finished, one failed early.
func seedRuns(e *env, d demo, now time.Time) []modellab.Run {
	e.t.Helper()
	var runs []modellab.Run
	for i, spec := range []struct {
		name, status string
		steps        int
		params       map[string]any
	}{
		{"support-bot-sweep-lr3e-4", "running", 300, map[string]any{"lr": 3e-4, "batch_size": 32, "optimizer": "adamw", "fp16": true}},
		{"support-bot-baseline", "finished", 400, map[string]any{"lr": 1e-4, "batch_size": 16, "optimizer": "adamw"}},
		{"summarizer-lr1e-2", "failed", 60, map[string]any{"lr": 1e-2, "batch_size": 64}},
	} {
		var r modellab.Run
		body := map[string]any{"name": spec.name, "model_id": d.models[i%2].ID, "params": spec.params}
		e.apiClient().Must(201, "POST", "/api/runs", d.token, body).JSON(e.t, &r)
		start := now.Add(-time.Duration(spec.steps) * 10 * time.Second)
		var pts []map[string]any
		for s := 0; s < spec.steps; s++ {
			ts := start.Add(time.Duration(s) * 10 * time.Second).UTC().Format(time.RFC3339)
			loss := 0.35 + 2.2*math.Exp(-float64(s)/(60+40*float64(i))) + 0.04*math.Sin(float64(s)*1.3)
			if spec.status == "failed" && s > 40 {
				loss += float64(s-40) * 0.3
			}
			lr := spec.params["lr"].(float64) * math.Min(1, float64(s+1)/30)
			pts = append(pts, map[string]any{"key": "loss", "step": s * 10, "value": math.Round(loss*1e4) / 1e4, "timestamp": ts},
				map[string]any{"key": "lr", "step": s * 10, "value": lr, "timestamp": ts})
			if s%50 == 49 {
				pts = append(pts, map[string]any{"key": "eval/loss", "step": s * 10, "value": math.Round((loss+0.08)*1e4) / 1e4, "timestamp": ts})
			}
		}
		e.api("POST", "/api/runs/"+r.ID+"/metrics", d.token, map[string]any{"points": pts}, 202)
		if spec.status != "running" {
			e.api("PATCH", "/api/runs/"+r.ID, d.token, map[string]any{"status": spec.status}, 200)
		}
		runs = append(runs, r)
	}
	return runs
}
