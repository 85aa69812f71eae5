//! What a worker reports when an attempt ends (`POST /api/worktasks/{id}`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How an attempt ended, as a worker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The work is done.
    Completed,
    /// The attempt failed; the retry rules decide what follows.
    Failed,
    /// The attempt ran past its deadline; retried like a failure, and the task
    /// ends `timeout` when no retries are left.
    Timeout,
}

/// The `WorkTaskResult` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkTaskResult {
    /// The task; when present it must match the path.
    #[serde(default)]
    pub worktask_id: Option<Uuid>,
    /// `completed`, `failed` or `timeout`.
    pub status: AttemptOutcome,
    /// Where the output was written.
    #[serde(default)]
    pub output_location: String,
    /// Anything the worker wants to record.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Why the attempt failed.
    #[serde(default)]
    pub error_message: String,
    /// The attempt (lease) this result is for. Required: a result for any
    /// attempt but the current one is refused.
    #[serde(default)]
    pub attempt: Option<u32>,
    /// The worker reporting, which must hold the attempt's lease. Required on
    /// `POST /api/worktasks/{id}`; the batch route takes it from its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// When the attempt started running on the worker.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// Structured result (a pipeline's steps and context).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<serde_json::Value>,
    /// Whether retrying a failed attempt can help; a `permanent` failure ends
    /// the task at once. Absent means `transient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<crate::ErrorClass>,
    /// The storage connector operations the attempt ran, so the orchestrator
    /// counts them in its metrics (`mimir_storage_*`) like its own:
    /// `{operation, backend, seconds, records, failed, count}` each. The
    /// document shows them as objects: the nested schema took schemathesis's
    /// case generator past Python's recursion limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub storage_operations: Vec<crate::StorageOperationEvent>,
}

impl WorkTaskResult {
    /// The JSON stored as the task's `result`: the structured result with
    /// `output_location` and `metadata` added when given.
    pub fn stored_result(&self) -> serde_json::Value {
        let mut value = match &self.result {
            Some(serde_json::Value::Object(map)) => serde_json::Value::Object(map.clone()),
            Some(other) => serde_json::json!({ "value": other }),
            None => serde_json::json!({}),
        };
        if !self.output_location.is_empty() {
            value["output_location"] = self.output_location.clone().into();
        }
        if !self.metadata.is_null() {
            value["metadata"] = self.metadata.clone();
        }
        value
    }
}
