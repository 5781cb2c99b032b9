package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/gateway"
)

// The gateway routes a user's chat completions to that user's own running
// servers: a server (and its endpoint) is its owner's business, so user A
// never sends a prompt to user B's machine, and the routes of a user are
// exactly what their server status shows. They are read from that cached
// status (no query on the hot path) and change whenever it does.

// chatRoute is where one model's completions go for one user.
type chatRoute struct {
	model     modellab.Model
	endpoints []string // sorted, distinct
}

// upstreamModel is the name the inference server knows the model by: its
// base model when one is set (a registered fine-tune of "llama3.1:8b" is
// served as "llama3.1:8b"), else its name.
func (r *chatRoute) upstreamModel() string {
	if strings.TrimSpace(r.model.BaseModel) != "" {
		return r.model.BaseModel
	}
	return r.model.Name
}

// chatRoutes are a user's routes by model ID and name. On a name shared by
// a private and a global model, the private one wins, as in ModelByName.
type chatRoutes struct {
	byID      map[string]*chatRoute
	byName    map[string]*chatRoute
	sorted    []*chatRoute // by name, then id
	modelList []byte       // the encoded OpenAI model list
}

// buildRoutes keeps the running servers that have an endpoint and a model
// the user can see.
func buildRoutes(st *ServerStatus) *chatRoutes {
	rs := &chatRoutes{byID: map[string]*chatRoute{}, byName: map[string]*chatRoute{}}
	for i := range st.Servers {
		sv := &st.Servers[i]
		if sv.Status != modellab.StatusRunning || sv.Model == nil || strings.TrimSpace(sv.Endpoint) == "" {
			continue
		}
		r, ok := rs.byID[sv.Model.ID]
		if !ok {
			r = &chatRoute{model: *sv.Model}
			rs.byID[sv.Model.ID] = r
			rs.sorted = append(rs.sorted, r)
		}
		r.endpoints = append(r.endpoints, strings.TrimSpace(sv.Endpoint))
	}
	slices.SortFunc(rs.sorted, func(a, b *chatRoute) int {
		if c := strings.Compare(a.model.Name, b.model.Name); c != 0 {
			return c
		}
		return strings.Compare(a.model.ID, b.model.ID)
	})
	for _, r := range rs.sorted {
		slices.Sort(r.endpoints)
		r.endpoints = slices.Compact(r.endpoints)
		if old, ok := rs.byName[r.model.Name]; !ok || old.model.Visibility == modellab.VisibilityGlobal {
			rs.byName[r.model.Name] = r
		}
	}
	return rs
}

// find resolves a model as an OpenAI client names it: its id or its name.
func (rs *chatRoutes) find(ref string) (*chatRoute, bool) {
	if r, ok := rs.byID[ref]; ok {
		return r, true
	}
	r, ok := rs.byName[ref]
	return r, ok
}

// routeMemo keeps the routes built from a status entry, by its ETag: the
// entry's bytes are decoded once, not on every completion.
type routeMemo struct {
	mu sync.Mutex
	m  map[string]*chatRoutes
}

const maxRouteMemo = 4096

func (rm *routeMemo) get(etag string) (*chatRoutes, bool) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	r, ok := rm.m[etag]
	return r, ok
}

func (rm *routeMemo) put(etag string, r *chatRoutes) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rm.m == nil || len(rm.m) >= maxRouteMemo {
		rm.m = map[string]*chatRoutes{}
	}
	rm.m[etag] = r
}

// routesOf returns u's routes, from u's cached server status. The ETag
// covers the user too: the status embeds the user's ID in every row.
func (s *Service) routesOf(ctx context.Context, u *modellab.User) (*chatRoutes, string, cache.Result, error) {
	e, err := s.ServersStatus(ctx, u)
	if err != nil {
		return nil, "", 0, err
	}
	defer e.Release()
	if r, ok := s.routes.get(u.ID + e.ETag); ok {
		return r, e.ETag, e.Result, nil
	}
	var st ServerStatus
	if err := json.Unmarshal(e.Body(), &st); err != nil {
		return nil, "", 0, modellab.WrapError(modellab.EINTERNAL, err, "could not decode the server status")
	}
	r := buildRoutes(&st)
	if r.modelList, err = encode(r.openAIModels()); err != nil {
		return nil, "", 0, err
	}
	s.routes.put(u.ID+e.ETag, r)
	return r, e.ETag, e.Result, nil
}

// routeFor resolves ref to a route. A model with no running server is
// EUNAVAILABLE; a model the caller cannot see (or none of that name) is
// ENOTFOUND.
func (s *Service) routeFor(ctx context.Context, u *modellab.User, ref string) (*chatRoute, error) {
	rs, _, _, err := s.routesOf(ctx, u)
	if err != nil {
		return nil, err
	}
	if r, ok := rs.find(ref); ok {
		return r, nil
	}
	m, err := s.chatModel(ctx, u, ref)
	if err != nil {
		return nil, err
	}
	return nil, modellab.Errorf(modellab.EUNAVAILABLE,
		"no inference server with an endpoint is running model %q: start one, or set one of yours to running", m.Name)
}

// chatModel finds the model ref names (an id, else a name), visible to u.
func (s *Service) chatModel(ctx context.Context, u *modellab.User, ref string) (modellab.Model, error) {
	if strings.HasPrefix(ref, modellab.PrefixModel) && modellab.ValidID(ref) {
		if m, err := s.visibleModel(ctx, u, ref); modellab.ErrorCode(err) != modellab.ENOTFOUND {
			return m, err
		}
	}
	var m modellab.Model
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		m, err = s.store.ModelByName(ctx, u.ID, ref)
		return err
	})
	if modellab.ErrorCode(err) == modellab.ENOTFOUND {
		return m, modellab.Errorf(modellab.ENOTFOUND, "the model %q does not exist or you cannot use it", ref)
	}
	return m, err
}

// ChatModels returns the encoded OpenAI model list of u: the models u can
// see that run on one of u's running servers with an endpoint. It is drawn
// from u's cached server status (whose parts a server or model write
// invalidates), encoded once per version of that status.
func (s *Service) ChatModels(ctx context.Context, u *modellab.User) (Answer, error) {
	rs, etag, res, err := s.routesOf(ctx, u)
	if err != nil {
		return Answer{}, err
	}
	s.cache.Record(GroupChat, res)
	return Answer{body: rs.modelList, ETag: `"m` + strings.Trim(etag, `"`) + `"`, Result: res, comp: s.comp}, nil
}

// openAIModels lists the routes as OpenAI models, one entry per name: the
// model a request of that name reaches.
func (rs *chatRoutes) openAIModels() OpenAIModelList {
	out := OpenAIModelList{Object: "list", Data: make([]OpenAIModel, 0, len(rs.sorted))}
	seen := map[string]bool{}
	for _, r := range rs.sorted {
		name := r.model.Name
		if seen[name] {
			continue
		}
		seen[name] = true
		m := rs.byName[name].model
		out.Data = append(out.Data, OpenAIModel{ID: name, Object: "model", Created: m.CreatedAt.Unix(), OwnedBy: m.Provider})
	}
	return out
}

// Completion is one chat completion on its way through the gateway: read
// it whole (ReadAll) or chunk by chunk (Next), then Close it, which
// records its usage event.
type Completion struct {
	s      *Service
	ctx    context.Context
	user   modellab.User
	model  modellab.Model
	res    *gateway.Response
	at     time.Time // on the service's clock, for the event
	start  time.Time // on the wall clock, for the latency
	failed bool
}

// Complete sends an OpenAI chat completion request of u through the
// gateway to one of the model's running servers. It returns once the
// upstream has answered with a status below 500; gateway failures are
// EBADGATEWAY, EGATEWAYTIMEOUT, and EUNAVAILABLE when nothing runs the
// model.
func (s *Service) Complete(ctx context.Context, u *modellab.User, body []byte) (*Completion, error) {
	call, err := gateway.ParseCall(body)
	if err != nil {
		return nil, err
	}
	r, err := s.routeFor(ctx, u, call.Model)
	if err != nil {
		return nil, err
	}
	return s.send(ctx, u, r, call)
}

func (s *Service) send(ctx context.Context, u *modellab.User, r *chatRoute, call *gateway.Call) (*Completion, error) {
	body, err := call.Body(r.upstreamModel())
	if err != nil {
		return nil, err
	}
	c := &Completion{s: s, ctx: ctx, user: *u, model: r.model, at: s.now().UTC(), start: time.Now()}
	c.res, err = s.gw.Send(ctx, gateway.Request{Key: u.ID + "/" + r.model.ID, Endpoints: r.endpoints,
		Body: body, Stream: call.Stream, HideUsage: !call.WantsUsage})
	if err != nil {
		if ctx.Err() == nil {
			c.failed = true
			c.record()
		}
		return nil, err
	}
	return c, nil
}

// Streaming reports whether the upstream answers with a stream.
func (c *Completion) Streaming() bool { return c.res.IsStream() }

// Status is the upstream's status (2xx, or the 4xx it refused the
// request with).
func (c *Completion) Status() int { return c.res.Status }

// ContentType is the upstream's Content-Type.
func (c *Completion) ContentType() string { return c.res.Header.Get("Content-Type") }

// ReadAll reads an answer that is not a stream.
func (c *Completion) ReadAll() ([]byte, error) {
	b, err := c.res.ReadAll()
	c.note(err)
	if c.res.Status >= 400 {
		c.failed = true
	}
	return b, err
}

// Next returns the next chunk of a stream (see gateway.Response.Next).
func (c *Completion) Next() ([]byte, error) {
	b, err := c.res.Next()
	c.note(err)
	return b, err
}

// BeforeRead sets f to run before each read from the upstream (see
// gateway.Response.BeforeRead).
func (c *Completion) BeforeRead(f func()) { c.res.BeforeRead(f) }

// note marks the completion failed on an error that is not its end nor
// its client leaving.
func (c *Completion) note(err error) {
	if err != nil && !errors.Is(err, io.EOF) && c.ctx.Err() == nil {
		c.failed = true
	}
}

// Close ends the upstream request and records the completion's usage
// event. A completion cut short by its client counts as ok: nothing
// failed; it carries the tokens the upstream had reported, if any.
func (c *Completion) Close() {
	c.res.Close()
	c.record()
}

func (c *Completion) record() {
	status := modellab.EventOK
	if c.failed {
		status = modellab.EventError
	}
	at := c.at
	ev := EventInput{ModelID: c.model.ID, Timestamp: &at, LatencyMS: float64(time.Since(c.start).Microseconds()) / 1000, Status: status}
	if c.res != nil {
		if u, ok := c.res.Usage(); ok {
			ev.InputTokens, ev.OutputTokens = max(u.PromptTokens, 0), max(u.CompletionTokens, 0)
		}
	}
	ev.LatencyMS = min(ev.LatencyMS, modellab.MaxLatencyMS)
	c.s.usage.add(c.user, ev)
}

// RunningModels returns the models u can chat with (those with a running
// server of u's that has an endpoint), by name, and the ETag of the server
// status they come from (for the pages' render cache).
func (s *Service) RunningModels(ctx context.Context, u *modellab.User) ([]modellab.Model, string, error) {
	rs, etag, _, err := s.routesOf(ctx, u)
	if err != nil {
		return nil, "", err
	}
	out := make([]modellab.Model, len(rs.sorted))
	for i, r := range rs.sorted {
		out[i] = r.model
	}
	return out, etag, nil
}
