-- Training runs and their metrics, on both engines. Timestamps are BIGINT
-- unix microseconds like the other rows; values are DOUBLE PRECISION (REAL
-- affinity on SQLite), which both engines return bit for bit.

-- +goose Up
CREATE TABLE runs (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    model_id   TEXT REFERENCES models(id) ON DELETE SET NULL,
    status     TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'killed')),
    params     TEXT NOT NULL DEFAULT '{}',
    -- The highest step of any point, kept by each ingest so that no read
    -- scans the points for it.
    last_step  BIGINT,
    -- Bumped by every ingest that reaches back below last_step (a late or
    -- replaced point): while it is unchanged, a reader that holds the
    -- points below last_step may fetch only those from last_step on.
    rewrites   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    ended_at   BIGINT
);
-- GET /api/runs: one owner's runs, newest first.
CREATE INDEX runs_owner_created ON runs (owner_id, created_at);
-- ON DELETE SET NULL looks runs up by model.
CREATE INDEX runs_model ON runs (model_id);

-- The value at the highest step of each key of a run ("latest"), upserted
-- by each ingest only where its step is not lower than the stored one.
CREATE TABLE run_latest (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    step   BIGINT NOT NULL,
    value  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Append-mostly points. The primary key is the read path (one run's keys,
-- each a range of steps) and makes a repeated (key, step) an upsert. No
-- foreign key: ingest is a hot write path (10,000 points a call) and a
-- per-row reference check would cost more than the insert; ingest checks
-- the run once, and deleting a run deletes its points.
CREATE TABLE metric_points (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    step   BIGINT NOT NULL CHECK (step >= 0),
    value  DOUBLE PRECISION NOT NULL,
    ts     BIGINT NOT NULL,
    PRIMARY KEY (run_id, key, step)
);

-- +goose Down
DROP TABLE metric_points;
DROP TABLE run_latest;
DROP TABLE runs;
