package service

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// ModelsList returns the encoded model list the caller may see (u nil: the
// global list), sorted by name then id: the global part and the caller's
// own part, each cached once, merged.
func (s *Service) ModelsList(ctx context.Context, u *modellab.User) (Answer, error) {
	key := ""
	if u != nil {
		key = u.ID
	}
	if a, ok := s.comp.memoHit(key, groupModelsPart, s.cache); ok {
		s.cache.Record(GroupModels, a.Result)
		return a, nil
	}
	g, p, err := s.modelParts(ctx, u)
	if err != nil {
		return Answer{}, err
	}
	a, err := s.comp.merge(key, modelsShape, g, p)
	if errors.Is(err, errItemList) {
		// A part in another format (a rolling upgrade shares the Redis):
		// drop both and read them again.
		s.log.WarnContext(ctx, "cached model list part in an unknown format: reloading", "user", key)
		s.cache.Invalidate(ctx, keyModelsGlobal, keyModelsUser(key))
		if g, p, err = s.modelParts(ctx, u); err != nil {
			return Answer{}, err
		}
		a, err = s.comp.merge(key, modelsShape, g, p)
	}
	if err == nil {
		s.cache.Record(GroupModels, a.Result)
	}
	return a, err
}

// modelParts returns the two parts of u's model list; the private part is
// empty for an anonymous caller.
func (s *Service) modelParts(ctx context.Context, u *modellab.User) (part, part, error) {
	// The shared part is loaded for everyone: no caller's share pays for
	// it, or one user's excess would fail the others waiting on it.
	g, err := s.modelsPart(ctx, readSpec{key: keyModelsGlobal, group: groupModelsPart, ttl: s.cfg.ModelsTTL, shared: true}, "")
	if err != nil || u == nil {
		return g, emptyPart, err
	}
	p, err := s.modelsPart(ctx, readSpec{key: keyModelsUser(u.ID), group: groupModelsPart, ttl: s.cfg.ModelsTTL}, u.ID)
	return g, p, err
}

// modelsPart reads one part: the global models (ownerID empty) or one
// owner's private models.
func (s *Service) modelsPart(ctx context.Context, spec readSpec, ownerID string) (part, error) {
	if e, st, ok := s.cache.PeekStamp(spec.key, spec.group); ok {
		p := partOf(e, cache.Hit)
		p.key, p.stamp = spec.key, st
		return p, nil
	}
	e, res, err := cachedRead(ctx, s, spec, ownerID, loadModelsPart)
	if err != nil {
		return part{}, err
	}
	return partOf(e, res), nil
}

// loadModelsPart encodes a part as an item list keyed by name then id.
func loadModelsPart(ctx context.Context, s *Service, ownerID string) (rawBody, error) {
	var ms []modellab.Model
	var err error
	if ownerID == "" {
		ms, err = s.store.ListModels(ctx, "")
	} else {
		ms, err = s.store.ListOwnModels(ctx, ownerID)
	}
	if err != nil {
		return nil, err
	}
	items := make([]item, len(ms))
	for i := range ms {
		if items[i], err = modelItem(&ms[i]); err != nil {
			return nil, err
		}
	}
	return encodeItems(items, nil), nil
}

// modelItem is one model of a part: sorted by name then id (byte order),
// searchable by name, provider and base model without decoding.
func modelItem(m *modellab.Model) (item, error) {
	js, err := encode(m)
	if err != nil {
		return item{}, err
	}
	key := make([]byte, 0, len(m.Name)+1+len(m.ID))
	key = append(append(append(key, m.Name...), 0), m.ID...)
	search := strings.ToLower(m.Name + "\n" + m.Provider + "\n" + m.BaseModel)
	return item{key: key, aux: []byte(search), json: js}, nil
}

// invalidateModels drops every entry that can show one of models: the
// global part of the model lists (the server statuses read it too) or the
// owner's own part.
func (s *Service) invalidateModels(ctx context.Context, models ...modellab.Model) {
	var keys []string
	for _, m := range models {
		if m.Visibility == modellab.VisibilityGlobal {
			keys = append(keys, keyModelsGlobal)
		}
		if m.OwnerID != nil {
			keys = append(keys, keyModelsUser(*m.OwnerID))
		}
	}
	s.cache.Invalidate(ctx, keys...)
}

// visibleModel returns model id if u may see it; ENOTFOUND otherwise, so
// that existence does not leak.
func (s *Service) visibleModel(ctx context.Context, u *modellab.User, id string) (modellab.Model, error) {
	notFound := modellab.Errorf(modellab.ENOTFOUND, "model not found")
	if !modellab.ValidID(id) {
		return modellab.Model{}, notFound
	}
	var m modellab.Model
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		m, err = s.store.GetModel(ctx, id)
		return err
	})
	switch {
	case modellab.ErrorCode(err) == modellab.ENOTFOUND:
		return modellab.Model{}, notFound
	case err != nil:
		return m, err
	case !m.VisibleTo(u):
		return modellab.Model{}, notFound
	}
	return m, nil
}

// GetModel returns one model the caller may see.
func (s *Service) GetModel(ctx context.Context, u *modellab.User, id string) (modellab.Model, error) {
	return s.visibleModel(ctx, u, id)
}

// CreateModelInput is what a caller sends to register a model.
type CreateModelInput struct {
	Name          string `json:"name"`
	Provider      string `json:"provider"`
	BaseModel     string `json:"base_model"`
	Description   string `json:"description"`
	ContextLength *int64 `json:"context_length"`
	Visibility    string `json:"visibility"`
}

// CreateModel registers a model for u.
func (s *Service) CreateModel(ctx context.Context, u *modellab.User, in CreateModelInput) (modellab.Model, error) {
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
	m.CreatedAt = s.stamp()
	m.UpdatedAt = m.CreatedAt
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.CreateModel(ctx, &m) }); err != nil {
		return m, err
	}
	s.invalidateModels(ctx, m)
	return m, nil
}

// UpdateModel applies a partial update: the owner of a private model, or an
// admin for a global one; others get 404 (private) or 403 (global).
func (s *Service) UpdateModel(ctx context.Context, u *modellab.User, id string, p modellab.ModelPatch) (modellab.Model, error) {
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
	m.UpdatedAt = s.stamp()
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.UpdateModel(ctx, &m) }); err != nil {
		return old, err
	}
	s.invalidateModels(ctx, old, m)
	return m, nil
}

// DeleteModel removes a model; servers that ran it keep existing without it.
func (s *Service) DeleteModel(ctx context.Context, u *modellab.User, id string) error {
	m, err := s.editableModel(ctx, u, id)
	if err != nil {
		return err
	}
	// The delete sets model_id to null on the servers that ran it: their
	// owners' statuses change too.
	var owners []string
	err = s.withDB(ctx, func(ctx context.Context) error {
		var err error
		if owners, err = s.store.ServerOwnersOf(ctx, id); err != nil {
			return err
		}
		return s.store.DeleteModel(ctx, id)
	})
	if err != nil {
		return err
	}
	s.invalidateModels(ctx, m)
	for _, o := range owners {
		s.invalidateServers(ctx, o)
	}
	return nil
}

func (s *Service) editableModel(ctx context.Context, u *modellab.User, id string) (modellab.Model, error) {
	m, err := s.visibleModel(ctx, u, id)
	if err != nil {
		return m, err
	}
	if !m.EditableBy(u) {
		return m, modellab.Errorf(modellab.EFORBIDDEN, "only admins may change global models")
	}
	return m, nil
}

// stamp is the time a write records: UTC, at the microsecond precision
// both engines store.
func (s *Service) stamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }
