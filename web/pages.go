package web

import (
	"bytes"
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/internal/transport"
	"github.com/modellab/modellab/service"
)

// setXCache exposes the cache result of a page's main read, as the API
// does, so that load tests and curious people can see where a page came from.
func setXCache(w http.ResponseWriter, res cache.Result) {
	transport.SetCacheResult(w.Header(), res)
}

// ---- home ----------------------------------------------------------------

type homeData struct {
	Models, Mine, Global int
	Summary              service.ServerSummary
	StateBar             template.HTML
	Usage                modellab.AnalyticsTotals
	Spark                template.HTML
	From, To             time.Time
	Attention            []service.ServerWithModel // servers in error, a few
}

// homeUsageQuery is the home page's sparkline: the default 7 days, hourly.
var homeUsageQuery = url.Values{"interval": {modellab.IntervalHour}}

func (a *app) home(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx := r.Context()
	models, err := a.svc.ModelsView(ctx, v.User)
	if err != nil {
		return err
	}
	se, err := a.svc.ServersStatus(ctx, v.User)
	if err != nil {
		return err
	}
	defer se.Release()
	q, err := service.ParseAnalyticsQuery(homeUsageQuery, a.now())
	if err != nil {
		return err
	}
	ae, err := a.svc.AnalyticsData(ctx, v.User, q)
	if err != nil {
		return err
	}
	defer ae.Release()
	// A page whose parts have not changed costs no decode and no template.
	key := pageKey("home", v, models.ETag, se.ETag, ae.ETag)
	if a.writeRendered(w, r, http.StatusOK, key) {
		return nil
	}
	servers, err := decodeEntry[service.ServerStatus](a.decode, "servers", &se)
	if err != nil {
		return err
	}
	usage, err := decodeEntry[modellab.AnalyticsResult](a.decode, "analytics", &ae)
	if err != nil {
		return err
	}
	d := homeData{Summary: servers.Summary, Usage: usage.Totals, From: usage.From, To: usage.To}
	d.Models, d.Mine, d.Global = models.Total.All, models.Total.Mine, models.Total.Global
	for _, s := range servers.Servers {
		if s.Status == modellab.StatusError && len(d.Attention) < 5 {
			d.Attention = append(d.Attention, s)
		}
	}
	d.StateBar = stateBar(servers.Summary)
	d.Spark = sparkline(usage.Series, usage.Interval)
	v.Title, v.Nav, v.Data = "Overview", "home", d
	a.renderCached(w, r, http.StatusOK, "home", "layout", v, key)
	return nil
}

// ---- models --------------------------------------------------------------

const modelsPerPage = 50

// modelRow is one row of the list, flat and pre-formatted: html/template
// finds fields of embedded structs through reflect's FieldByName, which made
// a page of 50 rows cost milliseconds.
type modelRow struct {
	ID, Name, Description, Provider, BaseModel, Context, Visibility, Updated, UpdatedISO string
	Editable                                                                             bool
}

func newModelRow(m *modellab.Model, u *modellab.User) modelRow {
	return modelRow{
		ID: m.ID, Name: m.Name, Description: m.Description, Provider: m.Provider, BaseModel: m.BaseModel,
		Context: derefInt(m.ContextLength), Visibility: m.Visibility,
		Updated: m.UpdatedAt.UTC().Format(time.DateOnly), UpdatedISO: m.UpdatedAt.UTC().Format(time.RFC3339),
		Editable: m.EditableBy(u),
	}
}

// serverRow is one row of the monitor, flat for the same reason.
type serverRow struct {
	ID, Name, Status, Model, GPU, Endpoint, Heartbeat, Updated string
	ModelHidden                                                bool // a model_id the caller cannot see
}

func newServerRow(s *service.ServerWithModel) serverRow {
	r := serverRow{ID: s.ID, Name: s.Name, Status: s.Status, GPU: s.GPU, Endpoint: s.Endpoint,
		Heartbeat: fmtTimePtr(s.LastHeartbeat), Updated: fmtTime(s.UpdatedAt)}
	if s.Model != nil {
		r.Model = s.Model.Name
	} else if s.ModelID != nil {
		r.ModelHidden = true
	}
	return r
}

// modelForm is the create form: what was typed and what is wrong with it,
// field by field.
type modelForm struct {
	Name, Provider, BaseModel, Description, ContextLength, Visibility string
	Errors                                                            map[string]string
	Error                                                             string // not about one field
}

type scopeLink struct {
	Name, Label, URL string
	Count            int
	Active           bool
}

type modelsData struct {
	Rows             []modelRow
	Total            int // visible to the caller
	Matching         int // after scope and filter
	Query, Scope     string
	Scopes           []scopeLink
	Page, Pages      int
	PrevURL, NextURL string
	First, Last      int // 1-based positions shown
	Form             modelForm
	Created          string
	Deleted          bool
	CanGlobal        bool
}

func (a *app) models(w http.ResponseWriter, r *http.Request, v *view) error {
	return a.renderModels(w, r, v, http.StatusOK, modelForm{Visibility: modellab.VisibilityPrivate})
}

// renderModels renders the list with form f (blank or being corrected).
// Only the rows of the page shown are decoded: the service pages the
// cached parts of the list.
func (a *app) renderModels(w http.ResponseWriter, r *http.Request, v *view, status int, f modelForm) error {
	mv, err := a.svc.ModelsView(r.Context(), v.User)
	if err != nil {
		return err
	}
	setXCache(w, mv.Result)
	key := ""
	if status == http.StatusOK && f.Errors == nil && f.Error == "" {
		key = pageKey("models", v, mv.ETag, r.URL.RawQuery)
	}
	if a.writeRendered(w, r, status, key) {
		return nil
	}
	qv := r.URL.Query()
	flt := newModelFilter(qv)
	page, _ := strconv.Atoi(qv.Get("page"))
	page = max(page, 1)
	q := service.ModelQuery{Scope: flt.scope, Search: flt.query, Offset: (page - 1) * modelsPerPage, Limit: modelsPerPage, Find: qv.Get("created")}
	mp, err := mv.Page(q)
	if err != nil {
		return err
	}
	d := modelsData{Form: f, CanGlobal: v.User.Admin, Total: mp.Total.All, Query: flt.query, Scope: flt.scope}
	counts := map[string]int{service.ScopeAll: mp.Matching.All, service.ScopeMine: mp.Matching.Mine, service.ScopeGlobal: mp.Matching.Global}
	d.Matching = counts[d.Scope]
	for _, s := range []scopeLink{{Name: "all", Label: "All"}, {Name: "mine", Label: "Private"}, {Name: "global", Label: "Global"}} {
		s.Count, s.URL, s.Active = counts[s.Name], flt.link(s.Name, 1), s.Name == d.Scope
		d.Scopes = append(d.Scopes, s)
	}
	d.paginate(page, flt)
	if d.Page != page {
		// Past the last page: show the last one.
		q.Offset = (d.Page - 1) * modelsPerPage
		if mp, err = mv.Page(q); err != nil {
			return err
		}
	}
	d.Rows = make([]modelRow, len(mp.Models))
	for i := range mp.Models {
		d.Rows[i] = newModelRow(&mp.Models[i], v.User)
	}
	d.Created = mp.Found
	d.Deleted = qv.Get("deleted") == "1"
	v.Title, v.Nav, v.Data = "Models", "models", d
	a.renderCached(w, r, status, "models", "layout", v, key)
	return nil
}

// paginate picks the page shown among the Matching models.
func (d *modelsData) paginate(page int, flt modelFilter) {
	d.Pages = max(1, (d.Matching+modelsPerPage-1)/modelsPerPage)
	d.Page = min(max(page, 1), d.Pages)
	lo := (d.Page - 1) * modelsPerPage
	d.First, d.Last = lo+1, min(lo+modelsPerPage, d.Matching)
	if d.Page > 1 {
		d.PrevURL = flt.link(d.Scope, d.Page-1)
	}
	if d.Page < d.Pages {
		d.NextURL = flt.link(d.Scope, d.Page+1)
	}
}

// modelFilter is the search box and scope of the models page.
type modelFilter struct {
	query, scope string
}

func newModelFilter(qv url.Values) modelFilter {
	f := modelFilter{query: strings.TrimSpace(qv.Get("q")), scope: qv.Get("scope")}
	if f.scope != service.ScopeMine && f.scope != service.ScopeGlobal {
		f.scope = service.ScopeAll
	}
	return f
}

// link is the URL of a page of a scope, keeping the search.
func (f modelFilter) link(scope string, page int) string {
	p := url.Values{}
	if f.query != "" {
		p.Set("q", f.query)
	}
	if scope != "all" {
		p.Set("scope", scope)
	}
	if page > 1 {
		p.Set("page", strconv.Itoa(page))
	}
	if len(p) == 0 {
		return "/models"
	}
	return "/models?" + p.Encode()
}

func (a *app) createModel(w http.ResponseWriter, r *http.Request, v *view) error {
	pf := r.PostForm
	f := modelForm{
		Name: pf.Get("name"), Provider: pf.Get("provider"), BaseModel: pf.Get("base_model"),
		Description: pf.Get("description"), ContextLength: strings.TrimSpace(pf.Get("context_length")),
		Visibility: pf.Get("visibility"), Errors: map[string]string{},
	}
	if f.Visibility == "" {
		f.Visibility = modellab.VisibilityPrivate
	}
	in := service.CreateModelInput{
		Name: strings.TrimSpace(f.Name), Provider: strings.TrimSpace(f.Provider),
		BaseModel: strings.TrimSpace(f.BaseModel), Description: f.Description, Visibility: f.Visibility,
	}
	// Check what can be checked here first, so that every wrong field is
	// reported at once rather than one per submit.
	if in.Name == "" {
		f.Errors["name"] = "Give the model a name."
	}
	if in.Provider == "" {
		f.Errors["provider"] = "Say who provides it, e.g. meta or local."
	}
	if f.ContextLength != "" {
		n, err := strconv.ParseInt(strings.ReplaceAll(f.ContextLength, ",", ""), 10, 64)
		if err != nil || n < 1 || n > modellab.MaxContextLength {
			f.Errors["context_length"] = "Enter a whole number of tokens, e.g. 8192."
		} else {
			in.ContextLength = &n
		}
	}
	if len(f.Errors) > 0 {
		return a.renderModels(w, r, v, http.StatusBadRequest, f)
	}
	m, err := a.svc.CreateModel(r.Context(), v.User, in)
	if err != nil {
		switch code := modellab.ErrorCode(err); code {
		case modellab.EINVALID:
			if field := modellab.ErrorField(err); field != "" {
				f.Errors[field] = sentence(modellab.ErrorMessage(err))
			} else {
				f.Error = sentence(modellab.ErrorMessage(err))
			}
		case modellab.ECONFLICT:
			f.Errors["name"] = "You already have a model with this name."
		case modellab.EFORBIDDEN:
			f.Errors["visibility"] = "Only admins may create global models."
		default:
			return err
		}
		return a.renderModels(w, r, v, transport.StatusOf(err), f)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/models?created="+url.QueryEscape(m.ID), http.StatusSeeOther)
	return nil
}

// sentence capitalises a domain message for display next to a field.
func sentence(s string) string {
	s = strings.ReplaceAll(s, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

func (a *app) deleteModel(w http.ResponseWriter, r *http.Request, v *view) error {
	if err := a.svc.DeleteModel(r.Context(), v.User, r.PathValue("id")); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/models?deleted=1", http.StatusSeeOther)
	return nil
}

// ---- monitor ---------------------------------------------------------------

// monitorRefresh is how often the monitor polls, in seconds.
const monitorRefresh = 3

type monitorData struct {
	Runs      []runRow
	RunsTotal int
	Servers   []serverRow
	Summary   service.ServerSummary
	StateBar  template.HTML
	AsOf      time.Time
	Refresh   int
	ETag      string // of the live part, for the first poll
}

// monitorOf builds the monitor's live part from the entries one view read.
func (a *app) monitorOf(m *monitorRead) (monitorData, error) {
	body, err := decodeEntry[service.ServerStatus](a.decode, "servers", m.servers)
	if err != nil {
		return monitorData{}, err
	}
	rows := make([]serverRow, len(body.Servers))
	for i := range body.Servers {
		rows[i] = newServerRow(&body.Servers[i])
	}
	runs, err := a.runRows(m)
	if err != nil {
		return monitorData{}, err
	}
	return monitorData{Runs: runs, RunsTotal: len(m.runs.Runs), Servers: rows, Summary: body.Summary,
		StateBar: stateBar(body.Summary), AsOf: a.now(), Refresh: monitorRefresh}, nil
}

func (a *app) monitor(w http.ResponseWriter, r *http.Request, v *view) error {
	m, err := a.readMonitor(r.Context(), v.User)
	if err != nil {
		return err
	}
	setXCache(w, m.res)
	v.Title, v.Nav = "Training monitor", "monitor"
	key := pageKey("monitor", v, m.version(), strconv.FormatInt(a.now().Unix(), 10))
	if a.writeRendered(w, r, http.StatusOK, key) {
		return nil
	}
	d, err := a.monitorOf(&m)
	if err != nil {
		return err
	}
	d.ETag = monitorETag(m.version())
	v.Data = d
	a.renderCached(w, r, http.StatusOK, "monitor", "layout", v, key)
	return nil
}

// fragmentUser authenticates the request of a polled fragment. Without a
// session it answers 401 itself, for the script to say so (a redirect would
// hand it the login page as a fragment).
func (a *app) fragmentUser(w http.ResponseWriter, r *http.Request) (*modellab.User, bool) {
	u, err := a.authenticate(r)
	if u == nil || err != nil {
		status := http.StatusUnauthorized
		if err != nil && modellab.ErrorCode(err) != modellab.EUNAUTHORIZED {
			status = transport.StatusOf(err)
		}
		fragmentError(w, r, status)
		return nil, false
	}
	return u, true
}

// visibleModels is the list of the models u can see, decoded, with the
// ETag of its entry (for the keys of rendered pages).
func (a *app) visibleModels(ctx context.Context, u *modellab.User) (*service.ModelList, string, error) {
	me, err := a.svc.ModelsList(ctx, u)
	if err != nil {
		return nil, "", err
	}
	list, err := decodeEntry[service.ModelList](a.decode, "models", &me)
	return list, me.ETag, err
}

// monitorETag is the tag of the monitor's live part of one version.
func monitorETag(version string) string { return `W/"mon-` + version + `"` }

// monitorData answers the monitor's polling with the live part of the page
// as an HTML fragment, rendered by the same template as the page from the
// entries read here (the status, the run list and the runs' sparklines,
// each read once). Its ETag names those entries, so an unchanged monitor
// costs the browser a 304 and us no rendering. No session: 401, for the
// script to say so (a redirect would hand it the login page as a fragment).
func (a *app) monitorData(w http.ResponseWriter, r *http.Request) {
	u, ok := a.fragmentUser(w, r)
	if !ok {
		return
	}
	m, err := a.readMonitor(r.Context(), u)
	if err != nil {
		fragmentError(w, r, transport.StatusOf(err))
		return
	}
	ver := m.version()
	etag := monitorETag(ver)
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization, Cookie")
	setXCache(w, m.res)
	if transport.NotModified(w, r, etag) {
		return
	}
	key := pageKey("monitor_live", &view{User: u}, ver)
	if a.writeRendered(w, r, http.StatusOK, key) {
		return
	}
	d, err := a.monitorOf(&m)
	if err != nil {
		fragmentError(w, r, transport.StatusOf(err))
		return
	}
	a.renderCached(w, r, http.StatusOK, "monitor", "monitor_live", d, key)
}

// fragmentError answers a polled fragment with a bare status the script
// understands; nothing for a client that left.
func fragmentError(w http.ResponseWriter, r *http.Request, status int) {
	if transport.ClientGone(r) {
		return
	}
	transport.SetRetryAfter(w.Header(), status)
	if status == http.StatusUnauthorized {
		transport.Challenge(w.Header(), r, transport.BearerOrSession)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, http.StatusText(status), status)
}

// ---- analytics -------------------------------------------------------------

type analyticsForm struct {
	From, To, Interval, ModelID string
}

type analyticsData struct {
	Form          analyticsForm
	Error         string
	Result        *modellab.AnalyticsResult
	ModelName     string
	ErrorRate     float64
	RequestsChart template.HTML
	LatencyChart  template.HTML
	Bucket        string // what one bar stands for
	ClearURL      string
	Presets       []scopeLink
}

func (a *app) analytics(w http.ResponseWriter, r *http.Request, v *view) error {
	qv := r.URL.Query()
	// An empty form field means "the default", as an absent parameter does.
	for _, k := range []string{"from", "to", "interval", "model_id"} {
		if len(qv[k]) == 1 && strings.TrimSpace(qv[k][0]) == "" {
			delete(qv, k)
		}
	}
	d := analyticsData{Form: analyticsForm{From: qv.Get("from"), To: qv.Get("to"), Interval: qv.Get("interval"), ModelID: qv.Get("model_id")}}
	v.Title, v.Nav, v.Data = "Analytics", "analytics", &d
	now := a.now()
	d.Presets = analyticsPresets(now, qv)
	q, err := service.ParseAnalyticsQuery(qv, now)
	if err != nil {
		if modellab.ErrorCode(err) != modellab.EINVALID {
			return err
		}
		d.Error = sentence(modellab.ErrorMessage(err))
		a.renderPage(w, r, http.StatusBadRequest, "analytics", v)
		return nil
	}
	e, err := a.svc.AnalyticsData(r.Context(), v.User, q)
	if err != nil {
		return err
	}
	etag, res := e.ETag, e.Result
	result, err := decodeEntry[modellab.AnalyticsResult](a.decode, "analytics", &e)
	if err != nil {
		return err
	}
	d.Result = result
	d.Form.From, d.Form.To, d.Form.Interval = formDate(q.From), formDate(q.To), q.Interval
	if q.ModelID != "" {
		d.ModelName = q.ModelID
		for _, m := range result.ByModel {
			if m.ModelID == q.ModelID {
				d.ModelName = m.ModelName
			}
		}
		c := url.Values{}
		for k, vs := range qv {
			if k != "model_id" {
				c[k] = vs
			}
		}
		d.ClearURL = "/analytics"
		if len(c) > 0 {
			d.ClearURL += "?" + c.Encode()
		}
	}
	if result.Totals.Requests > 0 {
		d.ErrorRate = float64(result.Totals.Errors) * 100 / float64(result.Totals.Requests)
	}
	series, per := downsample(result.Series, maxBars)
	d.Bucket = bucketLabel(q.Interval, per)
	d.RequestsChart = requestsChart(series, q.Interval)
	d.LatencyChart = latencyChart(series, q.Interval)
	setXCache(w, res)
	// The quick ranges depend on today's date, so the date is in the key.
	a.renderCached(w, r, http.StatusOK, "analytics", "layout", v,
		pageKey("analytics", v, etag, r.URL.RawQuery, formDate(now)))
	return nil
}

// formDate renders a bound for the date input: days only, the form's grain.
func formDate(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// analyticsPresets are one-click ranges ending now.
func analyticsPresets(now time.Time, cur url.Values) []scopeLink {
	today := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	mk := func(label string, days int, interval string) scopeLink {
		p := url.Values{"from": {formDate(today.AddDate(0, 0, -days))}, "to": {formDate(today)}, "interval": {interval}}
		if m := cur.Get("model_id"); m != "" {
			p.Set("model_id", m)
		}
		active := cur.Get("from") == p.Get("from") && cur.Get("to") == p.Get("to") && cur.Get("interval") == interval
		return scopeLink{Label: label, URL: "/analytics?" + p.Encode(), Active: active}
	}
	return []scopeLink{mk("Last 24 hours", 1, modellab.IntervalHour), mk("7 days", 7, modellab.IntervalDay),
		mk("30 days", 30, modellab.IntervalDay), mk("90 days", 90, modellab.IntervalDay)}
}

// ---- docs and the OpenAPI document ------------------------------------------

func (a *app) docsPage(w http.ResponseWriter, r *http.Request) {
	v := &view{Title: "API reference", Nav: "docs", Data: a.docs}
	// Public page; a session only changes the navigation.
	if u, err := a.authenticate(r); err == nil && u != nil {
		v.User, v.CSRF = u, csrfToken(credential(r))
	}
	a.renderPage(w, r, http.StatusOK, "docs", v)
}

func (a *app) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("ETag", a.specET)
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.spec))
}
