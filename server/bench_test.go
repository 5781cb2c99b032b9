package server_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
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

// BenchmarkCachedVsStatic measures a cache hit of GET /api/models through
// the whole server (middleware, auth, cache, headers, metrics) beside a
// plain handler writing the same bytes: the ratio says how close a cached
// response comes to the cost of static bytes.
//
//	go test -run '^$' -bench CachedVsStatic -benchmem -count 5 ./server/
func BenchmarkCachedVsStatic(b *testing.B) {
	e := newEnv(b, envOpts{})
	for i := 0; i < 50; i++ {
		e.model(adminToken, map[string]any{"name": "model-" + strconv.Itoa(i), "provider": "meta", "visibility": "global"})
	}
	alice, _ := e.user("alice")
	body := e.must(200, "GET", "/api/models", "", nil).body
	static := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(200)
		_, _ = w.Write(body)
	})
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
