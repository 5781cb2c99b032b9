package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// BenchmarkWritePage is the cost of writing a rendered page (the models
// page of the golden tests, ~8 KB) as is and gzip-compressed:
//
//	go test -run '^$' -bench WritePage -benchmem ./web/
func BenchmarkWritePage(b *testing.B) {
	page, err := os.ReadFile("testdata/models.golden")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, ae string }{{"identity", ""}, {"gzip", "gzip"}} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/models", nil)
			if c.ae != "" {
				r.Header.Set("Accept-Encoding", c.ae)
			}
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			for b.Loop() {
				writePage(httptest.NewRecorder(), r, http.StatusOK, page)
			}
		})
	}
}
