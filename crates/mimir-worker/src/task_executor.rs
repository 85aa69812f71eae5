//! The executor a worker runs: each task goes to what does its kind of work.
//!
//! ML tasks that name a model (`task_spec.model_id`) run on the model
//! ([`MlExecutor`]); a training that names a pipeline too trains on what the
//! pipeline answers (its last step, or `parameters.output_step`). Every
//! other task runs its pipeline ([`PipelineExecutor`]), which includes ML
//! tasks that name only a pipeline doing the work.

use crate::{Executor, Finished, MlExecutor, PipelineExecutor};
use async_trait::async_trait;
use mimir_core::{AttemptOutcome, WorkTask, WorkTaskType};
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

/// What runs a task.
#[derive(Debug, PartialEq)]
enum Route {
    /// Its pipeline.
    Pipeline,
    /// Its model.
    Model,
    /// Its pipeline, then training on what the pipeline answered.
    PipelineThenTraining,
}

fn route(task: &WorkTask) -> Route {
    let model = !task.task_spec.model_id.is_empty();
    let pipeline = !task.task_spec.pipeline_id.is_empty();
    match task.task_type {
        WorkTaskType::MlTraining if model && pipeline => Route::PipelineThenTraining,
        WorkTaskType::MlTraining | WorkTaskType::MlInference if model && !pipeline => Route::Model,
        _ => Route::Pipeline,
    }
}

#[async_trait]
impl Executor for TaskExecutor {
    async fn execute(&self, task: &WorkTask, cancel: CancellationToken) -> Finished {
        match route(task) {
            Route::Pipeline => self.pipelines.execute(task, cancel).await,
            Route::Model => self.models.execute(task, cancel).await,
            Route::PipelineThenTraining => {
                let ran = self.pipelines.execute(task, cancel.clone()).await;
                if ran.outcome != AttemptOutcome::Completed {
                    return ran;
                }
                let mut operations = ran.storage_operations;
                let result = ran.result.unwrap_or_default();
                let Some(output) = step_output(task, &result) else {
                    return Finished::failed(
                        "the pipeline answered nothing to train on: name the step with task_spec.parameters.output_step",
                        Some(result),
                    )
                    .permanent();
                };
                let mut trained = self.models.train_on_output(task, output, cancel).await;
                operations.append(&mut trained.storage_operations);
                trained.with_storage_operations(operations)
            }
        }
    }
}

/// The context entry of the step named by `parameters.output_step`, else of
/// the pipeline's last step.
fn step_output<'a>(
    task: &WorkTask,
    result: &'a serde_json::Value,
) -> Option<&'a serde_json::Value> {
    let step = match task.task_spec.parameters.get("output_step") {
        Some(serde_json::Value::String(name)) => name.clone(),
        _ => result["steps"]
            .as_array()?
            .last()?
            .get("name")?
            .as_str()?
            .to_string(),
    };
    result["context"].get(step.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimir_core::submission::NewTask;
    use mimir_core::{Priority, TaskSpec};

    fn task(task_type: WorkTaskType, model: &str, pipeline: &str) -> WorkTask {
        let new = NewTask {
            task_type,
            priority: Priority::default(),
            project_id: "p".into(),
            task_spec: TaskSpec {
                model_id: model.into(),
                pipeline_id: pipeline.into(),
                ..TaskSpec::default()
            },
            resource_requirements: task_type.default_resources(),
            data_access: Default::default(),
            max_retries: 0,
        };
        WorkTask::new(uuid::Uuid::now_v7(), chrono::Utc::now(), new)
    }

    #[test]
    fn routes_by_what_the_task_names() {
        use WorkTaskType::*;
        assert_eq!(route(&task(MlTraining, "m", "")), Route::Model);
        assert_eq!(route(&task(MlInference, "m", "")), Route::Model);
        assert_eq!(
            route(&task(MlTraining, "m", "p")),
            Route::PipelineThenTraining
        );
        assert_eq!(route(&task(MlInference, "m", "p")), Route::Pipeline);
        assert_eq!(route(&task(MlTraining, "", "p")), Route::Pipeline);
        assert_eq!(route(&task(PipelineExecution, "m", "p")), Route::Pipeline);
    }
}
