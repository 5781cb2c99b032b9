-- Lab Academy: which lessons each user has completed. Lessons themselves
-- ship in the binary; a row names one by its slug, so a lesson removed
-- later simply stops counting. completed_at is unix microseconds, as every
-- row timestamp.

-- +goose Up
CREATE TABLE lesson_progress (
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    lesson       TEXT NOT NULL CHECK (length(lesson) BETWEEN 1 AND 64),
    completed_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, lesson)
);

-- +goose Down
DROP TABLE lesson_progress;
