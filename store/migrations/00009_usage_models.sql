-- The models each user has events of, whatever the range: an analytics
-- read of every model takes the names of its models from here in the same
-- statement as the daily digests (store/digest.go), where a lookup by the
-- digests' ids would be a second round trip after the first. Ingest adds
-- the pairs it sees, in the same transaction as the rollups. A model that
-- is deleted or becomes invisible keeps its row; the read joins models,
-- which decides the name. This migration fills it from the daily rollups,
-- which every stored event is counted in.

-- +goose Up
CREATE TABLE usage_models (
    user_id  TEXT NOT NULL,
    model_id TEXT NOT NULL,
    PRIMARY KEY (user_id, model_id)
);
INSERT INTO usage_models (user_id, model_id)
SELECT DISTINCT user_id, model_id FROM usage_daily WHERE model_id <> ''
ORDER BY user_id, model_id; -- one user's rows together, as ingest and the seed write them

-- +goose Down
DROP TABLE usage_models;
