package server

import (
	"net/http"
	"testing"
)

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("127.0.0.1, 10.0.0.0/8, ::1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no proxy trusted: the peer", "203.0.113.7:5555", []string{"198.51.100.1"}, "203.0.113.7:5555"},
		{"trusted proxy: the client it names", "127.0.0.1:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"a forged entry before the proxy's own is not believed", "127.0.0.1:4000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"a chain of trusted proxies", "127.0.0.1:4000", []string{"198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"several header lines", "127.0.0.1:4000", []string{"198.51.100.9", "10.1.2.3"}, "198.51.100.9"},
		{"IPv6 proxy", "[::1]:4000", []string{"2001:db8::5"}, "2001:db8::5"},
		{"IPv4-mapped peer", "[::ffff:127.0.0.1]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted proxy, no header: the proxy", "127.0.0.1:4000", nil, "127.0.0.1:4000"},
		{"all hops trusted: the first", "127.0.0.1:4000", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"garbage stops at the last hop read", "127.0.0.1:4000", []string{"198.51.100.1, not-an-ip"}, "127.0.0.1:4000"},
		{"garbage after a trusted hop", "127.0.0.1:4000", []string{"junk, 10.0.0.1"}, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, trusted); got != tt.want {
				t.Errorf("clientAddr = %q, want %q", got, tt.want)
			}
		})
	}
}

// A request behind the proxy pays no allocation for it.
func TestClientAddrAllocs(t *testing.T) {
	trusted, _ := ParseTrustedProxies("127.0.0.1")
	r := &http.Request{RemoteAddr: "127.0.0.1:4000", Header: http.Header{"X-Forwarded-For": {"1.2.3.4, 198.51.100.1"}}}
	if n := testing.AllocsPerRun(100, func() { _ = clientAddr(r, trusted) }); n != 0 {
		t.Errorf("clientAddr allocates %v times per request, want 0", n)
	}
}

func TestParseTrustedProxies(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "localhost", "1.2.3"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q): no error", bad)
		}
	}
	got, err := ParseTrustedProxies(" 10.1.2.3/8 ,, 192.0.2.1 ")
	if err != nil || len(got) != 2 || got[0].String() != "10.0.0.0/8" || got[1].String() != "192.0.2.1/32" {
		t.Errorf("ParseTrustedProxies = %v %v", got, err)
	}
}
