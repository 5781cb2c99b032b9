package cache

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

var benchBody = []byte(strings.Repeat(`{"id":1,"name":"model"},`, 80))

func benchLoad(context.Context) ([]byte, error) { return benchBody, nil }

// BenchmarkLocalHit is the hot path: a fresh entry in the in-process tier.
func BenchmarkLocalHit(b *testing.B) {
	c := newCache(b, Options{})
	ctx := context.Background()
	fo := FetchOptions{TTL: time.Hour, Group: "models"}
	c.Fetch(ctx, "k", fo, benchLoad)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, res, _ := c.Fetch(ctx, "k", fo, benchLoad); res != Hit {
				b.Fatalf("res = %v", res)
			}
		}
	})
}

// BenchmarkLocalHitTagged is a local hit on an entry with one tag.
func BenchmarkLocalHitTagged(b *testing.B) {
	c := newCache(b, Options{})
	ctx := context.Background()
	fo := FetchOptions{TTL: time.Hour, Group: "models", Tags: []string{"models:global"}}
	c.Fetch(ctx, "k", fo, benchLoad)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, res, _ := c.Fetch(ctx, "k", fo, benchLoad); res != Hit {
			b.Fatalf("res = %v", res)
		}
	}
}

// BenchmarkRedisHit measures the Redis tier alone (DisableLocal), on the
// machine's Redis.
func BenchmarkRedisHit(b *testing.B) {
	c := newRedisCache(b, Options{RedisURL: sharedRedis, Prefix: testPrefix(b, sharedRedis), DisableLocal: true})
	ctx := context.Background()
	fo := FetchOptions{TTL: time.Hour}
	c.Fetch(ctx, "k", fo, benchLoad)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, res, _ := c.Fetch(ctx, "k", fo, benchLoad); res != Hit {
				b.Fatalf("res = %v", res)
			}
		}
	})
}

// BenchmarkMissFill measures a miss of a new key: local and Redis lookups,
// lease, load (free here) and fill of both tiers.
func BenchmarkMissFill(b *testing.B) {
	c := newRedisCache(b, Options{RedisURL: sharedRedis, Prefix: testPrefix(b, sharedRedis)})
	ctx := context.Background()
	fo := FetchOptions{TTL: time.Minute}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, res, _ := c.Fetch(ctx, fmt.Sprintf("k%d", i), fo, benchLoad); res != Miss {
			b.Fatalf("res = %v", res)
		}
	}
}

// BenchmarkMissFillMemory is the same miss without Redis.
func BenchmarkMissFillMemory(b *testing.B) {
	c := newCache(b, Options{})
	ctx := context.Background()
	fo := FetchOptions{TTL: time.Minute}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, res, _ := c.Fetch(ctx, fmt.Sprintf("k%d", i), fo, benchLoad); res != Miss {
			b.Fatalf("res = %v", res)
		}
	}
}
