package service

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// ServersStatus returns the encoded status of u's servers, each with the
// model it runs when u may see it. With the cache on it is composed from
// cached parts: u's servers (api:servers:user:{id}) joined with the model
// lists' own parts (the global models, u's private ones), so a global edit
// reloads the global part once instead of every user's status. With the
// cache off it is one join of two queries.
func (s *Service) ServersStatus(ctx context.Context, u *modellab.User) (Answer, error) {
	if s.cache.Mode() == "off" {
		return s.serversStatusDirect(ctx, u)
	}
	spec := readSpec{key: keyServersUser(u.ID), group: groupServersPart, ttl: s.cfg.ServersTTL}
	e, res, err := cachedRead(ctx, s, spec, u.ID, loadServersPart)
	if err != nil {
		return Answer{}, err
	}
	g, p, err := s.modelParts(ctx, u)
	if err != nil {
		return Answer{}, err
	}
	a, err := s.comp.status(u.ID, partOf(e, res), g, p)
	if errors.Is(err, errItemList) {
		s.log.WarnContext(ctx, "cached status part in an unknown format: reloading", "user", u.ID)
		s.cache.Invalidate(ctx, keyServersUser(u.ID), keyModelsGlobal, keyModelsUser(u.ID))
		return s.serversStatusDirect(ctx, u)
	}
	if err == nil {
		s.cache.Record(GroupServers, a.Result)
	}
	return a, err
}

// loadServersPart encodes ownerID's servers as an item list: each item the
// server's JSON without its closing brace (the composer adds the model),
// its model id as aux, the summary as extra.
func loadServersPart(ctx context.Context, s *Service, ownerID string) (rawBody, error) {
	servers, err := s.store.ListServers(ctx, ownerID)
	if err != nil {
		return nil, err
	}
	var sum ServerSummary
	items := make([]item, len(servers))
	for i := range servers {
		sv := &servers[i]
		js, err := encode(sv)
		if err != nil {
			return nil, err
		}
		key := append(append(append(make([]byte, 0, len(sv.Name)+1+len(sv.ID)), sv.Name...), 0), sv.ID...)
		items[i] = item{key: key, json: js[:len(js)-1]}
		if sv.ModelID != nil {
			items[i].aux = []byte(*sv.ModelID)
		}
		sum.Add(sv.Status)
	}
	extra, err := encode(sum)
	if err != nil {
		return nil, err
	}
	return encodeItems(items, extra), nil
}

// serversStatusDirect answers without the cache: the servers, then their
// models in one batch query.
func (s *Service) serversStatusDirect(ctx context.Context, u *modellab.User) (Answer, error) {
	var body []byte
	err := s.withDB(ctx, func(ctx context.Context) error {
		st, err := loadServerStatus(ctx, s, u)
		if err == nil {
			body, err = encode(st)
		}
		return err
	})
	if err != nil {
		return Answer{}, err
	}
	res := cache.Bypass
	if s.cache.Mode() != "off" {
		res = cache.Miss
	}
	s.cache.Record(GroupServers, res)
	return Answer{body: body, ETag: cache.ETagOf(body), Result: res, comp: s.comp}, nil
}

// loadServerStatus reads u's servers and, in one batch query, their
// models; only those u may see are embedded.
func loadServerStatus(ctx context.Context, s *Service, u *modellab.User) (ServerStatus, error) {
	servers, err := s.store.ListServers(ctx, u.ID)
	if err != nil {
		return ServerStatus{}, err
	}
	byID, err := s.visibleModelsOf(ctx, u, servers)
	if err != nil {
		return ServerStatus{}, err
	}
	body := ServerStatus{Servers: make([]ServerWithModel, 0, len(servers))}
	for _, sv := range servers {
		row := ServerWithModel{Server: sv}
		if sv.ModelID != nil {
			row.Model = byID[*sv.ModelID]
		}
		body.Servers = append(body.Servers, row)
		body.Summary.Add(sv.Status)
	}
	return body, nil
}

// visibleModelsOf fetches the models the servers run, in one query, keeping
// those u may see.
func (s *Service) visibleModelsOf(ctx context.Context, u *modellab.User, servers []modellab.Server) (map[string]*modellab.Model, error) {
	var ids []string
	for _, sv := range servers {
		if sv.ModelID != nil {
			ids = append(ids, *sv.ModelID)
		}
	}
	byID := map[string]*modellab.Model{}
	if len(ids) == 0 {
		return byID, nil
	}
	slices.Sort(ids)
	models, err := s.store.ModelsByIDs(ctx, slices.Compact(ids))
	if err != nil {
		return nil, err
	}
	for i := range models {
		if models[i].VisibleTo(u) {
			byID[models[i].ID] = &models[i]
		}
	}
	return byID, nil
}

func (s *Service) invalidateServers(ctx context.Context, ownerID string) {
	s.cache.Invalidate(ctx, keyServersUser(ownerID), keyChatModels(ownerID))
}

// CreateServerInput is what a caller sends to register a server.
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
func (s *Service) checkServerModel(ctx context.Context, u *modellab.User, id *string) error {
	if id == nil {
		return nil
	}
	if _, err := s.visibleModel(ctx, u, *id); err != nil {
		if modellab.ErrorCode(err) == modellab.ENOTFOUND {
			return modellab.FieldErrorf("model_id", "model_id does not name a model you can use")
		}
		return err
	}
	return nil
}

// CreateServer registers an inference server for u.
func (s *Service) CreateServer(ctx context.Context, u *modellab.User, in CreateServerInput) (modellab.Server, error) {
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
	sv.CreatedAt = s.stamp()
	sv.UpdatedAt = sv.CreatedAt
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.CreateServer(ctx, &sv) }); err != nil {
		return sv, err
	}
	s.invalidateServers(ctx, u.ID)
	return sv, nil
}

func (s *Service) ownServer(ctx context.Context, u *modellab.User, id string) (modellab.Server, error) {
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
func (s *Service) GetServer(ctx context.Context, u *modellab.User, id string) (modellab.Server, error) {
	return s.ownServer(ctx, u, id)
}

// UpdateServer applies a partial update to one of u's servers.
func (s *Service) UpdateServer(ctx context.Context, u *modellab.User, id string, p modellab.ServerPatch) (modellab.Server, error) {
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
	sv.UpdatedAt = s.stamp()
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.UpdateServer(ctx, &sv) }); err != nil {
		return old, err
	}
	s.invalidateServers(ctx, u.ID)
	return sv, nil
}

// DeleteServer removes one of u's servers.
func (s *Service) DeleteServer(ctx context.Context, u *modellab.User, id string) error {
	if _, err := s.ownServer(ctx, u, id); err != nil {
		return err
	}
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.DeleteServer(ctx, id) }); err != nil {
		return err
	}
	s.invalidateServers(ctx, u.ID)
	return nil
}
