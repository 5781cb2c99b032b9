package testredis

import (
	"strings"
	"testing"
)

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := s.Do("GET", "k"); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatalf("PING after Kill succeeded")
	}
	s.Restart()
	if got, err := s.Do("GET", "k"); err != nil || got != "" {
		t.Fatalf("GET after restart = %q, %v; want empty", got, err)
	}
	s.Freeze()
	s.Thaw()
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after thaw = %q, %v", got, err)
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	info, err := c.Nodes[1].Do("CLUSTER", "INFO")
	if err != nil || !strings.Contains(info, "cluster_known_nodes:3") {
		t.Fatalf("CLUSTER INFO = %q, %v", info, err)
	}
}
