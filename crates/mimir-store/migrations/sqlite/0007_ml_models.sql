-- ML models: the registry's metadata. The artifacts themselves live outside
-- the database (the data dir or an S3 storage config); a version records
-- where, and the checksum every reader verifies. Configs and scores are JSON:
-- their fields grow with the model types, and nothing queries inside them.
CREATE TABLE ml_models (
    id                  TEXT    PRIMARY KEY,
    project_id          TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    type                TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    status_reason       TEXT    NOT NULL,
    training_config     TEXT    NOT NULL,  -- JSON TrainingConfig
    performance_metrics TEXT    NOT NULL,  -- JSON PerformanceMetrics of the latest version
    training_task_id    TEXT,              -- UUID text
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX ml_models_by_project ON ml_models (project_id, created_at);

-- One row per training run or import. A version never changes once written:
-- inference and audits name it by number and trust its checksum.
CREATE TABLE ml_model_versions (
    model_id             TEXT    NOT NULL,
    version              INTEGER NOT NULL,
    checksum             TEXT    NOT NULL,  -- sha256:<hex>
    size_bytes           INTEGER NOT NULL,
    artifact_store       TEXT    NOT NULL,  -- `data` or an S3 storage config id
    feature_columns      TEXT    NOT NULL,  -- JSON array
    label_column         TEXT    NOT NULL,
    performance_metrics  TEXT    NOT NULL,  -- JSON PerformanceMetrics
    training_config      TEXT    NOT NULL,  -- JSON TrainingConfig
    training_task_id     TEXT,
    training_duration_ms INTEGER,
    created_at           INTEGER NOT NULL,
    PRIMARY KEY (model_id, version)
) WITHOUT ROWID;

CREATE TRIGGER ml_model_versions_immutable BEFORE UPDATE ON ml_model_versions
BEGIN
    SELECT RAISE(ABORT, 'model versions are immutable');
END;
