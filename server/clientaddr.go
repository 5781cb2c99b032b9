package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address a request is admitted as when it is anonymous.
// It is the peer's, unless the peer is one of the trusted proxies: then it
// is the last address of X-Forwarded-For that is not itself a trusted
// proxy, since each proxy appends the address it got the request from and
// only the part written by trusted hops can be believed. A client can put
// anything before that; it cannot get past it.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := hostAddr(r.RemoteAddr)
	if !ok || !isTrusted(peer, trusted) {
		return r.RemoteAddr
	}
	// Substrings of the request, not formatted addresses: this runs on
	// every request behind the proxy, hits included.
	client := r.RemoteAddr
	values := r.Header["X-Forwarded-For"]
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			hop := rest
			if k := strings.LastIndexByte(rest, ','); k >= 0 {
				hop, rest = rest[k+1:], rest[:k]
			} else {
				rest = ""
			}
			hop = strings.TrimSpace(hop)
			a, err := netip.ParseAddr(hop)
			if err != nil {
				return client // a hop we cannot read: stop at the last one we could
			}
			client = hop
			if !isTrusted(a.Unmap(), trusted) {
				return client
			}
		}
	}
	return client
}

// hostAddr is the IP of a host:port (or of a bare IP).
func hostAddr(hostport string) (netip.Addr, bool) {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	return a.Unmap(), err == nil
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma-separated list of addresses and CIDR
// prefixes ("127.0.0.1, 10.0.0.0/8, ::1").
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, err
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
