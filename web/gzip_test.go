package web_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

// rawClient is a browser-like client that leaves compression to the test:
// Go's transport would otherwise ask for gzip and decompress by itself.
func rawClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func gunzip(t *testing.T, body string) string {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Pages are gzip-compressed for clients that take it, with the same bytes
// underneath, Vary: Accept-Encoding, and an identity answer for the others.
func TestPagesGzip(t *testing.T) {
	e := newEnv(t, time.Now)
	d := seedDemo(e, time.Now())
	c := rawClient()
	e.login(c, d.token)
	for _, path := range []string{"/", "/models", "/docs", "/monitor"} {
		plain := e.get(c, path)
		gz := e.get(c, path, "Accept-Encoding", "br;q=1, gzip;q=0.8")
		if plain.status != 200 || gz.status != 200 {
			t.Fatalf("%s: %d / %d", path, plain.status, gz.status)
		}
		if plain.header.Get("Content-Encoding") != "" {
			t.Errorf("%s without Accept-Encoding: Content-Encoding %q", path, plain.header.Get("Content-Encoding"))
		}
		if gz.header.Get("Content-Encoding") != "gzip" || !strings.Contains(gz.header.Get("Vary"), "Accept-Encoding") {
			t.Fatalf("%s: Content-Encoding %q, Vary %q; want gzip and Accept-Encoding", path, gz.header.Get("Content-Encoding"), gz.header.Get("Vary"))
		}
		if got := gunzip(t, gz.body); got != plain.body {
			t.Errorf("%s: the gzip body differs from the identity one", path)
		}
		if len(gz.body) >= len(plain.body) {
			t.Errorf("%s: %d bytes compressed from %d", path, len(gz.body), len(plain.body))
		}
		if refused := e.get(c, path, "Accept-Encoding", "gzip;q=0, identity"); refused.header.Get("Content-Encoding") != "" {
			t.Errorf("%s: gzip;q=0 still compressed", path)
		}
	}
}

// The monitor fragment's ETag names one representation: the gzip one has
// its own tag. The gzip tag revalidates only a gzip request (a client
// without gzip cannot hold those bytes); the identity tag revalidates
// either (the client's identity copy is still current).
func TestMonitorDataGzipETags(t *testing.T) {
	e := newEnv(t, time.Now)
	d := seedDemo(e, time.Now())
	c := rawClient()
	e.login(c, d.token)
	plain := e.get(c, "/monitor/data")
	gz := e.get(c, "/monitor/data", "Accept-Encoding", "gzip")
	if len(plain.body) < 1024 {
		t.Fatalf("the fragment is %d bytes, too small to be compressed: seed more servers", len(plain.body))
	}
	pt, gt := plain.header.Get("ETag"), gz.header.Get("ETag")
	if gz.header.Get("Content-Encoding") != "gzip" || pt == "" || gt == "" || pt == gt {
		t.Fatalf("ETags identity %q, gzip %q (encoding %q): want two different tags", pt, gt, gz.header.Get("Content-Encoding"))
	}
	for _, c2 := range []struct {
		inm, ae string
		want    int
	}{
		{pt, "", 304}, {gt, "gzip", 304}, {pt, "gzip", 304}, {gt, "", 200},
	} {
		hdr := []string{"If-None-Match", c2.inm}
		if c2.ae != "" {
			hdr = append(hdr, "Accept-Encoding", c2.ae)
		}
		r := e.get(c, "/monitor/data", hdr...)
		if r.status != c2.want {
			t.Errorf("If-None-Match %s, Accept-Encoding %q: %d, want %d", c2.inm, c2.ae, r.status, c2.want)
		}
		if r.status == 304 && r.body != "" {
			t.Errorf("304 with a body: %q", r.body)
		}
		if r.status == 200 && c2.ae == "gzip" && !bytes.Equal([]byte(gunzip(t, r.body)), []byte(plain.body)) {
			t.Errorf("the gzip fragment differs from the identity one")
		}
	}
}
