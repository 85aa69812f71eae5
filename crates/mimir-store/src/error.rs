//! Store errors.

use mimir_core::InvalidTransition;
use std::path::PathBuf;
use uuid::Uuid;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No task has this id.
    #[error("work task {0} not found")]
    NotFound(Uuid),
    /// No project, pipeline or storage config has this id.
    #[error("{kind} {id} not found")]
    Missing {
        /// `project`, `pipeline` or `storage config`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A project, pipeline or storage config with this id exists already.
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        /// `project`, `pipeline` or `storage config`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// A change the thing's state does not allow (a model already training).
    #[error("{reason}")]
    Refused {
        /// `model`.
        kind: &'static str,
        /// The id.
        id: String,
        /// Why, in a sentence naming the thing.
        reason: String,
    },
    /// The task's status does not allow the change.
    #[error("work task {id}: {source}")]
    Transition {
        /// The task.
        id: Uuid,
        /// The refused change.
        source: InvalidTransition,
    },
    /// A result for an attempt that is no longer the task's current one (its
    /// lease was lost and the task moved on).
    #[error(
        "work task {id}: attempt {attempt} is not the current attempt ({current}); its lease was lost"
    )]
    StaleAttempt {
        /// The task.
        id: Uuid,
        /// The attempt the result was for.
        attempt: u32,
        /// The task's current attempt.
        current: u32,
    },
    /// The database cannot be reached (connection refused or lost, no
    /// connection free in time); nothing was stored, and a retry may succeed.
    #[error("the metadata store cannot be reached: {0}")]
    Unavailable(String),
    /// A leader-only write from a process whose leadership term ended.
    #[error("this process no longer leads (term {term}): another one took over")]
    Deposed {
        /// The term the write carried.
        term: u64,
    },
    /// A result for an attempt another worker holds.
    #[error("work task {id}: worker {worker_id:?} does not hold its lease")]
    NotLeaseHolder {
        /// The task.
        id: Uuid,
        /// The worker that claimed it.
        worker_id: String,
    },
    /// The store could not be opened (path, permissions, corrupt file).
    #[error("cannot open the store at {}: {reason}", path.display())]
    Open {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A query failed.
    #[error("store query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No connection could be had.
    #[error("store connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The transaction holding this write could not commit; nothing was stored.
    #[error("the store could not commit: {0}")]
    CommitFailed(String),
    /// The disk holding the store is full (or the database reached its size
    /// limit): nothing of this write was stored. Writes succeed again by
    /// themselves once space is freed.
    #[error("no space left for the store: {0}")]
    StorageFull(String),
    /// The writer stopped (shutdown or a fatal error).
    #[error("the store writer has stopped")]
    WriterGone,
    /// A stored row could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// PostgreSQL could not be reached or answered an error (never names
    /// the password of the connection URL).
    #[error("postgres: {0}")]
    Postgres(String),
}

impl From<sqlx_core::Error> for StoreError {
    /// Connection failures (refused, lost, none free in time, the server
    /// shutting down) are [`StoreError::Unavailable`]: nothing was stored and
    /// a retry may succeed. A full disk is [`StoreError::StorageFull`].
    fn from(error: sqlx_core::Error) -> StoreError {
        use sqlx_core::Error;
        match &error {
            Error::Io(_)
            | Error::Tls(_)
            | Error::Protocol(_)
            | Error::PoolTimedOut
            | Error::PoolClosed
            | Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
            Error::Database(db) => match db.code().as_deref() {
                Some("53100") => StoreError::StorageFull(db.message().to_string()),
                // 08: connection exception; 57P01-03: the server shuts
                // down or starts; 53300: too many connections; 40001 and
                // 40P01: a serialization failure or deadlock rolled the
                // transaction back. Nothing was stored; a retry may succeed.
                Some(code)
                    if code.starts_with("08")
                        || matches!(
                            code,
                            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                        ) =>
                {
                    StoreError::Unavailable(error.to_string())
                }
                _ => StoreError::Postgres(error.to_string()),
            },
            _ => StoreError::Postgres(error.to_string()),
        }
    }
}

impl StoreError {
    /// The error of a write whose transaction failed: [`StoreError::StorageFull`]
    /// when SQLite ran out of space (`SQLITE_FULL`, which its file layer also
    /// answers for `ENOSPC` and short writes), else [`StoreError::CommitFailed`].
    pub(crate) fn commit_failed(error: &rusqlite::Error) -> StoreError {
        if is_disk_full(error) {
            StoreError::StorageFull(error.to_string())
        } else {
            StoreError::CommitFailed(error.to_string())
        }
    }

    /// A report of task `id` the state machine refused
    /// ([`mimir_core::lifecycle::report`]); `worker_id` is who reported.
    pub fn refused_report(
        id: Uuid,
        worker_id: Option<&str>,
        refusal: mimir_core::lifecycle::Refusal,
    ) -> StoreError {
        use mimir_core::lifecycle::Refusal;
        match refusal {
            Refusal::Transition(source) => StoreError::Transition { id, source },
            Refusal::NotLeaseHolder => StoreError::NotLeaseHolder {
                id,
                worker_id: worker_id.unwrap_or_default().to_string(),
            },
            Refusal::StaleAttempt { attempt, current } => StoreError::StaleAttempt {
                id,
                attempt,
                current,
            },
        }
    }

    /// True when the store failed for want of space, however it surfaced.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::StorageFull(_) => true,
            StoreError::Sqlite(error) => is_disk_full(error),
            _ => false,
        }
    }

    /// True when the backend failed (I/O, database, corrupt data), false for
    /// a refusal that is a normal answer (not found, wrong status, stale
    /// attempt, taken id).
    pub fn is_backend_failure(&self) -> bool {
        !matches!(
            self,
            StoreError::NotFound(_)
                | StoreError::Missing { .. }
                | StoreError::AlreadyExists { .. }
                | StoreError::Refused { .. }
                | StoreError::Transition { .. }
                | StoreError::StaleAttempt { .. }
                | StoreError::NotLeaseHolder { .. }
                | StoreError::Deposed { .. }
        )
    }
}

/// Whether SQLite answered `SQLITE_FULL`.
pub(crate) fn is_disk_full(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_change_is_an_answer_not_a_backend_failure() {
        let refused = StoreError::Refused {
            kind: "pipeline",
            id: "p".into(),
            reason: "pipeline p is fired by schedule(s) s".into(),
        };
        assert!(!refused.is_backend_failure());
        assert!(StoreError::Corrupt("x".into()).is_backend_failure());
    }
}
