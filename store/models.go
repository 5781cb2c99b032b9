package store

import (
	"context"
	"strings"

	"github.com/modellab/modellab"
)

const modelCols = "id, name, provider, base_model, description, context_length, visibility, owner_id, created_at, updated_at"

func scanModel(r interface{ Scan(...any) error }) (modellab.Model, error) {
	var m modellab.Model
	var created, updated int64
	err := r.Scan(&m.ID, &m.Name, &m.Provider, &m.BaseModel, &m.Description, &m.ContextLength,
		&m.Visibility, &m.OwnerID, &created, &updated)
	m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
	return m, err
}

func (db *DB) listModels(ctx context.Context, op, q string, args ...any) ([]modellab.Model, error) {
	r, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fail(err, op)
	}
	defer r.Close()
	out := []modellab.Model{}
	for r.Next() {
		m, err := scanModel(r)
		if err != nil {
			return nil, fail(err, op)
		}
		out = append(out, m)
	}
	if err := r.Err(); err != nil {
		return nil, fail(err, op)
	}
	return out, nil
}

// ListModels returns the global models plus ownerID's private ones ("" for
// globals only), by name then id in byte order.
func (db *DB) ListModels(ctx context.Context, ownerID string) ([]modellab.Model, error) {
	if ownerID == "" {
		return db.listModels(ctx, "list models", "SELECT "+modelCols+
			` FROM models WHERE owner_id IS NULL ORDER BY name COLLATE "C", id COLLATE "C"`)
	}
	return db.listModels(ctx, "list models", "SELECT "+modelCols+
		` FROM models WHERE owner_id IS NULL OR owner_id = ? ORDER BY name COLLATE "C", id COLLATE "C"`, ownerID)
}

// ListOwnModels returns ownerID's private models only, sorted like
// ListModels: the private part of a composed model list.
func (db *DB) ListOwnModels(ctx context.Context, ownerID string) ([]modellab.Model, error) {
	return db.listModels(ctx, "list own models", "SELECT "+modelCols+
		` FROM models WHERE owner_id = ? ORDER BY name COLLATE "C", id COLLATE "C"`, ownerID)
}

// GetModel returns one model whoever owns it; visibility is the caller's
// business.
func (db *DB) GetModel(ctx context.Context, id string) (modellab.Model, error) {
	r, err := db.query(ctx, "SELECT "+modelCols+" FROM models WHERE id = ?", id)
	if err != nil {
		return modellab.Model{}, fail(err, "get model")
	}
	defer r.Close()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return modellab.Model{}, fail(err, "get model")
		}
		return modellab.Model{}, modellab.Errorf(modellab.ENOTFOUND, "model %s not found", id)
	}
	m, err := scanModel(r)
	if err != nil {
		return modellab.Model{}, fail(err, "get model")
	}
	return m, nil
}

// ModelsByIDs returns the existing models among ids, in one statement
// whatever len(ids) (the status page must not do one query per server).
func (db *DB) ModelsByIDs(ctx context.Context, ids []string) ([]modellab.Model, error) {
	if len(ids) == 0 {
		return []modellab.Model{}, nil
	}
	seen := make(map[string]bool, len(ids))
	uniq := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	if db.engine == EnginePostgres {
		return db.listModels(ctx, "get models", "SELECT "+modelCols+
			` FROM models WHERE id = ANY(?) ORDER BY id COLLATE "C"`, uniq)
	}
	args := make([]any, len(uniq))
	for i, id := range uniq {
		args[i] = id
	}
	// SQLite allows 32766 parameters; the callers pass a page of servers.
	return db.listModels(ctx, "get models", "SELECT "+modelCols+
		` FROM models WHERE id IN (?`+strings.Repeat(", ?", len(uniq)-1)+`) ORDER BY id COLLATE "C"`, args...)
}

func modelConflict(err error, m *modellab.Model, op string) error {
	if classify(err) == modellab.ECONFLICT {
		if m.OwnerID == nil {
			return modellab.WrapError(modellab.ECONFLICT, err, "a global model named %q already exists", m.Name)
		}
		return modellab.WrapError(modellab.ECONFLICT, err, "a model named %q already exists", m.Name)
	}
	if classify(err) == modellab.EINVALID {
		return modellab.WrapError(modellab.EINVALID, err, "the model's owner does not exist")
	}
	return fail(err, op)
}

// CreateModel stores m, setting ID, CreatedAt and UpdatedAt unless set.
func (db *DB) CreateModel(ctx context.Context, m *modellab.Model) error {
	if err := m.Valid(); err != nil {
		return err
	}
	nm := *m
	if nm.ID == "" {
		nm.ID = modellab.NewID(modellab.PrefixModel)
	}
	t := now()
	if nm.CreatedAt.IsZero() {
		nm.CreatedAt = t
	}
	if nm.UpdatedAt.IsZero() {
		nm.UpdatedAt = nm.CreatedAt
	}
	nm.CreatedAt = nm.CreatedAt.UTC().Truncate(1000)
	nm.UpdatedAt = nm.UpdatedAt.UTC().Truncate(1000)
	_, err := db.exec(ctx, "INSERT INTO models ("+modelCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		nm.ID, nm.Name, nm.Provider, nm.BaseModel, nm.Description, nm.ContextLength,
		nm.Visibility, nm.OwnerID, micros(nm.CreatedAt), micros(nm.UpdatedAt))
	if err != nil {
		return modelConflict(err, &nm, "create model")
	}
	*m = nm
	return nil
}

// UpdateModel writes every field of m and sets its UpdatedAt.
func (db *DB) UpdateModel(ctx context.Context, m *modellab.Model) error {
	if err := m.Valid(); err != nil {
		return err
	}
	nm := *m
	nm.UpdatedAt = now()
	n, err := db.exec(ctx, `UPDATE models SET name = ?, provider = ?, base_model = ?, description = ?,
		context_length = ?, visibility = ?, owner_id = ?, updated_at = ? WHERE id = ?`,
		nm.Name, nm.Provider, nm.BaseModel, nm.Description, nm.ContextLength, nm.Visibility,
		nm.OwnerID, micros(nm.UpdatedAt), nm.ID)
	if err != nil {
		return modelConflict(err, &nm, "update model")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "model %s not found", nm.ID)
	}
	*m = nm
	return nil
}

// DeleteModel deletes a model; servers running it keep existing with no
// model (ON DELETE SET NULL), and its events stay for analytics.
func (db *DB) DeleteModel(ctx context.Context, id string) error {
	n, err := db.exec(ctx, "DELETE FROM models WHERE id = ?", id)
	if err != nil {
		return fail(err, "delete model")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "model %s not found", id)
	}
	return nil
}
