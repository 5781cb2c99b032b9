package service

import (
	"fmt"
	"testing"
	"time"
)

// TestTTLJitter: per-user entries get TTLs spread over the last tenth below
// the configured one, the same for a key every time; a shared entry keeps
// its TTL exactly.
func TestTTLJitter(t *testing.T) {
	const ttl = 120 * time.Second
	lo, hi := ttl, time.Duration(0)
	for i := 0; i < 1000; i++ {
		spec := readSpec{key: keyModelsUser(fmt.Sprintf("usr_%04d", i)), ttl: ttl}
		got := spec.fetchOptions().TTL
		if got > ttl || got <= ttl-ttl/10 {
			t.Fatalf("%s: TTL %v, want within (%v, %v]", spec.key, got, ttl-ttl/10, ttl)
		}
		if again := spec.fetchOptions().TTL; again != got {
			t.Fatalf("%s: TTL %v then %v, want the same", spec.key, got, again)
		}
		lo, hi = min(lo, got), max(hi, got)
	}
	if hi-lo < ttl/20 {
		t.Errorf("1,000 users' TTLs span %v..%v, want them spread over most of %v", lo, hi, ttl/10)
	}
	shared := readSpec{key: keyModelsGlobal, ttl: ttl, shared: true}
	if got := shared.fetchOptions().TTL; got != ttl {
		t.Errorf("shared TTL %v, want %v", got, ttl)
	}
}
