package store

import (
	"context"
	"time"

	"github.com/modellab/modellab"
)

// InitialTokenName names the token a user is created with.
const InitialTokenName = "initial"

// CreateUser stores u with a fresh ID (and creation time, unless set) and
// returns a new API token for it (named InitialTokenName, created at the
// same time). Only the token's hash is stored.
func (db *DB) CreateUser(ctx context.Context, u *modellab.User) (string, error) {
	if err := u.Valid(); err != nil {
		return "", err
	}
	nu := *u
	nu.ID = modellab.NewID(modellab.PrefixUser)
	if nu.CreatedAt.IsZero() {
		nu.CreatedAt = now()
	}
	nu.CreatedAt = nu.CreatedAt.UTC().Truncate(time.Microsecond)
	token := modellab.NewToken()
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		if err := t.exec("INSERT INTO users (id, name, admin, created_at) VALUES (?, ?, ?, ?)",
			nu.ID, nu.Name, nu.Admin, micros(nu.CreatedAt)); err != nil {
			return err
		}
		return t.exec(insertToken, tokenRow(&modellab.Token{ID: modellab.NewID(modellab.PrefixToken),
			Name: InitialTokenName, UserID: nu.ID, CreatedAt: nu.CreatedAt}, token)...)
	})
	if err != nil {
		return "", fail(err, "create user")
	}
	*u = nu
	return token, nil
}
