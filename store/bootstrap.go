package store

import (
	"context"

	"github.com/modellab/modellab"
)

// EnsureUser creates u with its given ID unless a user with that ID exists.
// The server uses it for the admin user that ADMIN_TOKEN acts as, so that
// the admin's private models have a real owner row.
func (db *DB) EnsureUser(ctx context.Context, u modellab.User) error {
	if err := u.Valid(); err != nil {
		return err
	}
	if !modellab.ValidID(u.ID) {
		return modellab.Errorf(modellab.EINVALID, "invalid user id %q", u.ID)
	}
	_, err := db.exec(ctx, `INSERT INTO users (id, name, admin, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, u.ID, u.Name, u.Admin, micros(now()))
	if err != nil {
		return fail(err, "ensure user")
	}
	return nil
}

// IssueToken returns a new API token for the oldest user with this name
// (ENOTFOUND when there is none). serve --demo prints one on every start,
// because tokens are stored hashed and the seeded one cannot be shown again.
func (db *DB) IssueToken(ctx context.Context, name string) (string, error) {
	var id string
	if err := db.get(ctx, "user", `SELECT id FROM users WHERE name = ? ORDER BY created_at, id LIMIT 1`,
		[]any{name}, &id); err != nil {
		return "", err
	}
	token := modellab.NewToken()
	if _, err := db.exec(ctx, `INSERT INTO tokens (hash, user_id, created_at) VALUES (?, ?, ?)`,
		modellab.HashToken(token), id, micros(now())); err != nil {
		return "", fail(err, "issue token")
	}
	return token, nil
}
