//! Projects, pipelines and storage configs: small tables, written through
//! the writer like everything else, read from the pool.

use super::row::{micros, to_json};
use crate::StoreError;
use chrono::DateTime;
use mimir_core::{Pipeline, PluginType, Project, ProjectListing, StorageConfig};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// A change to the catalog.
pub(crate) enum CatalogWrite {
    InsertProject(Project),
    DeleteProject(String),
    /// Inserts when `create`, else replaces an existing pipeline.
    PutPipeline {
        pipeline: Pipeline,
        create: bool,
    },
    DeletePipeline(String),
    /// Inserts when `create`, else replaces an existing storage config.
    PutStorageConfig {
        config: StorageConfig,
        create: bool,
    },
    DeleteStorageConfig(String),
}

fn conversion(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, message.into())
}

fn time(column: usize, us: i64) -> rusqlite::Result<DateTime<chrono::Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| conversion(column, format!("timestamp {us}")))
}

const PROJECT_COLUMNS: &str = "id, name, description, created_at";
const PIPELINE_COLUMNS: &str = "id, project_id, name, type, description, steps, created_at, updated_at, step_timeout_ms, \
     trigger_config, webhook_secret";
const STORAGE_CONFIG_COLUMNS: &str =
    "id, project_id, plugin_type, config, active, created_at, updated_at";

fn project(row: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        created_at: time(3, row.get(3)?)?,
    })
}

fn pipeline(row: &Row<'_>) -> rusqlite::Result<Pipeline> {
    let kind: String = row.get(3)?;
    let steps: String = row.get(5)?;
    let trigger: String = row.get(9)?;
    Ok(Pipeline {
        id: row.get(0)?,
        project_id: row.get(1)?,
        name: row.get(2)?,
        pipeline_type: kind.parse().map_err(|e| conversion(3, e))?,
        description: row.get(4)?,
        steps: serde_json::from_str(&steps).map_err(|e| conversion(5, e.to_string()))?,
        created_at: time(6, row.get(6)?)?,
        updated_at: time(7, row.get(7)?)?,
        step_timeout_ms: row.get(8)?,
        trigger_config: crate::trigger::from_column(&trigger, row.get(10)?)
            .map_err(|e| conversion(9, e.to_string()))?,
    })
}

fn storage_config(row: &Row<'_>) -> rusqlite::Result<StorageConfig> {
    let plugin: String = row.get(2)?;
    let config: String = row.get(3)?;
    Ok(StorageConfig {
        id: row.get(0)?,
        project_id: row.get(1)?,
        plugin_type: PluginType::parse(&plugin)
            .ok_or_else(|| conversion(2, format!("plugin type {plugin:?}")))?,
        config: serde_json::from_str(&config).map_err(|e| conversion(3, e.to_string()))?,
        active: row.get(4)?,
        created_at: time(5, row.get(5)?)?,
        updated_at: time(6, row.get(6)?)?,
    })
}

pub(crate) fn write(conn: &Connection, write: CatalogWrite) -> Result<(), StoreError> {
    match write {
        CatalogWrite::InsertProject(p) => {
            let inserted = conn
                .prepare_cached("INSERT INTO projects (id, name, description, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING")?
                .execute(params![p.id, p.name, p.description, micros(p.created_at)])?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists {
                    kind: "project",
                    id: p.id,
                });
            }
        }
        CatalogWrite::DeleteProject(id) => {
            if conn
                .prepare_cached("DELETE FROM projects WHERE id = ?1")?
                .execute([&id])?
                == 0
            {
                return Err(StoreError::Missing {
                    kind: "project",
                    id,
                });
            }
        }
        CatalogWrite::PutPipeline {
            pipeline: p,
            create,
        } => {
            let steps = to_json(&p.steps)?;
            let trigger = crate::trigger::to_column(&p.trigger_config);
            let secret = p.trigger_config.webhook.secret.as_deref();
            let changed = if create {
                conn.prepare_cached(
                    "INSERT INTO pipelines (id, project_id, name, type, description, steps, created_at, updated_at, step_timeout_ms, trigger_config, webhook_secret) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![p.id, p.project_id, p.name, p.pipeline_type.as_str(), p.description, steps, micros(p.created_at), micros(p.updated_at), p.step_timeout_ms, trigger, secret])?
            } else {
                // A replacement without a secret keeps the stored one.
                conn.prepare_cached(
                    "UPDATE pipelines SET project_id = ?2, name = ?3, type = ?4, description = ?5, steps = ?6, updated_at = ?7, step_timeout_ms = ?8, \
                     trigger_config = ?9, webhook_secret = coalesce(?10, webhook_secret) WHERE id = ?1",
                )?
                .execute(params![p.id, p.project_id, p.name, p.pipeline_type.as_str(), p.description, steps, micros(p.updated_at), p.step_timeout_ms, trigger, secret])?
            };
            if changed == 0 {
                return Err(StoreError::Missing {
                    kind: "pipeline",
                    id: p.id,
                });
            }
        }
        CatalogWrite::DeletePipeline(id) => {
            // Refusals first: the writer's group has no savepoints.
            if get_pipeline(conn, &id)?.is_none() {
                return Err(StoreError::Missing {
                    kind: "pipeline",
                    id,
                });
            }
            let schedules = super::schedules::firing(conn, &id)?;
            if !schedules.is_empty() {
                return Err(crate::trigger::fired_by(&id, &schedules));
            }
            conn.prepare_cached("DELETE FROM pipelines WHERE id = ?1")?
                .execute([&id])?;
            super::schedules::forget_pipeline(conn, &id)?;
        }
        CatalogWrite::PutStorageConfig { config: c, create } => {
            let settings = to_json(&c.config)?;
            let changed = if create {
                conn.prepare_cached(
                    "INSERT INTO storage_configs (id, project_id, plugin_type, config, active, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                )?
                .execute(params![c.id, c.project_id, c.plugin_type.as_str(), settings, c.active, micros(c.created_at), micros(c.updated_at)])?
            } else {
                conn.prepare_cached(
                    "UPDATE storage_configs SET project_id = ?2, plugin_type = ?3, config = ?4, active = ?5, updated_at = ?6 WHERE id = ?1",
                )?
                .execute(params![c.id, c.project_id, c.plugin_type.as_str(), settings, c.active, micros(c.updated_at)])?
            };
            if changed == 0 && create {
                return Err(StoreError::AlreadyExists {
                    kind: "storage config",
                    id: c.id,
                });
            }
            if changed == 0 {
                return Err(StoreError::Missing {
                    kind: "storage config",
                    id: c.id,
                });
            }
        }
        CatalogWrite::DeleteStorageConfig(id) => {
            if conn
                .prepare_cached("DELETE FROM storage_configs WHERE id = ?1")?
                .execute([&id])?
                == 0
            {
                return Err(StoreError::Missing {
                    kind: "storage config",
                    id,
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn get_project(conn: &Connection, id: &str) -> Result<Option<Project>, StoreError> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], project)
        .optional()?)
}

pub(crate) fn list_projects(
    conn: &Connection,
    after: Option<(DateTime<chrono::Utc>, String)>,
    limit: usize,
) -> Result<Vec<ProjectListing>, StoreError> {
    // Keyset pagination on the listing order. A project never registered is
    // listed from when its first task (lowest seq, found through
    // worktasks_by_project without reading the tasks) or pipeline was made.
    let (after_us, after_id) = match after {
        Some((at, id)) => (micros(at), id),
        None => (i64::MIN, String::new()),
    };
    let sql = "WITH used (id, first_at, tasks, pipelines) AS ( \
             SELECT w.project_id, (SELECT submitted_at FROM worktasks WHERE seq = w.first_seq), w.n, 0 \
               FROM (SELECT project_id, MIN(seq) AS first_seq, COUNT(*) AS n \
                     FROM worktasks GROUP BY project_id) AS w \
             UNION ALL \
             SELECT project_id, MIN(created_at), 0, COUNT(*) FROM pipelines GROUP BY project_id \
             UNION ALL \
             SELECT project_id, MIN(created_at), 0, 0 FROM storage_configs GROUP BY project_id \
             UNION ALL \
             SELECT id, created_at, 0, 0 FROM projects \
         ), listed AS ( \
             SELECT u.id AS id, COALESCE(p.created_at, MIN(u.first_at)) AS created_at, \
                    SUM(u.tasks) AS tasks, SUM(u.pipelines) AS pipelines \
             FROM used AS u LEFT JOIN projects AS p ON p.id = u.id GROUP BY u.id \
         ) \
         SELECT l.id, COALESCE(p.name, ''), COALESCE(p.description, ''), l.created_at, \
                p.id IS NOT NULL, l.tasks, l.pipelines \
         FROM listed AS l LEFT JOIN projects AS p ON p.id = l.id \
         WHERE (l.created_at, l.id) > (?1, ?2) \
         ORDER BY l.created_at, l.id LIMIT ?3";
    let mut statement = conn.prepare_cached(sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![after_us, after_id, limit], |row| {
        Ok(ProjectListing {
            project: project(row)?,
            registered: row.get(4)?,
            tasks: row.get(5)?,
            pipelines: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn get_pipeline(conn: &Connection, id: &str) -> Result<Option<Pipeline>, StoreError> {
    let sql = format!("SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], pipeline)
        .optional()?)
}

pub(crate) fn list_pipelines(
    conn: &Connection,
    project_id: Option<&str>,
) -> Result<Vec<Pipeline>, StoreError> {
    let sql = format!(
        "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE ?1 IS NULL OR project_id = ?1 ORDER BY created_at, id"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([project_id], pipeline)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn get_storage_config(
    conn: &Connection,
    id: &str,
) -> Result<Option<StorageConfig>, StoreError> {
    let sql = format!("SELECT {STORAGE_CONFIG_COLUMNS} FROM storage_configs WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], storage_config)
        .optional()?)
}

pub(crate) fn list_storage_configs(
    conn: &Connection,
    project_id: Option<&str>,
) -> Result<Vec<StorageConfig>, StoreError> {
    let sql = format!(
        "SELECT {STORAGE_CONFIG_COLUMNS} FROM storage_configs WHERE ?1 IS NULL OR project_id = ?1 ORDER BY created_at, id"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([project_id], storage_config)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
