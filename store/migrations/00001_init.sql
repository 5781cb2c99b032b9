-- One schema for SQLite and PostgreSQL. Timestamps are BIGINT: unix
-- microseconds for rows, unix milliseconds for events (cheap range scans and
-- integer bucketing), so both engines store and return identical values.
-- For the same reason event latencies and costs are integers (microseconds,
-- nano-dollars): sums of integers are exact, while two engines summing
-- floats in different orders disagree in the last bits.

-- +goose Up
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE models (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    provider       TEXT NOT NULL,
    base_model     TEXT NOT NULL DEFAULT '',
    description    TEXT NOT NULL DEFAULT '',
    context_length BIGINT,
    visibility     TEXT NOT NULL CHECK (visibility IN ('global', 'private')),
    owner_id       TEXT REFERENCES users(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    CHECK ((visibility = 'global') = (owner_id IS NULL))
);
-- Names are unique per owner, and among global models (owner '').
CREATE UNIQUE INDEX models_owner_name ON models ((COALESCE(owner_id, '')), name);
-- ListModels: globals (owner_id NULL) plus one owner's.
CREATE INDEX models_owner ON models (owner_id);

CREATE TABLE servers (
    id             TEXT PRIMARY KEY,
    owner_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    model_id       TEXT REFERENCES models(id) ON DELETE SET NULL,
    status         TEXT NOT NULL CHECK (status IN ('starting', 'running', 'stopped', 'error')),
    endpoint       TEXT NOT NULL DEFAULT '',
    gpu            TEXT NOT NULL DEFAULT '',
    last_heartbeat BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX servers_owner_name ON servers (owner_id, name);
-- ON DELETE SET NULL looks servers up by model.
CREATE INDEX servers_model ON servers (model_id);

-- Events have no foreign keys: they outlive deleted models, and ingest is
-- the hottest write path.
CREATE TABLE events (
    user_id       TEXT NOT NULL,
    ts            BIGINT NOT NULL,
    model_id      TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL CHECK (input_tokens >= 0),
    output_tokens BIGINT NOT NULL CHECK (output_tokens >= 0),
    latency_us    BIGINT NOT NULL CHECK (latency_us >= 0),
    status        TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    cost_nanos    BIGINT NOT NULL CHECK (cost_nanos >= 0)
);
-- Covering index: every analytics query is a range scan of one user's
-- [from, to) that never touches the table.
CREATE INDEX events_user_ts ON events (user_id, ts, model_id, status, latency_us, input_tokens, output_tokens, cost_nanos);

-- +goose Down
DROP TABLE events;
DROP TABLE servers;
DROP TABLE models;
DROP TABLE tokens;
DROP TABLE users;
