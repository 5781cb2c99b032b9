// Command staticserver is a baseline for modellab's benchmarks: a plain
// net/http handler that writes the same fixed bytes for every request.
//
// It exists for the comparison "cached GET /api/models vs a
// plain net/http handler writing the same bytes": save a /api/models response
// to a file, serve it here with --file, and load both servers with
// `modellab loadtest` (or wrk) using the same connections. It is also the
// target used to check that the load generator itself is not the bottleneck
// (its req/s against this server must be within 20% of wrk's).
//
// Usage:
//
//	staticserver [--addr 127.0.0.1:8090] [--file response.json] [--gzip]
//
// Every path and method is answered 200 with Content-Type: application/json
// and the bytes of --file (default: a built-in JSON document of about 20 KB).
// With --gzip, a client whose Accept-Encoding mentions gzip gets them
// compressed once at start (Content-Encoding: gzip), as a cached response is.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	file := flag.String("file", "", "file whose bytes are served (default: a built-in ~20 KB JSON document)")
	gz := flag.Bool("gzip", false, "serve the bytes gzip-compressed to clients that accept gzip")
	flag.Parse()

	body := defaultBody()
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			log.Fatalf("staticserver: %v", err)
		}
		body = b
	}
	length := strconv.Itoa(len(body))
	zbody := gzipped(body)
	zlength := strconv.Itoa(len(zbody))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = []string{"application/json"}
		if *gz && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			hdr["Content-Encoding"] = []string{"gzip"}
			hdr["Content-Length"] = []string{zlength}
			w.Write(zbody)
			return
		}
		hdr["Content-Length"] = []string{length}
		w.Write(body)
	})
	srv := &http.Server{
		Addr:              *addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Printf("staticserver: serving %d bytes on http://%s", len(body), *addr)
	log.Fatal(srv.ListenAndServe())
}

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// defaultBody builds a deterministic JSON document shaped like a model list,
// of about 20 KB.
func defaultBody() []byte {
	var b bytes.Buffer
	b.WriteString(`{"models":[`)
	for i := 0; b.Len() < 20_000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"model-%03d","provider":"modellab","parameters":%d,"context_window":%d,"global":%t,"created_at":"2025-01-%02dT12:00:00Z"}`,
			i+1, i+1, (i+1)*1_000_000_000, 4096<<(i%4), i%3 == 0, i%28+1)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
