//! What a run produced: one record per step, the context, and the error.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// The action succeeded and its entry is in the context.
    Completed,
    /// The step failed; the run stopped here.
    Failed,
    /// The step did not run: an earlier step failed, or its `when` did not
    /// hold (the record's `error` then says so, e.g. `when was false`).
    Skipped,
}

impl StepStatus {
    /// The wire name: `completed`, `failed` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// One step's outcome, as it appears in a task's `result.steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub name: String,
    /// Its plugin.
    pub plugin: String,
    /// Its action.
    pub action: String,
    /// How it ended.
    pub status: StepStatus,
    /// Wall time from parameter resolution to the context update, in
    /// milliseconds (fractional); 0 for skipped steps.
    pub duration_ms: f64,
    /// Why it failed; for a step skipped by its `when`, why it was skipped
    /// (`when was false`); empty otherwise.
    pub error: String,
}

/// The outcome of a whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// One record per step, in pipeline order.
    pub steps: Vec<StepRecord>,
    /// Step name → context entry, for the steps that completed.
    pub context: Map<String, Value>,
    /// `step "NAME" (plugin.action) failed: reason` when a step failed.
    pub error: Option<String>,
    /// True when the run stopped because it was cancelled, so callers can tell
    /// a cancellation (not retried) from a failure.
    pub cancelled: bool,
    /// True when a step ran past its deadline: the attempt ends as `timeout`.
    pub timed_out: bool,
    /// Whether retrying the failed step can help; `None` when nothing failed.
    pub error_class: Option<mimir_core::ErrorClass>,
    /// The checkpoints the run saved (`checkpoint.save`), key → value, when
    /// it succeeded; empty otherwise. Storing them is the caller's job.
    pub checkpoints: Map<String, Value>,
}

impl Execution {
    /// True when every step completed.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// The task result: `{"steps": [...], "context": {...}}`, with
    /// `"checkpoints": {...}` when the run saved any.
    pub fn result_json(&self) -> Value {
        let mut result = json!({"steps": self.steps, "context": self.context});
        if !self.checkpoints.is_empty() {
            result["checkpoints"] = Value::Object(self.checkpoints.clone());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_json_has_the_documented_shape() {
        let mut context = Map::new();
        context.insert("a".into(), json!({"x": 1}));
        let execution = Execution {
            steps: vec![StepRecord {
                name: "a".into(),
                plugin: "core".into(),
                action: "log".into(),
                status: StepStatus::Completed,
                duration_ms: 1.5,
                error: String::new(),
            }],
            context,
            error: None,
            cancelled: false,
            timed_out: false,
            error_class: None,
            checkpoints: Map::new(),
        };
        assert!(execution.succeeded());
        assert_eq!(
            execution.result_json(),
            json!({
                "steps": [{"name": "a", "plugin": "core", "action": "log",
                           "status": "completed", "duration_ms": 1.5, "error": ""}],
                "context": {"a": {"x": 1}}
            })
        );
        let mut saved = execution;
        saved.checkpoints.insert("last_id".into(), json!(42));
        assert_eq!(saved.result_json()["checkpoints"], json!({"last_id": 42}));
    }

    #[test]
    fn statuses_use_their_wire_names() {
        for status in [
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                json!(status.as_str())
            );
        }
    }
}
