//! The executor a worker runs: each task goes to what does its kind of work.
//!
//! ML tasks that name a model (`task_spec.model_id`) run on the model
//! ([`MlExecutor`]); every other task runs its pipeline ([`PipelineExecutor`]),
//! which includes ML tasks that name a pipeline doing the work instead.

use crate::{Executor, Finished, MlExecutor, PipelineExecutor};
use async_trait::async_trait;
use mimir_core::{WorkTask, WorkTaskType};
use tokio_util::sync::CancellationToken;

/// Routes tasks to the pipeline or the ML executor.
pub struct TaskExecutor {
    pipelines: PipelineExecutor,
    models: MlExecutor,
}

impl TaskExecutor {
    /// Both executors.
    pub fn new(pipelines: PipelineExecutor, models: MlExecutor) -> TaskExecutor {
        TaskExecutor { pipelines, models }
    }
}

/// Whether `task` runs on a model rather than a pipeline.
fn runs_a_model(task: &WorkTask) -> bool {
    matches!(
        task.task_type,
        WorkTaskType::MlTraining | WorkTaskType::MlInference
    ) && !task.task_spec.model_id.is_empty()
        && task.task_spec.pipeline_id.is_empty()
}

#[async_trait]
impl Executor for TaskExecutor {
    async fn execute(&self, task: &WorkTask, cancel: CancellationToken) -> Finished {
        if runs_a_model(task) {
            self.models.execute(task, cancel).await
        } else {
            self.pipelines.execute(task, cancel).await
        }
    }
}
