//! Schedules, pipeline checkpoints and webhook deliveries: written through
//! the writer (so a scheduler's compare-and-set on `revision` and the tasks
//! it fires share one transaction), read from the pool.

use super::row::{micros, to_json};
use crate::{
    Checkpoints, DueSchedule, ScheduleAdvance, ScheduleFilter, StoreError, WebhookDelivery,
};
use chrono::{DateTime, Utc};
use mimir_core::{FireOutcome, Priority, Schedule};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A change to schedules or checkpoints that fires no task.
pub(crate) enum ScheduleWrite {
    /// Inserts when `create`, else replaces an existing schedule.
    Put {
        schedule: Box<Schedule>,
        create: bool,
    },
    Delete(String),
    Checkpoints {
        pipeline_id: String,
        values: Map<String, Value>,
        replace: bool,
        at: DateTime<Utc>,
    },
}

/// What a [`ScheduleWrite`] answers.
#[derive(Debug)]
pub(crate) enum Written {
    Schedule(Box<Schedule>),
    Checkpoints(Box<Checkpoints>),
    Done,
}

const SCHEDULE_COLUMNS: &str = "id, project_id, name, pipeline_id, pipeline_ids, cron, timezone, \
     parameters, priority, enabled, catchup, overlap, jitter_ms, next_fire_at, next_due_at, \
     queued_fire_at, last_fire_at, last_task_id, last_task_ids, last_outcome, revision, \
     created_at, updated_at";

/// Statuses of a fire that is still waiting or running.
const PREVIOUS_RUNNING: &str = "('queued', 'scheduled', 'spawned', 'executing')";

fn conversion(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, message.into())
}

fn time(column: usize, us: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| conversion(column, format!("timestamp {us}")))
}

fn optional_time(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<i64>>(column)?
        .map(|us| time(column, us))
        .transpose()
}

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, column: usize) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| conversion(column, e.to_string()))
}

fn parsed<T: std::str::FromStr<Err = String>>(row: &Row<'_>, column: usize) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    text.parse().map_err(|e: String| conversion(column, e))
}

fn schedule(row: &Row<'_>) -> rusqlite::Result<Schedule> {
    let priority: i64 = row.get(8)?;
    let last_task_id: Option<String> = row.get(17)?;
    let last_outcome: Option<String> = row.get(19)?;
    Ok(Schedule {
        id: row.get(0)?,
        project_id: row.get(1)?,
        name: row.get(2)?,
        pipeline_id: row.get(3)?,
        pipeline_ids: json(row, 4)?,
        cron: row.get(5)?,
        timezone: row.get(6)?,
        parameters: json(row, 7)?,
        priority: Priority::new(priority)
            .ok_or_else(|| conversion(8, format!("priority {priority}")))?,
        enabled: row.get(9)?,
        catchup: parsed(row, 10)?,
        overlap: parsed(row, 11)?,
        jitter_ms: row.get(12)?,
        next_fire_at: optional_time(row, 13)?,
        next_due_at: optional_time(row, 14)?,
        queued_fire_at: optional_time(row, 15)?,
        last_fire_at: optional_time(row, 16)?,
        last_task_id: last_task_id
            .map(|t| Uuid::parse_str(&t).map_err(|e| conversion(17, e.to_string())))
            .transpose()?,
        last_task_ids: json(row, 18)?,
        last_outcome: last_outcome
            .map(|o| {
                FireOutcome::ALL
                    .into_iter()
                    .find(|known| known.as_str() == o)
                    .ok_or_else(|| conversion(19, format!("fire outcome {o:?}")))
            })
            .transpose()?,
        revision: row.get(20)?,
        created_at: time(21, row.get(21)?)?,
        updated_at: time(22, row.get(22)?)?,
    })
}

pub(crate) fn write(conn: &Connection, write: ScheduleWrite) -> Result<Written, StoreError> {
    match write {
        ScheduleWrite::Put { schedule, create } => {
            put(conn, &schedule, create).map(|s| Written::Schedule(Box::new(s)))
        }
        ScheduleWrite::Delete(id) => {
            let deleted = conn
                .prepare_cached("DELETE FROM schedules WHERE id = ?1")?
                .execute([&id])?;
            if deleted == 0 {
                return Err(StoreError::Missing {
                    kind: "schedule",
                    id,
                });
            }
            Ok(Written::Done)
        }
        ScheduleWrite::Checkpoints {
            pipeline_id,
            values,
            replace,
            at,
        } => put_checkpoints(conn, pipeline_id, values, replace, at)
            .map(|c| Written::Checkpoints(Box::new(c))),
    }
}

/// Inserts or replaces a schedule; checks every refusal before it writes
/// (the writer's group has no savepoints).
fn put(conn: &Connection, s: &Schedule, create: bool) -> Result<Schedule, StoreError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM schedules WHERE id = ?1")?
        .query_row([&s.id], |_| Ok(()))
        .optional()?
        .is_some();
    match (create, exists) {
        (true, true) => {
            return Err(StoreError::AlreadyExists {
                kind: "schedule",
                id: s.id.clone(),
            });
        }
        (false, false) => {
            return Err(StoreError::Missing {
                kind: "schedule",
                id: s.id.clone(),
            });
        }
        _ => {}
    }
    let name_taken = conn
        .prepare_cached("SELECT 1 FROM schedules WHERE project_id = ?1 AND name = ?2 AND id <> ?3")?
        .query_row(params![s.project_id, s.name, s.id], |_| Ok(()))
        .optional()?
        .is_some();
    if name_taken {
        return Err(StoreError::AlreadyExists {
            kind: "schedule",
            id: s.name.clone(),
        });
    }
    let pipeline_ids = to_json(&s.pipeline_ids)?;
    let parameters = to_json(&s.parameters)?;
    let jitter_ms = i64::try_from(s.jitter_ms).unwrap_or(i64::MAX);
    if create {
        conn.prepare_cached(
            "INSERT INTO schedules (id, project_id, name, pipeline_id, pipeline_ids, cron, timezone, \
                 parameters, priority, enabled, catchup, overlap, jitter_ms, next_fire_at, next_due_at, \
                 queued_fire_at, last_fire_at, last_task_id, last_task_ids, last_outcome, revision, \
                 created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
                 ?18, ?19, ?20, 1, ?21, ?22)",
        )?
        .execute(params![
            s.id,
            s.project_id,
            s.name,
            s.pipeline_id,
            pipeline_ids,
            s.cron,
            s.timezone,
            parameters,
            s.priority.get(),
            s.enabled,
            s.catchup.as_str(),
            s.overlap.as_str(),
            jitter_ms,
            s.next_fire_at.map(micros),
            s.next_due_at.map(micros),
            s.queued_fire_at.map(micros),
            s.last_fire_at.map(micros),
            s.last_task_id.map(|id| id.to_string()),
            to_json(&s.last_task_ids)?,
            s.last_outcome.map(FireOutcome::as_str),
            micros(s.created_at),
            micros(s.updated_at),
        ])?;
    } else {
        // The record of past fires and `created_at` are the store's, not
        // the caller's.
        conn.prepare_cached(
            "UPDATE schedules SET project_id = ?2, name = ?3, pipeline_id = ?4, pipeline_ids = ?5, \
                 cron = ?6, timezone = ?7, parameters = ?8, priority = ?9, enabled = ?10, \
                 catchup = ?11, overlap = ?12, jitter_ms = ?13, next_fire_at = ?14, \
                 next_due_at = ?15, queued_fire_at = ?16, revision = revision + 1, updated_at = ?17 \
             WHERE id = ?1",
        )?
        .execute(params![
            s.id,
            s.project_id,
            s.name,
            s.pipeline_id,
            pipeline_ids,
            s.cron,
            s.timezone,
            parameters,
            s.priority.get(),
            s.enabled,
            s.catchup.as_str(),
            s.overlap.as_str(),
            jitter_ms,
            s.next_fire_at.map(micros),
            s.next_due_at.map(micros),
            s.queued_fire_at.map(micros),
            micros(s.updated_at),
        ])?;
    }
    get(conn, &s.id)?.ok_or_else(|| StoreError::Missing {
        kind: "schedule",
        id: s.id.clone(),
    })
}

/// Applies one advance's new times and fire record when the schedule is
/// still enabled and at the advance's revision; answers whether it did.
/// Its tasks are the caller's to insert, in the same transaction.
pub(crate) fn advance(conn: &Connection, a: &ScheduleAdvance) -> Result<bool, StoreError> {
    let fired = a.last_fire_at.is_some();
    let changed = conn
        .prepare_cached(
            "UPDATE schedules SET next_fire_at = ?3, next_due_at = ?4, queued_fire_at = ?5, \
                 last_outcome = coalesce(?6, last_outcome), \
                 last_fire_at = CASE WHEN ?7 THEN ?8 ELSE last_fire_at END, \
                 last_task_ids = CASE WHEN ?7 THEN ?9 ELSE last_task_ids END, \
                 last_task_id = CASE WHEN ?7 THEN ?10 ELSE last_task_id END, \
                 revision = revision + 1 \
             WHERE id = ?1 AND enabled AND revision = ?2",
        )?
        .execute(params![
            a.schedule_id,
            i64::try_from(a.revision).unwrap_or(i64::MAX),
            a.next_fire_at.map(micros),
            a.next_due_at.map(micros),
            a.queued_fire_at.map(micros),
            a.last_outcome.map(FireOutcome::as_str),
            fired,
            a.last_fire_at.map(micros),
            to_json(&a.last_task_ids)?,
            a.last_task_ids.first().map(|id| id.to_string()),
        ])?;
    Ok(changed == 1)
}

/// Forgets the deliveries of the pipeline older than the window, then
/// remembers this one; false (nothing remembered) when its signature was
/// seen within the window.
pub(crate) fn remember_delivery(
    conn: &Connection,
    delivery: &WebhookDelivery,
) -> Result<bool, StoreError> {
    let window = chrono::TimeDelta::from_std(delivery.window).unwrap_or(chrono::TimeDelta::MAX);
    let cutoff = delivery
        .at
        .checked_sub_signed(window)
        .map_or(i64::MIN, micros);
    conn.prepare_cached(
        "DELETE FROM webhook_deliveries WHERE pipeline_id = ?1 AND received_at < ?2",
    )?
    .execute(params![delivery.pipeline_id, cutoff])?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO webhook_deliveries (pipeline_id, signature, received_at) \
             VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            delivery.pipeline_id,
            delivery.signature,
            micros(delivery.at)
        ])?;
    Ok(inserted == 1)
}

/// The ids of the schedules firing `pipeline_id`, by id.
pub(crate) fn firing(conn: &Connection, pipeline_id: &str) -> Result<Vec<String>, StoreError> {
    let mut select = conn.prepare_cached(
        "SELECT id FROM schedules \
         WHERE EXISTS (SELECT 1 FROM json_each(schedules.pipeline_ids) WHERE value = ?1) ORDER BY id",
    )?;
    let rows = select.query_map([pipeline_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Removes what belongs to a deleted pipeline besides its row.
pub(crate) fn forget_pipeline(conn: &Connection, pipeline_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM pipeline_checkpoints WHERE pipeline_id = ?1")?
        .execute([pipeline_id])?;
    conn.prepare_cached("DELETE FROM webhook_deliveries WHERE pipeline_id = ?1")?
        .execute([pipeline_id])?;
    Ok(())
}

fn put_checkpoints(
    conn: &Connection,
    pipeline_id: String,
    values: Map<String, Value>,
    replace: bool,
    at: DateTime<Utc>,
) -> Result<Checkpoints, StoreError> {
    let Some(stored) = get_checkpoints(conn, &pipeline_id)? else {
        return Err(StoreError::Missing {
            kind: "pipeline",
            id: pipeline_id,
        });
    };
    let merged = crate::schedules::merge_checkpoints(stored.values, values, replace);
    conn.prepare_cached(
        "INSERT INTO pipeline_checkpoints (pipeline_id, checkpoint_values, updated_at) \
         VALUES (?1, ?2, ?3) \
         ON CONFLICT (pipeline_id) DO UPDATE SET checkpoint_values = excluded.checkpoint_values, \
             updated_at = excluded.updated_at",
    )?
    .execute(params![pipeline_id, to_json(&merged)?, micros(at)])?;
    Ok(Checkpoints {
        pipeline_id,
        values: merged,
        updated_at: Some(time(2, micros(at))?),
    })
}

pub(crate) fn get(conn: &Connection, id: &str) -> Result<Option<Schedule>, StoreError> {
    let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], schedule)
        .optional()?)
}

pub(crate) fn list(
    conn: &Connection,
    filter: &ScheduleFilter,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Schedule>, StoreError> {
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules \
         WHERE (?1 IS NULL OR project_id = ?1) \
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(schedules.pipeline_ids) WHERE value = ?2)) \
           AND (?3 IS NULL OR id > ?3) \
         ORDER BY id LIMIT ?4"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(
        params![filter.project_id, filter.pipeline_id, after, limit],
        schedule,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The due schedules and, from the same read transaction, whether a task of
/// each one's last fire is still waiting or running.
pub(crate) fn due(
    conn: &Connection,
    at: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<DueSchedule>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules \
         WHERE enabled AND (next_due_at <= ?1 OR queued_fire_at IS NOT NULL) \
         ORDER BY next_due_at NULLS LAST, id LIMIT ?2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let schedules = tx
        .prepare_cached(&sql)?
        .query_map(params![micros(at), limit], schedule)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut running = tx.prepare_cached(&format!(
        "SELECT 1 FROM worktasks WHERE id = ?1 AND status IN {PREVIOUS_RUNNING}"
    ))?;
    let mut due = Vec::with_capacity(schedules.len());
    for schedule in schedules {
        let mut previous_running = false;
        for id in &schedule.last_task_ids {
            if running
                .query_row([id.as_bytes()], |_| Ok(()))
                .optional()?
                .is_some()
            {
                previous_running = true;
                break;
            }
        }
        due.push(DueSchedule {
            schedule,
            previous_running,
        });
    }
    drop(running);
    tx.finish()?;
    Ok(due)
}

pub(crate) fn next_due(conn: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let us: Option<i64> = conn
        .prepare_cached("SELECT min(next_due_at) FROM schedules WHERE enabled")?
        .query_row([], |r| r.get(0))?;
    Ok(us.map(|us| time(0, us)).transpose()?)
}

/// `None` when there is no such pipeline.
pub(crate) fn get_checkpoints(
    conn: &Connection,
    pipeline_id: &str,
) -> Result<Option<Checkpoints>, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT c.checkpoint_values, c.updated_at FROM pipelines AS p \
             LEFT JOIN pipeline_checkpoints AS c ON c.pipeline_id = p.id WHERE p.id = ?1",
        )?
        .query_row([pipeline_id], |row| {
            let values: Option<String> = row.get(0)?;
            let values = match values {
                Some(text) => {
                    serde_json::from_str(&text).map_err(|e| conversion(0, e.to_string()))?
                }
                None => Map::new(),
            };
            Ok((values, optional_time(row, 1)?))
        })
        .optional()?;
    Ok(found.map(|(values, updated_at)| Checkpoints {
        pipeline_id: pipeline_id.to_string(),
        values,
        updated_at,
    }))
}
