//! Why a task has not started: the answer of `GET /api/worktasks/{id}/explain`
//! and `mimir-aip task why`.
//!
//! Each reason is a stable snake_case code (users script against them and
//! dashboards count them), a sentence, and the figures behind it. The store
//! and the worker backend gather the facts; [`explain`] turns them into
//! reasons, so the wording and the rules live in one pure place.

use crate::{Priority, WorkTaskStatus, WorkTaskType};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// Tasks ahead of it in the queue (at its priority and above).
    QueuePosition,
    /// A failed attempt's backoff has not ended.
    RetryBackoff,
    /// Its type's concurrency limit (`orchestrator.typeConcurrency`) is reached.
    TypeConcurrencyLimit,
    /// No connected worker accepts its type and the backend starts none.
    NoWorkerForType,
    /// Every cluster (or the local pool) runs its `maxWorkers`.
    MaxWorkersReached,
    /// A cluster cannot be used now (API unreachable, Jobs failing to start).
    ClusterUnavailable,
    /// Its Job's pod waits for the scheduler (e.g. insufficient memory).
    PodPending,
    /// Its Job's pod cannot pull its image.
    ImagePullFailing,
    /// A worker holds it and has not started it yet.
    LeasedNotStarted,
    /// It runs (nothing keeps it waiting).
    Running,
    /// It has ended (nothing keeps it waiting).
    Finished,
}

/// One reason a task waits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reason {
    /// The stable code.
    pub code: ReasonCode,
    /// A sentence for people.
    pub message: String,
    /// The figures behind it (`tasks_ahead`, `until`, `limit`, `cluster`, ...).
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Reason {
    /// A reason with no figures.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Reason {
        Reason {
            code,
            message: message.into(),
            details: serde_json::Map::new(),
        }
    }

    /// Adds one figure.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Reason {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// Where a queued task stands in the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueuePosition {
    /// Eligible tasks of a higher priority, waiting.
    pub ahead_higher: usize,
    /// Eligible tasks of the same priority that arrived before it.
    pub ahead_same: usize,
}

/// The type concurrency limit as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeLimit {
    /// `orchestrator.typeConcurrency` for the type.
    pub limit: usize,
    /// Tasks of the type running now (leased or executing).
    pub running: usize,
    /// Some of them, to name.
    pub running_ids: Vec<uuid::Uuid>,
}

/// Everything [`explain`] needs to know about one task.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The task's status.
    pub status: WorkTaskStatus,
    /// Its type.
    pub task_type: WorkTaskType,
    /// Its priority.
    pub priority: Priority,
    /// Now.
    pub now: DateTime<Utc>,
    /// While in retry backoff: when it may run again.
    pub not_before: Option<DateTime<Utc>>,
    /// Its place, when queued.
    pub position: Option<QueuePosition>,
    /// The type's concurrency limit, when one is set.
    pub type_limit: Option<TypeLimit>,
    /// Whether any connected worker or the backend can run its type.
    pub worker_for_type: bool,
    /// Reasons the worker backend adds (clusters full, pod pending, image
    /// pulls failing, ...), already worded.
    pub backend: Vec<Reason>,
    /// The worker holding it, when leased.
    pub worker_id: String,
}

/// Every reason the task has not started, most telling first; a running or
/// finished task gets one reason saying so.
pub fn explain(facts: &Facts) -> Vec<Reason> {
    let _ = facts;
    todo!("explain")
}
