package transport

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/modellab/modellab/cache"
)

// HeaderGet is Header.Get for a key already in canonical form: the hot path
// reads a few headers per request, and Get would canonicalise the key each
// time.
func HeaderGet(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// NoneMatch reports whether an If-None-Match header value matches one of
// the current entity tags of a resource (RFC 9110 §13.1.2): a list of tags
// compared weakly (W/ ignored on either side), or "*". A match means the
// client's copy is current: answer 304.
func NoneMatch(header string, etags ...string) bool {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ",")
		t := strings.TrimSpace(part)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		for _, e := range etags {
			if t != "" && t == strings.TrimPrefix(e, "W/") {
				return true
			}
		}
	}
	return false
}

// NotModified answers 304 when r's If-None-Match matches one of etags, and
// reports whether it did. The caller has set the response's validators
// (ETag, Cache-Control, Vary) first: a 304 carries them.
func NotModified(w http.ResponseWriter, r *http.Request, etags ...string) bool {
	inm := HeaderGet(r.Header, "If-None-Match")
	if inm == "" || !NoneMatch(inm, etags...) {
		return false
	}
	w.WriteHeader(http.StatusNotModified)
	return true
}

// GzipETag derives the tag of the gzip representation: a strong ETag names
// one exact byte sequence, so the two encodings need different tags.
func GzipETag(etag string) string {
	if len(etag) >= 2 && etag[len(etag)-1] == '"' {
		return etag[:len(etag)-1] + `-gz"`
	}
	return etag + "-gz"
}

// AcceptsGzip reports whether Accept-Encoding lists gzip with a non-zero
// quality.
func AcceptsGzip(r *http.Request) bool {
	for _, v := range r.Header["Accept-Encoding"] {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := 1.0
			if k, val, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					q = f
				}
			}
			return q > 0
		}
	}
	return false
}

// cacheHeaders are the header values of each cache result, shared slices
// (assigning them to a header map allocates nothing).
var cacheHeaders = map[cache.Result][2][]string{
	cache.Hit:    {{"HIT"}, {"modellab; hit"}},
	cache.Miss:   {{"MISS"}, {"modellab; fwd=miss"}},
	cache.Stale:  {{"STALE"}, {"modellab; fwd=stale"}},
	cache.Bypass: {{"BYPASS"}, {"modellab; fwd=bypass"}},
}

// SetCacheResult says where an answer came from, twice: X-Cache, and the
// RFC 9211 Cache-Status (a stale serve is forwarded for revalidation).
func SetCacheResult(h http.Header, res cache.Result) {
	v := cacheHeaders[res]
	h["X-Cache"], h["Cache-Status"] = v[0], v[1]
}
