-- Work tasks. Several orchestrator processes share these rows: everything
-- they must agree on (queue position, lease holder and expiry) is stored here.
CREATE SEQUENCE worktasks_seq;        -- arrival order; the list cursor
CREATE SEQUENCE worktasks_queue_seq;  -- position in the queue order

CREATE TABLE worktasks (
    seq                   bigint      PRIMARY KEY,
    id                    uuid        NOT NULL UNIQUE,
    type                  text        NOT NULL,
    status                text        NOT NULL,
    priority              smallint    NOT NULL,
    project_id            text        NOT NULL,
    submitted_at          timestamptz NOT NULL,
    started_at            timestamptz,
    completed_at          timestamptz,
    queue_seq             bigint      NOT NULL,
    queued_at             timestamptz NOT NULL,  -- when it last entered the queue
    not_before            timestamptz,           -- retry backoff: not eligible before
    retry_count           integer     NOT NULL DEFAULT 0,
    max_retries           integer     NOT NULL,
    retry_reason          text        NOT NULL DEFAULT '',
    error_message         text        NOT NULL DEFAULT '',
    kubernetes_job_name   text        NOT NULL DEFAULT '',
    cluster_name          text        NOT NULL DEFAULT '',
    task_spec             text        NOT NULL,  -- JSON, kept as written
    resource_requirements text        NOT NULL,  -- JSON
    data_access           text        NOT NULL,  -- JSON
    result                text,                  -- JSON
    attempt               integer     NOT NULL DEFAULT 0,
    worker_id             text        NOT NULL DEFAULT '',
    traceparent           text        NOT NULL DEFAULT '',
    -- Ended attempts (mimir_core::Attempt), appended by the UPDATE that ends
    -- each; the attempt that completes a task is not appended: the row holds it.
    attempts              jsonb       NOT NULL DEFAULT '[]',
    -- While scheduled, spawned or executing: when the holder's lease lapses.
    lease_expires_at      timestamptz
);

-- Leases and the most-urgent list: the queue order of each type (the
-- most-urgent list merges the three). Every index costs each submitted row
-- an insert, so the list's filters other than status and project scan.
CREATE INDEX worktasks_queue_lanes ON worktasks (type, priority DESC, queue_seq)
    WHERE status = 'queued';
CREATE INDEX worktasks_backoff ON worktasks (not_before)
    WHERE status = 'queued' AND not_before IS NOT NULL;
CREATE INDEX worktasks_leases ON worktasks (lease_expires_at)
    WHERE status IN ('scheduled', 'spawned', 'executing');
CREATE INDEX worktasks_leases_by_worker ON worktasks (worker_id)
    WHERE status IN ('scheduled', 'spawned', 'executing');
CREATE INDEX worktasks_by_status  ON worktasks (status, seq);
CREATE INDEX worktasks_by_project ON worktasks (project_id, seq);
