//! Runs tasks as pipelines with the pipeline engine.
//!
//! A `pipeline_execution` task names its pipeline in `task_spec.pipeline_id`;
//! ML training and inference tasks run the pipeline that trains or serves their
//! model, named the same way. Definitions are fetched from the orchestrator and
//! kept for a few seconds, so a burst of executions costs one fetch.
//!
//! The steps run in a sandboxed executor process ([`crate::sandbox`]), under
//! the task's memory limit and deadlines.
//!
//! A pipeline with `storage.*` steps gets its project's storage configs:
//! fetched from the orchestrator's worker protocol
//! (`GET /api/workers/{id}/storage-configs?project_id=P`, kept as long as
//! definitions), their `${env:…}` / `${file:…}` references resolved here,
//! once, where the worker's environment and secrets directory are
//! (`MIMIR_SECRETS_DIR`), and handed to the executor in the job.
//!
//! A pipeline with `checkpoint.*` steps (at any depth of loops) gets its
//! stored checkpoints, fetched fresh for every attempt from
//! `GET /api/pipelines/{id}/checkpoints` (`{"pipeline_id", "checkpoints":
//! {key: value}, "updated_at"}`). What a successful run saved comes back in
//! the task result as `"checkpoints": {key: value}`, for the orchestrator to
//! store when the task completes.

use crate::project_storage::ProjectStorages;
use crate::sandbox::{Sandboxes, protocol::Job};
use crate::{Executor, Finished};
use async_trait::async_trait;
use mimir_client::Client;
use mimir_core::{AttemptOutcome, ErrorClass, Pipeline, WorkTask, WorkTaskType};
use mimir_pipeline::Step;
use mimir_pipeline::step::uses_plugin;
use parking_lot::Mutex;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Executions running longer than this report their steps as they go.
const PROGRESS_AFTER: Duration = Duration::from_millis(250);

/// How long a fetched definition is reused.
const DEFINITION_TTL: Duration = Duration::from_secs(2);
/// How long a definition fetch waits for an unreachable orchestrator
/// before the attempt fails (and is retried).
const DEFINITION_FETCH_PATIENCE: Duration = Duration::from_secs(30);

/// A pipeline's steps and their default timeout, as fetched.
#[derive(Debug)]
struct Definition {
    steps: Vec<Step>,
    step_timeout_ms: Option<u64>,
}

/// A definition and when it was fetched.
type Fetched = (Instant, Arc<Definition>);

/// Runs tasks' pipelines.
pub struct PipelineExecutor {
    client: Client,
    sandboxes: Arc<Sandboxes>,
    definitions: Mutex<HashMap<String, Fetched>>,
    storage: Arc<ProjectStorages>,
    /// Memory every execution may use, whatever its task asks for.
    memory: Option<u64>,
}

impl PipelineExecutor {
    /// An executor fetching definitions through `client` and running them in
    /// `sandboxes`, with the projects' storage configs from `storage`.
    pub fn new(
        client: Client,
        sandboxes: Arc<Sandboxes>,
        storage: Arc<ProjectStorages>,
    ) -> PipelineExecutor {
        PipelineExecutor {
            client,
            sandboxes,
            definitions: Mutex::new(HashMap::new()),
            storage,
            memory: None,
        }
    }

    /// Bounds every execution by `bytes` instead of its task's
    /// `resource_requirements.memory`: in a Kubernetes Job the container's
    /// memory is the real bound, and it grows after an OOM kill while the
    /// task's own figure does not.
    pub fn with_memory(mut self, bytes: Option<u64>) -> PipelineExecutor {
        self.memory = bytes;
        self
    }

    /// Fetches (or reuses) a definition; a failure says whether retrying can help.
    async fn definition(&self, pipeline_id: &str) -> Result<Arc<Definition>, (String, ErrorClass)> {
        if let Some((fetched, definition)) = self.definitions.lock().get(pipeline_id)
            && fetched.elapsed() < DEFINITION_TTL
        {
            return Ok(definition.clone());
        }
        let fetched = self
            .get_patiently::<Pipeline>(&format!("/api/pipelines/{pipeline_id}"))
            .await;
        let pipeline: Pipeline = fetched.map_err(|e| {
            // A pipeline that is gone stays gone; an unreachable
            // orchestrator may answer next time.
            let class = match &e {
                mimir_client::ClientError::Api { status, .. } if *status == 404 => {
                    ErrorClass::Permanent
                }
                _ => ErrorClass::Transient,
            };
            (format!("cannot load pipeline {pipeline_id}: {e}"), class)
        })?;
        let mut steps = Vec::with_capacity(pipeline.steps.len());
        for (i, step) in pipeline.steps.into_iter().enumerate() {
            steps.push(serde_json::from_value(step).map_err(|e| {
                (
                    format!("pipeline {pipeline_id} step {i} is invalid: {e}"),
                    ErrorClass::Permanent,
                )
            })?);
        }
        let definition = Arc::new(Definition {
            steps,
            step_timeout_ms: pipeline.step_timeout_ms,
        });
        self.definitions.lock().insert(
            pipeline_id.to_string(),
            (Instant::now(), definition.clone()),
        );
        Ok(definition)
    }

    /// The pipeline's stored checkpoints, fetched fresh: a bookmark read
    /// from a cache could load the same data twice.
    async fn checkpoints(
        &self,
        pipeline_id: &str,
    ) -> Result<Map<String, Value>, (String, ErrorClass)> {
        /// `GET /api/pipelines/{id}/checkpoints`; the other keys are not needed.
        #[derive(serde::Deserialize)]
        struct Answer {
            checkpoints: Map<String, Value>,
        }
        let path = format!("/api/pipelines/{pipeline_id}/checkpoints");
        match self.get_patiently::<Answer>(&path).await {
            Ok(answer) => Ok(answer.checkpoints),
            Err(e) => {
                let class = match &e {
                    mimir_client::ClientError::Api { status, .. } if *status == 404 => {
                        ErrorClass::Permanent
                    }
                    _ => ErrorClass::Transient,
                };
                Err((
                    format!("cannot load the checkpoints of pipeline {pipeline_id}: {e}"),
                    class,
                ))
            }
        }
    }

    /// `GET path`, waiting out an unreachable orchestrator for up to
    /// [`DEFINITION_FETCH_PATIENCE`]: one restarting (or a replica failing
    /// over) answers again within moments, and an attempt is worth more.
    async fn get_patiently<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, mimir_client::ClientError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match self.client.call(Method::GET, path, None).await {
                Err(mimir_client::ClientError::Transport { .. })
                    if started.elapsed() + pause < DEFINITION_FETCH_PATIENCE =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                answer => return answer,
            }
        }
    }
}

#[async_trait]
impl Executor for PipelineExecutor {
    async fn execute(&self, task: &WorkTask, cancel: CancellationToken) -> Finished {
        let pipeline_id = task.task_spec.pipeline_id.as_str();
        if pipeline_id.is_empty() {
            let why = match task.task_type {
                WorkTaskType::PipelineExecution => "task_spec.pipeline_id is empty: a pipeline_execution task names the pipeline to run".to_string(),
                other => format!("{other} tasks run the pipeline that does the work: set task_spec.pipeline_id"),
            };
            return Finished::failed(why, None).permanent();
        }
        let started = Instant::now();
        let definition = match self.definition(pipeline_id).await {
            Ok(definition) => definition,
            Err((why, class)) => return Finished::failed(why, None).classed(class),
        };
        // The attempt span's context when traced, else the submission's.
        let traceparent = mimir_telemetry::propagation::traceparent_of(&tracing::Span::current())
            .unwrap_or_else(|| task.traceparent.clone());
        // Loops' inner steps count: a storage step inside a for_each needs
        // the configs as much as one outside.
        let storage = if uses_plugin(&definition.steps, "storage") {
            match self.storage.get(task).await {
                Ok(storage) => Some(storage),
                Err((why, class)) => return Finished::failed(why, None).classed(class),
            }
        } else {
            None
        };
        let checkpoints = if uses_plugin(&definition.steps, "checkpoint") {
            match self.checkpoints(pipeline_id).await {
                Ok(checkpoints) => Some(checkpoints),
                Err((why, class)) => return Finished::failed(why, None).classed(class),
            }
        } else {
            None
        };
        let job = Job {
            worktask_id: task.worktask_id.to_string(),
            pipeline_id: pipeline_id.to_string(),
            attempt: task.retry_count,
            traceparent: (!traceparent.is_empty()).then_some(traceparent),
            steps: Cow::Borrowed(&definition.steps),
            parameters: Cow::Borrowed(&task.task_spec.parameters),
            step_timeout_ms: definition.step_timeout_ms,
            remaining_ms: task
                .task_spec
                .timeout_ms
                .map(|ms| ms.saturating_sub(started.elapsed().as_millis() as u64)),
            project_id: task.project_id.clone(),
            storage_configs: storage
                .as_ref()
                .map(|s| s.configs.clone())
                .unwrap_or_default(),
            storage_unavailable: storage
                .as_ref()
                .map(|s| s.unavailable.clone())
                .unwrap_or_default(),
            checkpoints,
        };
        let memory = self
            .memory
            .or_else(|| mimir_core::memory_bytes(&task.resource_requirements.memory))
            .or_else(|| mimir_core::memory_bytes(&task.task_type.default_resources().memory));
        // Executions that run long report their steps as they finish, so users
        // following them see progress; quick ones cost no extra call.
        let (progress, mut updates) =
            tokio::sync::mpsc::unbounded_channel::<Vec<serde_json::Value>>();
        let reporter = tokio::spawn({
            let client = self.client.clone();
            let path = format!("/api/worktasks/{}/progress", task.worktask_id);
            let attempt = task.attempt;
            // Only the lease holder's report of its attempt is taken.
            let worker_id = task.worker_id.clone();
            async move {
                while let Some(mut steps) = updates.recv().await {
                    while let Ok(newer) = updates.try_recv() {
                        steps = newer;
                    }
                    let body = serde_json::json!({ "worker_id": worker_id, "attempt": attempt, "steps": steps });
                    if let Err(error) = client
                        .call::<serde_json::Value>(Method::POST, &path, Some(&body))
                        .await
                    {
                        tracing::debug!(%error, "cannot report progress");
                    }
                }
            }
        });
        let mut done_steps: Vec<serde_json::Value> = Vec::new();
        let mut on_step = |record: &mimir_pipeline::StepRecord| {
            tracing::debug!(
                step = %record.name,
                status = ?record.status,
                duration_ms = record.duration_ms,
                "step done"
            );
            done_steps.push(serde_json::to_value(record).unwrap_or_default());
            if started.elapsed() >= PROGRESS_AFTER {
                let _ = progress.send(done_steps.clone());
            }
        };
        let ended = self
            .sandboxes
            .run(&job, memory, &cancel, &mut on_step)
            .await;
        reporter.abort();
        let mut result = serde_json::json!({"steps": ended.steps, "context": ended.context});
        // Only a run that succeeded has any; the orchestrator stores them
        // when the task completes.
        if !ended.checkpoints.is_empty() {
            result["checkpoints"] = Value::Object(ended.checkpoints);
        }
        let finished = match ended.error {
            None => Finished::completed(result),
            Some(error) => Finished {
                outcome: if ended.timed_out {
                    AttemptOutcome::Timeout
                } else {
                    AttemptOutcome::Failed
                },
                error,
                result: Some(result),
                error_class: ended.error_class,
                storage_operations: Vec::new(),
            },
        };
        finished.with_storage_operations(ended.storage_operations)
    }
}
