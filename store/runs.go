package store

import (
	"context"
	"encoding/json"

	"github.com/modellab/modellab"
)

// runSelect reads runs with their latest values: one row per (run, key),
// a run without points once with a NULL key. Rows of one run are adjacent
// because the order ends with the (unique) id.
const runSelect = `SELECT r.id, r.owner_id, r.name, r.model_id, r.status, r.params, r.last_step,
	r.created_at, r.updated_at, r.ended_at, l.key, l.value
	FROM runs r LEFT JOIN run_latest l ON l.run_id = r.id`

// scanRuns folds runSelect's rows into runs.
func scanRuns(r rows, op string) ([]modellab.Run, error) {
	out := []modellab.Run{}
	for r.Next() {
		var run modellab.Run
		var params string
		var created, updated int64
		var ended *int64
		var key *string
		var value *float64
		if err := r.Scan(&run.ID, &run.OwnerID, &run.Name, &run.ModelID, &run.Status, &params, &run.LastStep,
			&created, &updated, &ended, &key, &value); err != nil {
			return nil, fail(err, op)
		}
		if n := len(out); n == 0 || out[n-1].ID != run.ID {
			run.CreatedAt, run.UpdatedAt = fromMicros(created), fromMicros(updated)
			if ended != nil {
				t := fromMicros(*ended)
				run.EndedAt = &t
			}
			if err := json.Unmarshal([]byte(params), &run.Params); err != nil {
				return nil, modellab.WrapError(modellab.EINTERNAL, err, "%s: stored params are not JSON", op)
			}
			if run.Params == nil {
				run.Params = map[string]any{}
			}
			run.Latest = map[string]float64{}
			out = append(out, run)
		}
		if key != nil && value != nil {
			out[len(out)-1].Latest[*key] = *value
		}
	}
	if err := r.Err(); err != nil {
		return nil, fail(err, op)
	}
	return out, nil
}

// ListRuns returns ownerID's runs, newest first (runs started in the same
// microsecond by name, then id, so that the order is stable).
func (db *DB) ListRuns(ctx context.Context, ownerID string) ([]modellab.Run, error) {
	r, err := db.query(ctx, runSelect+` WHERE r.owner_id = ? ORDER BY r.created_at DESC, r.name COLLATE "C", r.id COLLATE "C"`, ownerID)
	if err != nil {
		return nil, fail(err, "list runs")
	}
	defer r.Close()
	return scanRuns(r, "list runs")
}

// GetRun returns one run whoever owns it; rights are the caller's business.
func (db *DB) GetRun(ctx context.Context, id string) (modellab.Run, error) {
	r, err := db.query(ctx, runSelect+" WHERE r.id = ?", id)
	if err != nil {
		return modellab.Run{}, fail(err, "get run")
	}
	defer r.Close()
	runs, err := scanRuns(r, "get run")
	if err != nil {
		return modellab.Run{}, err
	}
	if len(runs) == 0 {
		return modellab.Run{}, modellab.Errorf(modellab.ENOTFOUND, "run %s not found", id)
	}
	return runs[0], nil
}

func runErr(err error, r *modellab.Run, op string) error {
	if classify(err) == modellab.EINVALID {
		if r.ModelID != nil {
			return modellab.WrapError(modellab.EINVALID, err, "model %s does not exist", *r.ModelID)
		}
		return modellab.WrapError(modellab.EINVALID, err, "the run's owner does not exist")
	}
	return fail(err, op)
}

func endedMicros(r *modellab.Run) *int64 {
	if r.EndedAt == nil {
		return nil
	}
	us := micros(*r.EndedAt)
	return &us
}

// CreateRun stores r, setting ID, CreatedAt and UpdatedAt unless set. Its
// metric summary starts empty.
func (db *DB) CreateRun(ctx context.Context, r *modellab.Run) error {
	if err := r.Valid(); err != nil {
		return err
	}
	nr := *r
	if nr.ID == "" {
		nr.ID = modellab.NewID(modellab.PrefixRun)
	}
	if nr.CreatedAt.IsZero() {
		nr.CreatedAt = now()
	}
	if nr.UpdatedAt.IsZero() {
		nr.UpdatedAt = nr.CreatedAt
	}
	nr.CreatedAt, nr.UpdatedAt = nr.CreatedAt.UTC().Truncate(1000), nr.UpdatedAt.UTC().Truncate(1000)
	if nr.Params == nil {
		nr.Params = map[string]any{}
	}
	params, err := json.Marshal(nr.Params)
	if err != nil {
		return modellab.WrapError(modellab.EINVALID, err, "params cannot be stored")
	}
	nr.LastStep, nr.Latest = nil, map[string]float64{}
	_, err = db.exec(ctx, `INSERT INTO runs (id, owner_id, name, model_id, status, params, created_at, updated_at, ended_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		nr.ID, nr.OwnerID, nr.Name, nr.ModelID, nr.Status, string(params), micros(nr.CreatedAt), micros(nr.UpdatedAt), endedMicros(&nr))
	if err != nil {
		return runErr(err, &nr, "create run")
	}
	*r = nr
	return nil
}

// UpdateRun writes r's name, status and end, and its UpdatedAt (now unless
// set).
func (db *DB) UpdateRun(ctx context.Context, r *modellab.Run) error {
	if err := r.Valid(); err != nil {
		return err
	}
	nr := *r
	if nr.UpdatedAt.IsZero() {
		nr.UpdatedAt = now()
	}
	nr.UpdatedAt = nr.UpdatedAt.UTC().Truncate(1000)
	if nr.EndedAt != nil {
		t := nr.EndedAt.UTC().Truncate(1000)
		nr.EndedAt = &t
	}
	n, err := db.exec(ctx, "UPDATE runs SET name = ?, status = ?, ended_at = ?, updated_at = ? WHERE id = ?",
		nr.Name, nr.Status, endedMicros(&nr), micros(nr.UpdatedAt), nr.ID)
	if err != nil {
		return runErr(err, &nr, "update run")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "run %s not found", nr.ID)
	}
	*r = nr
	return nil
}

// DeleteRun deletes a run and its metrics. The run's row goes first: on
// PostgreSQL that waits for an ingest holding it, whose points the next
// statement then sees and deletes.
func (db *DB) DeleteRun(ctx context.Context, id string) error {
	var n int64
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		var err error
		if n, err = t.execN("DELETE FROM runs WHERE id = ?", id); err != nil || n == 0 {
			return err
		}
		return t.exec("DELETE FROM metric_chunks WHERE run_id = ?", id)
	})
	if err != nil {
		return fail(err, "delete run")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "run %s not found", id)
	}
	return nil
}
