//! Ending attempts and tasks: results, cancels and the writes of a failed
//! attempt (shared with lease expiry). Each reads the task's state under a
//! row lock, asks [`lifecycle`] what to do, and writes what the plan says; a
//! refusal writes nothing.

use super::row::{self, CONTROL_COLUMNS, Control, TASK_COLUMNS};
use super::{Events, notify};
use crate::StoreError;
use chrono::{DateTime, Utc};
use mimir_core::lifecycle::{self, Plan};
use mimir_core::{
    AttemptEnd, ErrorClass, RetryPolicy, TaskEventKind, WorkTask, WorkTaskResult, WorkTaskStatus,
};
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgPool, Postgres};
use std::collections::HashMap;
use uuid::Uuid;

/// Why an attempt failed, and what it reported.
pub(crate) struct Failure {
    pub(crate) reason: String,
    pub(crate) result: Option<serde_json::Value>,
    /// The result as stored (`WorkTaskResult::stored_result`), when one came.
    pub(crate) stored_result: Option<String>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// Recorded with the attempt (the plan already decided on it).
    pub(crate) class: Option<ErrorClass>,
}

/// The task's state, its row locked until the transaction ends.
pub(crate) async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Control>, StoreError> {
    let found = query::<Postgres>(&format!(
        "SELECT {CONTROL_COLUMNS} FROM worktasks WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    found.as_ref().map(Control::from_row).transpose()
}

/// Records the end of a task's current attempt; the task as stored after,
/// and whether it went back to the queue.
pub(crate) async fn finish(
    pool: &PgPool,
    retry: &RetryPolicy,
    id: Uuid,
    worker_id: Option<&str>,
    report: WorkTaskResult,
    at: DateTime<Utc>,
    events: &mut Events,
) -> Result<(WorkTask, bool), StoreError> {
    let mut tx = pool.begin().await?;
    let control = lock(&mut tx, id).await?.ok_or(StoreError::NotFound(id))?;
    let (status, written) = decide_and_write(
        &mut tx, retry, &control, worker_id, report, at, events, None,
    )
    .await?;
    let task = match written {
        Some(task) => task,
        None => super::tasks::get_in(&mut tx, id)
            .await?
            .ok_or(StoreError::NotFound(id))?,
    };
    tx.commit().await?;
    Ok((task, status == WorkTaskStatus::Queued))
}

/// Records many attempt ends of one worker in one transaction; each report
/// is accepted or refused on its own.
pub(crate) async fn finish_many(
    pool: &PgPool,
    retry: &RetryPolicy,
    worker_id: &str,
    reports: Vec<WorkTaskResult>,
    at: DateTime<Utc>,
    events: &mut Events,
) -> Result<Vec<Result<WorkTaskStatus, StoreError>>, StoreError> {
    let mut tx = pool.begin().await?;
    // Every row locked by one statement, in id order, so two batches over
    // the same tasks cannot deadlock.
    let mut ids: Vec<Uuid> = reports.iter().filter_map(|r| r.worktask_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = query::<Postgres>(&format!(
        "SELECT {CONTROL_COLUMNS} FROM worktasks WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    ))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut controls = HashMap::with_capacity(rows.len());
    for r in &rows {
        let control = Control::from_row(r)?;
        controls.insert(control.id, control);
    }
    let mut statuses = Vec::with_capacity(reports.len());
    let mut written = std::collections::HashSet::new();
    // Completions, the common case, are written together by one statement.
    let mut completions = Vec::new();
    for report in reports {
        let Some(id) = report.worktask_id else {
            statuses.push(Err(StoreError::Corrupt(
                "a result without worktask_id".into(),
            )));
            continue;
        };
        if written.contains(&id) {
            complete(&mut tx, &mut completions, at).await?;
        }
        if written.contains(&id)
            && let Some(again) = lock(&mut tx, id).await?
        {
            // A second report of the task in this batch sees the first.
            controls.insert(id, again);
        }
        let Some(control) = controls.get(&id) else {
            statuses.push(Err(StoreError::NotFound(id)));
            continue;
        };
        let decided = decide_and_write(
            &mut tx,
            retry,
            control,
            Some(worker_id),
            report,
            at,
            events,
            Some(&mut completions),
        )
        .await;
        match decided {
            Ok((status, _)) => {
                written.insert(id);
                statuses.push(Ok(status));
            }
            Err(error) if error.is_backend_failure() => return Err(error),
            Err(refused) => statuses.push(Err(refused)),
        }
    }
    complete(&mut tx, &mut completions, at).await?;
    tx.commit().await?;
    Ok(statuses)
}

/// A completed attempt whose write waits for [`complete`].
struct Completion {
    id: Uuid,
    started_at: Option<DateTime<Utc>>,
    result: String,
}

/// Writes the waiting completions, all ended at `at`, in one statement.
async fn complete(
    conn: &mut PgConnection,
    completions: &mut Vec<Completion>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if completions.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(completions.len());
    let mut started = Vec::with_capacity(completions.len());
    let mut results = Vec::with_capacity(completions.len());
    for c in completions.drain(..) {
        ids.push(c.id);
        started.push(c.started_at);
        results.push(c.result);
    }
    query::<Postgres>(
        "UPDATE worktasks w SET status = 'completed', completed_at = $1, \
             started_at = coalesce(c.started_at, w.started_at, $1), result = c.result, \
             error_message = '', lease_expires_at = NULL \
         FROM UNNEST($2::uuid[], $3::timestamptz[], $4::text[]) AS c (id, started_at, result) \
         WHERE w.id = c.id",
    )
    .bind(at)
    .bind(ids)
    .bind(started)
    .bind(results)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Decides a report with [`lifecycle::report`] and writes its plan (a
/// completion into `completions` when given, for the caller to write); a
/// refusal is returned before anything is written.
#[allow(clippy::too_many_arguments)]
async fn decide_and_write(
    conn: &mut PgConnection,
    retry: &RetryPolicy,
    control: &Control,
    worker_id: Option<&str>,
    report: WorkTaskResult,
    at: DateTime<Utc>,
    events: &mut Events,
    completions: Option<&mut Vec<Completion>>,
) -> Result<(WorkTaskStatus, Option<WorkTask>), StoreError> {
    let id = control.id;
    let reported = lifecycle::Report {
        by: worker_id,
        attempt: report.attempt,
        outcome: report.status,
        class: report.error_class,
    };
    let plan = lifecycle::report(control.current(), reported, retry, at, rand::random())
        .map_err(|refusal| StoreError::refused_report(id, worker_id, refusal))?;
    if control.status == WorkTaskStatus::Scheduled {
        // A quick attempt reports its start with its end: both events count.
        let started = report.started_at.unwrap_or(at);
        events.push(id, control.task_type, started, || TaskEventKind::Started {
            worker_id: control.worker_id.clone(),
            attempt: control.attempt,
        });
    }
    if plan == Plan::Complete {
        // The completing attempt is not appended to `attempts`: the row
        // itself holds it (worker, start, end).
        let result = row::to_json(&report.stored_result())?;
        events.push(id, control.task_type, at, || TaskEventKind::Completed {
            worker_id: control.worker_id.clone(),
            attempt: control.attempt,
            started_at: report.started_at.or(control.started_at),
            result: report.result,
        });
        if let Some(completions) = completions {
            completions.push(Completion {
                id,
                started_at: report.started_at,
                result,
            });
            return Ok((WorkTaskStatus::Completed, None));
        }
        let updated = query::<Postgres>(&format!(
            "UPDATE worktasks SET status = 'completed', completed_at = $2, \
                 started_at = coalesce($3, started_at, $2), result = $4, error_message = '', \
                 lease_expires_at = NULL \
             WHERE id = $1 RETURNING {TASK_COLUMNS}"
        ))
        .bind(id)
        .bind(at)
        .bind(report.started_at)
        .bind(result)
        .fetch_one(&mut *conn)
        .await?;
        return Ok((WorkTaskStatus::Completed, Some(row::task(&updated)?)));
    }
    let stored_result = report
        .result
        .as_ref()
        .map(|_| row::to_json(&report.stored_result()))
        .transpose()?;
    let reason = if report.error_message.is_empty() {
        "the attempt failed without a message".to_string()
    } else {
        row::text(report.error_message)
    };
    let failure = Failure {
        reason,
        result: report.result,
        stored_result,
        started_at: report.started_at,
        class: report.error_class,
    };
    let (status, task) = attempt_failed(conn, control, failure, plan, at, events).await?;
    Ok((status, Some(task)))
}

/// An attempt ended badly: writes what the plan says (back to the queue
/// with backoff, notifying the other processes, or the task's end); the
/// task as written.
pub(crate) async fn attempt_failed(
    conn: &mut PgConnection,
    control: &Control,
    failure: Failure,
    plan: Plan,
    at: DateTime<Utc>,
    events: &mut Events,
) -> Result<(WorkTaskStatus, WorkTask), StoreError> {
    let id = control.id;
    let started_at = failure.started_at.or(control.started_at);
    match plan {
        Plan::Complete => Err(StoreError::Corrupt(
            "a completion planned as a failed attempt".into(),
        )),
        Plan::Retry {
            retry_count,
            not_before,
            end,
        } => {
            let ended =
                control.ended(started_at, at, end, failure.reason.clone(), failure.class)?;
            let updated = query::<Postgres>(&format!(
                "UPDATE worktasks SET status = 'queued', retry_count = $2, retry_reason = $3, \
                     error_message = $3, not_before = $4, \
                     queue_seq = nextval('worktasks_queue_seq'), queued_at = $5, \
                     attempts = attempts || jsonb_build_array($6::jsonb), lease_expires_at = NULL, \
                     started_at = coalesce($7, started_at), result = coalesce($8, result) \
                 WHERE id = $1 RETURNING {TASK_COLUMNS}, {}",
                notify::NOTIFY_CALL
            ))
            .bind(id)
            .bind(row::int(retry_count))
            .bind(&failure.reason)
            .bind(not_before)
            .bind(at)
            .bind(ended)
            .bind(failure.started_at)
            .bind(&failure.stored_result)
            .fetch_one(&mut *conn)
            .await?;
            events.push(id, control.task_type, at, || TaskEventKind::Retried {
                worker_id: control.worker_id.clone(),
                attempt: control.attempt,
                retry_count,
                max_retries: control.max_retries,
                reason: failure.reason,
                started_at,
                not_before,
                result: failure.result,
            });
            Ok((WorkTaskStatus::Queued, row::task(&updated)?))
        }
        Plan::End { status, end } => {
            let ended =
                control.ended(started_at, at, end, failure.reason.clone(), failure.class)?;
            let updated = query::<Postgres>(&format!(
                "UPDATE worktasks SET status = $2, completed_at = $3, error_message = $4, \
                     attempts = attempts || jsonb_build_array($5::jsonb), lease_expires_at = NULL, \
                     started_at = coalesce($6, started_at), result = coalesce($7, result) \
                 WHERE id = $1 RETURNING {TASK_COLUMNS}"
            ))
            .bind(id)
            .bind(status.as_str())
            .bind(at)
            .bind(&failure.reason)
            .bind(ended)
            .bind(failure.started_at)
            .bind(&failure.stored_result)
            .fetch_one(&mut *conn)
            .await?;
            events.push(id, control.task_type, at, || TaskEventKind::Failed {
                worker_id: control.worker_id.clone(),
                attempt: control.attempt,
                status,
                reason: failure.reason,
                retry_count: control.retry_count,
                started_at,
                result: failure.result,
            });
            Ok((status, row::task(&updated)?))
        }
    }
}

/// Cancels a task: a queued one leaves the queue, a running one's attempt
/// ends (its worker learns it at its next heartbeat).
pub(crate) async fn cancel(
    pool: &PgPool,
    id: Uuid,
    at: DateTime<Utc>,
    events: &mut Events,
) -> Result<WorkTask, StoreError> {
    let mut tx = pool.begin().await?;
    let control = lock(&mut tx, id).await?.ok_or(StoreError::NotFound(id))?;
    let plan = lifecycle::cancel(control.status)
        .map_err(|source| StoreError::Transition { id, source })?;
    // Cancelling a running task ends its attempt; a queued one has none.
    let ended = plan
        .ends_attempt
        .then(|| {
            control.ended(
                control.started_at,
                at,
                AttemptEnd::Cancelled,
                String::new(),
                None,
            )
        })
        .transpose()?;
    let updated = query::<Postgres>(&format!(
        "UPDATE worktasks SET status = 'cancelled', completed_at = $2, not_before = NULL, \
             lease_expires_at = NULL, \
             attempts = CASE WHEN $3::text IS NULL THEN attempts \
                             ELSE attempts || jsonb_build_array($3::jsonb) END \
         WHERE id = $1 RETURNING {TASK_COLUMNS}"
    ))
    .bind(id)
    .bind(at)
    .bind(ended)
    .fetch_one(&mut *tx)
    .await?;
    let task = row::task(&updated)?;
    tx.commit().await?;
    events.push(id, control.task_type, at, || TaskEventKind::Cancelled {
        from: control.status,
    });
    Ok(task)
}
