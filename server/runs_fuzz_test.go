package server

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzQuoteNonFinite: the rewrite of bare NaN and Infinity never touches a
// valid JSON body (it has none outside strings), and what it changes it
// only quotes: without their quotes, input and output are the same.
func FuzzQuoteNonFinite(f *testing.F) {
	for _, s := range []string{`{"points": [{"value": NaN}]}`, `{"a": "NaN", "b": -Infinity}`, `"\"NaN\\"`, `[Infinity,NaN,-Infinity]`, `{"k": "Na\u004e"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, ok := quoteNonFinite(in)
		if json.Valid(in) && ok {
			t.Fatalf("a valid body was rewritten: %q -> %q", in, out)
		}
		if !ok && !bytes.Equal(out, in) {
			t.Fatalf("nothing found, yet %q became %q", in, out)
		}
		strip := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(`"`), nil) }
		if ok && (len(out) <= len(in) || !bytes.Equal(strip(out), strip(in))) {
			t.Fatalf("more than quotes changed: %q -> %q", in, out)
		}
	})
}
