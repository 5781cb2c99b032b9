package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
	"github.com/modellab/modellab/service"
)

// Header values are shared slices: assigning them to the header map avoids
// an allocation per response on the hot path.
var (
	hdrJSON          = []string{"application/json"}
	hdrPrivate       = []string{"private, no-cache"}
	hdrPublic        = []string{"public, no-cache"}
	hdrVary          = []string{"Authorization, Cookie, Accept-Encoding"}
	hdrGzip          = []string{"gzip"}
	hdrNoStore       = []string{"no-store"}
	gzipMinBodyBytes = 1024
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrJSON
	if h.Get("Cache-Control") == "" {
		h["Cache-Control"] = hdrNoStore
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body) + 1)}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write([]byte{'\n'})
}

// writeCached answers a cached GET: X-Cache, a strong ETag, 304 on a
// matching If-None-Match, and the pre-compressed body when the client takes
// gzip. Nothing here encodes JSON: the entry already holds the bytes.
func writeCached(w http.ResponseWriter, r *http.Request, e *service.Answer, public bool) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	transport.SetCacheResult(h, e.Result)
	if public {
		h["Cache-Control"] = hdrPublic
	} else {
		h["Cache-Control"] = hdrPrivate
	}
	if _, set := h["Vary"]; !set { // public content sets its own
		h["Vary"] = hdrVary
	}
	etag := e.ETag
	gz := e.Size() >= gzipMinBodyBytes && transport.AcceptsGzip(r)
	if gz {
		etag = transport.GzipETag(e.ETag)
	}
	h["Etag"] = headerValue(w, etag)
	// Either representation's tag validates the client's copy; the gzip
	// tag is derived only when there is a header to compare it with.
	if inm := transport.HeaderGet(r.Header, "If-None-Match"); inm != "" && transport.NoneMatch(inm, e.ETag, transport.GzipETag(e.ETag)) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	var body []byte
	if gz {
		body = e.Gzip() // as Redis held it, when stored compressed
		h["Content-Encoding"] = hdrGzip
	} else {
		body = e.Body()
	}
	h["Content-Length"] = headerValue(w, strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// decodeJSON reads a JSON body strictly: one object, no unknown fields, no
// trailing data, valid UTF-8, at most MaxBodyBytes. Every failure is a 4xx.
func decodeJSON(r *http.Request, dst any) error {
	if r.Body == nil {
		return modellab.Errorf(modellab.EINVALID, "request body is empty")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	return decodeBody(body, dst)
}

// decodeBody is decodeJSON on bytes read whole.
func decodeBody(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return modellab.Errorf(modellab.EINVALID, "request body is empty")
	}
	if !utf8.Valid(body) {
		return modellab.Errorf(modellab.EINVALID, "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return modellab.Errorf(modellab.EINVALID, "request body must hold a single JSON value")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mod *modellab.Error
	switch {
	case errors.As(err, &mod):
		return err
	case errors.As(err, &syn):
		return modellab.Errorf(modellab.EINVALID, "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return modellab.Errorf(modellab.EINVALID, "field %s must be %s", typ.Field, typeName(typ.Type.String()))
		}
		return modellab.Errorf(modellab.EINVALID, "request body must be a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return modellab.Errorf(modellab.EINVALID, "malformed JSON: unexpected end of input")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return modellab.Errorf(modellab.EINVALID, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return modellab.WrapError(modellab.EINVALID, err, "malformed JSON")
}

func typeName(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer in range"
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "Time"):
		return "an RFC 3339 time"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "of another type"
}
