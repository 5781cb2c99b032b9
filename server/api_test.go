package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

func engines(t *testing.T, fn func(t *testing.T, engine string)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) { fn(t, engine) })
	}
}

func TestAPIUsers(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, envOpts{engine: engine})
		if got := e.do("POST", "/api/users", "", map[string]any{"name": "x"}); got.status != 401 || got.errorCode(t) != "unauthorized" {
			t.Fatalf("anonymous create user: %d %s", got.status, got.body)
		}
		tok, id := e.user("alice")
		if !strings.HasPrefix(id, modellab.PrefixUser) || tok == "" {
			t.Fatalf("user id %q token %q", id, tok)
		}
		if got := e.do("POST", "/api/users", tok, map[string]any{"name": "x"}); got.status != 403 || got.errorCode(t) != "forbidden" {
			t.Fatalf("non-admin create user: %d %s", got.status, got.body)
		}
		// The new token authenticates.
		e.must(200, "GET", "/api/servers/status", tok, nil)
		for _, bad := range []string{"Basic abc", "Bearer", "Bearer ", "Token x"} {
			r := e.do("GET", "/api/servers/status", "", nil, "Authorization", bad)
			if r.status != 401 || r.errorCode(t) != "unauthorized" {
				t.Errorf("Authorization %q: %d %s", bad, r.status, r.body)
			}
		}
		if r := e.do("GET", "/api/servers/status", "mlk_not-a-real-token", nil); r.status != 401 {
			t.Errorf("unknown token: %d", r.status)
		}
		if r := e.do("GET", "/api/models", "mlk_not-a-real-token", nil); r.status != 401 {
			t.Errorf("unknown token on an optional-auth route: %d", r.status)
		}
	})
}

func TestAPIModels(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, envOpts{engine: engine})
		alice, aliceID := e.user("alice")
		bob, _ := e.user("bob")

		g := e.model(adminToken, map[string]any{"name": "zeta-global", "provider": "meta", "visibility": "global"})
		if g.Visibility != "global" || g.OwnerID != nil {
			t.Fatalf("global model: %+v", g)
		}
		a1 := e.model(alice, map[string]any{"name": "B-model", "provider": "local", "context_length": 8192, "description": "line one\nline two"})
		if a1.Visibility != "private" || a1.OwnerID == nil || *a1.OwnerID != aliceID || *a1.ContextLength != 8192 {
			t.Fatalf("private model: %+v", a1)
		}
		e.model(alice, map[string]any{"name": "a-model", "provider": "local"})
		e.model(alice, map[string]any{"name": "émoji-😀", "provider": "local"})
		// Same name, other owner: fine. Same owner: conflict.
		e.model(bob, map[string]any{"name": "B-model", "provider": "x"})
		if r := e.do("POST", "/api/models", alice, map[string]any{"name": "B-model", "provider": "y"}); r.status != 409 || r.errorCode(t) != "conflict" {
			t.Fatalf("duplicate: %d %s", r.status, r.body)
		}
		if r := e.do("POST", "/api/models", adminToken, map[string]any{"name": "zeta-global", "provider": "y", "visibility": "global"}); r.status != 409 {
			t.Fatalf("duplicate global: %d %s", r.status, r.body)
		}
		if r := e.do("POST", "/api/models", alice, map[string]any{"name": "g2", "provider": "y", "visibility": "global"}); r.status != 403 || r.errorCode(t) != "forbidden" {
			t.Fatalf("non-admin global: %d %s", r.status, r.body)
		}
		if r := e.do("POST", "/api/models", "", map[string]any{"name": "g2", "provider": "y"}); r.status != 401 {
			t.Fatalf("anonymous create: %d", r.status)
		}

		if got, want := names(e.models("")), []string{"zeta-global"}; !slices.Equal(got, want) {
			t.Errorf("anonymous list = %q, want %q", got, want)
		}
		// Byte order: upper case before lower case before non-ASCII.
		if got, want := names(e.models(alice)), []string{"B-model", "a-model", "zeta-global", "émoji-😀"}; !slices.Equal(got, want) {
			t.Errorf("alice's list = %q, want %q", got, want)
		}
		if got, want := names(e.models(bob)), []string{"B-model", "zeta-global"}; !slices.Equal(got, want) {
			t.Errorf("bob's list = %q, want %q", got, want)
		}

		// Existence of a private model never leaks: 404 for others.
		e.must(200, "GET", "/api/models/"+a1.ID, alice, nil)
		for _, tok := range []string{bob, ""} {
			if r := e.do("GET", "/api/models/"+a1.ID, tok, nil); r.status != 404 || r.errorCode(t) != "not_found" {
				t.Errorf("other's private model: %d %s", r.status, r.body)
			}
			if r := e.do("PATCH", "/api/models/"+a1.ID, tok, map[string]any{"name": "x"}); r.status != 404 && !(tok == "" && r.status == 401) {
				t.Errorf("patch other's private model: %d %s", r.status, r.body)
			}
		}
		if r := e.do("DELETE", "/api/models/"+a1.ID, bob, nil); r.status != 404 {
			t.Errorf("delete other's private model: %d", r.status)
		}
		e.must(200, "GET", "/api/models/"+g.ID, "", nil)
		if r := e.do("PATCH", "/api/models/"+g.ID, alice, map[string]any{"name": "x"}); r.status != 403 {
			t.Errorf("non-admin patch of a global model: %d", r.status)
		}
		if r := e.do("DELETE", "/api/models/"+g.ID, alice, nil); r.status != 403 {
			t.Errorf("non-admin delete of a global model: %d", r.status)
		}

		// Partial update: only given fields change; null clears context_length.
		var up modellab.Model
		e.must(200, "PATCH", "/api/models/"+a1.ID, alice, map[string]any{"description": "new", "context_length": nil}).json(t, &up)
		if up.Description != "new" || up.ContextLength != nil || up.Name != "B-model" || up.Provider != "local" || !up.UpdatedAt.After(a1.UpdatedAt) && !up.UpdatedAt.Equal(a1.UpdatedAt) {
			t.Errorf("patched: %+v", up)
		}
		if r := e.do("PATCH", "/api/models/"+a1.ID, alice, map[string]any{"visibility": "global"}); r.status != 403 {
			t.Errorf("non-admin makes a model global: %d", r.status)
		}
		if r := e.do("PATCH", "/api/models/"+a1.ID, alice, map[string]any{"name": nil}); r.status != 400 {
			t.Errorf("null name: %d", r.status)
		}
		if r := e.do("PATCH", "/api/models/"+a1.ID, alice, map[string]any{"name": "a-model"}); r.status != 409 {
			t.Errorf("rename onto an existing name: %d", r.status)
		}
		e.must(204, "DELETE", "/api/models/"+a1.ID, alice, nil)
		e.must(404, "GET", "/api/models/"+a1.ID, alice, nil)
		e.must(404, "DELETE", "/api/models/"+a1.ID, alice, nil)
	})
}

func TestAPIBadInput(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, _ := e.user("alice")
	m := e.model(alice, map[string]any{"name": "m", "provider": "p"})
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `","provider":"p"}`
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"empty body", "POST", "/api/models", "", 400, "invalid_argument"},
		{"whitespace body", "POST", "/api/models", "  \n", 400, "invalid_argument"},
		{"malformed", "POST", "/api/models", `{"name":`, 400, "invalid_argument"},
		{"not an object", "POST", "/api/models", `[1,2]`, 400, "invalid_argument"},
		{"trailing data", "POST", "/api/models", `{"name":"a","provider":"p"} {}`, 400, "invalid_argument"},
		{"unknown field", "POST", "/api/models", `{"name":"a","provider":"p","owner":"x"}`, 400, "invalid_argument"},
		{"wrong type", "POST", "/api/models", `{"name":5,"provider":"p"}`, 400, "invalid_argument"},
		{"huge number", "POST", "/api/models", `{"name":"a","provider":"p","context_length":1e30}`, 400, "invalid_argument"},
		{"float length", "POST", "/api/models", `{"name":"a","provider":"p","context_length":1.5}`, 400, "invalid_argument"},
		{"zero length", "POST", "/api/models", `{"name":"a","provider":"p","context_length":0}`, 400, "invalid_argument"},
		{"negative length", "POST", "/api/models", `{"name":"a","provider":"p","context_length":-4}`, 400, "invalid_argument"},
		{"no name", "POST", "/api/models", `{"provider":"p"}`, 400, "invalid_argument"},
		{"blank name", "POST", "/api/models", `{"name":"   ","provider":"p"}`, 400, "invalid_argument"},
		{"long name", "POST", "/api/models", `{"name":"` + strings.Repeat("n", 201) + `","provider":"p"}`, 400, "invalid_argument"},
		{"control char", "POST", "/api/models", `{"name":"a\u0007b","provider":"p"}`, 400, "invalid_argument"},
		{"no provider", "POST", "/api/models", `{"name":"a"}`, 400, "invalid_argument"},
		{"bad visibility", "POST", "/api/models", `{"name":"a","provider":"p","visibility":"public"}`, 400, "invalid_argument"},
		{"invalid utf-8", "POST", "/api/models", []byte("{\"name\":\"a\xff\xfe\",\"provider\":\"p\"}"), 400, "invalid_argument"},
		{"too large", "POST", "/api/models", big, 413, "payload_too_large"},
		{"patch unknown field", "PATCH", "/api/models/" + m.ID, `{"nam":"x"}`, 400, "invalid_argument"},
		{"server bad status", "POST", "/api/servers", `{"name":"s","model_id":"` + m.ID + `","status":"flying"}`, 400, "invalid_argument"},
		{"server unknown model", "POST", "/api/servers", `{"name":"s","model_id":"mdl_doesnotexist0000000"}`, 400, "invalid_argument"},
		{"server odd model id", "POST", "/api/servers", `{"name":"s","model_id":"../../etc"}`, 400, "invalid_argument"},
		{"server bad heartbeat", "POST", "/api/servers", `{"name":"s","last_heartbeat":"yesterday"}`, 400, "invalid_argument"},
		{"events empty", "POST", "/api/analytics/events", `{"events":[]}`, 400, "invalid_argument"},
		{"events null", "POST", "/api/analytics/events", `{"events":null}`, 400, "invalid_argument"},
		{"event bad status", "POST", "/api/analytics/events", `{"events":[{"model_id":"` + m.ID + `","input_tokens":1,"output_tokens":1,"latency_ms":1,"status":"meh"}]}`, 400, "invalid_argument"},
		{"event negative tokens", "POST", "/api/analytics/events", `{"events":[{"model_id":"` + m.ID + `","input_tokens":-1,"output_tokens":1,"latency_ms":1,"status":"ok"}]}`, 400, "invalid_argument"},
		{"event future", "POST", "/api/analytics/events", `{"events":[{"model_id":"` + m.ID + `","timestamp":"2999-01-01T00:00:00Z","input_tokens":1,"output_tokens":1,"latency_ms":1,"status":"ok"}]}`, 400, "invalid_argument"},
		{"analytics interval", "GET", "/api/analytics/data?interval=week", nil, 400, "invalid_argument"},
		{"analytics from>=to", "GET", "/api/analytics/data?from=2026-02-01&to=2026-01-01", nil, 400, "invalid_argument"},
		{"analytics too long", "GET", "/api/analytics/data?from=2024-01-01&to=2026-01-01", nil, 400, "invalid_argument"},
		{"analytics bad time", "GET", "/api/analytics/data?from=yesterday", nil, 400, "invalid_argument"},
		{"analytics repeated", "GET", "/api/analytics/data?interval=day&interval=hour", nil, 400, "invalid_argument"},
		{"analytics bad model", "GET", "/api/analytics/data?model_id=%27%3B--", nil, 400, "invalid_argument"},
		{"odd id", "GET", "/api/models/%27%20OR%201%3D1", nil, 404, "not_found"},
		{"nul id", "GET", "/api/models/a%00b", nil, 404, "not_found"},
		{"long id", "GET", "/api/models/" + strings.Repeat("a", 5000), nil, 404, "not_found"},
		{"odd server id", "PATCH", "/api/servers/%E2%98%83", `{"status":"running"}`, 404, "not_found"},
		{"unknown route", "GET", "/api/nope", nil, 404, "not_found"},
		{"wrong method", "PUT", "/api/models", `{}`, 405, "invalid_argument"},
		{"cache stats non-admin", "GET", "/api/cache/stats", nil, 403, "forbidden"},
		{"cache invalidate empty", "POST", "/api/cache/invalidate", `{"pattern":""}`, 403, "forbidden"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, alice, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d; body %s", r.status, c.status, r.body)
			}
			if got := r.errorCode(t); got != c.code {
				t.Errorf("code %q, want %q", got, c.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	// No partial effects: nothing above created a model or a server.
	if got := names(e.models(alice)); !slices.Equal(got, []string{"m"}) {
		t.Errorf("models after bad input: %q", got)
	}
	if st := e.status(alice); st.Summary.Total != 0 {
		t.Errorf("servers after bad input: %+v", st.Summary)
	}
}

func TestAPIServers(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, envOpts{engine: engine})
		alice, _ := e.user("alice")
		bob, _ := e.user("bob")
		g := e.model(adminToken, map[string]any{"name": "global-1", "provider": "meta", "visibility": "global"})
		am := e.model(alice, map[string]any{"name": "alice-ft", "provider": "local"})
		bm := e.model(bob, map[string]any{"name": "bob-ft", "provider": "local"})

		if r := e.do("POST", "/api/servers", alice, map[string]any{"name": "s", "model_id": bm.ID}); r.status != 400 {
			t.Fatalf("server on another user's private model: %d %s", r.status, r.body)
		}
		var s1, s2 modellab.Server
		e.must(201, "POST", "/api/servers", alice, map[string]any{"name": "web-2", "model_id": am.ID, "gpu": "A100", "endpoint": "http://10.0.0.1:8000"}).json(t, &s1)
		e.must(201, "POST", "/api/servers", alice, map[string]any{"name": "Web-1", "model_id": g.ID, "status": "running"}).json(t, &s2)
		if s1.Status != "starting" || s1.ModelID == nil || *s1.ModelID != am.ID {
			t.Fatalf("created server: %+v", s1)
		}
		if r := e.do("POST", "/api/servers", alice, map[string]any{"name": "web-2", "model_id": am.ID}); r.status != 409 {
			t.Errorf("duplicate server name: %d", r.status)
		}
		st := e.status(alice)
		if len(st.Servers) != 2 || st.Servers[0].Name != "Web-1" || st.Servers[1].Name != "web-2" {
			t.Fatalf("status order: %+v", st.Servers)
		}
		if st.Servers[0].Model == nil || st.Servers[0].Model.ID != g.ID || st.Servers[1].Model == nil || st.Servers[1].Model.ID != am.ID {
			t.Fatalf("embedded models: %+v", st.Servers)
		}
		if want := (service.ServerSummary{Total: 2, Starting: 1, Running: 1}); st.Summary != want {
			t.Errorf("summary %+v, want %+v", st.Summary, want)
		}
		if got := e.status(bob); len(got.Servers) != 0 || got.Summary.Total != 0 {
			t.Errorf("bob sees %+v", got)
		}
		if r := e.do("GET", "/api/servers/status", "", nil); r.status != 401 {
			t.Errorf("anonymous status: %d", r.status)
		}

		// Other users cannot see or touch the server.
		for _, m := range []string{"GET", "PATCH", "DELETE"} {
			if r := e.do(m, "/api/servers/"+s1.ID, bob, map[string]any{"status": "running"}); r.status != 404 {
				t.Errorf("%s of another user's server: %d", m, r.status)
			}
		}
		hb := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var up modellab.Server
		e.must(200, "PATCH", "/api/servers/"+s1.ID, alice, map[string]any{"status": "error", "last_heartbeat": hb}).json(t, &up)
		if up.Status != "error" || up.LastHeartbeat == nil || !up.LastHeartbeat.Equal(hb) || up.GPU != "A100" {
			t.Errorf("patched server: %+v", up)
		}
		if st := e.status(alice); st.Summary.Error != 1 || st.Summary.Starting != 0 {
			t.Errorf("summary after patch: %+v", st.Summary)
		}

		// Deleting the model keeps the server, with model null.
		e.must(204, "DELETE", "/api/models/"+am.ID, alice, nil)
		st = e.status(alice)
		if st.Servers[1].Model != nil || st.Servers[1].ModelID != nil {
			t.Errorf("server of a deleted model: %+v", st.Servers[1])
		}
		e.must(204, "DELETE", "/api/servers/"+s2.ID, alice, nil)
		if st := e.status(alice); st.Summary.Total != 1 {
			t.Errorf("after delete: %+v", st.Summary)
		}
	})
}

// TestServersStatusNoNPlusOne counts statements: the status endpoint costs
// the same number of queries for 1 server as for 40.
func TestServersStatusNoNPlusOne(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, envOpts{engine: engine, disabled: true})
		alice, _ := e.user("alice")
		cost := func() float64 {
			before := e.metric("modellab_db_queries_total", nil)
			e.status(alice)
			return e.metric("modellab_db_queries_total", nil) - before
		}
		newServer := func(i int) {
			m := e.model(alice, map[string]any{"name": fmt.Sprintf("m-%d", i), "provider": "p"})
			e.must(201, "POST", "/api/servers", alice, map[string]any{"name": fmt.Sprintf("s-%d", i), "model_id": m.ID})
		}
		newServer(0)
		one := cost()
		for i := 1; i < 40; i++ {
			newServer(i)
		}
		forty := cost()
		if one != forty || forty > 2 {
			t.Errorf("status costs %v statements for 1 server and %v for 40; want the same, at most 2", one, forty)
		}
	})
}

func TestAPIAnalytics(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		now := time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)
		e := newEnv(t, envOpts{engine: engine, now: func() time.Time { return now }})
		alice, _ := e.user("alice")
		bob, _ := e.user("bob")
		m1 := e.model(alice, map[string]any{"name": "m1", "provider": "p"})
		m2 := e.model(alice, map[string]any{"name": "m2", "provider": "p"})
		bm := e.model(bob, map[string]any{"name": "bm", "provider": "p"})
		ev := func(model string, ts time.Time, lat float64, status string) map[string]any {
			return map[string]any{"model_id": model, "timestamp": ts, "input_tokens": 10, "output_tokens": 5, "latency_ms": lat, "status": status, "cost_usd": 0.5}
		}
		day := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
		var events []map[string]any
		for i := 0; i < 20; i++ {
			events = append(events, ev(m1.ID, day.Add(time.Duration(i)*time.Hour), float64(i+1), "ok"))
		}
		events = append(events, ev(m2.ID, day.Add(-24*time.Hour), 100, "error"))
		var acc struct{ Accepted int }
		e.must(202, "POST", "/api/analytics/events", alice, map[string]any{"events": events}).json(t, &acc)
		if acc.Accepted != 21 {
			t.Fatalf("accepted %d", acc.Accepted)
		}
		// All or nothing: a batch with one event on bob's model stores none.
		bad := []map[string]any{ev(m1.ID, day, 1, "ok"), ev(bm.ID, day, 1, "ok")}
		if r := e.do("POST", "/api/analytics/events", alice, map[string]any{"events": bad}); r.status != 400 {
			t.Fatalf("event on another user's model: %d %s", r.status, r.body)
		}
		tooMany := make([]map[string]any, 1001)
		for i := range tooMany {
			tooMany[i] = ev(m1.ID, day, 1, "ok")
		}
		if r := e.do("POST", "/api/analytics/events", alice, map[string]any{"events": tooMany}); r.status != 400 {
			t.Fatalf("1001 events: %d", r.status)
		}

		var res modellab.AnalyticsResult
		e.must(200, "GET", "/api/analytics/data", alice, nil).json(t, &res)
		if res.Interval != "day" || !res.To.Equal(time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)) || res.To.Sub(res.From) != 7*24*time.Hour {
			t.Fatalf("defaults: %s %s %s", res.From, res.To, res.Interval)
		}
		if res.Totals.Requests != 21 || res.Totals.Errors != 1 || res.Totals.InputTokens != 210 || res.Totals.OutputTokens != 105 {
			t.Errorf("totals %+v", res.Totals)
		}
		if res.Totals.P95LatencyMS != 20 { // nearest rank: 20th of 21 sorted latencies 1..20,100
			t.Errorf("p95 = %v, want 20", res.Totals.P95LatencyMS)
		}
		if len(res.ByModel) != 2 || res.ByModel[0].ModelID != m1.ID || res.ByModel[0].ModelName != "m1" || res.ByModel[0].Requests != 20 {
			t.Errorf("by_model %+v", res.ByModel)
		}
		if len(res.Series) != 7 {
			t.Errorf("series has %d points, want 7", len(res.Series))
		}
		var sum int64
		for _, p := range res.Series {
			sum += p.Requests
		}
		if sum != 21 {
			t.Errorf("series sums to %d", sum)
		}

		// Equivalent spellings share one cache entry; different ones do not.
		q1 := "/api/analytics/data?from=2026-03-09&to=2026-03-10T00:00:00Z&interval=hour"
		q2 := "/api/analytics/data?interval=hour&to=2026-03-10T01:00:00%2B01:00&from=2026-03-09T00:00:00.000Z&unrelated=1"
		r1 := e.must(200, "GET", q1, alice, nil)
		r2 := e.must(200, "GET", q2, alice, nil)
		if r1.header.Get("X-Cache") != "MISS" || r2.header.Get("X-Cache") != "HIT" || string(r1.body) != string(r2.body) {
			t.Errorf("equivalent queries: %s then %s", r1.header.Get("X-Cache"), r2.header.Get("X-Cache"))
		}
		e.json(t, r1, &res)
		if len(res.Series) != 24 || res.Totals.Requests != 20 {
			t.Errorf("hourly day: %d points, %d requests", len(res.Series), res.Totals.Requests)
		}
		r3 := e.must(200, "GET", q1+"&model_id="+m2.ID, alice, nil)
		if r3.header.Get("X-Cache") != "MISS" {
			t.Errorf("a different query hit the cache")
		}
		// Bob sees none of alice's events.
		e.must(200, "GET", "/api/analytics/data", bob, nil).json(t, &res)
		if res.Totals.Requests != 0 || len(res.ByModel) != 0 {
			t.Errorf("bob's analytics: %+v", res.Totals)
		}
	})
}

func (e *env) json(t testing.TB, r resp, v any) { r.json(t, v) }

func TestHealthAndReady(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(200, "GET", "/healthz", "", nil)
	var ready struct {
		Database string `json:"database"`
		Cache    struct{ Mode, Redis string }
	}
	e.must(200, "GET", "/readyz", "", nil).json(t, &ready)
	if ready.Database != "ok" || ready.Cache.Mode != "memory" || ready.Cache.Redis != "disabled" {
		t.Errorf("readyz %+v", ready)
	}
	e.db.Close()
	r := e.must(503, "GET", "/readyz", "", nil)
	r.json(t, &ready)
	if ready.Database != "down" {
		t.Errorf("readyz with a closed database: %+v", ready)
	}
	res, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("metrics: %d", res.StatusCode)
	}
}
