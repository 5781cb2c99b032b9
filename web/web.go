// Package web renders modellab's pages for people: home, models, the
// training monitor, analytics, the chat, Lab Academy and the API reference,
// plus the
// login form.
//
// The pages read through the same use cases as the JSON API (package
// service: ModelsList, ServersStatus, AnalyticsData…), so they are served
// from the same cache entries and invalidated by the same writes; web does
// not depend on the JSON API's package. Everything they
// need — templates, CSS, the few lines of JavaScript of the monitor and the
// OpenAPI document — is embedded with go:embed: the pages make no external
// request and work offline. Charts are SVG drawn on the server.
//
// Sessions: POST /login checks the pasted API token and stores it in the
// HttpOnly, SameSite=Lax cookie modellab_session, which the service resolves
// like a bearer token (cached, so a page costs no database round trip for
// auth). Pages also accept
// Authorization: Bearer, so the load tester can fetch them.
//
// CSRF: every form that changes something carries a token derived from the
// credential of the session (HMAC keyed by the session token). It needs no
// server-side state and no shared secret, so it works across instances; a
// cross-site page cannot read it. The login form, which has no session yet,
// uses a double-submit cookie. On top of that, net/http's
// CrossOriginProtection rejects cross-origin POSTs that browsers label as
// such (Sec-Fetch-Site, Origin).
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/service"
)

//go:embed templates/*.html static/* openapi.json
var files embed.FS

// Config is what the pages need; cmd/modellab fills it in.
type Config struct {
	Service *service.Service
	Logger  *slog.Logger
}

// app holds what the page handlers share. It is immutable after New.
type app struct {
	svc    *service.Service
	log    *slog.Logger
	pages  map[string]*pageTemplate
	assets *assets
	docs   template.HTML // the reference, rendered once
	spec   []byte
	specET string
	decode *decodeCache
	// rendered holds rendered pages by what they show (see pageKey).
	rendered *renderedCache
	cop      *http.CrossOriginProtection

	// frags holds the shared fragments of composed pages (the lessons).
	frags *fragments
}

// Pages are modellab's HTML pages, ready to be mounted on a mux.
type Pages struct{ a *app }

// New parses the embedded templates and prepares the pages. An error means
// the embedded files are broken: a bug every test sees.
func New(cfg Config) (*Pages, error) {
	a, err := newApp(cfg)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return &Pages{a: a}, nil
}

// Register mounts every page route on mux.
func (p *Pages) Register(mux *http.ServeMux) { p.a.routes(mux) }

func newApp(cfg Config) (*app, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &app{svc: cfg.Service, log: cfg.Logger, decode: newDecodeCache(512), rendered: newRenderedCache(64 << 20), frags: newFragments()}
	var err error
	if a.assets, err = newAssets(files); err != nil {
		return nil, err
	}
	if a.pages, err = parsePages(files, a.assets); err != nil {
		return nil, err
	}
	if a.spec, err = fs.ReadFile(files, "openapi.json"); err != nil {
		return nil, err
	}
	a.specET = cache.ETagOf(a.spec)
	doc, err := parseAPIDoc(a.spec)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := a.pages["docs"].t.ExecuteTemplate(&buf, "docs_body", doc); err != nil {
		return nil, fmt.Errorf("render docs: %w", err)
	}
	a.docs = template.HTML(buf.String())
	a.cop = http.NewCrossOriginProtection()
	a.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.renderError(w, r, nil, http.StatusForbidden, "Request refused",
			"This form was sent from another site. Go back, reload the page and try again.")
	}))
	return a, nil
}

// routes lists every page route. "/" itself stays the API's JSON 404: the
// home page is "/{$}" only.
func (a *app) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", a.page(a.home))
	mux.HandleFunc("GET /models", a.page(a.models))
	mux.Handle("POST /models", a.form(a.createModel))
	mux.Handle("POST /models/{id}/delete", a.form(a.deleteModel))
	mux.HandleFunc("GET /monitor", a.page(a.monitor))
	mux.HandleFunc("GET /monitor/data", a.monitorData)
	mux.HandleFunc("GET /monitor/runs/{id}", a.page(a.runPage))
	mux.HandleFunc("GET /monitor/runs/{id}/live", a.runLiveData)
	mux.HandleFunc("GET /analytics", a.page(a.analytics))
	mux.HandleFunc("GET /academy", a.academyIndex)
	mux.HandleFunc("GET /academy/{lesson}", a.lessonPage)
	mux.Handle("POST /academy/{lesson}/complete", a.form(a.completeLesson))
	mux.HandleFunc("GET /admin/cache", a.page(a.adminCache))
	mux.Handle("POST /admin/cache/purge", a.form(a.adminPurge))
	mux.HandleFunc("GET /chat", a.page(a.chat))
	mux.Handle("POST /chat", a.form(a.createConversation))
	mux.HandleFunc("GET /chat/{id}", a.page(a.chatConversation))
	mux.Handle("POST /chat/{id}/messages", a.form(a.sendMessage))
	mux.Handle("POST /chat/{id}/delete", a.form(a.deleteConversation))
	mux.HandleFunc("GET /settings/tokens", a.page(a.tokensPage))
	mux.Handle("POST /settings/tokens", a.form(a.createToken))
	mux.Handle("POST /settings/tokens/{id}/revoke", a.form(a.revokeToken))
	mux.HandleFunc("GET /docs", a.docsPage)
	mux.HandleFunc("GET /openapi.json", a.openAPI)
	mux.HandleFunc("GET /login", a.loginForm)
	mux.Handle("POST /login", a.cop.Handler(http.HandlerFunc(a.login)))
	mux.Handle("POST /logout", a.form(a.logout))
	mux.Handle("GET /static/", a.assets)
}

// now is the server's clock, injected in tests.
func (a *app) now() time.Time { return a.svc.Now().UTC() }
