-- Rollups of events (see store/rollups.go), kept current by every ingest in
-- its own transaction, so that an analytics read costs the hours and days
-- in its range, not the events. Per user, model and hour (usage_hourly) or
-- UTC day (usage_daily): the sums of every figure. Per user, model and hour
-- or day: a latency histogram with log-spaced buckets (ratio 1.02: bucket k
-- holds latencies in (1.02^(k-1), 1.02^k] µs; -1 holds 0 µs). model_id ''
-- holds the sum over all models, for reads that do not filter by model.
-- This migration fills them from the events stored so far.

-- +goose Up
CREATE TABLE usage_hourly (
    user_id       TEXT NOT NULL,
    model_id      TEXT NOT NULL,
    period        BIGINT NOT NULL,
    requests      BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_nanos    BIGINT NOT NULL,
    latency_us    BIGINT NOT NULL,
    PRIMARY KEY (user_id, model_id, period)
);
CREATE TABLE usage_daily (
    user_id       TEXT NOT NULL,
    model_id      TEXT NOT NULL,
    period        BIGINT NOT NULL,
    requests      BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_nanos    BIGINT NOT NULL,
    latency_us    BIGINT NOT NULL,
    PRIMARY KEY (user_id, model_id, period)
);
-- The per-model rows of one user over a range (by_model reads every model):
-- the primary keys serve one model, or the all-models rows.
CREATE INDEX usage_hourly_user_period ON usage_hourly (user_id, period);
CREATE INDEX usage_daily_user_period ON usage_daily (user_id, period);

CREATE TABLE latency_hourly (
    user_id  TEXT NOT NULL,
    model_id TEXT NOT NULL,
    period   BIGINT NOT NULL,
    bucket   BIGINT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (user_id, model_id, period, bucket)
);
CREATE TABLE latency_daily (
    user_id  TEXT NOT NULL,
    model_id TEXT NOT NULL,
    period   BIGINT NOT NULL,
    bucket   BIGINT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (user_id, model_id, period, bucket)
);

-- Backfill. e: every event twice, once under its model and once under ''.
INSERT INTO usage_hourly
SELECT user_id, m, ts - ts % 3600000, COUNT(*), CAST(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS BIGINT),
       CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT), CAST(SUM(latency_us) AS BIGINT)
FROM (SELECT *, model_id AS m FROM events UNION ALL SELECT *, '' AS m FROM events) AS e
GROUP BY user_id, m, ts - ts % 3600000;

INSERT INTO usage_daily
SELECT user_id, model_id, period - period % 86400000, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT),
       CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT), CAST(SUM(latency_us) AS BIGINT)
FROM usage_hourly
GROUP BY user_id, model_id, period - period % 86400000;

INSERT INTO latency_hourly
SELECT user_id, m, hour, bucket, COUNT(*)
FROM (SELECT user_id, m, ts - ts % 3600000 AS hour,
             CASE WHEN latency_us <= 0 THEN -1
                  ELSE CAST(ceil(ln(CAST(latency_us AS DOUBLE PRECISION)) / ln(CAST(1.02 AS DOUBLE PRECISION))) AS BIGINT) END AS bucket
      FROM (SELECT *, model_id AS m FROM events UNION ALL SELECT *, '' AS m FROM events) AS e2) AS e
GROUP BY user_id, m, hour, bucket;

INSERT INTO latency_daily
SELECT user_id, model_id, period - period % 86400000, bucket, CAST(SUM(n) AS BIGINT)
FROM latency_hourly
GROUP BY user_id, model_id, period - period % 86400000, bucket;

-- +goose Down
DROP TABLE latency_daily;
DROP TABLE latency_hourly;
DROP TABLE usage_daily;
DROP TABLE usage_hourly;
