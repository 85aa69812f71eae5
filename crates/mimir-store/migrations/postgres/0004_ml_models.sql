-- ML models: the registry's metadata (artifacts live outside the database).
CREATE TABLE ml_models (
    id                  text        PRIMARY KEY,
    project_id          text        NOT NULL,
    name                text        NOT NULL,
    type                text        NOT NULL,
    status              text        NOT NULL,
    status_reason       text        NOT NULL,
    training_config     text        NOT NULL,  -- JSON TrainingConfig
    performance_metrics text        NOT NULL,  -- JSON PerformanceMetrics of the latest version
    training_task_id    uuid,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX ml_models_by_project ON ml_models (project_id, created_at);

-- A version never changes once written: inference and audits trust its checksum.
CREATE TABLE ml_model_versions (
    model_id             text        NOT NULL,
    version              integer     NOT NULL,
    checksum             text        NOT NULL,
    size_bytes           bigint      NOT NULL,
    artifact_store       text        NOT NULL,
    feature_columns      text        NOT NULL,  -- JSON array
    label_column         text        NOT NULL,
    performance_metrics  text        NOT NULL,  -- JSON
    training_config      text        NOT NULL,  -- JSON
    training_task_id     uuid,
    training_duration_ms bigint,
    created_at           timestamptz NOT NULL,
    PRIMARY KEY (model_id, version)
);

CREATE FUNCTION mimir_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'model versions are immutable';
END $$;
CREATE TRIGGER ml_model_versions_immutable BEFORE UPDATE ON ml_model_versions
    FOR EACH ROW EXECUTE FUNCTION mimir_versions_immutable();
