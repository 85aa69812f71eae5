//! Leases as rows: the holder is `worker_id` of a running task, its expiry
//! `lease_expires_at`, both on the database's clock, so every process sees
//! the same leases.

use super::outcome::{self, Failure};
use super::row::{self, CONTROL_COLUMNS, Control, RUNNING, column};
use super::{Events, leader};
use crate::{Renewal, StoreError, Term};
use chrono::{DateTime, Utc};
use mimir_core::{ErrorClass, RetryPolicy, TaskEventKind, lifecycle};
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_postgres::{PgPool, Postgres};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Most expired leases one transaction ends.
const EXPIRE_BATCH: i64 = 500;

/// Renews the leases `worker_id` holds in one statement; answers those it
/// no longer holds and those cancelled since.
pub(crate) async fn renew(
    pool: &PgPool,
    worker_id: &str,
    held: &[(Uuid, u32)],
    lease_ttl_us: i64,
) -> Result<Renewal, StoreError> {
    let (ids, attempts) = super::queue::split(held);
    let rows = query::<Postgres>(&format!(
        "WITH held AS (SELECT * FROM UNNEST($1::uuid[], $2::int4[]) AS h (id, attempt)), \
         locked AS ( \
             SELECT w.id FROM worktasks w JOIN held ON w.id = held.id AND w.attempt = held.attempt \
             WHERE w.worker_id = $3 AND w.status IN {RUNNING} ORDER BY w.id FOR UPDATE), \
         renewed AS ( \
             UPDATE worktasks w SET lease_expires_at = now() + $4 * interval '1 microsecond' \
             FROM locked WHERE w.id = locked.id \
             RETURNING w.id) \
         SELECT id, true FROM renewed \
         UNION ALL \
         SELECT w.id, false FROM worktasks w JOIN held ON w.id = held.id AND w.attempt = held.attempt \
         WHERE w.status = 'cancelled' AND w.worker_id = $3"
    ))
    .bind(ids)
    .bind(attempts)
    .bind(worker_id)
    .bind(lease_ttl_us)
    .fetch_all(pool)
    .await?;
    let mut renewed = HashSet::with_capacity(rows.len());
    let mut cancelled = HashSet::new();
    for r in &rows {
        let id: Uuid = column(r, 0)?;
        if column::<bool>(r, 1)? {
            renewed.insert(id);
        } else {
            cancelled.insert(id);
        }
    }
    let mut renewal = Renewal::default();
    for (id, _) in held {
        if !renewed.contains(id) {
            renewal.lost.push(*id);
        }
        if cancelled.contains(id) {
            renewal.cancelled.push(*id);
        }
    }
    Ok(renewal)
}

/// Lets every lease of `worker_id` expire now.
pub(crate) async fn forfeit(pool: &PgPool, worker_id: &str) -> Result<(), StoreError> {
    query::<Postgres>(&format!(
        "UPDATE worktasks SET lease_expires_at = now() WHERE worker_id = $1 AND status IN {RUNNING}"
    ))
    .bind(worker_id)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn holds(
    pool: &PgPool,
    worker_id: &str,
    id: Uuid,
    attempt: u32,
) -> Result<bool, StoreError> {
    let held: Option<i32> = query_scalar::<Postgres, i32>(&format!(
        "SELECT 1 FROM worktasks WHERE id = $1 AND attempt = $2 AND worker_id = $3 \
         AND status IN {RUNNING}"
    ))
    .bind(id)
    .bind(row::int(attempt))
    .bind(worker_id)
    .fetch_optional(pool)
    .await?;
    Ok(held.is_some())
}

pub(crate) async fn by_worker(pool: &PgPool) -> Result<HashMap<String, Vec<Uuid>>, StoreError> {
    let rows = query::<Postgres>(&format!(
        "SELECT worker_id, id FROM worktasks WHERE status IN {RUNNING}"
    ))
    .fetch_all(pool)
    .await?;
    let mut by_worker: HashMap<String, Vec<Uuid>> = HashMap::new();
    for r in &rows {
        by_worker
            .entry(column(r, 0)?)
            .or_default()
            .push(column(r, 1)?);
    }
    Ok(by_worker)
}

/// Ends every attempt whose lease expired, in batches, each batch in a
/// transaction that checks `term` first; returns how many ended. The events
/// of committed batches are in `events` even when a later batch fails.
pub(crate) async fn expire(
    pool: &PgPool,
    retry: &RetryPolicy,
    at: DateTime<Utc>,
    term: Term,
    events: &mut Events,
) -> Result<usize, StoreError> {
    let mut expired = 0;
    loop {
        let mut batch = Events(events.0.as_ref().map(|_| Vec::new()));
        let mut tx = pool.begin().await?;
        leader::check(&mut tx, term).await?;
        let rows = query::<Postgres>(&format!(
            "SELECT {CONTROL_COLUMNS} FROM worktasks \
             WHERE status IN {RUNNING} AND lease_expires_at <= now() \
             ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED"
        ))
        .bind(EXPIRE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let control = Control::from_row(r)?;
            let Some(plan) = lifecycle::expiry(
                control.current(),
                control.attempt,
                retry,
                at,
                rand::random(),
            ) else {
                continue;
            };
            tracing::warn!(
                worktask_id = %control.id,
                worker_id = control.worker_id,
                attempt = control.attempt,
                "lease expired"
            );
            batch.push(control.id, control.task_type, at, || {
                TaskEventKind::LeaseExpired {
                    worker_id: control.worker_id.clone(),
                    attempt: control.attempt,
                }
            });
            let failure = Failure {
                reason: format!("worker {} lost: its lease expired", control.worker_id),
                result: None,
                stored_result: None,
                started_at: None,
                // A lost worker may do better elsewhere.
                class: Some(ErrorClass::Transient),
            };
            outcome::attempt_failed(&mut tx, &control, failure, plan, at, &mut batch).await?;
            expired += 1;
        }
        tx.commit().await?;
        if let (Some(all), Some(batch)) = (&mut events.0, batch.0) {
            all.extend(batch);
        }
        if (rows.len() as i64) < EXPIRE_BATCH {
            return Ok(expired);
        }
    }
}
