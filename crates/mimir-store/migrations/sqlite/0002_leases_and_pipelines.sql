-- Attempts: every lease bumps `attempt`; results name the attempt they are for.
ALTER TABLE worktasks ADD COLUMN attempt   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE worktasks ADD COLUMN worker_id TEXT    NOT NULL DEFAULT '';

CREATE TABLE projects (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE pipelines (
    id          TEXT    PRIMARY KEY,  -- UUID text
    project_id  TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    steps       TEXT    NOT NULL,     -- JSON array
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX pipelines_by_project ON pipelines (project_id, created_at);
