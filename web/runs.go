package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/internal/transport"
	"github.com/modellab/modellab/service"
)

// The training runs of the monitor: a table of the caller's runs on
// /monitor, and a page per run with a chart per metric that grows while the
// run is running. Both read through the same cached use cases as the API
// (service.RunsList, service.RunMetrics), so an ingest shows on the next
// poll, and a poll between ingests is a cache hit or a 304.

const (
	// runRefresh is how often a running run's page polls, in seconds.
	runRefresh = 2
	// monitorRunsMax runs are listed on the monitor, the newest.
	monitorRunsMax = 20
	// sparkPoints is the size of a run's sparkline on the monitor.
	sparkPoints = 60
)

// runChartQuery is the run page's read: every key, every step, one point
// per unit of the plot's width.
var runChartQuery = modellab.MetricQuery{AfterStep: -1, MaxPoints: runChartPoints}

// runRow is one row of the monitor's run table, flat and pre-formatted.
type runRow struct {
	ID, Name, Status, LastStep, LossKey, Loss, Started string
	Spark                                              template.HTML
}

// sparkKey picks the metric a run's row shows: loss when it has one, else
// the first key that mentions loss, else the first key.
func sparkKey(latest map[string]float64) string {
	if _, ok := latest["loss"]; ok {
		return "loss"
	}
	keys := make([]string, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.Contains(strings.ToLower(k), "loss") {
			return k
		}
	}
	if len(keys) > 0 {
		return keys[0]
	}
	return ""
}

func fmtStep(p *int64) string {
	if p == nil {
		return "—"
	}
	return fmtInt(*p)
}

// monitorRead is what one view of the monitor reads: the status entry, the
// run list and the sparkline entry of each run shown (nil when it has no
// metric yet or its read failed). Rendering waits until the rendered-page
// cache has been asked: a poll of an unchanged monitor builds nothing.
type monitorRead struct {
	servers *service.Answer
	res     cache.Result // of the status, the page's main read
	list    *service.Answer
	runs    *service.RunList
	keys    []string // the metric each shown run's row shows
	sparks  []*service.Answer
}

func (a *app) readMonitor(ctx context.Context, u *modellab.User) (monitorRead, error) {
	var m monitorRead
	var err error
	servers, err := a.svc.ServersStatus(ctx, u)
	if err != nil {
		return m, err
	}
	m.servers, m.res = &servers, servers.Result
	list, err := a.svc.RunsList(ctx, u)
	if err != nil {
		return m, err
	}
	m.list = &list
	if m.runs, err = decodeEntry[service.RunList](a.decode, "runs", m.list); err != nil {
		return m, err
	}
	shown := m.runs.Runs[:min(len(m.runs.Runs), monitorRunsMax)]
	m.keys, m.sparks = make([]string, len(shown)), make([]*service.Answer, len(shown))
	for i := range shown {
		if m.keys[i] = sparkKey(shown[i].Latest); m.keys[i] == "" {
			continue
		}
		q := modellab.MetricQuery{Keys: []string{m.keys[i]}, AfterStep: -1, MaxPoints: sparkPoints}
		// A failed read (the run deleted since the list was read, the
		// database away) draws no sparkline rather than failing the monitor.
		if sp, err := a.svc.RunMetrics(ctx, u, shown[i].ID, q); err == nil {
			m.sparks[i] = &sp
		}
	}
	return m, nil
}

// version names every entry the view read, in one short string.
func (m *monitorRead) version() string {
	h := sha256.New()
	for _, e := range append([]*service.Answer{m.servers, m.list}, m.sparks...) {
		if e != nil {
			h.Write([]byte(e.ETag))
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// runRows builds the monitor's run table from what readMonitor read.
func (a *app) runRows(m *monitorRead) ([]runRow, error) {
	rows := make([]runRow, len(m.keys))
	for i := range rows {
		r := &m.runs.Runs[i]
		row := runRow{ID: r.ID, Name: r.Name, Status: r.Status, LastStep: fmtStep(r.LastStep), Started: fmtTime(r.CreatedAt), LossKey: m.keys[i]}
		if row.LossKey != "" {
			row.Loss = fmtValue(r.Latest[row.LossKey])
		}
		if e := m.sparks[i]; e != nil {
			h, err := decodeEntry[modellab.RunHistory](a.decode, "history", e)
			if err != nil {
				return nil, err
			}
			if len(h.Series) > 0 {
				row.Spark = runSparkline(row.LossKey, h.Series[0].Points)
			}
		}
		rows[i] = row
	}
	return rows, nil
}

// ---- one run ----------------------------------------------------------------

type paramRow struct{ Name, Value string }

// runHead is the static part of a run's page.
type runHead struct {
	ID, Name, Status, Model, Started, Ended, Duration string
	ModelHidden                                       bool
	Params                                            []paramRow
}

type sampleRow struct{ Step, Value, Time string }

// runChart is one metric of the run page.
type runChart struct {
	ID, Key, Latest, LatestStep, Low, High string
	Points                                 int
	LastStep                               int64 // raw, for scripts and tests
	SVG                                    template.HTML
	Rows                                   []sampleRow
}

// runLive is the part of the run page that its poll replaces.
type runLive struct {
	ID, Status, LastStep string
	Ended                bool
	Charts               []runChart
}

type runPageData struct {
	Run     runHead
	Live    runLive
	Refresh int
	ETag    string // of the live part, for the first poll
}

func newRunHead(r *modellab.Run, models *service.ModelList) runHead {
	h := runHead{ID: r.ID, Name: r.Name, Status: r.Status, Started: fmtTime(r.CreatedAt)}
	if r.EndedAt != nil {
		h.Ended = fmtTime(*r.EndedAt)
		h.Duration = r.EndedAt.Sub(r.CreatedAt).Round(time.Second).String()
	}
	if r.ModelID != nil {
		h.ModelHidden = true
		for i := range models.Models {
			if models.Models[i].ID == *r.ModelID {
				h.Model, h.ModelHidden = models.Models[i].Name, false
			}
		}
	}
	for k, v := range r.Params {
		h.Params = append(h.Params, paramRow{Name: k, Value: fmtParam(v)})
	}
	slices.SortFunc(h.Params, func(a, b paramRow) int { return strings.Compare(a.Name, b.Name) })
	return h
}

func fmtParam(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// newRunLive builds the live part from one history entry.
func newRunLive(h *modellab.RunHistory) runLive {
	d := runLive{ID: h.RunID, Status: h.Status, LastStep: fmtStep(h.LastStep), Ended: h.Status != modellab.RunRunning}
	for i, s := range h.Series {
		c := runChart{ID: "chart-" + strconv.Itoa(i), Key: s.Key, Points: len(s.Points), SVG: metricChart("chart-"+strconv.Itoa(i), s.Key, s.Points)}
		if len(s.Points) > 0 {
			st := statsOf(s.Points)
			c.Latest, c.LatestStep, c.LastStep = fmtValue(st.last.Value), fmtInt(st.last.Step), st.last.Step
			c.Low, c.High = fmtValue(st.minimum.Value), fmtValue(st.maximum.Value)
		}
		for _, p := range modellab.LTTB(s.Points, runTableRows) {
			c.Rows = append(c.Rows, sampleRow{Step: fmtInt(p.Step), Value: fmtValue(p.Value), Time: fmtTime(p.Timestamp.Time())})
		}
		d.Charts = append(d.Charts, c)
	}
	return d
}

// findRun returns run id from the caller's cached run list: a hit, and
// ownership for free (the list holds only the caller's runs).
func (a *app) findRun(ctx context.Context, u *modellab.User, id string) (*modellab.Run, string, error) {
	le, err := a.svc.RunsList(ctx, u)
	if err != nil {
		return nil, "", err
	}
	etag := le.ETag
	list, err := decodeEntry[service.RunList](a.decode, "runs", &le)
	if err != nil {
		return nil, "", err
	}
	for i := range list.Runs {
		if list.Runs[i].ID == id {
			return &list.Runs[i], etag, nil
		}
	}
	return nil, "", modellab.Errorf(modellab.ENOTFOUND, "There is no run %s among yours.", id)
}

func (a *app) runPage(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx := r.Context()
	run, listTag, err := a.findRun(ctx, v.User, r.PathValue("id"))
	if err != nil {
		return err
	}
	models, modelsTag, err := a.visibleModels(ctx, v.User)
	if err != nil {
		return err
	}
	he, err := a.svc.RunMetrics(ctx, v.User, run.ID, runChartQuery)
	if err != nil {
		return err
	}
	defer he.Release()
	setXCache(w, he.Result)
	v.Title, v.Nav = run.Name+" · Training run", "monitor"
	key := pageKey("run", v, listTag, modelsTag, he.ETag)
	if a.writeRendered(w, r, http.StatusOK, key) {
		return nil
	}
	liveTag := runLiveETag(he.ETag)
	h, err := decodeEntry[modellab.RunHistory](a.decode, "history", &he)
	if err != nil {
		return err
	}
	v.Data = runPageData{Run: newRunHead(run, models), Live: newRunLive(h), Refresh: runRefresh, ETag: liveTag}
	a.renderCached(w, r, http.StatusOK, "run", "layout", v, key)
	return nil
}

// runLiveETag is the fragment's tag: it follows the history entry's.
func runLiveETag(entryTag string) string { return `W/"run-` + strings.Trim(entryTag, `"`) + `"` }

// runLiveData answers the run page's poll with the live part as an HTML
// fragment, from the one history entry read here: its ETag follows the
// entry's, so a poll between two ingests costs a 304 (or a hit and the
// bytes rendered once). The fragment marks a run that has ended
// (data-final), and the page's script stops polling it.
func (a *app) runLiveData(w http.ResponseWriter, r *http.Request) {
	u, ok := a.fragmentUser(w, r)
	if !ok {
		return
	}
	e, err := a.svc.RunMetrics(r.Context(), u, r.PathValue("id"), runChartQuery)
	if err != nil {
		fragmentError(w, r, transport.StatusOf(err))
		return
	}
	defer e.Release()
	res, entryTag := e.Result, e.ETag
	etag := runLiveETag(entryTag)
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization, Cookie")
	setXCache(w, res)
	if transport.NotModified(w, r, etag) {
		return
	}
	key := pageKey("run_live", &view{User: u}, entryTag)
	if a.writeRendered(w, r, http.StatusOK, key) {
		return
	}
	hist, err := decodeEntry[modellab.RunHistory](a.decode, "history", &e)
	if err != nil {
		fragmentError(w, r, transport.StatusOf(err))
		return
	}
	a.renderCached(w, r, http.StatusOK, "run", "run_live", newRunLive(hist), key)
}
