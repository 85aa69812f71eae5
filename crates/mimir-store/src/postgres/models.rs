//! The model registry: models and their immutable versions. A change is
//! read (under a row lock), decided by [`MlModel::apply`] and written in one
//! transaction, so concurrent changes of one model take turns.

use super::row::{self, column, to_json};
use crate::StoreError;
use chrono::{DateTime, Utc};
use mimir_core::{MlModel, ModelChange, ModelStatus, ModelType, ModelVersion};
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgPool, PgRow, Postgres};
use std::collections::HashMap;

const MODEL_COLUMNS: &str = "id, project_id, name, type, status, status_reason, training_config, \
     performance_metrics, training_task_id, created_at, updated_at";
const VERSION_COLUMNS: &str = "version, checksum, size_bytes, artifact_store, feature_columns, \
     label_column, performance_metrics, training_config, training_task_id, training_duration_ms, \
     created_at";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json<T: serde::de::DeserializeOwned>(r: &PgRow, index: usize) -> Result<T, StoreError> {
    let text: String = column(r, index)?;
    serde_json::from_str(&text).map_err(|e| corrupt("model column", e))
}

fn model(r: &PgRow) -> Result<MlModel, StoreError> {
    let kind: String = column(r, 3)?;
    let status: String = column(r, 4)?;
    Ok(MlModel {
        id: column(r, 0)?,
        project_id: column(r, 1)?,
        name: column(r, 2)?,
        model_type: ModelType::parse(&kind)
            .ok_or_else(|| corrupt("model type", format!("{kind:?}")))?,
        status: ModelStatus::parse(&status)
            .ok_or_else(|| corrupt("model status", format!("{status:?}")))?,
        status_reason: column(r, 5)?,
        training_config: json(r, 6)?,
        performance_metrics: json(r, 7)?,
        versions: Vec::new(),
        training_task_id: column(r, 8)?,
        created_at: column(r, 9)?,
        updated_at: column(r, 10)?,
    })
}

/// A version whose columns start at `at`.
fn version_at(r: &PgRow, at: usize) -> Result<ModelVersion, StoreError> {
    let duration: Option<i64> = column(r, at + 9)?;
    Ok(ModelVersion {
        version: row::count(column(r, at)?)?,
        checksum: column(r, at + 1)?,
        size_bytes: column::<i64>(r, at + 2)?.max(0) as u64,
        artifact_store: column(r, at + 3)?,
        feature_columns: json(r, at + 4)?,
        label_column: column(r, at + 5)?,
        performance_metrics: json(r, at + 6)?,
        training_config: json(r, at + 7)?,
        training_task_id: column(r, at + 8)?,
        training_duration_ms: duration.map(|d| d.max(0) as u64),
        created_at: column(r, at + 10)?,
    })
}

/// One model with its versions, read on `conn`; `lock` holds its row until
/// the transaction ends.
async fn get_in(
    conn: &mut PgConnection,
    id: &str,
    lock: bool,
) -> Result<Option<MlModel>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let found = query::<Postgres>(&format!(
        "SELECT {MODEL_COLUMNS} FROM ml_models WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(found) = found else {
        return Ok(None);
    };
    let mut m = model(&found)?;
    let rows = query::<Postgres>(&format!(
        "SELECT {VERSION_COLUMNS} FROM ml_model_versions WHERE model_id = $1 ORDER BY version"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    m.versions = rows
        .iter()
        .map(|r| version_at(r, 0))
        .collect::<Result<_, _>>()?;
    Ok(Some(m))
}

pub(crate) async fn get(pool: &PgPool, id: &str) -> Result<Option<MlModel>, StoreError> {
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, id, false).await
}

/// Models of one project or all, oldest first, with their versions (read
/// in one query for the whole listing).
pub(crate) async fn list(
    pool: &PgPool,
    project_id: Option<&str>,
) -> Result<Vec<MlModel>, StoreError> {
    let rows = query::<Postgres>(&format!(
        "SELECT {MODEL_COLUMNS} FROM ml_models WHERE $1::text IS NULL OR project_id = $1 \
         ORDER BY created_at, id"
    ))
    .bind(project_id)
    .fetch_all(pool)
    .await?;
    let mut models = rows.iter().map(model).collect::<Result<Vec<_>, _>>()?;
    let rows = query::<Postgres>(&format!(
        "SELECT model_id, {VERSION_COLUMNS} FROM ml_model_versions \
         WHERE $1::text IS NULL OR model_id IN (SELECT id FROM ml_models WHERE project_id = $1) \
         ORDER BY model_id, version"
    ))
    .bind(project_id)
    .fetch_all(pool)
    .await?;
    let mut by_model: HashMap<String, Vec<ModelVersion>> = HashMap::new();
    for r in &rows {
        let model_id: String = super::row::column(r, 0)?;
        by_model
            .entry(model_id)
            .or_default()
            .push(version_at(r, 1)?);
    }
    for m in &mut models {
        m.versions = by_model.remove(&m.id).unwrap_or_default();
    }
    Ok(models)
}

fn missing(id: &str) -> StoreError {
    StoreError::Missing {
        kind: "model",
        id: id.to_string(),
    }
}

/// Inserts a model when `create`, else replaces its name and training
/// config; the model as stored after.
pub(crate) async fn put(pool: &PgPool, m: &MlModel, create: bool) -> Result<MlModel, StoreError> {
    let config = to_json(&m.training_config)?;
    let mut tx = pool.begin().await?;
    let changed = if create {
        query::<Postgres>(
            "INSERT INTO ml_models (id, project_id, name, type, status, status_reason, \
                 training_config, performance_metrics, training_task_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .bind(&m.id)
        .bind(&m.project_id)
        .bind(&m.name)
        .bind(m.model_type.as_str())
        .bind(m.status.as_str())
        .bind(&m.status_reason)
        .bind(config)
        .bind(to_json(&m.performance_metrics)?)
        .bind(m.training_task_id)
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(&mut *tx)
        .await?
    } else {
        query::<Postgres>(
            "UPDATE ml_models SET name = $2, training_config = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(&m.id)
        .bind(&m.name)
        .bind(config)
        .bind(m.updated_at)
        .execute(&mut *tx)
        .await?
    };
    if changed.rows_affected() == 0 {
        return Err(if create {
            StoreError::AlreadyExists {
                kind: "model",
                id: m.id.clone(),
            }
        } else {
            missing(&m.id)
        });
    }
    let stored = get_in(&mut tx, &m.id, false)
        .await?
        .ok_or_else(|| missing(&m.id))?;
    tx.commit().await?;
    Ok(stored)
}

/// Removes a model and its versions.
pub(crate) async fn delete(pool: &PgPool, id: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = query::<Postgres>("DELETE FROM ml_models WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(missing(id));
    }
    query::<Postgres>("DELETE FROM ml_model_versions WHERE model_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Applies a status or version change; a refused one stores nothing.
pub(crate) async fn change(
    pool: &PgPool,
    id: &str,
    change: ModelChange,
    at: DateTime<Utc>,
) -> Result<MlModel, StoreError> {
    let mut tx = pool.begin().await?;
    let mut m = get_in(&mut tx, id, true)
        .await?
        .ok_or_else(|| missing(id))?;
    let before = m.versions.len();
    m.apply(change, at).map_err(|refused| StoreError::Refused {
        kind: "model",
        id: id.to_string(),
        reason: refused.0,
    })?;
    query::<Postgres>(
        "UPDATE ml_models SET status = $2, status_reason = $3, performance_metrics = $4, \
             training_task_id = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(&m.id)
    .bind(m.status.as_str())
    .bind(&m.status_reason)
    .bind(to_json(&m.performance_metrics)?)
    .bind(m.training_task_id)
    .bind(m.updated_at)
    .execute(&mut *tx)
    .await?;
    debug_assert!(
        m.versions.len() <= before + 1,
        "one change adds one version"
    );
    for v in &m.versions[before..] {
        query::<Postgres>(
            "INSERT INTO ml_model_versions (model_id, version, checksum, size_bytes, \
                 artifact_store, feature_columns, label_column, performance_metrics, \
                 training_config, training_task_id, training_duration_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&m.id)
        .bind(row::int(v.version))
        .bind(&v.checksum)
        .bind(row::bigint(v.size_bytes))
        .bind(&v.artifact_store)
        .bind(to_json(&v.feature_columns)?)
        .bind(&v.label_column)
        .bind(to_json(&v.performance_metrics)?)
        .bind(to_json(&v.training_config)?)
        .bind(v.training_task_id)
        .bind(v.training_duration_ms.map(row::bigint))
        .bind(v.created_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(m)
}
