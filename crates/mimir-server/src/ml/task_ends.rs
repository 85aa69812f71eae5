//! The ends of ML tasks, however they end: a worker's report, a cancel, a
//! lease that expired for the last time, a timeout. The store's lifecycle
//! events are the one place all of those pass, so [`MlTaskEnds`] watches
//! them (in front of the event recorder) and hands the ML ones to
//! [`run`], which:
//!
//! - for an `ml_training` task that ended for good without a version, applies
//!   `TrainingFailed` (so the model does not stay `training`); for a
//!   completed one, records `mimir_model_training_duration_seconds`;
//! - for an `ml_inference` task, records `mimir_inference_requests_total`
//!   and, when completed, the items and batch times of its result.

use mimir_core::{
    ModelChange, ModelStatus, TaskEvent, TaskEventKind, WorkTaskStatus, WorkTaskType,
};
use mimir_store::{EventSink, Store};
use mimir_telemetry::{InferenceSummary, Metrics};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

/// How an ML task ended.
#[derive(Debug, Clone)]
pub enum End {
    /// Its last attempt succeeded.
    Completed {
        worker_id: String,
        result: Option<Value>,
    },
    /// It failed or timed out, retries exhausted.
    Failed {
        worker_id: String,
        status: WorkTaskStatus,
        reason: String,
        result: Option<Value>,
    },
    /// A user cancelled it.
    Cancelled,
}

/// One ML task that ended.
#[derive(Debug, Clone)]
pub struct TaskEnd {
    pub id: Uuid,
    pub task_type: WorkTaskType,
    pub end: End,
}

/// An [`EventSink`] that picks out the ends of ML tasks, then passes every
/// event on to `next`.
#[derive(Debug)]
pub struct MlTaskEnds {
    // Unbounded: one entry per ML task end, which the store's own write
    // rate bounds, and a sink must never block the writer.
    ends: mpsc::UnboundedSender<TaskEnd>,
    next: Option<Arc<dyn EventSink>>,
}

impl MlTaskEnds {
    /// The sink, and the receiver [`run`] reads.
    pub fn new(
        next: Option<Arc<dyn EventSink>>,
    ) -> (Arc<MlTaskEnds>, mpsc::UnboundedReceiver<TaskEnd>) {
        let (ends, receiver) = mpsc::unbounded_channel();
        (Arc::new(MlTaskEnds { ends, next }), receiver)
    }
}

impl EventSink for MlTaskEnds {
    fn publish(&self, events: Vec<TaskEvent>) {
        for event in &events {
            if event.task_type == WorkTaskType::PipelineExecution {
                continue;
            }
            let end = match &event.kind {
                TaskEventKind::Completed {
                    worker_id, result, ..
                } => End::Completed {
                    worker_id: worker_id.clone(),
                    result: result.clone(),
                },
                TaskEventKind::Failed {
                    worker_id,
                    status,
                    reason,
                    result,
                    ..
                } => End::Failed {
                    worker_id: worker_id.clone(),
                    status: *status,
                    reason: reason.clone(),
                    result: result.clone(),
                },
                TaskEventKind::Cancelled { .. } => End::Cancelled,
                _ => continue,
            };
            // Gone only when the orchestrator is stopping.
            let _ = self.ends.send(TaskEnd {
                id: event.id,
                task_type: event.task_type,
                end,
            });
        }
        if let Some(next) = &self.next {
            next.publish(events);
        }
    }
}

/// Follows ML task ends until the sink is dropped.
pub async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mut ends: mpsc::UnboundedReceiver<TaskEnd>,
) {
    while let Some(end) = ends.recv().await {
        handle(store.as_ref(), &metrics, end).await;
    }
}

/// `completed`, `failed`, `timeout` or `cancelled`.
fn outcome(end: &End) -> &'static str {
    match end {
        End::Completed { .. } => "completed",
        End::Failed {
            status: WorkTaskStatus::Timeout,
            ..
        } => "timeout",
        End::Failed { .. } => "failed",
        End::Cancelled => "cancelled",
    }
}

/// Handles one end; errors are logged (the task has ended whatever happens
/// here, and a model left `training` can be trained again once an operator
/// looks).
pub async fn handle(store: &dyn Store, metrics: &Metrics, end: TaskEnd) {
    let task = match store.get(end.id).await {
        Ok(Some(task)) => task,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(worktask_id = %end.id, %error, "cannot read an ended ML task");
            return;
        }
    };
    let model_id = task.task_spec.model_id.as_str();
    if model_id.is_empty() {
        return;
    }
    let model = match store.get_model(model_id).await {
        Ok(Some(model)) => model,
        // Deleted meanwhile: nothing to update, no label to record under.
        Ok(None) => return,
        Err(error) => {
            tracing::error!(worktask_id = %end.id, model_id, %error, "cannot read the model of an ended ML task");
            return;
        }
    };
    match end.task_type {
        WorkTaskType::MlTraining => {
            let reason = match &end.end {
                End::Completed { result, .. } => {
                    if let Some(ms) = result
                        .as_ref()
                        .and_then(|r| r.get("training_duration_ms"))
                        .and_then(Value::as_u64)
                    {
                        metrics.record_training(model.model_type.as_str(), ms as f64 / 1000.0);
                    }
                    // A completed training uploaded its version first; one
                    // that did not would leave the model training forever.
                    if model.status == ModelStatus::Training
                        && model.training_task_id == Some(end.id)
                    {
                        "the training task completed without storing a version".to_string()
                    } else {
                        return;
                    }
                }
                End::Failed { status, reason, .. } => format!("training {status}: {reason}"),
                End::Cancelled => "training cancelled".to_string(),
            };
            let change = ModelChange::TrainingFailed {
                task_id: end.id,
                reason,
            };
            match store.change_model(model_id, change).await {
                Ok(model) => {
                    if model.status == ModelStatus::Failed {
                        tracing::warn!(model_id, worktask_id = %end.id, reason = %model.status_reason, "training failed");
                    }
                }
                Err(error) => {
                    tracing::error!(model_id, worktask_id = %end.id, %error, "cannot mark a failed training")
                }
            }
        }
        WorkTaskType::MlInference => {
            metrics.record_inference_request(&model.name, outcome(&end.end));
            if let End::Completed { worker_id, result } = &end.end
                && let Some(summary) = result.as_ref().and_then(InferenceSummary::from_result)
            {
                metrics.record_inference(&model.name, worker_id, &summary);
            }
        }
        WorkTaskType::PipelineExecution => {}
    }
}
