package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

func TestCacheHeaders(t *testing.T) {
	for _, redis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", redis), func(t *testing.T) {
			e := newEnv(t, envOpts{redis: redis})
			alice, _ := e.user("alice")
			e.model(adminToken, map[string]any{"name": "g", "provider": "p", "visibility": "global"})

			for _, c := range []struct {
				path, token, cc string
			}{
				{"/api/models", "", "public"},
				{"/api/models", alice, "private"},
				{"/api/servers/status", alice, "private"},
				{"/api/analytics/data", alice, "private"},
			} {
				r1 := e.must(200, "GET", c.path, c.token, nil)
				r2 := e.must(200, "GET", c.path, c.token, nil)
				if got := r1.header.Get("X-Cache"); got != "MISS" {
					t.Errorf("%s first X-Cache %q, want MISS", c.path, got)
				}
				if got := r2.header.Get("X-Cache"); got != "HIT" {
					t.Errorf("%s second X-Cache %q, want HIT", c.path, got)
				}
				etag := r1.header.Get("ETag")
				if !strings.HasPrefix(etag, `"`) || etag != r2.header.Get("ETag") || string(r1.body) != string(r2.body) {
					t.Errorf("%s ETag %q vs %q", c.path, etag, r2.header.Get("ETag"))
				}
				if cc := r1.header.Get("Cache-Control"); !strings.HasPrefix(cc, c.cc+",") {
					t.Errorf("%s Cache-Control %q, want %s, …", c.path, cc, c.cc)
				}
				if v := r1.header.Get("Vary"); !strings.Contains(v, "Authorization") || !strings.Contains(v, "Cookie") {
					t.Errorf("%s Vary %q", c.path, v)
				}
				r3 := e.must(304, "GET", c.path, c.token, nil, "If-None-Match", etag)
				if len(r3.body) != 0 || r3.header.Get("ETag") != etag {
					t.Errorf("%s 304 with body %q / etag %q", c.path, r3.body, r3.header.Get("ETag"))
				}
				e.must(200, "GET", c.path, c.token, nil, "If-None-Match", `"other"`)
			}
		})
	}
}

func TestCacheDisabledBypass(t *testing.T) {
	e := newEnv(t, envOpts{disabled: true})
	alice, _ := e.user("alice")
	for i := 0; i < 2; i++ {
		r := e.must(200, "GET", "/api/models", alice, nil)
		if got := r.header.Get("X-Cache"); got != "BYPASS" {
			t.Fatalf("X-Cache %q, want BYPASS", got)
		}
	}
	if got := e.metric("modellab_cache_requests_total", map[string]string{"endpoint": "models", "result": "bypass"}); got != 2 {
		t.Errorf("bypass count %v", got)
	}
}

// TestReadYourWrites checks every write path: the next read after a 2xx
// write shows it, to the writer and to everyone it concerns.
func TestReadYourWrites(t *testing.T) {
	for _, redis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", redis), func(t *testing.T) {
			e := newEnv(t, envOpts{redis: redis, engine: map[bool]string{true: "postgres", false: "sqlite"}[redis]})
			alice, _ := e.user("alice")
			bob, _ := e.user("bob")
			warm := func() {
				e.models("")
				e.models(alice)
				e.models(bob)
				e.status(alice)
				e.status(bob)
			}
			has := func(ms []modellab.Model, name string) bool {
				for _, m := range ms {
					if m.Name == name {
						return true
					}
				}
				return false
			}

			// Private model: create, rename, delete.
			warm()
			pm := e.model(alice, map[string]any{"name": "priv", "provider": "p"})
			if !has(e.models(alice), "priv") || has(e.models(bob), "priv") || has(e.models(""), "priv") {
				t.Fatal("private create not visible to its owner only")
			}
			warm()
			e.must(200, "PATCH", "/api/models/"+pm.ID, alice, map[string]any{"name": "priv2"})
			if !has(e.models(alice), "priv2") || has(e.models(alice), "priv") {
				t.Fatal("private rename not visible")
			}

			// Global model: create, patch, delete reach every list.
			warm()
			gm := e.model(adminToken, map[string]any{"name": "glob", "provider": "p", "visibility": "global"})
			for _, tok := range []string{"", alice, bob, adminToken} {
				if !has(e.models(tok), "glob") {
					t.Fatalf("global create not in the list of %q", tok)
				}
			}
			// A server embedding the global model sees its rename.
			var sv modellab.Server
			e.must(201, "POST", "/api/servers", bob, map[string]any{"name": "s1", "model_id": gm.ID}).json(t, &sv)
			if st := e.status(bob); st.Summary.Total != 1 || st.Servers[0].Model.Name != "glob" {
				t.Fatalf("server create not visible: %+v", st)
			}
			warm()
			e.must(200, "PATCH", "/api/models/"+gm.ID, adminToken, map[string]any{"name": "glob2"})
			for _, tok := range []string{"", alice, bob} {
				if !has(e.models(tok), "glob2") {
					t.Fatalf("global rename not in the list of %q", tok)
				}
			}
			if st := e.status(bob); st.Servers[0].Model == nil || st.Servers[0].Model.Name != "glob2" {
				t.Fatalf("global rename not in bob's server status: %+v", st.Servers[0].Model)
			}
			// Made private (by the admin): gone from everyone else's lists and
			// from bob's server status.
			warm()
			e.must(200, "PATCH", "/api/models/"+gm.ID, adminToken, map[string]any{"visibility": "private"})
			if has(e.models(""), "glob2") || has(e.models(bob), "glob2") || !has(e.models(adminToken), "glob2") {
				t.Fatal("global → private not applied to every list")
			}
			if st := e.status(bob); st.Servers[0].Model != nil {
				t.Fatalf("bob still sees a model made private: %+v", st.Servers[0].Model)
			}
			e.must(200, "PATCH", "/api/models/"+gm.ID, adminToken, map[string]any{"visibility": "global"})
			warm()
			e.must(204, "DELETE", "/api/models/"+gm.ID, adminToken, nil)
			for _, tok := range []string{"", alice, bob} {
				if has(e.models(tok), "glob2") {
					t.Fatalf("global delete still in the list of %q", tok)
				}
			}
			if st := e.status(bob); st.Servers[0].Model != nil || st.Servers[0].ModelID != nil {
				t.Fatalf("deleted model still embedded: %+v", st.Servers[0])
			}

			// Servers: patch and delete.
			warm()
			e.must(200, "PATCH", "/api/servers/"+sv.ID, bob, map[string]any{"status": "running"})
			if st := e.status(bob); st.Summary.Running != 1 {
				t.Fatalf("server patch not visible: %+v", st.Summary)
			}
			warm()
			e.must(204, "DELETE", "/api/servers/"+sv.ID, bob, nil)
			if st := e.status(bob); st.Summary.Total != 0 {
				t.Fatalf("server delete not visible: %+v", st.Summary)
			}
			warm()
			e.must(204, "DELETE", "/api/models/"+pm.ID, alice, nil)
			if has(e.models(alice), "priv2") {
				t.Fatal("private delete not visible")
			}
		})
	}
}

// TestStampedeHTTP sends 1,000 concurrent cold requests: one database load.
func TestStampedeHTTP(t *testing.T) {
	for _, redis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", redis), func(t *testing.T) {
			e := newEnv(t, envOpts{redis: redis, maxDB: 8})
			e.model(adminToken, map[string]any{"name": "g", "provider": "p", "visibility": "global"})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 1000}}
			defer client.CloseIdleConnections()
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, 1000)
			for i := 0; i < 1000; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					res, err := client.Get(e.url + "/api/models")
					if err != nil {
						errs <- err
						return
					}
					res.Body.Close()
					if res.StatusCode != 200 {
						errs <- fmt.Errorf("status %d", res.StatusCode)
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := e.metric("modellab_cache_loads_total", map[string]string{"endpoint": "models"}); got != 1 {
				t.Errorf("loads = %v, want 1", got)
			}
		})
	}
}

// TestTwoInstancesShareRedis: a write on one instance is seen by the other
// within the 50 ms of the contract, and a cold stampede split over both
// costs one load.
func TestTwoInstancesShareRedis(t *testing.T) {
	a := newEnv(t, envOpts{redis: true, engine: "postgres"})
	prefix := a.pfx
	b := newEnv(t, envOpts{redis: true, dbURL: a.dbURL(), prefix: prefix})
	alice, _ := a.user("alice")

	var lags []time.Duration
	for i := 0; i < 20; i++ {
		b.models(alice)
		b.models("")
		name := fmt.Sprintf("m-%02d", i)
		vis := "private"
		tok := alice
		if i%2 == 1 {
			vis, tok = "global", adminToken
		}
		a.model(tok, map[string]any{"name": name, "provider": "p", "visibility": vis})
		start := time.Now()
		for {
			found := false
			for _, m := range b.models(alice) {
				found = found || m.Name == name
			}
			if found {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("write %d not visible on the other instance after 1s", i)
			}
			time.Sleep(time.Millisecond)
		}
		lags = append(lags, time.Since(start))
	}
	// Each lag includes HTTP round trips of the polling loop; the median
	// is held to the contract's 50 ms, the worst to a bound that survives
	// a loaded CI machine (faulttest measures p99/max over 1,000 writes).
	slices.Sort(lags)
	bound := 50 * time.Millisecond
	if raceEnabled {
		bound = 250 * time.Millisecond // instrumented code is 5-10x slower
	}
	if med := lags[len(lags)/2]; med > bound {
		t.Errorf("median cross-instance staleness %s, want <= %s", med, bound)
	}
	if worst := lags[len(lags)-1]; worst > 500*time.Millisecond {
		t.Errorf("worst cross-instance staleness %s, want <= 500ms", worst)
	}
	t.Logf("cross-instance staleness over 20 writes: median %s, max %s", lags[len(lags)/2], lags[len(lags)-1])

	var wg sync.WaitGroup
	for i := 0; i < 400; i++ {
		wg.Add(1)
		go func(e *env) {
			defer wg.Done()
			res, err := http.Get(e.url + "/api/servers/status?x=1")
			if err == nil {
				res.Body.Close()
			}
		}(map[bool]*env{true: a, false: b}[i%2 == 0])
	}
	wg.Wait()
	before := a.metric("modellab_cache_loads_total", map[string]string{"endpoint": "analytics"}) +
		b.metric("modellab_cache_loads_total", map[string]string{"endpoint": "analytics"})
	start := make(chan struct{})
	for i := 0; i < 400; i++ {
		wg.Add(1)
		go func(e *env) {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("GET", e.url+"/api/analytics/data?interval=hour", nil)
			req.Header.Set("Authorization", "Bearer "+alice)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("status %d", res.StatusCode)
			}
		}(map[bool]*env{true: a, false: b}[i%2 == 0])
	}
	close(start)
	wg.Wait()
	after := a.metric("modellab_cache_loads_total", map[string]string{"endpoint": "analytics"}) +
		b.metric("modellab_cache_loads_total", map[string]string{"endpoint": "analytics"})
	if got := after - before; got != 1 {
		t.Errorf("loads over two instances = %v, want 1", got)
	}
}

// TestCacheStatusHeader: every cached answer carries the RFC 9211
// Cache-Status beside X-Cache, saying the same thing.
func TestCacheStatusHeader(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, _ := e.user("alice")
	want := map[string]string{"MISS": "modellab; fwd=miss", "HIT": "modellab; hit"}
	for _, path := range []string{"/api/models", "/api/servers/status", "/api/analytics/data"} {
		for i := 0; i < 2; i++ {
			r := e.must(200, "GET", path, alice, nil)
			x := r.header.Get("X-Cache")
			if got := r.header.Get("Cache-Status"); got != want[x] {
				t.Errorf("%s: X-Cache %s with Cache-Status %q, want %q", path, x, got, want[x])
			}
		}
	}
	d := newEnv(t, envOpts{disabled: true})
	if got := d.must(200, "GET", "/api/models", "", nil).header.Get("Cache-Status"); got != "modellab; fwd=bypass" {
		t.Errorf("cache off: Cache-Status %q", got)
	}
}

// TestPurgeByTagAndKey: an admin purges by pattern, exact key or exact
// tag, and a body naming none or two of them is refused.
func TestPurgeByTagAndKey(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, _ := e.user("alice")
	e.server(alice, map[string]any{"name": "s1"})
	e.must(200, "GET", "/api/servers/status", alice, nil)
	if x := e.must(200, "GET", "/api/servers/status", alice, nil).header.Get("X-Cache"); x != "HIT" {
		t.Fatalf("second status read %s", x)
	}
	e.must(200, "POST", "/api/cache/invalidate", adminToken, map[string]any{"pattern": "api:servers:*"})
	if x := e.must(200, "GET", "/api/servers/status", alice, nil).header.Get("X-Cache"); x != "MISS" {
		t.Errorf("status after purging its pattern: %s, want MISS", x)
	}
	// A run's metrics entries record the tag run:{id}: purging it drops them.
	var run struct{ ID string }
	e.must(201, "POST", "/api/runs", alice, map[string]any{"name": "r"}).json(t, &run)
	e.must(202, "POST", "/api/runs/"+run.ID+"/metrics", alice, map[string]any{"points": []map[string]any{{"key": "loss", "step": 1, "value": 2.5}}})
	path := "/api/runs/" + run.ID + "/metrics"
	e.must(200, "GET", path, alice, nil)
	if x := e.must(200, "GET", path, alice, nil).header.Get("X-Cache"); x != "HIT" {
		t.Fatalf("second metrics read %s", x)
	}
	e.must(200, "POST", "/api/cache/invalidate", adminToken, map[string]any{"tag": "run:" + run.ID})
	if x := e.must(200, "GET", path, alice, nil).header.Get("X-Cache"); x != "MISS" {
		t.Errorf("metrics after purging the run's tag: %s, want MISS", x)
	}
	e.must(200, "GET", "/api/models", "", nil)
	e.must(200, "POST", "/api/cache/invalidate", adminToken, map[string]any{"key": "api:models:global"})
	if x := e.must(200, "GET", "/api/models", "", nil).header.Get("X-Cache"); x != "MISS" {
		t.Errorf("global list after purging its key: %s, want MISS", x)
	}
	for _, body := range []map[string]any{{}, {"tag": "a", "key": "b"}, {"pattern": strings.Repeat("x", 300)}} {
		if r := e.do("POST", "/api/cache/invalidate", adminToken, body); r.status != 400 {
			t.Errorf("purge %v: %d, want 400", body, r.status)
		}
	}
}

// TestGlobalEditReloadsOnce: every user's model list and server status
// embed the global models, yet editing one reloads the shared part once,
// not once per user, and every user sees the edit at once.
func TestGlobalEditReloadsOnce(t *testing.T) {
	e := newEnv(t, envOpts{redis: true})
	g := e.model(adminToken, map[string]any{"name": "shared", "provider": "p", "visibility": "global"})
	var toks []string
	for i := 0; i < 20; i++ {
		tok, _ := e.user(fmt.Sprintf("u%d", i))
		e.model(tok, map[string]any{"name": fmt.Sprintf("own-%d", i), "provider": "p"})
		e.server(tok, map[string]any{"name": "s", "model_id": g.ID})
		toks = append(toks, tok)
	}
	read := func() {
		for _, tok := range toks {
			e.models(tok)
			e.status(tok)
		}
	}
	read()
	loads := func(ep string) float64 {
		return e.metric("modellab_cache_loads_total", map[string]string{"endpoint": ep})
	}
	m0, s0 := loads("models"), loads("servers")
	e.must(200, "PATCH", "/api/models/"+g.ID, adminToken, map[string]any{"description": "edited"})
	for _, tok := range toks {
		st := e.status(tok)
		if len(st.Servers) != 1 || st.Servers[0].Model == nil || st.Servers[0].Model.Description != "edited" {
			t.Fatalf("status right after the edit: %+v", st.Servers)
		}
		found := false
		for _, m := range e.models(tok) {
			found = found || m.ID == g.ID && m.Description == "edited"
		}
		if !found {
			t.Fatalf("model list right after the edit misses it")
		}
	}
	if got := loads("models") - m0; got != 1 {
		t.Errorf("%v loads of the model lists after one global edit read by 20 users, want 1", got)
	}
	if got := loads("servers") - s0; got != 0 {
		t.Errorf("%v loads of server statuses after a global edit, want 0", got)
	}
}
