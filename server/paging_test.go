package server_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/modellab/modellab"
)

type modelPage struct {
	Models        []modellab.Model `json:"models"`
	NextPageToken *string          `json:"next_page_token"`
}

// pages walks the whole list as token with pages of limit.
func (e *env) pages(token string, limit int) ([]string, int) {
	e.t.Helper()
	var names []string
	next, calls := "", 0
	for {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if next != "" {
			q.Set("page_token", next)
		}
		var p modelPage
		e.must(200, "GET", "/api/models?"+q.Encode(), token, nil).json(e.t, &p)
		calls++
		if len(p.Models) > limit {
			e.t.Fatalf("page of %d models for limit %d", len(p.Models), limit)
		}
		for _, m := range p.Models {
			names = append(names, m.Name+"/"+m.ID)
		}
		if p.NextPageToken == nil {
			return names, calls
		}
		if len(p.Models) == 0 || *p.NextPageToken == "" {
			e.t.Fatalf("an empty page or token with more to come: %+v", p)
		}
		next = *p.NextPageToken
	}
}

func keysOf(ms []modellab.Model) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name + "/" + m.ID
	}
	return out
}

// TestModelPaging: pages of every size concatenate to the whole list (the
// global and private models interleaved by name, byte order), a token is
// present exactly when more follow, and the cursor stays stable when a
// model is added before it.
func TestModelPaging(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, envOpts{engine: engine})
		alice, _ := e.user("alice")
		for _, n := range []string{"b", "Z", "é", "a-1", "m"} {
			e.model(adminToken, map[string]any{"name": n, "provider": "p", "visibility": "global"})
		}
		for _, n := range []string{"a", "c", "zz", "B"} {
			e.model(alice, map[string]any{"name": n, "provider": "p"})
		}
		for _, tok := range []string{"", alice} {
			whole := keysOf(e.models(tok))
			for _, limit := range []int{1, 2, 3, 4, len(whole), len(whole) + 1, 1000} {
				got, calls := e.pages(tok, limit)
				if !slices.Equal(got, whole) {
					t.Fatalf("token %q limit %d: pages %v, want %v", tok, limit, got, whole)
				}
				if want := max(1, (len(whole)+limit-1)/limit); calls != want {
					t.Errorf("token %q limit %d: %d pages, want %d", tok, limit, calls, want)
				}
			}
		}
		// A model added before the cursor does not shift the next page.
		var p modelPage
		e.must(200, "GET", "/api/models?limit=3", alice, nil).json(t, &p)
		e.model(alice, map[string]any{"name": "A", "provider": "p"})
		var p2 modelPage
		e.must(200, "GET", "/api/models?limit=3&page_token="+url.QueryEscape(*p.NextPageToken), alice, nil).json(t, &p2)
		if all := keysOf(e.models(alice)); !slices.Equal(keysOf(p2.Models), all[4:7]) {
			t.Errorf("page after an insert before the cursor: %v, want %v", keysOf(p2.Models), all[4:7])
		}
	})
}

func TestModelPagingBadInput(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "limit=-1", "limit=1&limit=2",
		"limit=2&page_token=zzz", "limit=2&page_token=bm90LWEtdG9rZW4", "page_token=abc"} {
		r := e.do("GET", "/api/models?"+q, "", nil)
		if r.status != 400 || r.errorCode(t) != modellab.EINVALID {
			t.Errorf("%s: %d %s, want 400 invalid_argument", q, r.status, r.body)
		}
	}
}

// TestModelPageCacheHeaders: a page is a cached read like the whole list:
// X-Cache, a strong ETag and 304.
func TestModelPageCacheHeaders(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.model(adminToken, map[string]any{"name": "g", "provider": "p", "visibility": "global"})
	e.must(200, "GET", "/api/models?limit=1", "", nil)
	r := e.must(200, "GET", "/api/models?limit=1", "", nil)
	if r.header.Get("X-Cache") != "HIT" || r.header.Get("ETag") == "" {
		t.Fatalf("X-Cache %q ETag %q", r.header.Get("X-Cache"), r.header.Get("ETag"))
	}
	e.must(304, "GET", "/api/models?limit=1", "", nil, "If-None-Match", r.header.Get("ETag"))
	if other := e.must(200, "GET", "/api/models?limit=2", "", nil).header.Get("ETag"); other == r.header.Get("ETag") {
		t.Errorf("two windows share an ETag")
	}
}
