//! What a worker and its executor processes say to each other: one JSON
//! object a line, a [`Job`] down the executor's stdin, [`Event`]s up its
//! stdout.

use mimir_core::{StorageConfig, StorageOperationEvent};
use mimir_pipeline::{ErrorClass, Step, StepRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One attempt to run. The worker sends its definition's steps and the
/// task's parameters without copying them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job<'a> {
    /// The task, for logs and the steps' run context.
    pub worktask_id: String,
    /// The pipeline.
    pub pipeline_id: String,
    /// 0 on the first attempt (the task's `retry_count`).
    pub attempt: u32,
    /// The trace context the steps continue, if traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The steps.
    pub steps: Cow<'a, [Step]>,
    /// The execution's parameters.
    pub parameters: Cow<'a, Map<String, Value>>,
    /// Timeout of the steps that set none (the pipeline's `step_timeout_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_ms: Option<u64>,
    /// Time left for the whole attempt (the task's `timeout_ms`), in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_ms: Option<u64>,
    /// The task's project: its storage configs are the ones steps may use.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project_id: String,
    /// The project's storage configs, their references already resolved
    /// (the executor opens them as they are). Only sent when a step uses
    /// storage; `Debug` shows no credential (see `ConnectionSettings`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_configs: Vec<StorageConfig>,
    /// The project's configs the worker could not resolve, and why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_unavailable: BTreeMap<String, String>,
    /// The pipeline's stored checkpoints (key → value), for
    /// `checkpoint.*` steps. Only sent when a step uses them: `None` gives
    /// the run no checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<Map<String, Value>>,
}

/// What an executor reports about the job it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A step with a deadline started; it must end within `deadline_ms`.
    /// Steps without one are not announced: the supervisor has nothing to arm.
    Started {
        /// The step's name.
        step: String,
        /// Milliseconds from now until its deadline.
        deadline_ms: u64,
    },
    /// A step's record.
    Done(StepRecord),
    /// The job ended; every step's record came before.
    Finished(Outcome),
}

/// How a job ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// The completed steps' context entries.
    pub context: Map<String, Value>,
    /// The run's error, when a step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether retrying can help, when a step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// A step ran past its deadline.
    #[serde(default)]
    pub timed_out: bool,
    /// The storage operations the job ran, for metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_operations: Vec<StorageOperationEvent>,
    /// The checkpoints the job saved, when it succeeded.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub checkpoints: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checkpoints_travel_only_when_the_job_has_them() {
        let mut job: Job<'static> = serde_json::from_value(json!({
            "worktask_id": "t", "pipeline_id": "p", "attempt": 0,
            "steps": [], "parameters": {}
        }))
        .expect("a job without checkpoints");
        assert_eq!(job.checkpoints, None);
        assert!(
            serde_json::to_value(&job)
                .expect("json")
                .get("checkpoints")
                .is_none()
        );
        job.checkpoints = json!({"last_id": 7}).as_object().cloned();
        let back: Job<'static> =
            serde_json::from_value(serde_json::to_value(&job).expect("json")).expect("a job");
        assert_eq!(back.checkpoints, job.checkpoints);

        let outcome: Outcome = serde_json::from_value(json!({"context": {}})).expect("outcome");
        assert!(outcome.checkpoints.is_empty());
        assert!(
            serde_json::to_value(&outcome)
                .expect("json")
                .get("checkpoints")
                .is_none()
        );
    }
}
