//! The work task: what users submit, what workers run, what the API returns.
//!
//! Field names follow the seed system's JSON so existing clients keep working.

use crate::{Priority, WorkTaskStatus};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The kinds of work Mimir AIP runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkTaskType {
    /// Runs a pipeline of plugin steps.
    PipelineExecution,
    /// Trains a model.
    MlTraining,
    /// Runs inference with a model.
    MlInference,
}

impl WorkTaskType {
    /// Every type, each once; `ALL[t.index()] == t`.
    pub const ALL: [WorkTaskType; 3] = [
        WorkTaskType::PipelineExecution,
        WorkTaskType::MlTraining,
        WorkTaskType::MlInference,
    ];

    /// How many types there are: the length of arrays indexed by type
    /// ([`PerType`](crate::PerType)).
    pub const COUNT: usize = WorkTaskType::ALL.len();

    /// This type's place in [`WorkTaskType::ALL`], below [`WorkTaskType::COUNT`].
    ///
    /// Decided when compiling: the match names every type, so a new type
    /// does not build until it has an arm, and each arm's `const` block fails
    /// to build when its type is missing from `ALL` (whose length is `COUNT`).
    /// An index can thus never fall outside an array of `COUNT`.
    pub const fn index(self) -> usize {
        match self {
            WorkTaskType::PipelineExecution => const { place(WorkTaskType::PipelineExecution) },
            WorkTaskType::MlTraining => const { place(WorkTaskType::MlTraining) },
            WorkTaskType::MlInference => const { place(WorkTaskType::MlInference) },
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkTaskType::PipelineExecution => "pipeline_execution",
            WorkTaskType::MlTraining => "ml_training",
            WorkTaskType::MlInference => "ml_inference",
        }
    }

    /// Retries a submission gets when it names none: training is expensive to
    /// repeat, so it gets fewer.
    pub fn default_max_retries(self) -> u32 {
        match self {
            WorkTaskType::MlTraining => 2,
            WorkTaskType::PipelineExecution | WorkTaskType::MlInference => 3,
        }
    }

    /// Resources a worker for this type requests when the submission names none
    /// (the seed's sizing guide).
    pub fn default_resources(self) -> ResourceRequirements {
        let (cpu, memory) = match self {
            WorkTaskType::PipelineExecution => ("500m", "1Gi"),
            WorkTaskType::MlTraining => ("4000m", "8Gi"),
            WorkTaskType::MlInference => ("1000m", "2Gi"),
        };
        ResourceRequirements {
            cpu: cpu.into(),
            memory: memory.into(),
            gpu: false,
        }
    }
}

/// Where `t` is in [`WorkTaskType::ALL`]; only called when compiling, where
/// the panic is a build error.
const fn place(t: WorkTaskType) -> usize {
    let mut i = 0;
    while i < WorkTaskType::COUNT {
        if WorkTaskType::ALL[i] as usize == t as usize {
            return i;
        }
        i += 1;
    }
    panic!("a work task type is missing from WorkTaskType::ALL");
}

// `ALL` holds no type twice, so the indices of the types are distinct.
const _: () = {
    let mut i = 0;
    while i < WorkTaskType::COUNT {
        assert!(
            place(WorkTaskType::ALL[i]) == i,
            "WorkTaskType::ALL lists a type twice"
        );
        i += 1;
    }
};

impl fmt::Display for WorkTaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkTaskType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkTaskType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown work task type {s:?}; expected one of {}",
                    WorkTaskType::ALL.map(WorkTaskType::as_str).join(", ")
                )
            })
    }
}

/// What to run: the pipeline or model and its parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TaskSpec {
    /// The pipeline a `pipeline_execution` runs.
    pub pipeline_id: String,
    /// The model an ML task trains or serves.
    pub model_id: String,
    /// The project, when it differs from the task's.
    pub project_id: String,
    /// Execution parameters (`$.params.*` in pipelines).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// A cluster the task should run on, if any.
    pub preferred_cluster: String,
    /// The longest one attempt may run, in milliseconds; an attempt still
    /// running then is stopped and ends as `timeout`. Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub timeout_ms: Option<u64>,
    /// The schedule that fired the task, if one did; its
    /// `parameters.scheduled_at` is then the slot fired.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub schedule_id: String,
}

/// CPU, memory and GPU a worker for the task requests (Kubernetes quantities).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ResourceRequirements {
    /// CPU quantity, e.g. `"500m"` or `"2"`.
    pub cpu: String,
    /// Memory quantity, e.g. `"1Gi"`.
    pub memory: String,
    /// Whether a GPU is needed.
    pub gpu: bool,
}

/// The data a task reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct DataAccess {
    /// Datasets the task reads.
    pub input_datasets: Vec<String>,
    /// Where the task writes its output.
    pub output_location: String,
    /// A reference to the credentials for the storage (never the secret itself).
    pub storage_credentials: String,
}

/// A work task as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkTask {
    /// Unique id (a UUID).
    pub worktask_id: Uuid,
    /// The kind of work.
    #[serde(rename = "type")]
    pub task_type: WorkTaskType,
    /// Current status.
    pub status: WorkTaskStatus,
    /// 1..10, 10 most urgent.
    pub priority: Priority,
    /// When the orchestrator accepted it.
    pub submitted_at: DateTime<Utc>,
    /// When the current or last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    pub completed_at: Option<DateTime<Utc>>,
    /// The project it belongs to.
    pub project_id: String,
    /// What to run.
    pub task_spec: TaskSpec,
    /// What a worker for it requests.
    pub resource_requirements: ResourceRequirements,
    /// What data it touches.
    pub data_access: DataAccess,
    /// Why the last attempt failed, if it did.
    pub error_message: String,
    /// The Kubernetes Job running it, if any.
    pub kubernetes_job_name: String,
    /// The cluster running it, if any.
    pub cluster_name: String,
    /// Attempts that failed and were retried.
    pub retry_count: u32,
    /// Retries allowed before the task fails.
    pub max_retries: u32,
    /// Why it was last retried.
    pub retry_reason: String,
    /// While queued after a failed attempt: the earliest time it may run again.
    pub not_before: Option<DateTime<Utc>>,
    /// What the task produced (set when it finishes).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<serde_json::Value>,
    /// Leases granted so far: the current or last attempt's number (0 before the first).
    pub attempt: u32,
    /// The worker holding or last holding the task.
    pub worker_id: String,
    /// The W3C `traceparent` of the submission, which workers continue; empty
    /// when the submission carried none and tracing is off.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub traceparent: String,
}

impl WorkTask {
    /// A fresh queued task from a validated submission. Times keep microsecond
    /// precision, as stored.
    pub fn new(id: Uuid, submitted_at: DateTime<Utc>, new: crate::submission::NewTask) -> WorkTask {
        let submitted_at = submitted_at.trunc_subsecs(6);
        WorkTask {
            worktask_id: id,
            task_type: new.task_type,
            status: WorkTaskStatus::Queued,
            priority: new.priority,
            submitted_at,
            started_at: None,
            completed_at: None,
            project_id: new.project_id,
            task_spec: new.task_spec,
            resource_requirements: new.resource_requirements,
            data_access: new.data_access,
            error_message: String::new(),
            kubernetes_job_name: String::new(),
            cluster_name: String::new(),
            retry_count: 0,
            max_retries: new.max_retries,
            retry_reason: String::new(),
            not_before: None,
            result: None,
            attempt: 0,
            traceparent: String::new(),
            worker_id: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorders keep per-type state in arrays indexed by `type as usize`.
    #[test]
    fn all_lists_the_types_in_declaration_order() {
        for (i, t) in WorkTaskType::ALL.into_iter().enumerate() {
            assert_eq!(t as usize, i, "{t:?}");
        }
    }

    #[test]
    fn types_round_trip_their_wire_names() {
        for t in WorkTaskType::ALL {
            assert_eq!(t.as_str().parse::<WorkTaskType>(), Ok(t));
            assert_eq!(
                serde_json::to_value(t).ok(),
                Some(serde_json::json!(t.as_str()))
            );
        }
        assert!("training".parse::<WorkTaskType>().is_err());
    }

    #[test]
    fn training_retries_less_by_default() {
        assert_eq!(WorkTaskType::MlTraining.default_max_retries(), 2);
        assert_eq!(WorkTaskType::PipelineExecution.default_max_retries(), 3);
        assert_eq!(WorkTaskType::MlInference.default_max_retries(), 3);
    }
}
