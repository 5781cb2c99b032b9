package faulttest_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// isoUser is one user of the isolation test and the strings that only it
// may ever receive.
type isoUser struct {
	fixture
	secret string // in its private model's name and description
}

// TestIsolationRandomised sends ≥10,000 random read requests — random
// caller (or anonymous), random instance of two sharing Redis, every read
// endpoint, path variants, other users' IDs, and unkeyed headers
// (X-Forwarded-Host and the like) — and checks that no response carries
// another user's private data, that none is a 500, and that the unkeyed
// headers never change a cached response: every 200 for one caller and
// one resource is byte-identical, whichever instance and headers.
func TestIsolationRandomised(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	const nUsers = 12
	users := make([]isoUser, nUsers)
	for i := range users {
		f := seedFixture(t, p.a, fmt.Sprintf("iso%02d", i))
		u := isoUser{fixture: f, secret: "SECRET" + randHex(6)}
		p.a.must(200, "PATCH", "/api/models/"+f.private, f.token, map[string]any{"description": u.secret})
		p.a.model(f.token, map[string]any{"name": "named-" + u.secret, "provider": "acme"})
		users[i] = u
	}
	p.a.model(adminToken, map[string]any{"name": "global-iso", "provider": "acme", "visibility": "global"})
	// Markers: what user i may see and nobody else.
	markers := func(u isoUser) []string { return []string{u.userID, u.private, u.server, u.secret} }

	unkeyed := [][]string{
		nil,
		{"X-Forwarded-Host", "evil.example"},
		{"X-Forwarded-For", "203.0.113.9", "X-Real-IP", "203.0.113.9"},
		{"X-Original-URL", "/api/servers/status", "X-Rewrite-URL", "/api/servers/status"},
		{"X-Forwarded-Proto", "http", "Forwarded", "for=203.0.113.9;host=evil.example;proto=https"},
		{"X-Host", "evil.example", "X-Forwarded-Server", "evil.example"},
		{"X-HTTP-Method-Override", "DELETE"},
		{"Host", "evil.example"},
		{"X-Forwarded-Prefix", "/evil", "X-Forwarded-Port", "1"},
	}
	total := scale(10000, 5)
	type bodyKey struct{ caller, resource string }
	var (
		mu      sync.Mutex
		seen    = map[bodyKey]string{}
		leaks   []string
		bad     []string
		count   int
		status  = map[int]int{}
		maxTook time.Duration
	)
	fail := func(list *[]string, s string) {
		if len(*list) < 20 {
			*list = append(*list, s)
		}
	}
	var wg sync.WaitGroup
	workers := 16
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := 0; i < total/workers; i++ {
				in := p.a
				if rng.IntN(2) == 1 {
					in = p.b
				}
				me := -1 // anonymous
				if rng.IntN(8) != 0 {
					me = rng.IntN(nUsers)
				}
				other := users[rng.IntN(nUsers)]
				token, caller := "", "anon"
				if me >= 0 {
					token, caller = users[me].token, users[me].userID
				}
				// resource names what the response must equal for this caller;
				// "" when it is not compared (an error, or a default time range).
				var path, resource string
				switch rng.IntN(12) {
				case 0:
					path, resource = "/api/models", "models"
				case 1:
					path, resource = "/api/models?x="+randHex(2), "models"
				case 2:
					path = "/api/models/"
				case 3:
					path = "/api/models/" + other.private
				case 4:
					path, resource = "/api/servers/status", "status"
				case 5:
					path = "/api/servers/status/"
				case 6:
					path = "/api/servers/" + other.server
				case 7:
					path, resource = other.analytics, "analytics"
				case 8:
					path, resource = "/api/analytics/data?interval=day&to=2026-01-08T00:00:00Z&from=2026-01-01", "analytics"
				case 9:
					path = "/api/analytics/data?model_id=" + other.private
				case 10:
					path = []string{"/API/models", "/api//models", "/api/models/..%2f" + other.private, "/api/servers/status%2f",
						"/api/models/" + other.private + "/", "/api/servers/status?user_id=" + other.userID}[rng.IntN(6)]
				case 11:
					path, resource = "/api/models", "models"
					token = users[rng.IntN(nUsers)].token // and as someone else below
					if me < 0 {
						token = ""
					} else {
						token = users[me].token
					}
				}
				hdr := append([]string(nil), unkeyed[rng.IntN(len(unkeyed))]...)
				if rng.IntN(4) == 0 {
					// Another user's session cookie must not change an API answer.
					hdr = append(hdr, "Cookie", "modellab_session="+other.token)
				}
				r := in.do("GET", path, token, nil, hdr...)
				mu.Lock()
				count++
				status[r.status]++
				maxTook = max(maxTook, r.took)
				// 503 + Retry-After is the contract's answer to overload (a
				// saturated machine can get there); 500 and transport errors never.
				if r.err != nil || (r.status >= 500 && !(r.status == 503 && r.header.Get("Retry-After") != "")) {
					fail(&bad, fmt.Sprintf("GET %s as %s: %s", path, caller, r))
				}
				body := string(r.body)
				for j, u := range users {
					if j == me {
						continue
					}
					for _, mk := range markers(u) {
						// An ID the caller typed may be echoed back (in a 404's
						// message): that is not the other user's data.
						if strings.Contains(body, mk) && !strings.Contains(path, mk) {
							fail(&leaks, fmt.Sprintf("GET %s as %s (headers %v) carries %q of %s: %.200s", path, caller, hdr, mk, u.userID, body))
						}
					}
				}
				if strings.Contains(body, "evil") || strings.Contains(body, "203.0.113") {
					fail(&leaks, fmt.Sprintf("GET %s (headers %v): an unkeyed header reached the body: %.200s", path, hdr, body))
				}
				if resource == "analytics" && me >= 0 && path != users[me].analytics && !strings.Contains(path, "interval=day&to=") {
					resource = "" // another user's analytics path is the same query spelled the same way
				}
				if resource != "" && r.status == 200 {
					k := bodyKey{caller, resource}
					if prev, ok := seen[k]; !ok {
						seen[k] = body
					} else if prev != body {
						fail(&bad, fmt.Sprintf("GET %s as %s (headers %v): body differs from an earlier answer for the same resource", path, caller, hdr))
					}
					if me >= 0 && (!strings.Contains(r.header.Get("Cache-Control"), "private") || !strings.Contains(r.header.Get("Vary"), "Authorization")) {
						fail(&bad, fmt.Sprintf("GET %s as %s: Cache-Control %q Vary %q", path, caller, r.header.Get("Cache-Control"), r.header.Get("Vary")))
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(leaks) > 0 {
		t.Errorf("%d leaks, e.g.:\n%s", len(leaks), strings.Join(leaks, "\n"))
	}
	if len(bad) > 0 {
		t.Errorf("%d bad responses, e.g.:\n%s", len(bad), strings.Join(bad, "\n"))
	}
	if count < 10000 && !testing.Short() {
		t.Errorf("only %d requests", count)
	}
	record(t, "requests=%d users=%d instances=2 leaks=%d bad=%d statuses=%v max=%s", count, nUsers, len(leaks), len(bad), status, maxTook.Round(time.Millisecond))
}
