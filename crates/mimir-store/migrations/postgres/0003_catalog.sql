-- Projects, pipelines and storage configs.
CREATE TABLE projects (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL
);

CREATE TABLE pipelines (
    id              text        PRIMARY KEY,
    project_id      text        NOT NULL,
    name            text        NOT NULL,
    type            text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    steps           text        NOT NULL,  -- JSON array, kept as written
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    step_timeout_ms bigint
);
CREATE INDEX pipelines_by_project ON pipelines (project_id, created_at);

-- Credentials as given: the API redacts them in every answer.
CREATE TABLE storage_configs (
    id          text        PRIMARY KEY,
    project_id  text        NOT NULL,
    plugin_type text        NOT NULL,
    config      text        NOT NULL,  -- JSON {connection_string, credentials, options}
    active      boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX storage_configs_by_project ON storage_configs (project_id, created_at);
