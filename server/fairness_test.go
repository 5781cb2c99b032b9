package server_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

// gatedAnalytics holds one user's analytics reads until release is closed,
// as a database busy with that user's heavy queries would; the others'
// pass straight through.
type gatedAnalytics struct {
	service.Store
	userID  atomic.Pointer[string]
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gatedAnalytics) open() { g.once.Do(func() { close(g.release) }) }

func (g *gatedAnalytics) Analytics(ctx context.Context, userID string, q modellab.AnalyticsQuery) (modellab.AnalyticsResult, error) {
	if id := g.userID.Load(); id != nil && userID == *id {
		g.started <- struct{}{}
		select {
		case <-g.release:
		case <-ctx.Done():
			return modellab.AnalyticsResult{}, ctx.Err()
		}
	}
	return g.Store.Analytics(ctx, userID, q)
}

// analyticsPath is an analytics request of its own range (so, a miss).
func analyticsPath(n int) string {
	to := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Millisecond)
	return fmt.Sprintf("/api/analytics/data?from=%s&to=%s", url.QueryEscape(to.AddDate(0, 0, -7).Format(time.RFC3339Nano)),
		url.QueryEscape(to.Format(time.RFC3339Nano)))
}

// TestNoisyUserIsShedNotOthers goes through the whole server: one user's
// uncached reads hold its whole share of the database slots (2 of 8) and
// more of them queue; those that wait past the bound are answered 429
// rate_limited with Retry-After, the user's cached reads are still served,
// and another user's and an anonymous client's requests all succeed at
// once meanwhile. Nothing depends on timing but the queue's bound.
func TestNoisyUserIsShedNotOthers(t *testing.T) {
	g := &gatedAnalytics{started: make(chan struct{}, 16), release: make(chan struct{})}
	e := newEnv(t, envOpts{ttl: time.Hour, maxDB: 8, maxDBPerUser: 2, dbQueueWait: 50 * time.Millisecond,
		wrap: func(s service.Store) service.Store { g.Store = s; return g }})
	noisy, noisyID := e.user("noisy")
	victim, _ := e.user("victim")
	victim2, _ := e.user("victim2")

	// A cached read of the noisy user's, before the flood.
	e.must(200, "GET", analyticsPath(0), noisy, nil)
	g.userID.Store(&noisyID)

	// Two reads take the noisy user's share and stay in the database.
	var wg sync.WaitGroup
	held := make([]resp, 2)
	for i := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held[i] = e.do("GET", analyticsPath(1+i), noisy, nil)
		}()
		<-g.started
	}
	defer func() { g.open(); wg.Wait() }()

	// Its excess waits its turn, then is shed with 429.
	for i := range 3 {
		r := e.do("GET", analyticsPath(10+i), noisy, nil)
		if r.status != 429 || r.errorCode(t) != modellab.ERATELIMITED || r.header.Get("Retry-After") == "" {
			t.Fatalf("noisy user past its share: %d %s (Retry-After %q), want 429 rate_limited with Retry-After",
				r.status, r.body, r.header.Get("Retry-After"))
		}
	}
	// Its cached read needs no slot.
	if r := e.do("GET", analyticsPath(0), noisy, nil); r.status != 200 || r.header.Get("X-Cache") != "HIT" {
		t.Fatalf("noisy user's cached read: %d %s X-Cache %q, want a 200 HIT", r.status, r.body, r.header.Get("X-Cache"))
	}
	// The others are served, at once, and concurrently: two users, each
	// within its own share, so that none of them waits on its own reads
	// (a wait whose bound a slow machine could pass).
	var others sync.WaitGroup
	for i := range 4 {
		others.Add(1)
		go func() {
			defer others.Done()
			who := []string{victim, victim2}[i%2]
			if r := e.do("GET", analyticsPath(100+i), who, nil); r.status != 200 {
				t.Errorf("victim during the flood: %d %s", r.status, r.body)
			}
		}()
	}
	others.Wait()
	if r := e.do("GET", "/api/models", "", nil); r.status != 200 {
		t.Errorf("anonymous during the flood: %d %s", r.status, r.body)
	}
	if got := e.metric("modellab_load_shed_total", map[string]string{"reason": "user"}); got != 3 {
		t.Errorf("modellab_load_shed_total{reason=user} = %v, want 3", got)
	}
	if got := e.metric("modellab_load_shed_total", map[string]string{"reason": "db"}); got != 0 {
		t.Errorf("modellab_load_shed_total{reason=db} = %v, want 0", got)
	}

	g.open()
	wg.Wait()
	for i, r := range held {
		if r.status != 200 {
			t.Errorf("held read %d once the database answered: %d %s", i, r.status, r.body)
		}
	}
}
