package store

import (
	"context"

	"github.com/modellab/modellab"
)

// CreateUser stores u with a fresh ID and creation time and returns a new
// API token for it. Only the token's hash is stored.
func (db *DB) CreateUser(ctx context.Context, u *modellab.User) (string, error) {
	if err := u.Valid(); err != nil {
		return "", err
	}
	nu := *u
	nu.ID = modellab.NewID(modellab.PrefixUser)
	nu.CreatedAt = now()
	token := modellab.NewToken()
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		if err := t.exec("INSERT INTO users (id, name, admin, created_at) VALUES (?, ?, ?, ?)",
			nu.ID, nu.Name, nu.Admin, micros(nu.CreatedAt)); err != nil {
			return err
		}
		return t.exec("INSERT INTO tokens (hash, user_id, created_at) VALUES (?, ?, ?)",
			modellab.HashToken(token), nu.ID, micros(nu.CreatedAt))
	})
	if err != nil {
		return "", fail(err, "create user")
	}
	*u = nu
	return token, nil
}

// UserByTokenHash returns the user holding the token with this hash.
func (db *DB) UserByTokenHash(ctx context.Context, hash string) (modellab.User, error) {
	var u modellab.User
	var created int64
	err := db.get(ctx, "user", `SELECT u.id, u.name, u.admin, u.created_at
		FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?`,
		[]any{hash}, &u.ID, &u.Name, &u.Admin, &created)
	if err != nil {
		return modellab.User{}, err
	}
	u.CreatedAt = fromMicros(created)
	return u, nil
}
