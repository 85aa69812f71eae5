//! Projects, pipelines and storage configs: small tables, one statement
//! per change.

use super::row::{self, column, to_json};
use crate::StoreError;
use chrono::{DateTime, Utc};
use mimir_core::{Pipeline, PluginType, Project, ProjectListing, StorageConfig};
use sqlx_core::query::query;
use sqlx_postgres::{PgPool, PgRow, Postgres};

const PROJECT_COLUMNS: &str = "id, name, description, created_at";
const PIPELINE_COLUMNS: &str = "id, project_id, name, type, description, steps, created_at, updated_at, step_timeout_ms, \
     trigger_config, webhook_secret";
const STORAGE_CONFIG_COLUMNS: &str =
    "id, project_id, plugin_type, config, active, created_at, updated_at";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn project(r: &PgRow) -> Result<Project, StoreError> {
    Ok(Project {
        id: column(r, 0)?,
        name: column(r, 1)?,
        description: column(r, 2)?,
        created_at: column(r, 3)?,
    })
}

fn pipeline(r: &PgRow) -> Result<Pipeline, StoreError> {
    let kind: String = column(r, 3)?;
    let steps: String = column(r, 5)?;
    let timeout: Option<i64> = column(r, 8)?;
    let trigger: String = column(r, 9)?;
    Ok(Pipeline {
        id: column(r, 0)?,
        project_id: column(r, 1)?,
        name: column(r, 2)?,
        pipeline_type: kind.parse().map_err(|e| corrupt("pipeline type", e))?,
        description: column(r, 4)?,
        steps: serde_json::from_str(&steps).map_err(|e| corrupt("pipeline steps", e))?,
        created_at: column(r, 6)?,
        updated_at: column(r, 7)?,
        step_timeout_ms: timeout.map(|t| t.max(0) as u64),
        trigger_config: crate::trigger::from_column(&trigger, column(r, 10)?)
            .map_err(|e| corrupt("pipeline trigger config", e))?,
    })
}

fn storage_config(r: &PgRow) -> Result<StorageConfig, StoreError> {
    let plugin: String = column(r, 2)?;
    let config: String = column(r, 3)?;
    Ok(StorageConfig {
        id: column(r, 0)?,
        project_id: column(r, 1)?,
        plugin_type: PluginType::parse(&plugin)
            .ok_or_else(|| corrupt("plugin type", format!("{plugin:?}")))?,
        config: serde_json::from_str(&config).map_err(|e| corrupt("storage config", e))?,
        active: column(r, 4)?,
        created_at: column(r, 5)?,
        updated_at: column(r, 6)?,
    })
}

pub(crate) async fn create_project(pool: &PgPool, p: &Project) -> Result<(), StoreError> {
    let inserted = query::<Postgres>(
        "INSERT INTO projects (id, name, description, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.created_at)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::AlreadyExists {
            kind: "project",
            id: p.id.clone(),
        });
    }
    Ok(())
}

/// Deletes row `id` of `table` (a fixed name, never user input); missing
/// is [`StoreError::Missing`] of `kind`.
pub(crate) async fn delete(
    pool: &PgPool,
    kind: &'static str,
    table: &'static str,
    id: &str,
) -> Result<(), StoreError> {
    let deleted = query::<Postgres>(&format!("DELETE FROM {table} WHERE id = $1"))
        .bind(id)
        .execute(pool)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(StoreError::Missing {
            kind,
            id: id.to_string(),
        });
    }
    Ok(())
}

pub(crate) async fn get_project(pool: &PgPool, id: &str) -> Result<Option<Project>, StoreError> {
    let found = query::<Postgres>(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    found.as_ref().map(project).transpose()
}

/// Up to `limit` projects, oldest first, after `after`: the registered ones
/// and every other project a task, pipeline or storage config names, listed
/// from when it was first used.
pub(crate) async fn list_projects(
    pool: &PgPool,
    after: Option<(DateTime<Utc>, String)>,
    limit: usize,
) -> Result<Vec<ProjectListing>, StoreError> {
    let (after_at, after_id) = match after {
        Some((at, id)) => (Some(at), id),
        None => (None, String::new()),
    };
    let sql = "WITH used (id, first_at, tasks, pipelines) AS ( \
             SELECT w.project_id, (SELECT submitted_at FROM worktasks WHERE seq = w.first_seq), w.n, 0::int8 \
               FROM (SELECT project_id, min(seq) AS first_seq, count(*) AS n \
                     FROM worktasks GROUP BY project_id) AS w \
             UNION ALL \
             SELECT project_id, min(created_at), 0, count(*) FROM pipelines GROUP BY project_id \
             UNION ALL \
             SELECT project_id, min(created_at), 0, 0 FROM storage_configs GROUP BY project_id \
             UNION ALL \
             SELECT id, created_at, 0, 0 FROM projects \
         ), listed AS ( \
             SELECT u.id AS id, coalesce(min(p.created_at), min(u.first_at)) AS created_at, \
                    sum(u.tasks)::int8 AS tasks, sum(u.pipelines)::int8 AS pipelines \
             FROM used AS u LEFT JOIN projects AS p ON p.id = u.id GROUP BY u.id \
         ) \
         SELECT l.id, coalesce(p.name, ''), coalesce(p.description, ''), l.created_at, \
                p.id IS NOT NULL, l.tasks, l.pipelines \
         FROM listed AS l LEFT JOIN projects AS p ON p.id = l.id \
         WHERE $1::timestamptz IS NULL OR (l.created_at, l.id) > ($1, $2) \
         ORDER BY l.created_at, l.id LIMIT $3";
    let rows = query::<Postgres>(sql)
        .bind(after_at)
        .bind(after_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    let mut listed = Vec::with_capacity(rows.len());
    for r in &rows {
        listed.push(ProjectListing {
            project: project(r)?,
            registered: column(r, 4)?,
            tasks: column::<i64>(r, 5)?.max(0) as u64,
            pipelines: column::<i64>(r, 6)?.max(0) as u64,
        });
    }
    Ok(listed)
}

/// Inserts a pipeline when `create`, else replaces an existing one.
pub(crate) async fn put_pipeline(
    pool: &PgPool,
    p: &Pipeline,
    create: bool,
) -> Result<(), StoreError> {
    let steps = to_json(&p.steps)?;
    let timeout = p.step_timeout_ms.map(row::bigint);
    let trigger = crate::trigger::to_column(&p.trigger_config);
    let secret = p.trigger_config.webhook.secret.as_deref();
    let changed = if create {
        query::<Postgres>(
            "INSERT INTO pipelines (id, project_id, name, type, description, steps, created_at, \
                 updated_at, step_timeout_ms, trigger_config, webhook_secret) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .bind(&p.id)
        .bind(&p.project_id)
        .bind(&p.name)
        .bind(p.pipeline_type.as_str())
        .bind(row::text(p.description.clone()))
        .bind(steps)
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(timeout)
        .bind(&trigger)
        .bind(secret)
        .execute(pool)
        .await?
    } else {
        // A replacement without a secret keeps the stored one.
        query::<Postgres>(
            "UPDATE pipelines SET project_id = $2, name = $3, type = $4, description = $5, \
                 steps = $6, updated_at = $7, step_timeout_ms = $8, trigger_config = $9, \
                 webhook_secret = coalesce($10, webhook_secret) WHERE id = $1",
        )
        .bind(&p.id)
        .bind(&p.project_id)
        .bind(&p.name)
        .bind(p.pipeline_type.as_str())
        .bind(row::text(p.description.clone()))
        .bind(steps)
        .bind(p.updated_at)
        .bind(timeout)
        .bind(&trigger)
        .bind(secret)
        .execute(pool)
        .await?
    };
    if changed.rows_affected() == 0 {
        let id = p.id.clone();
        return Err(if create {
            StoreError::AlreadyExists {
                kind: "pipeline",
                id,
            }
        } else {
            StoreError::Missing {
                kind: "pipeline",
                id,
            }
        });
    }
    Ok(())
}

pub(crate) async fn get_pipeline(pool: &PgPool, id: &str) -> Result<Option<Pipeline>, StoreError> {
    let found = query::<Postgres>(&format!(
        "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    found.as_ref().map(pipeline).transpose()
}

pub(crate) async fn list_pipelines(
    pool: &PgPool,
    project_id: Option<&str>,
) -> Result<Vec<Pipeline>, StoreError> {
    let rows = query::<Postgres>(&format!(
        "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE $1::text IS NULL OR project_id = $1 \
         ORDER BY created_at, id"
    ))
    .bind(project_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(pipeline).collect()
}

/// Inserts a storage config when `create`, else replaces an existing one
/// (its `created_at` kept).
pub(crate) async fn put_storage_config(
    pool: &PgPool,
    c: &StorageConfig,
    create: bool,
) -> Result<(), StoreError> {
    let settings = to_json(&c.config)?;
    let changed = if create {
        query::<Postgres>(
            "INSERT INTO storage_configs (id, project_id, plugin_type, config, active, \
                 created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&c.id)
        .bind(&c.project_id)
        .bind(c.plugin_type.as_str())
        .bind(settings)
        .bind(c.active)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(pool)
        .await?
    } else {
        query::<Postgres>(
            "UPDATE storage_configs SET project_id = $2, plugin_type = $3, config = $4, \
                 active = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(&c.id)
        .bind(&c.project_id)
        .bind(c.plugin_type.as_str())
        .bind(settings)
        .bind(c.active)
        .bind(c.updated_at)
        .execute(pool)
        .await?
    };
    if changed.rows_affected() == 0 {
        let id = c.id.clone();
        return Err(if create {
            StoreError::AlreadyExists {
                kind: "storage config",
                id,
            }
        } else {
            StoreError::Missing {
                kind: "storage config",
                id,
            }
        });
    }
    Ok(())
}

pub(crate) async fn get_storage_config(
    pool: &PgPool,
    id: &str,
) -> Result<Option<StorageConfig>, StoreError> {
    let found = query::<Postgres>(&format!(
        "SELECT {STORAGE_CONFIG_COLUMNS} FROM storage_configs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    found.as_ref().map(storage_config).transpose()
}

pub(crate) async fn list_storage_configs(
    pool: &PgPool,
    project_id: Option<&str>,
) -> Result<Vec<StorageConfig>, StoreError> {
    let rows = query::<Postgres>(&format!(
        "SELECT {STORAGE_CONFIG_COLUMNS} FROM storage_configs \
         WHERE $1::text IS NULL OR project_id = $1 ORDER BY created_at, id"
    ))
    .bind(project_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(storage_config).collect()
}
