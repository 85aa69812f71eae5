-- Schedules: pipelines fired on a clock. Times are microseconds since the
-- Unix epoch (UTC); `revision` is bumped by every write, so a scheduler's
-- decision made from an older revision is not applied.
CREATE TABLE schedules (
    id             TEXT    PRIMARY KEY,  -- UUID text
    project_id     TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    pipeline_id    TEXT    NOT NULL,
    pipeline_ids   TEXT    NOT NULL,     -- JSON array of pipeline ids
    cron           TEXT    NOT NULL,
    timezone       TEXT    NOT NULL,
    parameters     TEXT    NOT NULL,     -- JSON object
    priority       INTEGER NOT NULL,
    enabled        INTEGER NOT NULL,
    catchup        TEXT    NOT NULL,
    overlap        TEXT    NOT NULL,
    jitter_ms      INTEGER NOT NULL,
    next_fire_at   INTEGER,
    next_due_at    INTEGER,
    queued_fire_at INTEGER,
    last_fire_at   INTEGER,
    last_task_id   TEXT,                 -- UUID text
    last_task_ids  TEXT    NOT NULL DEFAULT '[]',  -- JSON array of UUID text
    last_outcome   TEXT,
    revision       INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX schedules_due ON schedules (next_due_at) WHERE enabled = 1;

-- What may start a pipeline besides schedules: JSON
-- {"allow_manual": bool, "webhook": {"enabled": bool}}; schedules name
-- their pipelines, so the schedule ids are never stored here. The webhook
-- key is kept apart from the served JSON.
ALTER TABLE pipelines ADD COLUMN trigger_config TEXT NOT NULL
    DEFAULT '{"allow_manual":true,"webhook":{"enabled":false}}';
ALTER TABLE pipelines ADD COLUMN webhook_secret TEXT;

-- Small JSON values a pipeline's runs load and save.
CREATE TABLE pipeline_checkpoints (
    pipeline_id       TEXT    PRIMARY KEY,
    checkpoint_values TEXT    NOT NULL,  -- JSON object
    updated_at        INTEGER NOT NULL
);

-- Signed webhook requests remembered for the replay window.
CREATE TABLE webhook_deliveries (
    pipeline_id TEXT    NOT NULL,
    signature   TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (pipeline_id, signature)
);
