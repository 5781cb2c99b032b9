package server

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// The service calls shared by the API and the pages. The three hot reads
// return the encoded response body through the cache; writes change the
// database, then invalidate every entry they affect before returning, so
// the next read on this instance sees them.

// encode marshals v; an encoding failure is a bug.
func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, modellab.WrapError(modellab.EINTERNAL, err, "could not encode the response")
	}
	return b, nil
}

// cached fetches key through the cache, loading it with the database slot
// held. Callers Peek first, before building their loader: a hit then
// allocates no closure. The loader runs at most once per key however many callers miss.
func (s *Server) cached(ctx context.Context, key, group string, ttl time.Duration, tags []string, load func(context.Context) (any, error)) (*cache.Entry, cache.Result, error) {
	return s.cache.Fetch(ctx, key, cache.FetchOptions{TTL: ttl, Group: group, Tags: tags}, func(ctx context.Context) ([]byte, error) {
		var body []byte
		err := s.withDB(ctx, func(ctx context.Context) error {
			v, err := load(ctx)
			if err != nil {
				return err
			}
			body, err = encode(v)
			return err
		})
		return body, err
	})
}

var globalTags = []string{tagGlobalModels}

// ModelsList returns the encoded model list the caller may see (u nil: the
// global list).
func (s *Server) ModelsList(ctx context.Context, u *modellab.User) (*cache.Entry, cache.Result, error) {
	if u == nil {
		if e, ok := s.cache.Peek(keyModelsGlobal, groupModels); ok {
			return e, cache.Hit, nil
		}
		return s.cached(ctx, keyModelsGlobal, groupModels, s.cfg.ModelsTTL, nil, func(ctx context.Context) (any, error) {
			ms, err := s.store.ListModels(ctx, "")
			return modellab.ModelList{Models: nonNil(ms)}, err
		})
	}
	uid := u.ID
	key := keyModelsUser(uid)
	if e, ok := s.cache.Peek(key, groupModels); ok {
		return e, cache.Hit, nil
	}
	return s.cached(ctx, key, groupModels, s.cfg.ModelsTTL, globalTags, func(ctx context.Context) (any, error) {
		ms, err := s.store.ListModels(ctx, uid)
		return modellab.ModelList{Models: nonNil(ms)}, err
	})
}

// ServersStatus returns the encoded status of u's servers. Their models are
// fetched in one batch query, and only those u may see are embedded.
func (s *Server) ServersStatus(ctx context.Context, u *modellab.User) (*cache.Entry, cache.Result, error) {
	uid := u.ID
	key := keyServersUser(uid)
	if e, ok := s.cache.Peek(key, groupServers); ok {
		return e, cache.Hit, nil
	}
	viewer := *u
	return s.cached(ctx, key, groupServers, s.cfg.ServersTTL, globalTags, func(ctx context.Context) (any, error) {
		servers, err := s.store.ListServers(ctx, uid)
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, sv := range servers {
			if sv.ModelID != nil {
				ids = append(ids, *sv.ModelID)
			}
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		byID := map[string]*modellab.Model{}
		if len(ids) > 0 {
			models, err := s.store.ModelsByIDs(ctx, ids)
			if err != nil {
				return nil, err
			}
			for i := range models {
				if models[i].VisibleTo(&viewer) {
					byID[models[i].ID] = &models[i]
				}
			}
		}
		body := modellab.ServerStatus{Servers: make([]modellab.ServerWithModel, 0, len(servers))}
		for _, sv := range servers {
			row := modellab.ServerWithModel{Server: sv}
			if sv.ModelID != nil {
				row.Model = byID[*sv.ModelID]
			}
			body.Servers = append(body.Servers, row)
			body.Summary.Add(sv.Status)
		}
		return body, nil
	})
}

// AnalyticsData returns u's encoded analytics for q (already validated).
func (s *Server) AnalyticsData(ctx context.Context, u *modellab.User, q modellab.AnalyticsQuery) (*cache.Entry, cache.Result, error) {
	uid := u.ID
	key := keyAnalytics(uid, q)
	if e, ok := s.cache.Peek(key, groupAnalytics); ok {
		return e, cache.Hit, nil
	}
	return s.cached(ctx, key, groupAnalytics, s.cfg.AnalyticsTTL, nil, func(ctx context.Context) (any, error) {
		res, err := s.store.Analytics(ctx, uid, q)
		if err != nil {
			return nil, err
		}
		res.ByModel = nonNil(res.ByModel)
		res.Series = nonNil(res.Series)
		return res, nil
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// invalidateModel drops every entry that can show m. Writes to a global
// model reach every user's list through the tag.
func (s *Server) invalidateModel(ctx context.Context, models ...modellab.Model) error {
	var keys []string
	global := false
	for _, m := range models {
		if m.Visibility == modellab.VisibilityGlobal {
			global = true
		}
		if m.OwnerID != nil {
			keys = append(keys, keyModelsUser(*m.OwnerID), keyServersUser(*m.OwnerID))
		}
	}
	if global {
		keys = append(keys, keyModelsGlobal)
		s.cache.InvalidateTag(ctx, tagGlobalModels)
	}
	s.cache.Invalidate(ctx, keys...)
	return nil
}

func (s *Server) invalidateServers(ctx context.Context, ownerID string) {
	s.cache.Invalidate(ctx, keyServersUser(ownerID))
}

// visibleModel returns model id if u may see it; ENOTFOUND otherwise, so
// that existence does not leak.
func (s *Server) visibleModel(ctx context.Context, u *modellab.User, id string) (modellab.Model, error) {
	if !modellab.ValidID(id) {
		return modellab.Model{}, modellab.Errorf(modellab.ENOTFOUND, "model not found")
	}
	var m modellab.Model
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		m, err = s.store.GetModel(ctx, id)
		return err
	})
	if err != nil {
		if modellab.ErrorCode(err) == modellab.ENOTFOUND {
			return m, modellab.Errorf(modellab.ENOTFOUND, "model not found")
		}
		return m, err
	}
	if !m.VisibleTo(u) {
		return modellab.Model{}, modellab.Errorf(modellab.ENOTFOUND, "model not found")
	}
	return m, nil
}

// CreateModelInput is the body of POST /api/models.
type CreateModelInput struct {
	Name          string `json:"name"`
	Provider      string `json:"provider"`
	BaseModel     string `json:"base_model"`
	Description   string `json:"description"`
	ContextLength *int64 `json:"context_length"`
	Visibility    string `json:"visibility"`
}

// CreateModel registers a model for u.
func (s *Server) CreateModel(ctx context.Context, u *modellab.User, in CreateModelInput) (modellab.Model, error) {
	m := modellab.Model{
		Name: in.Name, Provider: in.Provider, BaseModel: in.BaseModel, Description: in.Description,
		ContextLength: in.ContextLength, Visibility: in.Visibility,
	}
	if m.Visibility == "" {
		m.Visibility = modellab.VisibilityPrivate
	}
	if m.Visibility == modellab.VisibilityGlobal && !u.Admin {
		return m, modellab.Errorf(modellab.EFORBIDDEN, "only admins may create global models")
	}
	if m.Visibility == modellab.VisibilityPrivate {
		owner := u.ID
		m.OwnerID = &owner
	}
	if err := m.Valid(); err != nil {
		return m, err
	}
	m.ID = modellab.NewID(modellab.PrefixModel)
	now := s.now().UTC().Truncate(time.Microsecond)
	m.CreatedAt, m.UpdatedAt = now, now
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.CreateModel(ctx, &m) }); err != nil {
		return m, err
	}
	return m, s.invalidateModel(ctx, m)
}

// UpdateModel applies a partial update: the owner of a private model, or an
// admin for a global one; others get 404 (private) or 403 (global).
func (s *Server) UpdateModel(ctx context.Context, u *modellab.User, id string, p modellab.ModelPatch) (modellab.Model, error) {
	if err := p.Valid(); err != nil {
		return modellab.Model{}, err
	}
	old, err := s.editableModel(ctx, u, id)
	if err != nil {
		return old, err
	}
	if p.Visibility.Set && p.Visibility.Value == modellab.VisibilityGlobal && old.Visibility != modellab.VisibilityGlobal && !u.Admin {
		return old, modellab.Errorf(modellab.EFORBIDDEN, "only admins may make a model global")
	}
	m := p.Apply(old, u)
	if err := m.Valid(); err != nil {
		return old, err
	}
	m.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.UpdateModel(ctx, &m) }); err != nil {
		return old, err
	}
	return m, s.invalidateModel(ctx, old, m)
}

// DeleteModel removes a model; servers that ran it keep existing without it.
func (s *Server) DeleteModel(ctx context.Context, u *modellab.User, id string) error {
	m, err := s.editableModel(ctx, u, id)
	if err != nil {
		return err
	}
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.DeleteModel(ctx, id) }); err != nil {
		return err
	}
	// Servers of other users may have embedded a global model; the tag
	// covers them. A private model only shows in its owner's entries.
	return s.invalidateModel(ctx, m)
}

func (s *Server) editableModel(ctx context.Context, u *modellab.User, id string) (modellab.Model, error) {
	m, err := s.visibleModel(ctx, u, id)
	if err != nil {
		return m, err
	}
	if !m.EditableBy(u) {
		return m, modellab.Errorf(modellab.EFORBIDDEN, "only admins may change global models")
	}
	return m, nil
}

// GetModel returns one model the caller may see.
func (s *Server) GetModel(ctx context.Context, u *modellab.User, id string) (modellab.Model, error) {
	return s.visibleModel(ctx, u, id)
}

// CreateServerInput is the body of POST /api/servers.
type CreateServerInput struct {
	Name          string     `json:"name"`
	ModelID       *string    `json:"model_id"`
	Status        string     `json:"status"`
	Endpoint      string     `json:"endpoint"`
	GPU           string     `json:"gpu"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
}

// checkServerModel makes sure u may run model id: a model the caller cannot
// see is a bad argument, not a 404 of the server.
func (s *Server) checkServerModel(ctx context.Context, u *modellab.User, id *string) error {
	if id == nil {
		return nil
	}
	if _, err := s.visibleModel(ctx, u, *id); err != nil {
		if modellab.ErrorCode(err) == modellab.ENOTFOUND {
			return modellab.Errorf(modellab.EINVALID, "model_id does not name a model you can use")
		}
		return err
	}
	return nil
}

// CreateServer registers an inference server for u.
func (s *Server) CreateServer(ctx context.Context, u *modellab.User, in CreateServerInput) (modellab.Server, error) {
	sv := modellab.Server{Name: in.Name, ModelID: in.ModelID, Status: in.Status, Endpoint: in.Endpoint, GPU: in.GPU, OwnerID: u.ID}
	if sv.Status == "" {
		sv.Status = modellab.StatusStarting
	}
	if in.LastHeartbeat != nil {
		t := in.LastHeartbeat.UTC().Truncate(time.Microsecond)
		sv.LastHeartbeat = &t
	}
	if err := sv.Valid(); err != nil {
		return sv, err
	}
	if err := s.checkServerModel(ctx, u, sv.ModelID); err != nil {
		return sv, err
	}
	sv.ID = modellab.NewID(modellab.PrefixServer)
	now := s.now().UTC().Truncate(time.Microsecond)
	sv.CreatedAt, sv.UpdatedAt = now, now
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.CreateServer(ctx, &sv) }); err != nil {
		return sv, err
	}
	s.invalidateServers(ctx, u.ID)
	return sv, nil
}

func (s *Server) ownServer(ctx context.Context, u *modellab.User, id string) (modellab.Server, error) {
	notFound := modellab.Errorf(modellab.ENOTFOUND, "server not found")
	if !modellab.ValidID(id) {
		return modellab.Server{}, notFound
	}
	var sv modellab.Server
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		sv, err = s.store.GetServer(ctx, id)
		return err
	})
	if modellab.ErrorCode(err) == modellab.ENOTFOUND || err == nil && sv.OwnerID != u.ID {
		return modellab.Server{}, notFound
	}
	return sv, err
}

// GetServer returns one of u's servers.
func (s *Server) GetServer(ctx context.Context, u *modellab.User, id string) (modellab.Server, error) {
	return s.ownServer(ctx, u, id)
}

// UpdateServer applies a partial update to one of u's servers.
func (s *Server) UpdateServer(ctx context.Context, u *modellab.User, id string, p modellab.ServerPatch) (modellab.Server, error) {
	if err := p.Valid(); err != nil {
		return modellab.Server{}, err
	}
	old, err := s.ownServer(ctx, u, id)
	if err != nil {
		return old, err
	}
	sv := p.Apply(old)
	if err := sv.Valid(); err != nil {
		return old, err
	}
	if p.ModelID.Set && !p.ModelID.Null {
		if err := s.checkServerModel(ctx, u, sv.ModelID); err != nil {
			return old, err
		}
	}
	sv.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.UpdateServer(ctx, &sv) }); err != nil {
		return old, err
	}
	s.invalidateServers(ctx, u.ID)
	return sv, nil
}

// DeleteServer removes one of u's servers.
func (s *Server) DeleteServer(ctx context.Context, u *modellab.User, id string) error {
	if _, err := s.ownServer(ctx, u, id); err != nil {
		return err
	}
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.DeleteServer(ctx, id) }); err != nil {
		return err
	}
	s.invalidateServers(ctx, u.ID)
	return nil
}

// EventInput is one event of POST /api/analytics/events.
type EventInput struct {
	ModelID      string     `json:"model_id"`
	Timestamp    *time.Time `json:"timestamp"`
	InputTokens  int64      `json:"input_tokens"`
	OutputTokens int64      `json:"output_tokens"`
	LatencyMS    float64    `json:"latency_ms"`
	Status       string     `json:"status"`
	CostUSD      *float64   `json:"cost_usd"`
}

// IngestEvents validates every event, then stores all of them or none.
// Ingest does not invalidate analytics: those entries live by their TTL.
func (s *Server) IngestEvents(ctx context.Context, u *modellab.User, in []EventInput) (int, error) {
	if len(in) == 0 || len(in) > modellab.MaxEventsPerBatch {
		return 0, modellab.Errorf(modellab.EINVALID, "events must hold 1 to %d events", modellab.MaxEventsPerBatch)
	}
	now := s.now().UTC()
	events := make([]modellab.Event, len(in))
	modelIDs := make([]string, 0, 8)
	for i, e := range in {
		ev := modellab.Event{
			UserID: u.ID, ModelID: e.ModelID, Timestamp: now, InputTokens: e.InputTokens,
			OutputTokens: e.OutputTokens, LatencyMS: e.LatencyMS, Status: e.Status,
		}
		if e.Timestamp != nil {
			ev.Timestamp = e.Timestamp.UTC()
		}
		if e.CostUSD != nil {
			ev.CostUSD = *e.CostUSD
		}
		if err := ev.Valid(now); err != nil {
			return 0, modellab.Errorf(modellab.EINVALID, "events[%d]: %s", i, modellab.ErrorMessage(err))
		}
		if !modellab.ValidID(ev.ModelID) {
			return 0, modellab.Errorf(modellab.EINVALID, "events[%d]: model_id does not name a model you can use", i)
		}
		events[i] = ev
		modelIDs = append(modelIDs, ev.ModelID)
	}
	slices.Sort(modelIDs)
	modelIDs = slices.Compact(modelIDs)
	err := s.withDB(ctx, func(ctx context.Context) error {
		models, err := s.store.ModelsByIDs(ctx, modelIDs)
		if err != nil {
			return err
		}
		visible := map[string]bool{}
		for i := range models {
			if models[i].VisibleTo(u) {
				visible[models[i].ID] = true
			}
		}
		for i, ev := range events {
			if !visible[ev.ModelID] {
				return modellab.Errorf(modellab.EINVALID, "events[%d]: model_id does not name a model you can use", i)
			}
		}
		return s.store.InsertEvents(ctx, events)
	})
	if err != nil {
		return 0, err
	}
	return len(events), nil
}

// CreateUser makes a user and returns its token (admin only, checked by the
// handler).
func (s *Server) CreateUser(ctx context.Context, name string, admin bool) (modellab.User, string, error) {
	u := modellab.User{Name: name, Admin: admin}
	if err := u.Valid(); err != nil {
		return u, "", err
	}
	var tok string
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		tok, err = s.store.CreateUser(ctx, &u)
		return err
	})
	return u, tok, err
}
