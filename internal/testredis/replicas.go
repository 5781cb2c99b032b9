package testredis

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartClusterWithReplicas starts a Redis Cluster of masters masters with
// replicas replicas each (`redis-cli --cluster create … --cluster-replicas
// N`), and waits until every node reports cluster_state:ok and every
// replica is in sync. Nodes lists masters first, then replicas, as created;
// which node is a master changes with a failover: ask MasterOf.
//
// The nodes run with cluster-node-timeout 2000 ms: a killed master is
// marked failed and replaced by its replica about 2-4 s later.
func StartClusterWithReplicas(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testredis: a cluster needs at least 3 masters, got %d", masters)
	}
	cli := lookPath(t, "redis-cli")
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for i := 0; i < masters*(1+replicas); i++ {
		n := start(t, true)
		c.Nodes = append(c.Nodes, n)
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testredis: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatalf("testredis: %v", err)
	}
	return c
}

// WaitHealthy waits until every node that answers reports cluster_state:ok
// and a master for every slot, and every replica that answers is linked
// to its master.
func (c *Cluster) WaitHealthy(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if c.healthy() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not healthy after %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) healthy() bool {
	live := 0
	for _, n := range c.Nodes {
		info, err := n.Do("CLUSTER", "INFO")
		if err != nil {
			continue // killed
		}
		live++
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return false
		}
		repl, err := n.Do("INFO", "replication")
		if err != nil || (strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up")) {
			return false
		}
	}
	return live > 0
}

// MasterOf returns the node that serves key's slot now, as a node that
// answers sees it (CLUSTER KEYSLOT and CLUSTER NODES).
func (c *Cluster) MasterOf(key string) (*Server, error) {
	for _, n := range c.Nodes {
		slotS, err := n.Do("CLUSTER", "KEYSLOT", key)
		if err != nil {
			continue
		}
		slot, _ := strconv.Atoi(slotS)
		nodes, err := n.Do("CLUSTER", "NODES")
		if err != nil {
			continue
		}
		if addr := masterAddr(nodes, slot); addr != "" {
			for _, m := range c.Nodes {
				if m.Addr() == addr {
					return m, nil
				}
			}
		}
		return nil, fmt.Errorf("no live master serves slot %d", slot)
	}
	return nil, fmt.Errorf("no node answers")
}

// masterAddr finds, in CLUSTER NODES output, the healthy master whose slot
// ranges hold slot.
func masterAddr(nodes string, slot int) string {
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && slot >= a && slot <= b {
				addr, _, _ := strings.Cut(f[1], "@")
				return addr
			}
		}
	}
	return ""
}
