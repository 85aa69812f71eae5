//! The model registry: models and their immutable versions, written through
//! the writer (so a status change is read, decided and written in one
//! transaction no other write interleaves with) and read from the pool.

use super::row::{micros, to_json};
use crate::StoreError;
use chrono::{DateTime, Utc};
use mimir_core::{MlModel, ModelChange, ModelStatus, ModelType, ModelVersion};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

/// A change to the registry.
pub(crate) enum ModelWrite {
    /// Inserts when `create`, else replaces the name and training config.
    Put {
        model: Box<MlModel>,
        create: bool,
    },
    Delete(String),
    /// Applies [`MlModel::apply`] to the stored model.
    Change {
        id: String,
        change: ModelChange,
        at: DateTime<Utc>,
    },
}

const MODEL_COLUMNS: &str = "id, project_id, name, type, status, status_reason, training_config, \
     performance_metrics, training_task_id, created_at, updated_at";
const VERSION_COLUMNS: &str = "version, checksum, size_bytes, artifact_store, feature_columns, \
     label_column, performance_metrics, training_config, training_task_id, training_duration_ms, \
     created_at";

fn conversion(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, message.into())
}

fn time(column: usize, us: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| conversion(column, format!("timestamp {us}")))
}

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, column: usize) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| conversion(column, e.to_string()))
}

fn task_id(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<Uuid>> {
    let text: Option<String> = row.get(column)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|e| conversion(column, e.to_string())))
        .transpose()
}

fn model(row: &Row<'_>) -> rusqlite::Result<MlModel> {
    let kind: String = row.get(3)?;
    let status: String = row.get(4)?;
    Ok(MlModel {
        id: row.get(0)?,
        project_id: row.get(1)?,
        name: row.get(2)?,
        model_type: ModelType::parse(&kind)
            .ok_or_else(|| conversion(3, format!("model type {kind:?}")))?,
        status: ModelStatus::parse(&status)
            .ok_or_else(|| conversion(4, format!("model status {status:?}")))?,
        status_reason: row.get(5)?,
        training_config: json(row, 6)?,
        performance_metrics: json(row, 7)?,
        versions: Vec::new(),
        training_task_id: task_id(row, 8)?,
        created_at: time(9, row.get(9)?)?,
        updated_at: time(10, row.get(10)?)?,
    })
}

fn version(row: &Row<'_>) -> rusqlite::Result<ModelVersion> {
    version_at(row, 0)
}

/// A version whose columns start at `at`.
fn version_at(row: &Row<'_>, at: usize) -> rusqlite::Result<ModelVersion> {
    Ok(ModelVersion {
        version: row.get(at)?,
        checksum: row.get(at + 1)?,
        size_bytes: row.get(at + 2)?,
        artifact_store: row.get(at + 3)?,
        feature_columns: json(row, at + 4)?,
        label_column: row.get(at + 5)?,
        performance_metrics: json(row, at + 6)?,
        training_config: json(row, at + 7)?,
        training_task_id: task_id(row, at + 8)?,
        training_duration_ms: row.get(at + 9)?,
        created_at: time(at + 10, row.get(at + 10)?)?,
    })
}

fn versions(conn: &Connection, model_id: &str) -> Result<Vec<ModelVersion>, StoreError> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM ml_model_versions WHERE model_id = ?1 ORDER BY version"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([model_id], version)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One model with its versions.
pub(crate) fn get_model(conn: &Connection, id: &str) -> Result<Option<MlModel>, StoreError> {
    let sql = format!("SELECT {MODEL_COLUMNS} FROM ml_models WHERE id = ?1");
    let found = conn
        .prepare_cached(&sql)?
        .query_row([id], model)
        .optional()?;
    let Some(mut found) = found else {
        return Ok(None);
    };
    found.versions = versions(conn, id)?;
    Ok(Some(found))
}

/// Models of one project or all, oldest first, with their versions.
pub(crate) fn list_models(
    conn: &Connection,
    project_id: Option<&str>,
) -> Result<Vec<MlModel>, StoreError> {
    let sql = format!(
        "SELECT {MODEL_COLUMNS} FROM ml_models WHERE ?1 IS NULL OR project_id = ?1 ORDER BY created_at, id"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([project_id], model)?;
    let mut models = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    // Every version of the listing in one query, not one per model: a
    // scrape reads the whole registry.
    let sql = format!(
        "SELECT model_id, {VERSION_COLUMNS} FROM ml_model_versions \
         WHERE ?1 IS NULL OR model_id IN (SELECT id FROM ml_models WHERE project_id = ?1) \
         ORDER BY model_id, version"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query([project_id])?;
    let mut by_model: std::collections::HashMap<String, Vec<ModelVersion>> =
        std::collections::HashMap::new();
    while let Some(row) = rows.next()? {
        let model_id: String = row.get(0)?;
        by_model
            .entry(model_id)
            .or_default()
            .push(version_at(row, 1)?);
    }
    for m in &mut models {
        m.versions = by_model.remove(&m.id).unwrap_or_default();
    }
    Ok(models)
}

fn missing(id: String) -> StoreError {
    StoreError::Missing { kind: "model", id }
}

/// Carries out `write`; the model as stored afterwards (none for a delete).
/// Every refusal is decided before the first statement that writes.
pub(crate) fn write(conn: &Connection, write: ModelWrite) -> Result<Option<MlModel>, StoreError> {
    match write {
        ModelWrite::Put { model: m, create } => {
            let config = to_json(&m.training_config)?;
            let changed = if create {
                conn.prepare_cached(
                    "INSERT INTO ml_models (id, project_id, name, type, status, status_reason, training_config, performance_metrics, training_task_id, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    m.id,
                    m.project_id,
                    m.name,
                    m.model_type.as_str(),
                    m.status.as_str(),
                    m.status_reason,
                    config,
                    to_json(&m.performance_metrics)?,
                    m.training_task_id.map(|t| t.to_string()),
                    micros(m.created_at),
                    micros(m.updated_at),
                ])?
            } else {
                conn.prepare_cached(
                    "UPDATE ml_models SET name = ?2, training_config = ?3, updated_at = ?4 WHERE id = ?1",
                )?
                .execute(params![m.id, m.name, config, micros(m.updated_at)])?
            };
            if changed == 0 && create {
                return Err(StoreError::AlreadyExists {
                    kind: "model",
                    id: m.id,
                });
            }
            if changed == 0 {
                return Err(missing(m.id));
            }
            get_model(conn, &m.id)
        }
        ModelWrite::Delete(id) => {
            conn.prepare_cached("DELETE FROM ml_model_versions WHERE model_id = ?1")?
                .execute([&id])?;
            if conn
                .prepare_cached("DELETE FROM ml_models WHERE id = ?1")?
                .execute([&id])?
                == 0
            {
                return Err(missing(id));
            }
            Ok(None)
        }
        ModelWrite::Change { id, change, at } => {
            let Some(mut m) = get_model(conn, &id)? else {
                return Err(missing(id));
            };
            let before = m.versions.len();
            m.apply(change, at).map_err(|refused| StoreError::Refused {
                kind: "model",
                id: id.clone(),
                reason: refused.0,
            })?;
            conn.prepare_cached(
                "UPDATE ml_models SET status = ?2, status_reason = ?3, performance_metrics = ?4, training_task_id = ?5, updated_at = ?6 WHERE id = ?1",
            )?
            .execute(params![
                m.id,
                m.status.as_str(),
                m.status_reason,
                to_json(&m.performance_metrics)?,
                m.training_task_id.map(|t| t.to_string()),
                micros(m.updated_at),
            ])?;
            debug_assert!(
                m.versions.len() <= before + 1,
                "one change adds one version"
            );
            for v in &m.versions[before..] {
                conn.prepare_cached(
                    "INSERT INTO ml_model_versions (model_id, version, checksum, size_bytes, artifact_store, feature_columns, label_column, performance_metrics, training_config, training_task_id, training_duration_ms, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?
                .execute(params![
                    m.id,
                    v.version,
                    v.checksum,
                    v.size_bytes,
                    v.artifact_store,
                    to_json(&v.feature_columns)?,
                    v.label_column,
                    to_json(&v.performance_metrics)?,
                    to_json(&v.training_config)?,
                    v.training_task_id.map(|t| t.to_string()),
                    v.training_duration_ms,
                    micros(v.created_at),
                ])?;
            }
            Ok(Some(m))
        }
    }
}
