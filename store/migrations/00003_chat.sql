-- Conversations and their messages (the chat). Timestamps are BIGINT unix
-- microseconds, as everywhere. The model is not a foreign key: a
-- conversation outlives the model it talked to, like events do.

-- +goose Up
CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    model_id   TEXT NOT NULL,
    title      TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- The list: one owner's, newest first.
CREATE INDEX conversations_owner ON conversations (owner_id, created_at, id);

-- position orders the turns of a conversation: timestamps may tie, and a
-- second writer racing for the same position fails on the unique index
-- instead of interleaving turns.
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position        BIGINT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('done', 'streaming', 'error', 'canceled')),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_conversation ON messages (conversation_id, position);

-- +goose Down
DROP TABLE messages;
DROP TABLE conversations;
