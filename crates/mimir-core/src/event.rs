//! Lifecycle events of work tasks.
//!
//! A store publishes one event per committed change of a task, after the commit,
//! so that logs and metrics record exactly what is durable: a refused or
//! rolled-back command produces no event.

use crate::{Priority, WorkTaskStatus, WorkTaskType};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Something that happened to a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// The task.
    pub id: Uuid,
    /// Its type.
    pub task_type: WorkTaskType,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: TaskEventKind,
}

/// What happened to a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEventKind {
    /// Stored and queued.
    Submitted {
        /// Its priority.
        priority: Priority,
    },
    /// A worker took it off the queue.
    Leased {
        /// The worker.
        worker_id: String,
        /// The attempt this lease starts (1 for the first).
        attempt: u32,
        /// Since when it waited to run: submission, or the end of the backoff
        /// of a retried attempt.
        waiting_since: DateTime<Utc>,
        /// When it was submitted.
        submitted_at: DateTime<Utc>,
        /// The pipeline it runs, if any.
        pipeline_id: String,
        /// The submission's W3C trace context, if any.
        traceparent: String,
    },
    /// The worker started running it.
    Started {
        /// The worker.
        worker_id: String,
        /// The attempt.
        attempt: u32,
    },
    /// An unstarted lease was handed back; the task waits in its old place.
    Released {
        /// The worker.
        worker_id: String,
    },
    /// The worker holding it stopped renewing its lease.
    LeaseExpired {
        /// The worker.
        worker_id: String,
        /// The attempt that was lost.
        attempt: u32,
    },
    /// An attempt failed and the task went back to the queue.
    Retried {
        /// The worker of the failed attempt.
        worker_id: String,
        /// The failed attempt.
        attempt: u32,
        /// Retries used, this one included.
        retry_count: u32,
        /// Retries allowed.
        max_retries: u32,
        /// Why the attempt failed.
        reason: String,
        /// When the failed attempt started, if it did.
        started_at: Option<DateTime<Utc>>,
        /// The earliest time it runs again.
        not_before: DateTime<Utc>,
        /// The structured result the worker reported for the attempt, if any.
        result: Option<serde_json::Value>,
    },
    /// The last attempt succeeded.
    Completed {
        /// The worker.
        worker_id: String,
        /// The attempt.
        attempt: u32,
        /// When the attempt started, if known.
        started_at: Option<DateTime<Utc>>,
        /// The structured result the worker reported (a pipeline's steps).
        result: Option<serde_json::Value>,
    },
    /// The task ended unsuccessfully (`failed` or `timeout`), retries exhausted.
    Failed {
        /// The worker of the last attempt.
        worker_id: String,
        /// The last attempt.
        attempt: u32,
        /// `failed` or `timeout`.
        status: WorkTaskStatus,
        /// Why.
        reason: String,
        /// Retries it used.
        retry_count: u32,
        /// When the last attempt started, if it did.
        started_at: Option<DateTime<Utc>>,
        /// The structured result the worker reported, if any.
        result: Option<serde_json::Value>,
    },
    /// Cancelled by a user.
    Cancelled {
        /// The status it was cancelled from.
        from: WorkTaskStatus,
    },
}

impl TaskEventKind {
    /// A short name for logs: `submitted`, `leased`, ...
    pub fn name(&self) -> &'static str {
        match self {
            TaskEventKind::Submitted { .. } => "submitted",
            TaskEventKind::Leased { .. } => "leased",
            TaskEventKind::Started { .. } => "started",
            TaskEventKind::Released { .. } => "released",
            TaskEventKind::LeaseExpired { .. } => "lease_expired",
            TaskEventKind::Retried { .. } => "retried",
            TaskEventKind::Completed { .. } => "completed",
            TaskEventKind::Failed { .. } => "failed",
            TaskEventKind::Cancelled { .. } => "cancelled",
        }
    }
}
