package server

import "testing"

func TestSplitPattern(t *testing.T) {
	for _, c := range []struct{ pattern, method, route string }{
		{"GET /api/models", "GET", "/api/models"},
		{"DELETE /api/models/{id}", "DELETE", "/api/models/{id}"},
		{"/", "ANY", "/"},
		{"overload", "ANY", "overload"},
		{"unmatched", "ANY", "unmatched"},
	} {
		if m, r := splitPattern(c.pattern); m != c.method || r != c.route {
			t.Errorf("splitPattern(%q) = %q, %q; want %q, %q", c.pattern, m, r, c.method, c.route)
		}
	}
}
