//! What runs a task: the seam between the runtime and the work itself.

use async_trait::async_trait;
use mimir_core::{AttemptOutcome, ErrorClass, WorkTask};
use tokio_util::sync::CancellationToken;

/// How an attempt ended, as the executor tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Completed, failed or timed out.
    pub outcome: AttemptOutcome,
    /// Why it failed ("" when it did not).
    pub error: String,
    /// Structured result (a pipeline's steps and context).
    pub result: Option<serde_json::Value>,
    /// Whether retrying a failure can help; `None` for a success or an
    /// unclassified failure (retried).
    pub error_class: Option<ErrorClass>,
    /// The storage operations the attempt ran, for metrics.
    pub storage_operations: Vec<mimir_core::StorageOperationEvent>,
}

impl Finished {
    /// A success with this result.
    pub fn completed(result: serde_json::Value) -> Finished {
        Finished {
            outcome: AttemptOutcome::Completed,
            error: String::new(),
            result: Some(result),
            error_class: None,
            storage_operations: Vec::new(),
        }
    }

    /// A failure with this reason.
    pub fn failed(error: impl Into<String>, result: Option<serde_json::Value>) -> Finished {
        Finished {
            outcome: AttemptOutcome::Failed,
            error: error.into(),
            result,
            error_class: None,
            storage_operations: Vec::new(),
        }
    }

    /// The same failure, classified.
    pub fn classed(mut self, class: ErrorClass) -> Finished {
        self.error_class = Some(class);
        self
    }

    /// The same outcome, with the storage operations it ran.
    pub fn with_storage_operations(
        mut self,
        operations: Vec<mimir_core::StorageOperationEvent>,
    ) -> Finished {
        self.storage_operations = operations;
        self
    }

    /// The same failure, which retrying cannot fix.
    pub fn permanent(self) -> Finished {
        self.classed(ErrorClass::Permanent)
    }
}

/// Runs one attempt of a task. `cancel` fires when the task was cancelled or its
/// lease lost; the executor should then stop promptly.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Runs the task to its end.
    async fn execute(&self, task: &WorkTask, cancel: CancellationToken) -> Finished;
}
