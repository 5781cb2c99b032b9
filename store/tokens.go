package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/modellab/modellab"
)

const (
	tokenCols   = "id, name, created_at, last_used_at, expires_at, user_id"
	insertToken = "INSERT INTO tokens (id, name, created_at, last_used_at, expires_at, user_id, hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
)

// tokenRow is the row of insertToken for t and its secret.
func tokenRow(t *modellab.Token, secret string) []any {
	return []any{t.ID, t.Name, micros(t.CreatedAt), optMicros(t.LastUsedAt), optMicros(t.ExpiresAt), t.UserID,
		modellab.HashToken(secret)}
}

func optMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

func optTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func scanToken(r interface{ Scan(...any) error }) (modellab.Token, error) {
	var t modellab.Token
	var created int64
	var used, expires sql.NullInt64
	if err := r.Scan(&t.ID, &t.Name, &created, &used, &expires, &t.UserID); err != nil {
		return t, err
	}
	t.CreatedAt, t.LastUsedAt, t.ExpiresAt = fromMicros(created), optTime(used), optTime(expires)
	return t, nil
}

// CreateToken stores t (its ID is set here, and its creation time unless
// set) and returns its secret, which is not stored: only its hash is.
func (db *DB) CreateToken(ctx context.Context, t *modellab.Token) (string, error) {
	nt := *t
	nt.ID = modellab.NewID(modellab.PrefixToken)
	if nt.CreatedAt.IsZero() {
		nt.CreatedAt = now()
	}
	nt.CreatedAt = nt.CreatedAt.UTC().Truncate(time.Microsecond)
	nt.LastUsedAt = nil
	if nt.ExpiresAt != nil {
		e := nt.ExpiresAt.UTC().Truncate(time.Microsecond)
		nt.ExpiresAt = &e
	}
	if err := nt.Valid(nt.CreatedAt); err != nil {
		return "", err
	}
	secret := modellab.NewToken()
	if _, err := db.exec(ctx, insertToken, tokenRow(&nt, secret)...); err != nil {
		return "", fail(err, "create token")
	}
	*t = nt
	return secret, nil
}

// ListTokens returns userID's tokens, newest first (then by name).
func (db *DB) ListTokens(ctx context.Context, userID string) ([]modellab.Token, error) {
	r, err := db.query(ctx, "SELECT "+tokenCols+
		` FROM tokens WHERE user_id = ? ORDER BY created_at DESC, name COLLATE "C", id COLLATE "C"`, userID)
	if err != nil {
		return nil, fail(err, "list tokens")
	}
	defer r.Close()
	out := []modellab.Token{}
	for r.Next() {
		t, err := scanToken(r)
		if err != nil {
			return nil, fail(err, "list tokens")
		}
		out = append(out, t)
	}
	if err := r.Err(); err != nil {
		return nil, fail(err, "list tokens")
	}
	return out, nil
}

// GetToken returns the token with this ID (ENOTFOUND when there is none).
func (db *DB) GetToken(ctx context.Context, id string) (modellab.Token, error) {
	r, err := db.query(ctx, "SELECT "+tokenCols+" FROM tokens WHERE id = ?", id)
	if err != nil {
		return modellab.Token{}, fail(err, "get token")
	}
	defer r.Close()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return modellab.Token{}, fail(err, "get token")
		}
		return modellab.Token{}, modellab.Errorf(modellab.ENOTFOUND, "token %s not found", id)
	}
	t, err := scanToken(r)
	if err != nil {
		return t, fail(err, "get token")
	}
	return t, nil
}

// DeleteToken removes a token and returns its hash, so that the caller can
// drop the cached lookups of it.
func (db *DB) DeleteToken(ctx context.Context, id string) (string, error) {
	var hash string
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		return t.get("DELETE FROM tokens WHERE id = ? RETURNING hash", []any{id}, &hash)
	})
	if err = fail(err, "revoke token"); modellab.ErrorCode(err) == modellab.ENOTFOUND {
		return "", modellab.Errorf(modellab.ENOTFOUND, "token %s not found", id)
	}
	return hash, err
}

// TokenByHash returns the token with this hash and the user holding it.
// Expiry is the caller's to check: the token is returned either way. The
// lookup is an index search, not a constant-time comparison, and needs
// none: its timing can tell at most how much of the SHA-256 of a token the
// caller chose matches a stored hash, which does not help to find a
// 256-bit secret.
func (db *DB) TokenByHash(ctx context.Context, hash string) (modellab.User, modellab.Token, error) {
	var u modellab.User
	var created int64
	var expires sql.NullInt64
	var t modellab.Token
	err := db.get(ctx, "token", `SELECT u.id, u.name, u.admin, u.created_at, t.id, t.expires_at
		FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?`,
		[]any{hash}, &u.ID, &u.Name, &u.Admin, &created, &t.ID, &expires)
	if err != nil {
		return modellab.User{}, modellab.Token{}, err
	}
	u.CreatedAt = fromMicros(created)
	t.UserID, t.ExpiresAt = u.ID, optTime(expires)
	return u, t, nil
}

// TouchTokens records last uses in one transaction. A use older than the
// stored one (another instance wrote a later one) is not written back.
func (db *DB) TouchTokens(ctx context.Context, uses []modellab.TokenUse) error {
	if len(uses) == 0 {
		return nil
	}
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		for _, u := range uses {
			at := micros(u.At)
			if err := t.exec("UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
				at, u.ID, at); err != nil {
				return err
			}
		}
		return nil
	})
	return fail(err, "record token use")
}
