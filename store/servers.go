package store

import (
	"context"

	"github.com/modellab/modellab"
)

const serverCols = "id, owner_id, name, model_id, status, endpoint, gpu, last_heartbeat, created_at, updated_at"

func scanServer(r interface{ Scan(...any) error }) (modellab.Server, error) {
	var s modellab.Server
	var hb *int64
	var created, updated int64
	err := r.Scan(&s.ID, &s.OwnerID, &s.Name, &s.ModelID, &s.Status, &s.Endpoint, &s.GPU, &hb, &created, &updated)
	if hb != nil {
		t := fromMicros(*hb)
		s.LastHeartbeat = &t
	}
	s.CreatedAt, s.UpdatedAt = fromMicros(created), fromMicros(updated)
	return s, err
}

func heartbeat(s *modellab.Server) *int64 {
	if s.LastHeartbeat == nil {
		return nil
	}
	us := micros(*s.LastHeartbeat)
	return &us
}

// ListServers returns ownerID's servers by name then id in byte order.
func (db *DB) ListServers(ctx context.Context, ownerID string) ([]modellab.Server, error) {
	r, err := db.query(ctx, "SELECT "+serverCols+
		` FROM servers WHERE owner_id = ? ORDER BY name COLLATE "C", id COLLATE "C"`, ownerID)
	if err != nil {
		return nil, fail(err, "list servers")
	}
	defer r.Close()
	out := []modellab.Server{}
	for r.Next() {
		s, err := scanServer(r)
		if err != nil {
			return nil, fail(err, "list servers")
		}
		out = append(out, s)
	}
	if err := r.Err(); err != nil {
		return nil, fail(err, "list servers")
	}
	return out, nil
}

// ServerOwnersOf returns the owners of the servers that run model id: the
// users whose status shows it (a delete sets their model_id to null).
func (db *DB) ServerOwnersOf(ctx context.Context, modelID string) ([]string, error) {
	r, err := db.query(ctx, "SELECT DISTINCT owner_id FROM servers WHERE model_id = ?", modelID)
	if err != nil {
		return nil, fail(err, "server owners")
	}
	defer r.Close()
	var out []string
	for r.Next() {
		var id string
		if err := r.Scan(&id); err != nil {
			return nil, fail(err, "server owners")
		}
		out = append(out, id)
	}
	return out, fail(r.Err(), "server owners")
}

// GetServer returns one server.
func (db *DB) GetServer(ctx context.Context, id string) (modellab.Server, error) {
	r, err := db.query(ctx, "SELECT "+serverCols+" FROM servers WHERE id = ?", id)
	if err != nil {
		return modellab.Server{}, fail(err, "get server")
	}
	defer r.Close()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return modellab.Server{}, fail(err, "get server")
		}
		return modellab.Server{}, modellab.Errorf(modellab.ENOTFOUND, "server %s not found", id)
	}
	s, err := scanServer(r)
	if err != nil {
		return modellab.Server{}, fail(err, "get server")
	}
	return s, nil
}

func serverErr(err error, s *modellab.Server, op string) error {
	switch classify(err) {
	case modellab.ECONFLICT:
		return modellab.WrapError(modellab.ECONFLICT, err, "a server named %q already exists", s.Name)
	case modellab.EINVALID:
		// The only references are the model and the owner.
		if s.ModelID != nil {
			return modellab.WrapError(modellab.EINVALID, err, "model %s does not exist", *s.ModelID)
		}
		return modellab.WrapError(modellab.EINVALID, err, "the server's owner does not exist")
	}
	return fail(err, op)
}

// CreateServer stores s, setting ID, CreatedAt and UpdatedAt unless set.
func (db *DB) CreateServer(ctx context.Context, s *modellab.Server) error {
	if err := s.Valid(); err != nil {
		return err
	}
	ns := *s
	if ns.ID == "" {
		ns.ID = modellab.NewID(modellab.PrefixServer)
	}
	if ns.CreatedAt.IsZero() {
		ns.CreatedAt = now()
	}
	if ns.UpdatedAt.IsZero() {
		ns.UpdatedAt = ns.CreatedAt
	}
	ns.CreatedAt = ns.CreatedAt.UTC().Truncate(1000)
	ns.UpdatedAt = ns.UpdatedAt.UTC().Truncate(1000)
	if ns.LastHeartbeat != nil {
		t := ns.LastHeartbeat.UTC().Truncate(1000)
		ns.LastHeartbeat = &t
	}
	_, err := db.exec(ctx, "INSERT INTO servers ("+serverCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		ns.ID, ns.OwnerID, ns.Name, ns.ModelID, ns.Status, ns.Endpoint, ns.GPU, heartbeat(&ns),
		micros(ns.CreatedAt), micros(ns.UpdatedAt))
	if err != nil {
		return serverErr(err, &ns, "create server")
	}
	*s = ns
	return nil
}

// UpdateServer writes every field of s (but not its owner) and sets its
// UpdatedAt.
func (db *DB) UpdateServer(ctx context.Context, s *modellab.Server) error {
	if err := s.Valid(); err != nil {
		return err
	}
	ns := *s
	ns.UpdatedAt = now()
	if ns.LastHeartbeat != nil {
		t := ns.LastHeartbeat.UTC().Truncate(1000)
		ns.LastHeartbeat = &t
	}
	n, err := db.exec(ctx, `UPDATE servers SET name = ?, model_id = ?, status = ?, endpoint = ?, gpu = ?,
		last_heartbeat = ?, updated_at = ? WHERE id = ?`,
		ns.Name, ns.ModelID, ns.Status, ns.Endpoint, ns.GPU, heartbeat(&ns), micros(ns.UpdatedAt), ns.ID)
	if err != nil {
		return serverErr(err, &ns, "update server")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "server %s not found", ns.ID)
	}
	*s = ns
	return nil
}

// DeleteServer deletes a server.
func (db *DB) DeleteServer(ctx context.Context, id string) error {
	n, err := db.exec(ctx, "DELETE FROM servers WHERE id = ?", id)
	if err != nil {
		return fail(err, "delete server")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "server %s not found", id)
	}
	return nil
}
