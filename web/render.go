package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
)

// view is what every page template receives.
type view struct {
	Title string
	Nav   string // the active item of the navigation
	User  *modellab.User
	CSRF  string // the anti-CSRF token of the session's forms
	Data  any    // the page's own data
}

// pageTemplate is one page: the layout plus the page's file.
type pageTemplate struct{ t *template.Template }

// pageFiles are the pages under templates/, each executed through "layout".
var pageFiles = []string{"home", "models", "monitor", "run", "analytics", "chat", "docs", "login", "error", "academy", "lesson", "admin_cache", "tokens"}

func parsePages(fsys fs.FS, as *assets) (map[string]*pageTemplate, error) {
	funcs := template.FuncMap{
		"asset":    as.url,
		"num":      fmtInt,
		"float":    fmtFloat,
		"ms":       fmtMS,
		"usd":      fmtUSD,
		"time":     fmtTime,
		"timePtr":  fmtTimePtr,
		"date":     func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
		"deref":    derefInt,
		"percent":  percent,
		"ratio":    fmtRatio,
		"bytes":    fmtBytes,
		"lower":    strings.ToLower,
		"initials": initials,
	}
	out := map[string]*pageTemplate{}
	for _, name := range pageFiles {
		t, err := template.New(name).Funcs(funcs).ParseFS(fsys, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		out[name] = &pageTemplate{t: t}
	}
	return out, nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// securityHeaders are set on every page. The CSP allows nothing but this
// origin: no inline script, no external resource.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "+
		"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// render executes template name (entry point tmpl) into a buffer first, so
// that a template error becomes a clean 500 rather than half a page.
func (a *app) render(w http.ResponseWriter, r *http.Request, status int, name, entry string, v any) {
	a.renderCached(w, r, status, name, entry, v, "")
}

// renderCached is render with a rendered-page cache: when key is not empty
// and a page was rendered under it, its bytes are written again without
// running the template. A key must name everything the page shows (the
// cache entries' ETags, the session, the query, the clock where it shows);
// see pageKey.
func (a *app) renderCached(w http.ResponseWriter, r *http.Request, status int, name, entry string, v any, key string) {
	if key != "" {
		if b, ok := a.rendered.get(key); ok {
			writePage(w, r, status, b)
			return
		}
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bufPool.Put(buf)
		}
	}()
	if err := a.pages[name].t.ExecuteTemplate(buf, entry, v); err != nil {
		a.log.ErrorContext(r.Context(), "page template failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if key != "" {
		a.rendered.put(key, bytes.Clone(buf.Bytes()))
	}
	writePage(w, r, status, buf.Bytes())
}

// writeRendered writes the page rendered under key, when there is one, and
// reports whether it did. Pages check it before decoding their cache
// entries: a crowd's per-user entries outnumber the decoded values kept, so
// a page whose parts have not changed must cost neither a decode nor a
// template run.
func (a *app) writeRendered(w http.ResponseWriter, r *http.Request, status int, key string) bool {
	if key == "" {
		return false
	}
	b, ok := a.rendered.get(key)
	if ok {
		writePage(w, r, status, b)
	}
	return ok
}

// writePage writes a rendered page, gzip-compressed when the client takes
// gzip and the page is worth it. A compressed page is another
// representation: an ETag the handler set gets the -gz suffix (a strong or
// weak tag names the bytes of one encoding), and an If-None-Match naming
// that tag is answered 304 here.
func writePage(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show the caller's data: never shared caches, and revalidated.
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "private, no-cache")
	}
	h.Set("Vary", "Authorization, Cookie, Accept-Encoding")
	securityHeaders(h)
	if len(body) >= gzipMinPageBytes && acceptsGzip(r) {
		if etag := h.Get("ETag"); etag != "" {
			etag = gzipETag(etag)
			h.Set("ETag", etag)
			if status == http.StatusOK && r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		body = gzipBytes(body)
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// gzipMinPageBytes is the size below which compressing costs more than it
// saves (a response fits in a packet or two either way).
const gzipMinPageBytes = 1024

var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// gzipBytes compresses b at the fastest level: pages are compressed on
// every view (the rendered-page cache holds them uncompressed).
func gzipBytes(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) / 4)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	gzipWriters.Put(zw)
	return out.Bytes()
}

// gzipETag is the tag of the gzip representation of the one tagged etag.
func gzipETag(etag string) string {
	if strings.HasSuffix(etag, `"`) {
		return etag[:len(etag)-1] + `-gz"`
	}
	return etag + "-gz"
}

// acceptsGzip reports whether Accept-Encoding takes gzip: listed with a
// non-zero quality, or not listed while * is.
func acceptsGzip(r *http.Request) bool {
	star := false
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			switch name = strings.TrimSpace(name); {
			case strings.EqualFold(name, "gzip"):
				return quality(params) > 0
			case name == "*":
				star = quality(params) > 0
			}
		}
	}
	return star
}

// quality is the q parameter of an Accept-Encoding entry (1 when absent).
func quality(params string) float64 {
	k, v, ok := strings.Cut(strings.TrimSpace(params), "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
		return 1
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 1
	}
	return f
}

// pageKey builds a rendered-page cache key from the session (user and
// anti-CSRF value, which is unique per token), the page and the parts
// given, separated by a byte no part contains.
func pageKey(page string, v *view, parts ...string) string {
	var b strings.Builder
	b.WriteString(page)
	b.WriteByte(0)
	if v.User != nil {
		b.WriteString(v.User.ID)
		b.WriteByte(0)
		b.WriteString(v.User.Name)
		if v.User.Admin {
			b.WriteString("\x00admin")
		}
	}
	b.WriteByte(0)
	b.WriteString(v.CSRF)
	for _, p := range parts {
		b.WriteByte(0)
		b.WriteString(p)
	}
	return b.String()
}

// renderedCache holds rendered pages, bounded by total bytes. When full it
// is emptied at once: crude, but bounded and cheap, and the pages in use
// come back on their next view.
type renderedCache struct {
	mu       sync.Mutex
	m        map[string][]byte
	size     int
	maxBytes int
}

func newRenderedCache(maxBytes int) *renderedCache {
	return &renderedCache{m: map[string][]byte{}, maxBytes: maxBytes}
}

func (c *renderedCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[key]
	return b, ok
}

func (c *renderedCache) put(key string, b []byte) {
	if len(b) > c.maxBytes/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[key]; ok {
		c.size -= len(old) + len(key)
	}
	if c.size+len(b)+len(key) > c.maxBytes {
		clear(c.m)
		c.size = 0
	}
	c.m[key] = b
	c.size += len(b) + len(key)
}

func (a *app) renderPage(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	a.render(w, r, status, name, "layout", v)
}

type errorData struct {
	Status  int
	Heading string
	Message string
}

// renderError shows an error page; v may be nil (no session known).
func (a *app) renderError(w http.ResponseWriter, r *http.Request, v *view, status int, heading, msg string) {
	if v == nil {
		v = &view{}
	}
	v.Title, v.Nav = heading, ""
	v.Data = errorData{Status: status, Heading: heading, Message: msg}
	transport.SetRetryAfter(w.Header(), status)
	a.renderPage(w, r, status, "error", v)
}

// fail answers err as an error page with the status of the API's table.
func (a *app) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	if transport.ClientGone(r) {
		// Nobody is there to read a page; the middleware counts a 499.
		a.log.DebugContext(r.Context(), "client went away", "path", r.URL.Path, "err", err)
		return
	}
	status := transport.StatusOf(err)
	heading := http.StatusText(status)
	msg := modellab.ErrorMessage(err)
	switch status {
	case http.StatusServiceUnavailable:
		heading = "Temporarily unavailable"
		msg += " The page will work again in a moment: reload it."
		a.log.WarnContext(r.Context(), "page unavailable", "path", r.URL.Path, "err", err)
	case http.StatusTooManyRequests:
		heading = "Too many requests"
		msg += " Wait a moment, then reload the page."
	case http.StatusInternalServerError:
		a.log.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "err", err)
	}
	a.renderError(w, r, v, status, heading, msg)
}

// Formatting helpers of the templates. Numbers are grouped by thousands so
// that large counts stay readable.

func fmtInt(n any) string {
	var v int64
	switch x := n.(type) {
	case int:
		v = int64(x)
	case int64:
		v = x
	default:
		return fmt.Sprint(n)
	}
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtFloat(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "–"
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

func fmtMS(f float64) string {
	if f >= 10000 {
		return strconv.FormatFloat(f/1000, 'f', 1, 64) + " s"
	}
	if f >= 100 {
		return strconv.FormatFloat(f, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " ms"
}

func fmtUSD(f float64) string {
	if f != 0 && f < 0.01 {
		return "$" + strconv.FormatFloat(f, 'f', 4, 64)
	}
	return "$" + strconv.FormatFloat(f, 'f', 2, 64)
}

func fmtTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}

func derefInt(p *int64) string {
	if p == nil {
		return "—"
	}
	return fmtInt(*p)
}

// percent is part/total as a whole percentage.
func percent(part, total int) int {
	if total <= 0 {
		return 0
	}
	return int(math.Round(float64(part) * 100 / float64(total)))
}

// fmtRatio shows a ratio in [0, 1] as a percentage with one decimal.
func fmtRatio(r float64) string { return strconv.FormatFloat(r*100, 'f', 1, 64) + "%" }

// fmtBytes shows a size in B, KB or MB (powers of 1,000, as the metrics).
func fmtBytes(n any) string {
	var v float64
	switch x := n.(type) {
	case int:
		v = float64(x)
	case uint64:
		v = float64(x)
	case int64:
		v = float64(x)
	}
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + " MB"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + " KB"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " B"
}

func initials(s string) string {
	if s == "" {
		return "?"
	}
	r := []rune(s)
	return strings.ToUpper(string(r[0]))
}
