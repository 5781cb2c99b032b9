package cache

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

var benchBody = []byte(strings.Repeat(`{"id":1,"name":"model"},`, 80))

func benchLoad(context.Context) ([]byte, error) { return benchBody, nil }

// benchFetch times Fetch on c. For hits the key is filled once and read
// again (in parallel if asked); for misses every iteration uses a new key.
func benchFetch(b *testing.B, c *Cache, fo FetchOptions, want Result, parallel bool) {
	ctx := context.Background()
	key := func(int) string { return "k" }
	if want == Miss {
		key = func(i int) string { return fmt.Sprintf("k%d", i) }
	} else {
		c.Fetch(ctx, "k", fo, benchLoad)
	}
	// fetch reports with b.Error, not b.Fatal: it runs on RunParallel's
	// goroutines, where Fatal must not be called; the loops stop instead.
	fetch := func(i int) bool {
		if _, res, _ := c.Fetch(ctx, key(i), fo, benchLoad); res != want {
			b.Errorf("res = %v, want %v", res, want)
			return false
		}
		return true
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !fetch(0) {
					return
				}
			}
		})
		return
	}
	for i := 0; i < b.N; i++ {
		if !fetch(i) {
			return
		}
	}
}

// BenchmarkLocalHit is the hot path: a fresh entry in the in-process tier.
func BenchmarkLocalHit(b *testing.B) {
	benchFetch(b, newCache(b, Options{}), FetchOptions{TTL: time.Hour, Group: "models"}, Hit, true)
}

// BenchmarkLocalHitTagged is a local hit on an entry with one tag.
func BenchmarkLocalHitTagged(b *testing.B) {
	fo := FetchOptions{TTL: time.Hour, Group: "models", Tags: []string{"models:global"}}
	benchFetch(b, newCache(b, Options{}), fo, Hit, false)
}

// BenchmarkRedisHit measures the Redis tier alone (DisableLocal), on the
// machine's Redis.
func BenchmarkRedisHit(b *testing.B) {
	c := newRedisCache(b, Options{RedisURL: sharedRedis, Prefix: testPrefix(b, sharedRedis), DisableLocal: true})
	benchFetch(b, c, FetchOptions{TTL: time.Hour}, Hit, true)
}

// BenchmarkMissFill measures a miss of a new key: local and Redis lookups,
// lease, load (free here) and fill of both tiers.
func BenchmarkMissFill(b *testing.B) {
	c := newRedisCache(b, Options{RedisURL: sharedRedis, Prefix: testPrefix(b, sharedRedis)})
	benchFetch(b, c, FetchOptions{TTL: time.Minute}, Miss, false)
}

// BenchmarkMissFillMemory is the same miss without Redis.
func BenchmarkMissFillMemory(b *testing.B) {
	benchFetch(b, newCache(b, Options{}), FetchOptions{TTL: time.Minute}, Miss, false)
}

// BenchmarkPeek is the hit as the service layer takes it: Peek answers a
// fresh local entry before any loader is built.
func BenchmarkPeek(b *testing.B) {
	for _, tc := range []struct {
		name string
		tags []string
	}{{"untagged", nil}, {"tagged", []string{"models:global"}}} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCache(b, Options{})
			c.Fetch(context.Background(), "k", FetchOptions{TTL: time.Hour, Group: "models", Tags: tc.tags}, benchLoad)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, ok := c.Peek("k", "models"); !ok {
						b.Error("Peek missed")
						return
					}
				}
			})
		})
	}
}

// BenchmarkHitCPU times the hit paths on one goroutine locked to its
// thread and reports, besides ns/op, the thread's CPU time per operation
// (cpu-ns/op): on a machine shared with other work, wall time includes
// the time the thread waited for a core, CPU time does not.
func BenchmarkHitCPU(b *testing.B) {
	for _, tc := range []struct {
		name string
		peek bool
		tags []string
	}{
		{"Peek/untagged", true, nil},
		{"Peek/tagged", true, []string{"models:global"}},
		{"Fetch/untagged", false, nil},
		{"Fetch/tagged", false, []string{"models:global"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCache(b, Options{})
			fo := FetchOptions{TTL: time.Hour, Group: "models", Tags: tc.tags}
			ctx := context.Background()
			c.Fetch(ctx, "k", fo, benchLoad)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			start := threadCPU()
			for i := 0; i < b.N; i++ {
				if tc.peek {
					if _, ok := c.Peek("k", "models"); !ok {
						b.Fatal("Peek missed")
					}
				} else if _, res, _ := c.Fetch(ctx, "k", fo, benchLoad); res != Hit {
					b.Fatalf("res = %v", res)
				}
			}
			b.ReportMetric(float64(threadCPU()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// threadCPU is the CPU time of the calling thread, in nanoseconds.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkDecodeCompressed is what a Redis-tier read of a 60 KB entry
// stored compressed costs in the process: decoding, then the gzip bytes
// (a client that accepts gzip) or the inflated body (one that does not).
func BenchmarkDecodeCompressed(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 60<<10; i++ {
		fmt.Fprintf(&sb, `{"t":"2026-09-01T%02d:00:00Z","requests":%d,"errors":%d},`, i%24, 1000+i*7%313, i%17)
	}
	raw := encodeEntry(newEntry([]byte(sb.String()), fillInfo{at: time.Now(), ttl: time.Hour}), 4096)
	// identity-pooled is identity as a request without the local tier
	// reads it: inflated into a buffer the caller reuses (BodyInto).
	var dst []byte
	for _, form := range []string{"gzip", "identity", "identity-pooled"} {
		b.Run(form, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(sb.String())))
			for i := 0; i < b.N; i++ {
				e, err := decodeEntry(raw)
				if err != nil {
					b.Fatal(err)
				}
				switch form {
				case "gzip":
					_ = e.Gzip()
				case "identity":
					dst = e.Body()
				default:
					dst, _ = e.BodyInto(dst)
				}
				if form != "gzip" && len(dst) != sb.Len() {
					b.Fatal("short body")
				}
			}
		})
	}
}
