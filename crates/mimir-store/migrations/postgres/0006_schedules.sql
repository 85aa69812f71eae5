-- Schedules: pipelines fired on a clock. `revision` is bumped by every
-- write, so a scheduler's decision made from an older revision is not
-- applied (the exactly-once guarantee of fires across replicas).
CREATE TABLE schedules (
    id             text        PRIMARY KEY,
    project_id     text        NOT NULL,
    name           text        NOT NULL,
    pipeline_id    text        NOT NULL,
    pipeline_ids   text        NOT NULL,  -- JSON array of pipeline ids
    cron           text        NOT NULL,
    timezone       text        NOT NULL,
    parameters     text        NOT NULL,  -- JSON object, kept as written
    priority       smallint    NOT NULL,
    enabled        boolean     NOT NULL,
    catchup        text        NOT NULL,
    overlap        text        NOT NULL,
    jitter_ms      bigint      NOT NULL,
    next_fire_at   timestamptz,
    next_due_at    timestamptz,
    queued_fire_at timestamptz,
    last_fire_at   timestamptz,
    last_task_id   uuid,
    last_task_ids  text        NOT NULL DEFAULT '[]',  -- JSON array of UUIDs
    last_outcome   text,
    revision       bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    CONSTRAINT schedules_name_unique UNIQUE (project_id, name)
);
CREATE INDEX schedules_due ON schedules (next_due_at) WHERE enabled;

-- What may start a pipeline besides schedules: JSON
-- {"allow_manual": bool, "webhook": {"enabled": bool}}; schedules name
-- their pipelines, so the schedule ids are never stored here. The webhook
-- key is kept apart from the served JSON.
ALTER TABLE pipelines
    ADD COLUMN trigger_config text NOT NULL
        DEFAULT '{"allow_manual":true,"webhook":{"enabled":false}}',
    ADD COLUMN webhook_secret text;

-- Small JSON values a pipeline's runs load and save.
CREATE TABLE pipeline_checkpoints (
    pipeline_id       text        PRIMARY KEY,
    checkpoint_values text        NOT NULL,  -- JSON object
    updated_at        timestamptz NOT NULL
);

-- Signed webhook requests remembered for the replay window.
CREATE TABLE webhook_deliveries (
    pipeline_id text        NOT NULL,
    signature   text        NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (pipeline_id, signature)
);
