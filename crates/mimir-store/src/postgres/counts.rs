//! Task counts from the counters the triggers of migration 0002 keep:
//! totals plus the deltas not yet folded into them, so no summary scans the
//! tasks however many wait.

use super::row::column;
use super::schema::LOCK_COMPACT;
use crate::{StoreError, TaskCounts};
use mimir_core::{Priority, WorkTaskStatus, WorkTaskType};
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_postgres::{PgPool, Postgres};
use std::sync::atomic::{AtomicBool, Ordering};

/// Deltas beyond which a reader folds them into the totals.
const COMPACT_AFTER: i64 = 4096;

/// Every counter row, totals and deltas alike.
const ALL_COUNTERS: &str = "(SELECT type, status, priority, n, 0 AS delta FROM task_count_totals \
     UNION ALL SELECT type, status, priority, n, 1 AS delta FROM task_count_deltas) AS c";

pub(crate) async fn counts(pool: &PgPool) -> Result<TaskCounts, StoreError> {
    let rows = query::<Postgres>(&format!(
        "SELECT type, status, sum(n)::int8, sum(delta)::int8 FROM {ALL_COUNTERS} GROUP BY type, status"
    ))
    .fetch_all(pool)
    .await?;
    let mut counts = TaskCounts::default();
    let mut deltas = 0;
    for r in &rows {
        let t: String = column(r, 0)?;
        let s: String = column(r, 1)?;
        let n: i64 = column(r, 2)?;
        deltas += column::<i64>(r, 3)?;
        let (Ok(t), Ok(s)) = (t.parse::<WorkTaskType>(), s.parse::<WorkTaskStatus>()) else {
            return Err(StoreError::Corrupt(format!(
                "unknown type {t:?} or status {s:?} counted"
            )));
        };
        counts.add(t, s, u64::try_from(n).unwrap_or(0));
    }
    compact_when_many(pool, deltas);
    Ok(counts)
}

/// Queued and scheduled tasks: what "waiting" means.
pub(crate) async fn queue_length(pool: &PgPool) -> Result<usize, StoreError> {
    let r = query::<Postgres>(&format!(
        "SELECT coalesce(sum(n) FILTER (WHERE status IN ('queued', 'scheduled')), 0)::int8, \
                coalesce(sum(delta), 0)::int8 FROM {ALL_COUNTERS}"
    ))
    .fetch_one(pool)
    .await?;
    compact_when_many(pool, column(&r, 1)?);
    Ok(usize::try_from(column::<i64>(&r, 0)?).unwrap_or(0))
}

/// Queued tasks (in backoff too) of priority `min` or more.
pub(crate) async fn waiting_at_least(pool: &PgPool, min: Priority) -> Result<usize, StoreError> {
    let r = query::<Postgres>(&format!(
        "SELECT coalesce(sum(n) FILTER (WHERE status = 'queued' AND priority >= $1), 0)::int8, \
                coalesce(sum(delta), 0)::int8 FROM {ALL_COUNTERS}"
    ))
    .bind(i16::from(min.get()))
    .fetch_one(pool)
    .await?;
    compact_when_many(pool, column(&r, 1)?);
    Ok(usize::try_from(column::<i64>(&r, 0)?).unwrap_or(0))
}

/// Starts folding the deltas into the totals, off the caller's path, when
/// a reader summed more than [`COMPACT_AFTER`] of them.
fn compact_when_many(pool: &PgPool, deltas: i64) {
    // One compaction at a time from this process; the advisory lock keeps
    // other processes' compactions from overlapping it.
    static COMPACTING: AtomicBool = AtomicBool::new(false);
    if deltas <= COMPACT_AFTER || COMPACTING.swap(true, Ordering::AcqRel) {
        return;
    }
    let pool = pool.clone();
    tokio::spawn(async move {
        if let Err(error) = compact(&pool).await {
            tracing::warn!(%error, "cannot fold the task count deltas");
        }
        COMPACTING.store(false, Ordering::Release);
    });
}

/// Folds the deltas into the totals when there are many.
pub(crate) async fn compact_if_due(pool: &PgPool) -> Result<(), StoreError> {
    let deltas: i64 = query_scalar::<Postgres, i64>(
        "SELECT count(*) FROM (SELECT 1 FROM task_count_deltas LIMIT $1) AS d",
    )
    .bind(COMPACT_AFTER + 1)
    .fetch_one(pool)
    .await?;
    if deltas > COMPACT_AFTER {
        compact(pool).await?;
    }
    Ok(())
}

/// Folds every delta into the totals in one statement; skipped while
/// another process compacts.
async fn compact(pool: &PgPool) -> Result<(), StoreError> {
    query::<Postgres>(
        "WITH lock AS (SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema())) AS got), \
         moved AS (DELETE FROM task_count_deltas WHERE (SELECT got FROM lock) \
                   RETURNING type, status, priority, n) \
         INSERT INTO task_count_totals AS t (type, status, priority, n) \
         SELECT type, status, priority, sum(n) FROM moved GROUP BY type, status, priority \
         ON CONFLICT (type, status, priority) DO UPDATE SET n = t.n + excluded.n",
    )
    .bind(LOCK_COMPACT)
    .execute(pool)
    .await?;
    Ok(())
}
