package store

import (
	"context"
	"time"

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

// IssueToken mints an API token named label for the oldest user with this
// name (ENOTFOUND when there is none) and returns its secret; expiresIn 0
// means it never expires. It is `modellab token`'s: tokens are stored
// hashed, so a lost one cannot be shown again, only replaced.
func (db *DB) IssueToken(ctx context.Context, name, label string, expiresIn time.Duration) (string, error) {
	id, err := db.UserIDByName(ctx, name)
	if err != nil {
		return "", err
	}
	t := modellab.Token{Name: label, UserID: id}
	if expiresIn != 0 {
		at := now().Add(expiresIn)
		t.ExpiresAt = &at
	}
	return db.CreateToken(ctx, &t)
}

// UserIDByName returns the ID of the oldest user with this name (names are
// not unique), ENOTFOUND when there is none.
func (db *DB) UserIDByName(ctx context.Context, name string) (string, error) {
	var id string
	err := db.get(ctx, "user", `SELECT id FROM users WHERE name = ? ORDER BY created_at, id LIMIT 1`, []any{name}, &id)
	if modellab.ErrorCode(err) == modellab.ENOTFOUND {
		return "", modellab.Errorf(modellab.ENOTFOUND, "no user named %q", name)
	}
	return id, err
}
