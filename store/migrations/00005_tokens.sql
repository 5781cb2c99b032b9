-- API tokens get a lifecycle: an ID (tok_…) to list and revoke them by, a
-- name, when they were last used and when they expire. The secret is still
-- stored only as its SHA-256 (hash, unique). Existing tokens keep working:
-- they are copied with the name "token" and an ID made from their hash
-- (the hash of a 256-bit random secret; its first 80 bits reveal nothing
-- that helps to find the secret, and both engines compute it alike).
-- last_used_at is written at most once a minute per token and instance
-- (see service/tokens.go), so it is approximate by up to that much.

-- +goose Up
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT
);
INSERT INTO api_tokens (id, user_id, name, hash, created_at)
    SELECT 'tok_' || substr(hash, 1, 20), user_id, 'token', hash, created_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE api_tokens RENAME TO tokens;
-- GET /api/tokens: one user's tokens, newest first.
CREATE INDEX tokens_user_created ON tokens (user_id, created_at);

-- +goose Down
CREATE TABLE old_tokens (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
INSERT INTO old_tokens (hash, user_id, created_at) SELECT hash, user_id, created_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE old_tokens RENAME TO tokens;
CREATE INDEX tokens_user ON tokens (user_id);
