-- Work tasks. Times are microseconds since the Unix epoch (UTC).
CREATE TABLE worktasks (
    seq                   INTEGER PRIMARY KEY,  -- arrival order; the list cursor
    id                    BLOB    NOT NULL UNIQUE,  -- UUID, 16 bytes
    type                  TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    priority              INTEGER NOT NULL,
    project_id            TEXT    NOT NULL,
    submitted_at          INTEGER NOT NULL,
    started_at            INTEGER,
    completed_at          INTEGER,
    queue_seq             INTEGER NOT NULL,  -- position in the queue order
    queued_at             INTEGER NOT NULL,  -- when it last entered the queue
    not_before            INTEGER,           -- retry backoff: not eligible before
    retry_count           INTEGER NOT NULL DEFAULT 0,
    max_retries           INTEGER NOT NULL,
    retry_reason          TEXT    NOT NULL DEFAULT '',
    error_message         TEXT    NOT NULL DEFAULT '',
    kubernetes_job_name   TEXT    NOT NULL DEFAULT '',
    cluster_name          TEXT    NOT NULL DEFAULT '',
    task_spec             TEXT    NOT NULL,  -- JSON
    resource_requirements TEXT    NOT NULL,  -- JSON
    data_access           TEXT    NOT NULL,  -- JSON
    result                TEXT               -- JSON
);

CREATE INDEX worktasks_by_status  ON worktasks (status, seq);
CREATE INDEX worktasks_by_type    ON worktasks (type, seq);
CREATE INDEX worktasks_by_project ON worktasks (project_id, seq);
