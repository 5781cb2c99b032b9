package server_test

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"syscall"
	"testing"
)

// discardWriter is a reusable http.ResponseWriter that keeps nothing, so
// the benchmarks measure the handler, not the recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// hitFixture is a server holding 50 global models, a user, the body of
// the global list, and a plain handler writing that body.
func hitFixture(b *testing.B) (e *env, alice string, body []byte, static http.Handler) {
	e = newEnv(b, envOpts{})
	for i := 0; i < 50; i++ {
		e.model(adminToken, map[string]any{"name": "model-" + strconv.Itoa(i), "provider": "meta", "visibility": "global"})
	}
	alice, _ = e.user("alice")
	body = e.must(200, "GET", "/api/models", "", nil).body
	static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(200)
		_, _ = w.Write(body)
	})
	return e, alice, body, static
}

// BenchmarkCachedVsStatic measures a cache hit of GET /api/models through
// the whole server (middleware, auth, cache, headers, metrics) beside a
// plain handler writing the same bytes: the ratio says how close a cached
// response comes to the cost of static bytes.
//
//	go test -run '^$' -bench CachedVsStatic -benchmem -count 5 ./server/
func BenchmarkCachedVsStatic(b *testing.B) {
	e, alice, body, static := hitFixture(b)
	run := func(b *testing.B, h http.Handler, token string) {
		req := httptest.NewRequest("GET", "/api/models", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				clear(w.h)
				h.ServeHTTP(w, req)
				if w.code != 200 {
					b.Errorf("status %d", w.code)
					return
				}
			}
		})
	}
	b.Run("static", func(b *testing.B) { run(b, static, "") })
	b.Run("cached-global", func(b *testing.B) { run(b, e.h, "") })
	b.Run("cached-user", func(b *testing.B) { run(b, e.h, alice) })
}

// BenchmarkCachedVsStaticCPU is BenchmarkCachedVsStatic on one goroutine
// locked to its thread, reporting the thread's CPU time per request
// (cpu-ns/op) beside the wall time: on a shared machine, waiting for a core
// inflates the wall time but not the CPU time, so before/after comparisons
// stay readable under load.
//
//	go test -run '^$' -bench CachedVsStaticCPU -benchmem -count 6 ./server/
func BenchmarkCachedVsStaticCPU(b *testing.B) {
	e, alice, _, static := hitFixture(b)
	run := func(b *testing.B, h http.Handler, token string) {
		req := httptest.NewRequest("GET", "/api/models", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := &discardWriter{h: http.Header{}}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.ReportAllocs()
		b.ResetTimer()
		start := threadCPU()
		for i := 0; i < b.N; i++ {
			clear(w.h)
			h.ServeHTTP(w, req)
			if w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
		}
		b.ReportMetric(float64(threadCPU()-start)/float64(b.N), "cpu-ns/op")
	}
	b.Run("static", func(b *testing.B) { run(b, static, "") })
	b.Run("cached-global", func(b *testing.B) { run(b, e.h, "") })
	b.Run("cached-user", func(b *testing.B) { run(b, e.h, alice) })
}

// threadCPU is the CPU time of the calling thread, in nanoseconds.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
