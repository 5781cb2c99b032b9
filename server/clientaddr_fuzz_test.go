package server

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzClientAddr: whatever a client writes in X-Forwarded-For, clientAddr
// does not panic and answers the peer or one of the header's own entries;
// and a request from a peer that is not trusted is the peer, header or not.
func FuzzClientAddr(f *testing.F) {
	f.Add("127.0.0.1:4000", "198.51.100.1")
	f.Add("127.0.0.1:4000", "1.2.3.4, 10.0.0.1 ,, ::1")
	f.Add("[::1]:1", " , ,")
	f.Add("203.0.113.9:80", "127.0.0.1")
	trusted, _ := ParseTrustedProxies("127.0.0.1, 10.0.0.0/8, ::1")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		got := clientAddr(r, trusted)
		if got != remote && !strings.Contains(xff, got) {
			t.Fatalf("clientAddr(%q, %q) = %q: neither the peer nor an entry of the header", remote, xff, got)
		}
		if peer, ok := hostAddr(remote); ok && !isTrusted(peer, trusted) && got != remote {
			t.Fatalf("untrusted peer %q: clientAddr = %q, want the peer", remote, got)
		}
	})
}
