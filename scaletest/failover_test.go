package scaletest_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testenv"
	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/internal/testredis"
)

// TestClusterFailoverReadYourWrites is the field scenario of a lost write:
// a Redis Cluster of 3 masters and 3 replicas, one instance under 100
// connections of cached reads, and a user who every 0.25 s creates a model
// and then lists their models on the same instance. The master that holds
// the user's list is killed (SIGKILL) and its replica promoted. Every
// round's list must contain the model just created: before, during and
// after the failover. (Before the fix, up to 6 rounds in 61 failed here: a
// Redis read that began before the write was handed, coalesced, to the
// list after it.)
func TestClusterFailoverReadYourWrites(t *testing.T) {
	cl := testredis.StartClusterWithReplicas(t, 3, 1)
	prefix := "scale:" + randHex(4) + ":"
	a := newInstance(t, "A", instOpts{dbURL: testpg.URL(t), redisURL: cl.Nodes[0].URL(), prefix: prefix,
		redisTimeout: 100 * time.Millisecond}) // the production default
	a.waitRedisUp()
	tok, uid := a.user("writer")
	readers := []string{tok, ""}
	for i := 0; i < 10; i++ {
		rt, _ := a.user(fmt.Sprintf("reader%d", i))
		a.model(rt, map[string]any{"name": "m", "provider": "p"})
		readers = append(readers, rt)
	}
	stop, reads, failed := readLoad(a, readers, 100)
	master, err := cl.MasterOf(prefix + "api:models:user:" + uid)
	if err != nil {
		t.Fatal(err)
	}
	const rounds, killAt = 61, 8
	violations := 0
	var killed time.Time
	for round := 0; round < rounds; round++ {
		if round == killAt {
			killed = time.Now()
			master.Kill()
		}
		name := fmt.Sprintf("round-%02d", round)
		a.model(tok, map[string]any{"name": name, "provider": "p"})
		if got, xc := a.modelNames(tok); !contains(got, name) {
			violations++
			t.Errorf("round %d (%s after the kill): the list after the create lacks %s (X-Cache %s, redis %s)",
				round, time.Since(killed).Round(time.Millisecond), name, xc, a.cache.RedisState())
		}
		time.Sleep(250 * time.Millisecond)
	}
	stop()
	if err := cl.WaitHealthy(10 * time.Second); err != nil {
		t.Errorf("the replica was not promoted: %v", err)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d cached reads failed during the failover", n, reads.Load())
	}
	t.Logf("failover: %d rounds, %d violations; %d cached reads, %d failed; master %s killed at round %d",
		rounds, violations, reads.Load(), failed.Load(), master.Addr(), killAt)
}

// readLoad runs n closed-loop readers of GET /api/models spread over
// tokens ("" is anonymous) until stop is called; failed counts transport
// errors and statuses other than 200.
func readLoad(in *inst, tokens []string, n int) (stop func(), reads, failed *atomic.Int64) {
	reads, failed = new(atomic.Int64), new(atomic.Int64)
	var done atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !done.Load(); i++ {
				req, err := testenv.NewRequest("GET", in.url+"/api/models", tokens[(g+i)%len(tokens)], nil)
				var r testenv.Response
				if err == nil {
					r, err = testenv.Send(client, req)
				}
				reads.Add(1)
				if err != nil || r.Status != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	return func() { done.Store(true); wg.Wait() }, reads, failed
}
