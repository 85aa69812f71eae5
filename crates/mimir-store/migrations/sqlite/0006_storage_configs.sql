-- Storage configs: how a project reaches a storage backend. `config` is the
-- connection settings as JSON, credentials as given (the API redacts them in
-- every answer; only workers running a connector read them back).
CREATE TABLE storage_configs (
    id          TEXT    PRIMARY KEY,  -- UUID text
    project_id  TEXT    NOT NULL,
    plugin_type TEXT    NOT NULL,
    config      TEXT    NOT NULL,     -- JSON {connection_string, credentials, options}
    active      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX storage_configs_by_project ON storage_configs (project_id, created_at);
