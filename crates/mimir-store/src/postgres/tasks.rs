//! Storing new tasks and reading tasks back: one task, its attempts, pages
//! of the list, the most urgent and where one stands in the queue.

use super::row::{self, TASK_COLUMN_COUNT, TASK_COLUMNS, column};
use crate::{ListPage, ListQuery, StoreError};
use chrono::{DateTime, Utc};
use mimir_core::{Attempt, AttemptEnd, Priority, WorkTask, WorkTaskStatus, WorkTaskType};
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgPool, Postgres};
use std::sync::LazyLock;
use uuid::Uuid;

/// Stores new queued tasks with one INSERT over arrays, and wakes the
/// other processes' leases in the same statement.
pub(crate) async fn submit(pool: &PgPool, tasks: &[WorkTask]) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    submit_in(&mut conn, tasks).await
}

/// [`submit`] on `conn` (inside its transaction, when it has one: the
/// other processes then hear of the tasks when it commits).
pub(crate) async fn submit_in(
    conn: &mut PgConnection,
    tasks: &[WorkTask],
) -> Result<(), StoreError> {
    let n = tasks.len();
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut projects = Vec::with_capacity(n);
    let mut submitted = Vec::with_capacity(n);
    let mut retry_counts = Vec::with_capacity(n);
    let mut max_retries = Vec::with_capacity(n);
    let mut specs = Vec::with_capacity(n);
    let mut resources = Vec::with_capacity(n);
    let mut data_access = Vec::with_capacity(n);
    let mut traceparents = Vec::with_capacity(n);
    for task in tasks {
        debug_assert_eq!(task.status, WorkTaskStatus::Queued);
        ids.push(task.worktask_id);
        types.push(task.task_type.as_str());
        statuses.push(task.status.as_str());
        priorities.push(i16::from(task.priority.get()));
        projects.push(task.project_id.as_str());
        submitted.push(task.submitted_at);
        retry_counts.push(row::int(task.retry_count));
        max_retries.push(row::int(task.max_retries));
        specs.push(row::to_json(&task.task_spec)?);
        resources.push(row::to_json(&task.resource_requirements)?);
        data_access.push(row::to_json(&task.data_access)?);
        traceparents.push(task.traceparent.as_str());
    }
    query::<Postgres>(
        "WITH inserted AS ( \
             INSERT INTO worktasks (seq, id, type, status, priority, project_id, submitted_at, \
                 queue_seq, queued_at, retry_count, max_retries, task_spec, resource_requirements, \
                 data_access, traceparent) \
             SELECT nextval('worktasks_seq'), id, type, status, priority, project_id, submitted_at, \
                 nextval('worktasks_queue_seq'), submitted_at, retry_count, max_retries, task_spec, \
                 resource_requirements, data_access, traceparent \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::text[], \
                 $6::timestamptz[], $7::int4[], $8::int4[], $9::text[], $10::text[], $11::text[], \
                 $12::text[]) WITH ORDINALITY \
                 AS t (id, type, status, priority, project_id, submitted_at, retry_count, \
                       max_retries, task_spec, resource_requirements, data_access, traceparent, position) \
             ORDER BY position \
         ) \
         SELECT pg_notify('mimir_queue', '')",
    )
    .bind(ids)
    .bind(types)
    .bind(statuses)
    .bind(priorities)
    .bind(projects)
    .bind(submitted)
    .bind(retry_counts)
    .bind(max_retries)
    .bind(specs)
    .bind(resources)
    .bind(data_access)
    .bind(traceparents)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(pool: &PgPool, id: Uuid) -> Result<Option<WorkTask>, StoreError> {
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, id).await
}

/// One task, read on `conn` (inside its transaction, when it has one).
pub(crate) async fn get_in(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<WorkTask>, StoreError> {
    let found = query::<Postgres>(&format!(
        "SELECT {TASK_COLUMNS} FROM worktasks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    found.as_ref().map(row::task).transpose()
}

/// The ended attempts of task `id`, oldest first: those in the row's
/// history, and the completing one rebuilt from the row itself.
pub(crate) async fn attempts(pool: &PgPool, id: Uuid) -> Result<Option<Vec<Attempt>>, StoreError> {
    let found = query::<Postgres>(
        "SELECT attempts::text, status, attempt, worker_id, started_at, completed_at \
         FROM worktasks WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = found else {
        return Ok(None);
    };
    let text: String = column(&r, 0)?;
    let mut attempts: Vec<Attempt> = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("attempts of task {id}: {e}")))?;
    let status: String = column(&r, 1)?;
    let completed_at: Option<DateTime<Utc>> = column(&r, 5)?;
    if status == WorkTaskStatus::Completed.as_str()
        && let Some(ended_at) = completed_at
    {
        attempts.push(Attempt {
            attempt: row::count(column(&r, 2)?)?,
            worker_id: column(&r, 3)?,
            started_at: column(&r, 4)?,
            ended_at,
            outcome: AttemptEnd::Completed,
            error: String::new(),
            error_class: None,
        });
    }
    Ok(Some(attempts))
}

/// A page of tasks, newest first; `seq` is the cursor.
pub(crate) async fn list(pool: &PgPool, q: &ListQuery) -> Result<ListPage, StoreError> {
    let mut sql = format!("SELECT {TASK_COLUMNS}, seq FROM worktasks WHERE true");
    let mut n = 0;
    let mut param = |sql: &mut String, clause: &str| {
        n += 1;
        sql.push_str(&clause.replace('?', &format!("${n}")));
    };
    let statuses: Option<Vec<&str>> = q
        .status
        .map(|filter| filter.statuses().map(WorkTaskStatus::as_str).collect());
    if statuses.is_some() {
        param(&mut sql, " AND status = ANY(?)");
    }
    if q.task_type.is_some() {
        param(&mut sql, " AND type = ?");
    }
    if q.project_id.is_some() {
        param(&mut sql, " AND project_id = ?");
    }
    if q.min_priority.is_some() {
        param(&mut sql, " AND priority >= ?");
    }
    if q.max_priority.is_some() {
        param(&mut sql, " AND priority <= ?");
    }
    if q.submitted_from.is_some() {
        param(&mut sql, " AND submitted_at >= ?");
    }
    if q.submitted_until.is_some() {
        param(&mut sql, " AND submitted_at < ?");
    }
    if q.after.is_some() {
        param(&mut sql, " AND seq < ?");
    }
    param(&mut sql, " ORDER BY seq DESC LIMIT ?");
    let limit = q.limit.clamp(1, crate::MAX_LIST_LIMIT);
    let mut select = query::<Postgres>(&sql);
    if let Some(statuses) = statuses {
        select = select.bind(statuses);
    }
    if let Some(t) = q.task_type {
        select = select.bind(t.as_str());
    }
    if let Some(project) = &q.project_id {
        select = select.bind(project.as_str());
    }
    if let Some(min) = q.min_priority {
        select = select.bind(i16::from(min.get()));
    }
    if let Some(max) = q.max_priority {
        select = select.bind(i16::from(max.get()));
    }
    if let Some(from) = q.submitted_from {
        select = select.bind(within_postgres(from));
    }
    if let Some(until) = q.submitted_until {
        select = select.bind(within_postgres(until));
    }
    if let Some(after) = q.after {
        select = select.bind(row::bigint(after));
    }
    let rows = select.bind(limit as i64 + 1).fetch_all(pool).await?;
    let mut tasks = Vec::with_capacity(limit);
    let mut last_seq = None;
    let mut more = false;
    for r in &rows {
        if tasks.len() == limit {
            more = true;
            break;
        }
        tasks.push(row::task(r)?);
        last_seq = Some(column::<i64>(r, TASK_COLUMN_COUNT)?);
    }
    Ok(ListPage {
        tasks,
        next: if more {
            last_seq.map(|s| s.max(0) as u64)
        } else {
            None
        },
    })
}

/// Up to `limit` queued tasks of priority `min` or more, most urgent first
/// (priority, then queue position), those in backoff included: the first
/// `limit` of each type's queue, merged.
pub(crate) async fn most_urgent(
    pool: &PgPool,
    min: Priority,
    limit: usize,
) -> Result<Vec<WorkTask>, StoreError> {
    static MOST_URGENT: LazyLock<String> = LazyLock::new(|| {
        let lanes: Vec<String> = WorkTaskType::ALL
            .iter()
            .map(|t| {
                format!(
                    "(SELECT {TASK_COLUMNS}, queue_seq FROM worktasks \
                      WHERE status = 'queued' AND type = '{}' AND priority >= $1 \
                      ORDER BY priority DESC, queue_seq LIMIT $2)",
                    t.as_str()
                )
            })
            .collect();
        format!(
            "SELECT * FROM ({}) AS lanes ORDER BY priority DESC, queue_seq LIMIT $2",
            lanes.join(" UNION ALL ")
        )
    });
    let rows = query::<Postgres>(&MOST_URGENT)
        .bind(i16::from(min.get()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    rows.iter().map(row::task).collect()
}

/// Where a queued task stands: eligible tasks of a higher priority, and of
/// its own priority ahead of it, any type. `None` when it is not queued or
/// has been retried (it waits out, or waited out, a backoff).
pub(crate) async fn queue_position(
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<mimir_core::explain::QueuePosition>, StoreError> {
    let found = query::<Postgres>(
        "SELECT (SELECT count(*) FROM worktasks o WHERE o.status = 'queued' \
                    AND o.priority > t.priority \
                    AND (o.not_before IS NULL OR o.not_before <= now())), \
                (SELECT count(*) FROM worktasks o WHERE o.status = 'queued' \
                    AND o.priority = t.priority AND o.queue_seq < t.queue_seq \
                    AND (o.not_before IS NULL OR o.not_before <= now())) \
         FROM worktasks t WHERE t.id = $1 AND t.status = 'queued' AND t.not_before IS NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = found else {
        return Ok(None);
    };
    Ok(Some(mimir_core::explain::QueuePosition {
        ahead_higher: usize::try_from(column::<i64>(&r, 0)?).unwrap_or(0),
        ahead_same: usize::try_from(column::<i64>(&r, 1)?).unwrap_or(0),
    }))
}

/// When the earliest task in retry backoff becomes eligible. A backoff that
/// ended over a second ago no longer counts: its task is simply eligible,
/// and a waiter must not wake for it again and again.
pub(crate) async fn next_eligible_at(pool: &PgPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    let r = query::<Postgres>(
        "SELECT min(not_before) FROM worktasks \
         WHERE status = 'queued' AND not_before IS NOT NULL \
           AND not_before > now() - interval '1 second'",
    )
    .fetch_one(pool)
    .await?;
    column(&r, 0)
}

/// `at` moved into PostgreSQL's timestamp range (4713 BC to 294276 AD),
/// which is narrower than chrono's: a filter bound beyond it, which the API
/// accepts, then means "no bound" instead of a database error. No task is
/// stored outside the range.
fn within_postgres(at: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    let earliest = chrono::Utc
        .with_ymd_and_hms(-4000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(at);
    let latest = chrono::Utc
        .with_ymd_and_hms(290_000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(at);
    at.clamp(earliest, latest)
}
