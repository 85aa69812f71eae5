//! Connection settings, numbered migrations and loading the projection.

use super::row;
use super::writer::{CONTROL_COLUMNS, Control};
use crate::TaskCounts;
use crate::live::{Change, Live};
use mimir_core::{QueueIndex, WorkTaskStatus, WorkTaskType};
use rusqlite::Connection;
use std::time::Duration;

/// Migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_worktasks",
        include_str!("../../migrations/sqlite/0001_worktasks.sql"),
    ),
    (
        "0002_leases_and_pipelines",
        include_str!("../../migrations/sqlite/0002_leases_and_pipelines.sql"),
    ),
    (
        "0003_traceparent",
        include_str!("../../migrations/sqlite/0003_traceparent.sql"),
    ),
    (
        "0004_attempts",
        include_str!("../../migrations/sqlite/0004_attempts.sql"),
    ),
    (
        "0005_step_timeout",
        include_str!("../../migrations/sqlite/0005_step_timeout.sql"),
    ),
    (
        "0006_storage_configs",
        include_str!("../../migrations/sqlite/0006_storage_configs.sql"),
    ),
    (
        "0007_ml_models",
        include_str!("../../migrations/sqlite/0007_ml_models.sql"),
    ),
    (
        "0008_schedules",
        include_str!("../../migrations/sqlite/0008_schedules.sql"),
    ),
];

/// Settings of the write connection.
pub(crate) fn prepare_writer(conn: &Connection, durable: bool) -> rusqlite::Result<()> {
    // journal_mode answers a row, so it is read rather than executed.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "cannot enable WAL (journal_mode is {mode})"
        )));
    }
    let synchronous = if durable { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous};
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -32000;
         PRAGMA temp_store = MEMORY;"
    ))
}

/// Settings of each read connection.
pub(crate) fn prepare_reader(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -8000;")
}

/// Applies the migrations not yet applied, each in its own transaction.
/// Answers a query and checks every migration is applied (the file was not
/// replaced by an older one under a running store).
pub(crate) fn check_current(conn: &Connection) -> Result<(), crate::StoreError> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if applied != MIGRATIONS.len() {
        return Err(crate::StoreError::Corrupt(format!(
            "schema at migration {applied}, this build needs {}",
            MIGRATIONS.len()
        )));
    }
    Ok(())
}

pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if applied > MIGRATIONS.len() {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the database has schema version {applied}, newer than this binary knows ({}); \
             upgrade mimir-aip or use another data directory",
            MIGRATIONS.len()
        )));
    }
    for (number, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", number + 1)?;
        tx.commit()?;
        tracing::info!(migration = name, "store migrated");
    }
    Ok(())
}

/// Rebuilds the queue and counts from disk; returns them and the next free seq.
pub(crate) fn load_live(
    conn: &Connection,
    mut queue: QueueIndex,
    lease_ttl: Duration,
) -> rusqlite::Result<(Live, u64)> {
    let mut counts = TaskCounts::default();
    let mut by_status =
        conn.prepare("SELECT type, status, count(*) FROM worktasks GROUP BY type, status")?;
    let mut rows = by_status.query([])?;
    while let Some(r) = rows.next()? {
        let (t, s, n): (String, String, u64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let (Ok(t), Ok(s)) = (t.parse::<WorkTaskType>(), s.parse::<WorkTaskStatus>()) else {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "unknown type {t:?} or status {s:?} stored"
            )));
        };
        counts.add(t, s, n);
    }
    let mut queued = conn.prepare(&format!(
        "SELECT {} FROM worktasks WHERE status = 'queued'",
        row::QUEUE_COLUMNS
    ))?;
    let mut rows = queued.query([])?;
    while let Some(r) = rows.next()? {
        queue.insert(row::queue_entry_from_row(r)?);
    }
    let next_seq: u64 = conn.query_row(
        "SELECT max(coalesce(max(seq), 0), coalesce(max(queue_seq), 0)) + 1 FROM worktasks",
        [],
        |r| r.get(0),
    )?;
    let mut live = Live::new(queue, counts, lease_ttl);
    // Running tasks get a fresh lease: live workers reconnect and keep them.
    let mut running = conn.prepare(&format!(
        "SELECT {}, {} FROM worktasks WHERE status IN ('scheduled', 'spawned', 'executing')",
        row::QUEUE_COLUMNS,
        CONTROL_COLUMNS
    ))?;
    let mut rows = running.query([])?;
    while let Some(r) = rows.next()? {
        let control = Control::from_row(r)?;
        live.apply(Change::Leased {
            id: control.entry.id,
            worker_id: control.worker_id,
            attempt: control.attempt,
        });
    }
    Ok((live, next_seq))
}
