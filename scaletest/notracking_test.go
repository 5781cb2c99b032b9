package scaletest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/internal/testredis"
)

// fallbackLocalTTL is cache.Options.FallbackLocalTTL's default: without
// tracking, a local copy is trusted at most this long without asking Redis.
const fallbackLocalTTL = time.Second

// TestNoClientTracking: a Redis that refuses CLIENT TRACKING (as some managed
// services do) is detected at connect; the instances fall back to a short
// local TTL plus a pub/sub broadcast and stay coherent: a write is seen by
// the other instance within the contract's 50ms (median; every write within
// the fallback TTL), and a lost broadcast costs at most the fallback TTL.
func TestNoClientTracking(t *testing.T) {
	rs := testredis.Start(t)
	if _, err := rs.Do("ACL", "SETUSER", "default", "on", "nopass", "~*", "&*", "+@all", "-client|tracking"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	if _, err := rs.Do("CLIENT", "TRACKING", "on"); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("CLIENT TRACKING on the test Redis: err %v, want NOPERM", err)
	}
	dbURL := testpg.URL(t)
	prefix := "scale:" + randHex(4) + ":"
	a := newInstance(t, "A", instOpts{dbURL: dbURL, redisURL: rs.URL(), prefix: prefix})
	b := newInstance(t, "B", instOpts{dbURL: dbURL, redisURL: rs.URL(), prefix: prefix})
	a.waitRedisUp()
	b.waitRedisUp()
	for _, in := range []*inst{a, b} {
		if st := in.stats(); st.Redis != "up" || st.Coherence != "pubsub" || st.RedisMode != "standalone" || st.RedisNodes != 1 {
			t.Errorf("%s: stats redis %q coherence %q mode %q nodes %d, want up/pubsub/standalone/1", in.name, st.Redis, st.Coherence, st.RedisMode, st.RedisNodes)
		}
		if rb := in.ready(); rb.Cache.Redis != "up" {
			t.Errorf("%s: /readyz %+v, want redis up", in.name, rb)
		}
		if logs := in.logs.String(); !strings.Contains(logs, "refuses CLIENT TRACKING") {
			t.Errorf("%s: no log line about the refused tracking:\n%s", in.name, logs)
		}
	}
	coherence(t, a, b, "no tracking")
	t.Logf("no tracking: client connections for 2 instances: %d", clientConns(t, rs))

	// A lost broadcast: the list changes behind B's back (a row written
	// straight to the database, the Redis entry removed without a PUBLISH).
	// B trusts its copy at most fallbackLocalTTL.
	alice, aliceID := a.user("alice2")
	b.modelNames(alice)
	if _, xc := b.modelNames(alice); xc != "HIT" {
		t.Fatalf("B before the silent write: X-Cache %q, want HIT", xc)
	}
	name := "silent-" + randHex(3)
	if err := a.db.CreateModel(context.Background(), &modellab.Model{Name: name, Provider: "p", Visibility: "private", OwnerID: &aliceID}); err != nil {
		t.Fatalf("CreateModel: %v", err)
	}
	keys, err := rs.Scan(prefix + "api:models:user:" + aliceID + "*")
	if err != nil || len(keys) == 0 {
		t.Fatalf("alice's list in Redis: %q, %v", keys, err)
	}
	for _, k := range keys {
		if _, err := rs.Do("UNLINK", k); err != nil {
			t.Fatal(err)
		}
	}
	// lastStale is when the last read that still missed the model started:
	// no read started after the bound may return the old list.
	start := time.Now()
	var lastStale, fresh time.Duration
	for {
		readAt := time.Since(start)
		if got, _ := b.modelNames(alice); contains(got, name) {
			fresh = readAt
			break
		}
		lastStale = readAt
		if time.Since(start) > 5*time.Second {
			t.Fatalf("B never showed the silently written model")
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("no tracking: lost broadcast: last stale read started at %s, first fresh read at %s (bound %s)", lastStale, fresh, fallbackLocalTTL)
	if lastStale > fallbackLocalTTL {
		t.Errorf("lost broadcast: a read started %s after the change still returned the old list, want <= FallbackLocalTTL %s", lastStale, fallbackLocalTTL)
	}
}

// TestClusterNoTracking: the same fallback on a Redis Cluster (forced with
// Options.DisableTracking): PUBLISH reaches subscribers on every node.
func TestClusterNoTracking(t *testing.T) {
	cl := testredis.StartCluster(t, 3)
	dbURL := testpg.URL(t)
	prefix := "scale:" + randHex(4) + ":"
	a := newInstance(t, "A", instOpts{dbURL: dbURL, redisURL: cl.Nodes[1].URL(), prefix: prefix, disableTracking: true})
	b := newInstance(t, "B", instOpts{dbURL: dbURL, redisURL: cl.Nodes[2].URL(), prefix: prefix, disableTracking: true})
	a.waitRedisUp()
	b.waitRedisUp()
	for _, in := range []*inst{a, b} {
		if st := in.stats(); st.Coherence != "pubsub" {
			t.Errorf("%s: coherence %q, want pubsub", in.name, st.Coherence)
		}
	}
	coherence(t, a, b, "cluster, no tracking")
	var conns []int
	for _, n := range cl.Nodes {
		conns = append(conns, clientConns(t, n))
	}
	t.Logf("cluster, no tracking: client connections per node for 2 instances: %v", conns)
}

// coherence checks caching and cross-instance visibility of writes both ways.
func coherence(t *testing.T, a, b *inst, label string) {
	t.Helper()
	tok := a.missThenHit("coh-"+randHex(3), "first")
	m1, w1 := crossStaleness(t, a, b, tok, 6, fallbackLocalTTL)
	m2, w2 := crossStaleness(t, b, a, tok, 6, fallbackLocalTTL)
	median, worst := max(m1, m2), max(w1, w2)
	t.Logf("%s: cross-instance staleness over 12 writes: median %s, worst %s", label, median, worst)
	if median > 50*time.Millisecond {
		t.Errorf("%s: median cross-instance staleness %s, want <= 50ms", label, median)
	}
	var inv struct {
		Invalidated int `json:"invalidated"`
	}
	b.modelNames(tok)
	a.must(200, "POST", "/api/cache/invalidate", adminToken, map[string]any{"pattern": "api:models:*"}).JSON(t, &inv)
	if inv.Invalidated == 0 {
		t.Errorf("%s: pattern invalidation removed nothing", label)
	}
	waitFor(t, fallbackLocalTTL, fmt.Sprintf("%s: B drops its copy after a pattern invalidation on A", label), func() bool {
		_, xc := b.modelNames(tok)
		return xc == "MISS"
	})
}
