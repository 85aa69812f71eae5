//! What the store keeps for schedules, webhooks and pipeline checkpoints.

use chrono::{DateTime, Utc};
use mimir_core::{FireOutcome, Schedule, WorkTask};
use serde_json::{Map, Value};
use std::time::Duration;
use uuid::Uuid;

/// Which schedules to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleFilter {
    /// Only this project's.
    pub project_id: Option<String>,
    /// Only those firing this pipeline.
    pub pipeline_id: Option<String>,
}

/// A schedule the scheduler must look at now.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSchedule {
    /// The schedule, as stored (its `revision` is what an advance expects).
    pub schedule: Schedule,
    /// Whether a task of its last fire is still waiting or running
    /// (queued, scheduled, spawned or executing).
    pub previous_running: bool,
}

/// One decision of the scheduler about one schedule, applied only when the
/// schedule is still at `revision` and enabled: its new times, what became
/// of the slots decided, and the tasks fired, stored in the same
/// transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleAdvance {
    /// The schedule.
    pub schedule_id: String,
    /// The revision the decision was made from.
    pub revision: u64,
    /// New `next_fire_at`.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// New `next_due_at`.
    pub next_due_at: Option<DateTime<Utc>>,
    /// New `queued_fire_at`.
    pub queued_fire_at: Option<DateTime<Utc>>,
    /// New `last_outcome`; `None` keeps the stored one.
    pub last_outcome: Option<FireOutcome>,
    /// The slot of the latest fire among `tasks` (new `last_fire_at`);
    /// `None` when nothing fired (the stored one is kept).
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The tasks of that latest fire (new `last_task_ids`, and
    /// `last_task_id` the first); ignored when `last_fire_at` is `None`.
    pub last_task_ids: Vec<Uuid>,
    /// Every task fired (all slots, all pipelines), submitted as
    /// [`crate::Store::submit`] would.
    pub tasks: Vec<WorkTask>,
}

/// A pipeline's checkpoints: small JSON values its runs load and save
/// (the last id or timestamp loaded, for incremental loads).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoints {
    /// The pipeline.
    pub pipeline_id: String,
    /// Key → value.
    pub values: Map<String, Value>,
    /// When they last changed; `None` when never saved.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A signed webhook request, remembered for the replay window so the same
/// signed body is not accepted twice.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// The pipeline called.
    pub pipeline_id: String,
    /// The request's signature (lower-case hex of the HMAC).
    pub signature: String,
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// How long a signature is remembered.
    pub window: Duration,
}

/// `values` merged over `stored` (or replacing them, when `replace`); a
/// key set to null is removed.
pub(crate) fn merge_checkpoints(
    stored: Map<String, Value>,
    values: Map<String, Value>,
    replace: bool,
) -> Map<String, Value> {
    let mut merged = if replace { Map::new() } else { stored };
    for (key, value) in values {
        if value.is_null() {
            merged.remove(&key);
        } else {
            merged.insert(key, value);
        }
    }
    merged
}
