package transport

import (
	"net/http"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	cases := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"br, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"deflate", false},
		{"GZIP", true},
	}
	for _, c := range cases {
		r, _ := http.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Accept-Encoding", c.header)
		}
		if got := AcceptsGzip(r); got != c.want {
			t.Errorf("Accept-Encoding %q: got %v, want %v", c.header, got, c.want)
		}
	}
}

func TestETagMatch(t *testing.T) {
	const tag = `"abc"`
	cases := []struct {
		header string
		want   bool
	}{
		{`"abc"`, true},
		{`W/"abc"`, true},
		{`"x", "abc"`, true},
		{`"abc-gz"`, true},
		{`*`, true},
		{`"abd"`, false},
		{`abc`, false},
		{``, false},
		{` , ,"abc"`, true},
		{`W/"abd", W/"abc-gz"`, true},
	}
	for _, c := range cases {
		if got := NoneMatch(c.header, tag, GzipETag(tag)); got != c.want {
			t.Errorf("If-None-Match %q: got %v, want %v", c.header, got, c.want)
		}
	}
}

func TestChallenge(t *testing.T) {
	cases := []struct {
		auth, cookie string
		from         Sources
		want         string
	}{
		{"", "", Bearer, `Bearer realm="modellab"`},
		{"Bearer mlk_x", "", Bearer, `Bearer realm="modellab", error="invalid_token"`},
		{"Basic eDp5", "", Bearer, `Bearer realm="modellab", error="invalid_request"`},
		{"", "mlk_x", Bearer, `Bearer realm="modellab"`}, // the API ignores the session cookie
		{"", "mlk_x", BearerOrSession, `Bearer realm="modellab", error="invalid_token"`},
	}
	for _, c := range cases {
		r, _ := http.NewRequest("GET", "/", nil)
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: c.cookie})
		}
		h := http.Header{}
		Challenge(h, r, c.from)
		if got := h.Get("WWW-Authenticate"); got != c.want {
			t.Errorf("Authorization %q cookie %q: %q, want %q", c.auth, c.cookie, got, c.want)
		}
	}
}
