//! Schedules, pipeline checkpoints and webhook deliveries. A scheduler's
//! advance is a compare-and-set on `revision` in the transaction that
//! inserts the tasks it fires: of two replicas deciding from the same
//! revision, the second one's UPDATE waits for the first to commit, then
//! finds the revision moved on and changes nothing.

use super::row::{self, column, to_json};
use super::{leader, tasks};
use crate::{
    Checkpoints, DueSchedule, ScheduleAdvance, ScheduleFilter, StoreError, Term, WebhookDelivery,
};
use chrono::{DateTime, Utc};
use mimir_core::{FireOutcome, Schedule, WorkTask};
use serde_json::{Map, Value};
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgPool, PgRow, Postgres};

const SCHEDULE_COLUMNS: &str = "id, project_id, name, pipeline_id, pipeline_ids, cron, timezone, \
     parameters, priority, enabled, catchup, overlap, jitter_ms, next_fire_at, next_due_at, \
     queued_fire_at, last_fire_at, last_task_id, last_task_ids, last_outcome, revision, \
     created_at, updated_at";

/// The unique constraint on a schedule's name within its project.
const NAME_UNIQUE: &str = "schedules_name_unique";

/// Statuses of a fire that is still waiting or running.
const PREVIOUS_RUNNING: &str = "('queued', 'scheduled', 'spawned', 'executing')";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json<T: serde::de::DeserializeOwned>(
    r: &PgRow,
    index: usize,
    what: &str,
) -> Result<T, StoreError> {
    let text: String = column(r, index)?;
    serde_json::from_str(&text).map_err(|e| corrupt(what, e))
}

fn schedule(r: &PgRow) -> Result<Schedule, StoreError> {
    let catchup: String = column(r, 10)?;
    let overlap: String = column(r, 11)?;
    let last_outcome: Option<String> = column(r, 19)?;
    Ok(Schedule {
        id: column(r, 0)?,
        project_id: column(r, 1)?,
        name: column(r, 2)?,
        pipeline_id: column(r, 3)?,
        pipeline_ids: json(r, 4, "schedule pipeline ids")?,
        cron: column(r, 5)?,
        timezone: column(r, 6)?,
        parameters: json(r, 7, "schedule parameters")?,
        priority: row::priority(column(r, 8)?)?,
        enabled: column(r, 9)?,
        catchup: catchup
            .parse()
            .map_err(|e| corrupt("schedule catchup", e))?,
        overlap: overlap
            .parse()
            .map_err(|e| corrupt("schedule overlap", e))?,
        jitter_ms: column::<i64>(r, 12)?.max(0) as u64,
        next_fire_at: column(r, 13)?,
        next_due_at: column(r, 14)?,
        queued_fire_at: column(r, 15)?,
        last_fire_at: column(r, 16)?,
        last_task_id: column(r, 17)?,
        last_task_ids: json(r, 18, "schedule last task ids")?,
        last_outcome: last_outcome
            .map(|o| {
                FireOutcome::ALL
                    .into_iter()
                    .find(|known| known.as_str() == o)
                    .ok_or_else(|| corrupt("schedule last outcome", format!("{o:?}")))
            })
            .transpose()?,
        revision: column::<i64>(r, 20)?.max(0) as u64,
        created_at: column(r, 21)?,
        updated_at: column(r, 22)?,
    })
}

/// A taken id or name as [`StoreError::AlreadyExists`]; other errors as
/// they are.
fn clash(error: sqlx_core::Error, s: &Schedule) -> StoreError {
    if let sqlx_core::Error::Database(db) = &error
        && db.code().as_deref() == Some("23505")
    {
        let id = if db.constraint() == Some(NAME_UNIQUE) {
            s.name.clone()
        } else {
            s.id.clone()
        };
        return StoreError::AlreadyExists {
            kind: "schedule",
            id,
        };
    }
    error.into()
}

/// Inserts a schedule (revision 1) when `create`, else replaces one,
/// keeping `created_at` and the record of past fires; the schedule as
/// stored.
pub(crate) async fn put(pool: &PgPool, s: &Schedule, create: bool) -> Result<Schedule, StoreError> {
    let pipeline_ids = to_json(&s.pipeline_ids)?;
    let parameters = to_json(&s.parameters)?;
    let priority = i16::from(s.priority.get());
    let jitter_ms = row::bigint(s.jitter_ms);
    let stored = if create {
        query::<Postgres>(&format!(
            "INSERT INTO schedules (id, project_id, name, pipeline_id, pipeline_ids, cron, \
                 timezone, parameters, priority, enabled, catchup, overlap, jitter_ms, \
                 next_fire_at, next_due_at, queued_fire_at, last_fire_at, last_task_id, \
                 last_task_ids, last_outcome, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, 1, $21, $22) \
             RETURNING {SCHEDULE_COLUMNS}"
        ))
        .bind(&s.id)
        .bind(&s.project_id)
        .bind(&s.name)
        .bind(&s.pipeline_id)
        .bind(pipeline_ids)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(parameters)
        .bind(priority)
        .bind(s.enabled)
        .bind(s.catchup.as_str())
        .bind(s.overlap.as_str())
        .bind(jitter_ms)
        .bind(s.next_fire_at)
        .bind(s.next_due_at)
        .bind(s.queued_fire_at)
        .bind(s.last_fire_at)
        .bind(s.last_task_id)
        .bind(to_json(&s.last_task_ids)?)
        .bind(s.last_outcome.map(FireOutcome::as_str))
        .bind(s.created_at)
        .bind(s.updated_at)
        .fetch_optional(pool)
        .await
    } else {
        query::<Postgres>(&format!(
            "UPDATE schedules SET project_id = $2, name = $3, pipeline_id = $4, \
                 pipeline_ids = $5, cron = $6, timezone = $7, parameters = $8, priority = $9, \
                 enabled = $10, catchup = $11, overlap = $12, jitter_ms = $13, \
                 next_fire_at = $14, next_due_at = $15, queued_fire_at = $16, \
                 revision = revision + 1, updated_at = $17 \
             WHERE id = $1 RETURNING {SCHEDULE_COLUMNS}"
        ))
        .bind(&s.id)
        .bind(&s.project_id)
        .bind(&s.name)
        .bind(&s.pipeline_id)
        .bind(pipeline_ids)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(parameters)
        .bind(priority)
        .bind(s.enabled)
        .bind(s.catchup.as_str())
        .bind(s.overlap.as_str())
        .bind(jitter_ms)
        .bind(s.next_fire_at)
        .bind(s.next_due_at)
        .bind(s.queued_fire_at)
        .bind(s.updated_at)
        .fetch_optional(pool)
        .await
    };
    match stored.map_err(|e| clash(e, s))? {
        Some(r) => schedule(&r),
        None => Err(StoreError::Missing {
            kind: "schedule",
            id: s.id.clone(),
        }),
    }
}

pub(crate) async fn get(pool: &PgPool, id: &str) -> Result<Option<Schedule>, StoreError> {
    let found = query::<Postgres>(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    found.as_ref().map(schedule).transpose()
}

pub(crate) async fn list(
    pool: &PgPool,
    filter: &ScheduleFilter,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Schedule>, StoreError> {
    let rows = query::<Postgres>(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules \
         WHERE ($1::text IS NULL OR project_id = $1) \
           AND ($2::text IS NULL OR pipeline_ids::jsonb ? $2) \
           AND ($3::text IS NULL OR id > $3) \
         ORDER BY id LIMIT $4"
    ))
    .bind(filter.project_id.as_deref())
    .bind(filter.pipeline_id.as_deref())
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.iter().map(schedule).collect()
}

pub(crate) async fn delete(pool: &PgPool, id: &str) -> Result<(), StoreError> {
    super::catalog::delete(pool, "schedule", "schedules", id).await
}

/// The due schedules, each with whether a task of its last fire is still
/// waiting or running, in one statement.
pub(crate) async fn due(
    pool: &PgPool,
    at: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<DueSchedule>, StoreError> {
    // `= ANY (ARRAY(...))` looks each task up by its unique index; `IN
    // (SELECT ...)` let the planner hash-join a scan of every task, which
    // took over a second per tick once tens of thousands were stored.
    let rows = query::<Postgres>(&format!(
        "SELECT {SCHEDULE_COLUMNS}, EXISTS ( \
             SELECT 1 FROM worktasks w \
             WHERE w.id = ANY (ARRAY(SELECT t::uuid FROM jsonb_array_elements_text(s.last_task_ids::jsonb) AS t)) \
               AND w.status IN {PREVIOUS_RUNNING}) \
         FROM schedules s \
         WHERE s.enabled AND (s.next_due_at <= $1 OR s.queued_fire_at IS NOT NULL) \
         ORDER BY s.next_due_at NULLS LAST, s.id LIMIT $2"
    ))
    .bind(at)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    let mut due = Vec::with_capacity(rows.len());
    for r in &rows {
        due.push(DueSchedule {
            schedule: schedule(r)?,
            previous_running: column(r, 23)?,
        });
    }
    Ok(due)
}

pub(crate) async fn next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    let r = query::<Postgres>("SELECT min(next_due_at) FROM schedules WHERE enabled")
        .fetch_one(pool)
        .await?;
    column(&r, 0)
}

/// Applies, in one transaction, each advance whose schedule is still
/// enabled and at its revision, inserting its tasks; answers which were
/// applied and the tasks stored. With a `term`, refused whole unless it is
/// current.
pub(crate) async fn advance(
    pool: &PgPool,
    advances: &[ScheduleAdvance],
    term: Option<Term>,
) -> Result<(Vec<bool>, Vec<WorkTask>), StoreError> {
    let mut tx = pool.begin().await?;
    if let Some(term) = term {
        leader::check(&mut tx, term).await?;
    }
    // Rows are locked in id order, so two batches naming the same
    // schedules wait for each other rather than deadlock.
    let mut order: Vec<usize> = (0..advances.len()).collect();
    order.sort_by(|&a, &b| advances[a].schedule_id.cmp(&advances[b].schedule_id));
    let mut applied = vec![false; advances.len()];
    let mut fired = Vec::new();
    for index in order {
        let a = &advances[index];
        let changed = query::<Postgres>(
            "UPDATE schedules SET next_fire_at = $3, next_due_at = $4, queued_fire_at = $5, \
                 last_outcome = coalesce($6, last_outcome), \
                 last_fire_at = CASE WHEN $7 THEN $8 ELSE last_fire_at END, \
                 last_task_ids = CASE WHEN $7 THEN $9 ELSE last_task_ids END, \
                 last_task_id = CASE WHEN $7 THEN $10 ELSE last_task_id END, \
                 revision = revision + 1 \
             WHERE id = $1 AND enabled AND revision = $2",
        )
        .bind(&a.schedule_id)
        .bind(row::bigint(a.revision))
        .bind(a.next_fire_at)
        .bind(a.next_due_at)
        .bind(a.queued_fire_at)
        .bind(a.last_outcome.map(FireOutcome::as_str))
        .bind(a.last_fire_at.is_some())
        .bind(a.last_fire_at)
        .bind(to_json(&a.last_task_ids)?)
        .bind(a.last_task_ids.first().copied())
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 1 {
            applied[index] = true;
            if !a.tasks.is_empty() {
                tasks::submit_in(&mut tx, &a.tasks).await?;
                fired.extend(a.tasks.iter().cloned());
            }
        }
    }
    tx.commit().await?;
    Ok((applied, fired))
}

/// `None` when there is no such pipeline.
pub(crate) async fn get_checkpoints(
    pool: &PgPool,
    pipeline_id: &str,
) -> Result<Option<Checkpoints>, StoreError> {
    let found = query::<Postgres>(
        "SELECT c.checkpoint_values, c.updated_at FROM pipelines AS p \
         LEFT JOIN pipeline_checkpoints AS c ON c.pipeline_id = p.id WHERE p.id = $1",
    )
    .bind(pipeline_id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = found else {
        return Ok(None);
    };
    let text: Option<String> = column(&r, 0)?;
    let values = match text {
        Some(text) => serde_json::from_str(&text).map_err(|e| corrupt("checkpoints", e))?,
        None => Map::new(),
    };
    Ok(Some(Checkpoints {
        pipeline_id: pipeline_id.to_string(),
        values,
        updated_at: column(&r, 1)?,
    }))
}

/// Replaces or merges a pipeline's checkpoints under a row lock, so
/// concurrent merges each see the other's keys.
pub(crate) async fn put_checkpoints(
    pool: &PgPool,
    pipeline_id: &str,
    values: Map<String, Value>,
    replace: bool,
    at: DateTime<Utc>,
) -> Result<Checkpoints, StoreError> {
    let mut tx = pool.begin().await?;
    let pipeline = query::<Postgres>("SELECT 1 FROM pipelines WHERE id = $1 FOR SHARE")
        .bind(pipeline_id)
        .fetch_optional(&mut *tx)
        .await?;
    if pipeline.is_none() {
        return Err(StoreError::Missing {
            kind: "pipeline",
            id: pipeline_id.to_string(),
        });
    }
    query::<Postgres>(
        "INSERT INTO pipeline_checkpoints (pipeline_id, checkpoint_values, updated_at) \
         VALUES ($1, '{}', $2) ON CONFLICT DO NOTHING",
    )
    .bind(pipeline_id)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let r = query::<Postgres>(
        "SELECT checkpoint_values FROM pipeline_checkpoints WHERE pipeline_id = $1 FOR UPDATE",
    )
    .bind(pipeline_id)
    .fetch_one(&mut *tx)
    .await?;
    let stored: Map<String, Value> = json(&r, 0, "checkpoints")?;
    let merged = crate::schedules::merge_checkpoints(stored, values, replace);
    let r = query::<Postgres>(
        "UPDATE pipeline_checkpoints SET checkpoint_values = $2, updated_at = $3 \
         WHERE pipeline_id = $1 RETURNING updated_at",
    )
    .bind(pipeline_id)
    .bind(to_json(&merged)?)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;
    let updated_at: DateTime<Utc> = column(&r, 0)?;
    tx.commit().await?;
    Ok(Checkpoints {
        pipeline_id: pipeline_id.to_string(),
        values: merged,
        updated_at: Some(updated_at),
    })
}

/// Remembers the delivery and submits its task in one transaction, unless
/// its signature reached the pipeline within the window (then nothing is
/// stored and the answer is false). A concurrent request with the same
/// signature waits on the first one's key and then finds it taken.
pub(crate) async fn submit_webhook(
    pool: &PgPool,
    delivery: &WebhookDelivery,
    task: &WorkTask,
) -> Result<bool, StoreError> {
    let window = chrono::TimeDelta::from_std(delivery.window).unwrap_or(chrono::TimeDelta::MAX);
    let cutoff = delivery.at.checked_sub_signed(window);
    let mut tx = pool.begin().await?;
    query::<Postgres>(
        "DELETE FROM webhook_deliveries WHERE pipeline_id = $1 \
         AND ($2::timestamptz IS NULL OR received_at < $2)",
    )
    .bind(&delivery.pipeline_id)
    .bind(cutoff)
    .execute(&mut *tx)
    .await?;
    let inserted = query::<Postgres>(
        "INSERT INTO webhook_deliveries (pipeline_id, signature, received_at) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&delivery.pipeline_id)
    .bind(&delivery.signature)
    .bind(delivery.at)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        // Rolled back: nothing of this request is stored.
        return Ok(false);
    }
    tasks::submit_in(&mut tx, std::slice::from_ref(task)).await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes a pipeline with its checkpoints and webhook deliveries, or
/// refuses while schedules fire it.
pub(crate) async fn delete_pipeline(pool: &PgPool, id: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let found = query::<Postgres>("SELECT 1 FROM pipelines WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if found.is_none() {
        return Err(StoreError::Missing {
            kind: "pipeline",
            id: id.to_string(),
        });
    }
    let firing = firing(&mut tx, id).await?;
    if !firing.is_empty() {
        return Err(crate::trigger::fired_by(id, &firing));
    }
    for sql in [
        "DELETE FROM pipelines WHERE id = $1",
        "DELETE FROM pipeline_checkpoints WHERE pipeline_id = $1",
        "DELETE FROM webhook_deliveries WHERE pipeline_id = $1",
    ] {
        query::<Postgres>(sql).bind(id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn firing(conn: &mut PgConnection, pipeline_id: &str) -> Result<Vec<String>, StoreError> {
    let rows =
        query::<Postgres>("SELECT id FROM schedules WHERE pipeline_ids::jsonb ? $1 ORDER BY id")
            .bind(pipeline_id)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter().map(|r| column(r, 0)).collect()
}
