//! Taking tasks off the queue and handing leases around: lease, start,
//! release and place.
//!
//! A lease locks candidate rows with `FOR UPDATE SKIP LOCKED`, so
//! concurrent leases, in this process or another, never take the same row,
//! and orders them with [`QueueIndex`] itself, so the order is the one the
//! in-memory queue of the SQLite backend keeps, aging included.

use super::row::{self, CONTROL_COLUMNS, Control, TASK_COLUMNS, column};
use super::schema::LOCK_LIMITS;
use super::{Events, leader, notify};
use crate::{LeaseRequest, Placement, StoreError, Term};
use chrono::{DateTime, Utc};
use mimir_core::{
    Aging, InvalidTransition, PerType, Priority, QueueEntry, QueueIndex, TaskEventKind, WorkTask,
    WorkTaskStatus, WorkTaskType,
};
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgPool, Postgres};
use std::collections::HashMap;
use uuid::Uuid;

/// Candidates of each lane, without aging: a type's queue in order.
const CANDIDATES_BY_TYPE: &str = "SELECT c.id, c.type, c.priority, c.queue_seq, c.queued_at, c.not_before \
     FROM UNNEST($1::text[], $2::int8[]) AS l (type, cap) \
     CROSS JOIN LATERAL ( \
         SELECT id, type, priority, queue_seq, queued_at, not_before FROM worktasks w \
         WHERE w.status = 'queued' AND w.type = l.type \
           AND (w.not_before IS NULL OR w.not_before <= $3) \
         ORDER BY w.priority DESC, w.queue_seq LIMIT l.cap \
         FOR UPDATE SKIP LOCKED) AS c";

/// Candidates of each lane, with aging: a (type, priority) level in order,
/// since an older task of a lower level may now come first.
const CANDIDATES_BY_LEVEL: &str = "SELECT c.id, c.type, c.priority, c.queue_seq, c.queued_at, c.not_before \
     FROM UNNEST($1::text[], $2::int8[]) AS l (type, cap) \
     CROSS JOIN generate_series(1, 10) AS p (priority) \
     CROSS JOIN LATERAL ( \
         SELECT id, type, priority, queue_seq, queued_at, not_before FROM worktasks w \
         WHERE w.status = 'queued' AND w.type = l.type AND w.priority = p.priority \
           AND (w.not_before IS NULL OR w.not_before <= $3) \
         ORDER BY w.queue_seq LIMIT l.cap \
         FOR UPDATE SKIP LOCKED) AS c";

/// A locked candidate: its queue entry and when its backoff ended.
struct Candidate {
    entry: QueueEntry,
    not_before: Option<DateTime<Utc>>,
}

/// Hands up to `max` eligible tasks to a worker, most urgent first.
pub(crate) async fn lease(
    pool: &PgPool,
    request: &LeaseRequest,
    aging: Option<Aging>,
    lease_ttl_us: i64,
    events: &mut Events,
) -> Result<Vec<WorkTask>, StoreError> {
    let mut tx = pool.begin().await?;
    let leased = match request.only {
        Some(id) => lease_one(&mut tx, request, id, lease_ttl_us, events).await?,
        None => lease_queue(&mut tx, request, aging, lease_ttl_us, events).await?,
    };
    tx.commit().await?;
    Ok(leased)
}

/// One named task (a one-task worker): only if it is waiting, or already
/// placed with this very worker (a Kubernetes Job's worker taking up the
/// attempt it was created for).
async fn lease_one(
    conn: &mut PgConnection,
    request: &LeaseRequest,
    id: Uuid,
    lease_ttl_us: i64,
    events: &mut Events,
) -> Result<Vec<WorkTask>, StoreError> {
    let found = query::<Postgres>(&format!(
        "SELECT {CONTROL_COLUMNS}, priority, queue_seq, queued_at, not_before \
         FROM worktasks WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let r = found.ok_or(StoreError::NotFound(id))?;
    let control = Control::from_row(&r)?;
    if control.status == WorkTaskStatus::Scheduled && control.worker_id == request.worker_id {
        return Ok(super::tasks::get_in(conn, id).await?.into_iter().collect());
    }
    if control.status != WorkTaskStatus::Queued {
        let source = InvalidTransition {
            from: control.status,
            to: WorkTaskStatus::Scheduled,
        };
        return Err(StoreError::Transition { id, source });
    }
    let queued_at: DateTime<Utc> = column(&r, 10)?;
    let candidate = Candidate {
        entry: QueueEntry {
            id,
            task_type: control.task_type,
            priority: row::priority(column(&r, 8)?)?,
            seq: u64::try_from(column::<i64>(&r, 9)?).unwrap_or(0),
            enqueued_at_us: queued_at.timestamp_micros(),
            not_before_us: None,
        },
        not_before: column(&r, 11)?,
    };
    take(conn, request, vec![candidate], lease_ttl_us, events).await
}

async fn lease_queue(
    conn: &mut PgConnection,
    request: &LeaseRequest,
    aging: Option<Aging>,
    lease_ttl_us: i64,
    events: &mut Events,
) -> Result<Vec<WorkTask>, StoreError> {
    let mut running = PerType::<usize>::default();
    if !request.limits.is_empty() {
        // Leases with limits take turns, across processes: each counts what
        // runs only once the one before it committed.
        query::<Postgres>("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
            .bind(LOCK_LIMITS)
            .execute(&mut *conn)
            .await?;
        let rows = query::<Postgres>(&format!(
            "SELECT type, count(*) FROM worktasks WHERE status IN {} GROUP BY type",
            row::RUNNING
        ))
        .fetch_all(&mut *conn)
        .await?;
        for r in &rows {
            let t: String = column(r, 0)?;
            let t: WorkTaskType = t.parse().map_err(StoreError::Corrupt)?;
            running[t] = usize::try_from(column::<i64>(r, 1)?).unwrap_or(usize::MAX);
        }
    }
    let accepted = |t: WorkTaskType| {
        request
            .types
            .as_ref()
            .is_none_or(|types| types.contains(&t))
    };
    let mut lane_types = Vec::new();
    let mut lane_caps = Vec::new();
    for t in WorkTaskType::ALL {
        if !accepted(t) {
            continue;
        }
        let room = match request.limits.get(&t) {
            Some(limit) => limit.saturating_sub(running[t]),
            None => usize::MAX,
        };
        let cap = room.min(request.max);
        if cap > 0 {
            lane_types.push(t.as_str());
            lane_caps.push(i64::try_from(cap).unwrap_or(i64::MAX));
        }
    }
    if lane_types.is_empty() {
        return Ok(Vec::new());
    }
    let sql = if aging.is_some() {
        CANDIDATES_BY_LEVEL
    } else {
        CANDIDATES_BY_TYPE
    };
    let rows = query::<Postgres>(sql)
        .bind(lane_types)
        .bind(lane_caps)
        .bind(request.at)
        .fetch_all(&mut *conn)
        .await?;
    let mut queue = QueueIndex::new(aging);
    let mut backoff = HashMap::new();
    for r in &rows {
        let id: Uuid = column(r, 0)?;
        let t: String = column(r, 1)?;
        let queued_at: DateTime<Utc> = column(r, 4)?;
        let not_before: Option<DateTime<Utc>> = column(r, 5)?;
        if let Some(not_before) = not_before {
            backoff.insert(id, not_before);
        }
        queue.insert(QueueEntry {
            id,
            task_type: t.parse().map_err(StoreError::Corrupt)?,
            priority: row::priority(column(r, 2)?)?,
            seq: u64::try_from(column::<i64>(r, 3)?).unwrap_or(0),
            enqueued_at_us: queued_at.timestamp_micros(),
            // Eligible already: the query kept only those.
            not_before_us: None,
        });
    }
    let now_us = request.at.timestamp_micros();
    let mut taken = Vec::new();
    while taken.len() < request.max {
        let accept = |t: WorkTaskType| {
            accepted(t)
                && request
                    .limits
                    .get(&t)
                    .is_none_or(|limit| running[t] < *limit)
        };
        let Some(entry) = queue.pop(now_us, accept) else {
            break;
        };
        running[entry.task_type] += 1;
        taken.push(Candidate {
            not_before: backoff.get(&entry.id).copied(),
            entry,
        });
    }
    take(conn, request, taken, lease_ttl_us, events).await
}

/// Leases the chosen rows (locked by the caller) to the worker, in order.
async fn take(
    conn: &mut PgConnection,
    request: &LeaseRequest,
    taken: Vec<Candidate>,
    lease_ttl_us: i64,
    events: &mut Events,
) -> Result<Vec<WorkTask>, StoreError> {
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = taken.iter().map(|c| c.entry.id).collect();
    let rows = query::<Postgres>(&format!(
        "UPDATE worktasks SET status = 'scheduled', attempt = attempt + 1, worker_id = $2, \
             not_before = NULL, started_at = NULL, \
             lease_expires_at = now() + $3 * interval '1 microsecond' \
         WHERE id = ANY($1) AND status = 'queued' RETURNING {TASK_COLUMNS}"
    ))
    .bind(&ids)
    .bind(&request.worker_id)
    .bind(lease_ttl_us)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id = HashMap::with_capacity(rows.len());
    for r in &rows {
        let task = row::task(r)?;
        by_id.insert(task.worktask_id, task);
    }
    let mut leased = Vec::with_capacity(taken.len());
    for candidate in taken {
        let entry = candidate.entry;
        let Some(task) = by_id.remove(&entry.id) else {
            debug_assert!(false, "locked queued task {} was not leased", entry.id);
            continue;
        };
        events.push(entry.id, entry.task_type, request.at, || {
            let eligible_us = entry.enqueued_at_us.max(
                candidate
                    .not_before
                    .map(|t| t.timestamp_micros())
                    .unwrap_or(0),
            );
            TaskEventKind::Leased {
                worker_id: request.worker_id.clone(),
                attempt: task.attempt,
                waiting_since: DateTime::from_timestamp_micros(eligible_us)
                    .unwrap_or(task.submitted_at),
                submitted_at: task.submitted_at,
                pipeline_id: task.task_spec.pipeline_id.clone(),
                traceparent: task.traceparent.clone(),
            }
        });
        leased.push(task);
    }
    Ok(leased)
}

/// Records that leased attempts began running.
pub(crate) async fn start(
    pool: &PgPool,
    worker_id: &str,
    started: &[(Uuid, u32)],
    at: DateTime<Utc>,
    events: &mut Events,
) -> Result<(), StoreError> {
    let (ids, attempts) = split(started);
    let rows = query::<Postgres>(
        "UPDATE worktasks w SET status = 'executing', started_at = $4 \
         FROM UNNEST($1::uuid[], $2::int4[]) AS s (id, attempt) \
         WHERE w.id = s.id AND w.attempt = s.attempt AND w.worker_id = $3 \
           AND w.status = 'scheduled' \
         RETURNING w.id, w.type, w.attempt",
    )
    .bind(ids)
    .bind(attempts)
    .bind(worker_id)
    .bind(at)
    .fetch_all(pool)
    .await?;
    for r in &rows {
        let t: String = column(r, 1)?;
        let attempt = row::count(column(r, 2)?)?;
        events.push(
            column(r, 0)?,
            t.parse().map_err(StoreError::Corrupt)?,
            at,
            || TaskEventKind::Started {
                worker_id: worker_id.to_string(),
                attempt,
            },
        );
    }
    Ok(())
}

/// Gives back leased attempts that never started, keeping their queue
/// place (their `queue_seq`); returns how many.
pub(crate) async fn release(
    pool: &PgPool,
    worker_id: &str,
    tasks: &[(Uuid, u32)],
    events: &mut Events,
) -> Result<usize, StoreError> {
    let (ids, attempts) = split(tasks);
    let mut tx = pool.begin().await?;
    let rows = query::<Postgres>(
        "UPDATE worktasks w SET status = 'queued', worker_id = '', lease_expires_at = NULL \
         FROM UNNEST($1::uuid[], $2::int4[]) AS r (id, attempt) \
         WHERE w.id = r.id AND w.attempt = r.attempt AND w.worker_id = $3 \
           AND w.status = 'scheduled' \
         RETURNING w.id, w.type",
    )
    .bind(ids)
    .bind(attempts)
    .bind(worker_id)
    .fetch_all(&mut *tx)
    .await?;
    if !rows.is_empty() {
        query::<Postgres>(notify::NOTIFY).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let now = Utc::now();
    for r in &rows {
        let t: String = column(r, 1)?;
        events.push(
            column(r, 0)?,
            t.parse().map_err(StoreError::Corrupt)?,
            now,
            || TaskEventKind::Released {
                worker_id: worker_id.to_string(),
            },
        );
    }
    Ok(rows.len())
}

/// Hands the leases of scheduled attempts to the workers placed to run
/// them, each with a fresh expiry; a leader-only write.
pub(crate) async fn place(
    pool: &PgPool,
    placements: &[Placement],
    term: Term,
    lease_ttl_us: i64,
) -> Result<(), StoreError> {
    let mut placements: Vec<&Placement> = placements.iter().collect();
    placements.sort_unstable_by_key(|p| p.id);
    let mut tx = pool.begin().await?;
    leader::check(&mut tx, term).await?;
    let ids: Vec<Uuid> = placements.iter().map(|p| p.id).collect();
    let attempts: Vec<i32> = placements.iter().map(|p| row::int(p.attempt)).collect();
    let workers: Vec<&str> = placements.iter().map(|p| p.worker_id.as_str()).collect();
    let clusters: Vec<&str> = placements.iter().map(|p| p.cluster_name.as_str()).collect();
    let jobs: Vec<&str> = placements
        .iter()
        .map(|p| p.kubernetes_job_name.as_str())
        .collect();
    query::<Postgres>(
        "UPDATE worktasks w SET worker_id = p.worker_id, cluster_name = p.cluster_name, \
             kubernetes_job_name = p.job, \
             lease_expires_at = now() + $6 * interval '1 microsecond' \
         FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::text[]) \
             AS p (id, attempt, worker_id, cluster_name, job) \
         WHERE w.id = p.id AND w.attempt = p.attempt AND w.status = 'scheduled'",
    )
    .bind(ids)
    .bind(attempts)
    .bind(workers)
    .bind(clusters)
    .bind(jobs)
    .bind(lease_ttl_us)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// (task, attempt) pairs as the two arrays the SQL unnests, in id order, so
/// statements over overlapping tasks lock rows in one order.
pub(crate) fn split(pairs: &[(Uuid, u32)]) -> (Vec<Uuid>, Vec<i32>) {
    let mut sorted: Vec<(Uuid, i32)> = pairs.iter().map(|&(id, a)| (id, row::int(a))).collect();
    sorted.sort_unstable();
    sorted.into_iter().unzip()
}

// CANDIDATES_BY_LEVEL walks priorities 1 to 10.
const _: () = assert!(Priority::LEVELS == 10);
