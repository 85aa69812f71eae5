//! Runs `ml_training` and `ml_inference` tasks that name a model
//! (`task_spec.model_id`).
//!
//! Training reads its dataset through the storage connectors (the task's
//! `data_access.input_datasets`, paged), trains on a blocking thread with
//! [`mimir_ml::train`] while progress goes to the task page, and uploads the
//! artifact as a new version through the worker protocol; the orchestrator
//! checks the lease and registers the version.
//!
//! Inference fetches the version's artifact once (verified against the
//! registry's checksum, then kept by checksum), reads records from a storage
//! config or takes them inline, checks the first record has every feature
//! before predicting anything, predicts in batches and writes predictions to
//! an output entity or into the result.
//!
//! What the data or model gets wrong fails the attempt for good: retrying
//! cannot fix a missing column. Only transport and storage outages retry.

use crate::project_storage::{ProjectStorage, ProjectStorages};
use crate::{Executor, Finished};
use async_trait::async_trait;
use base64::Engine as _;
use mimir_client::{Client, ClientError};
use mimir_core::{ErrorClass, MlModel, ModelVersion, TrainingConfig, WorkTask, WorkTaskType};
use mimir_ml::{MlError, Model, Record};
use mimir_storage::{Connectors, ErrorKind, Name, Query, QueryRequest, StorageError};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Records read per page (the connectors' largest page).
const PAGE: u64 = mimir_storage::query::MAX_LIMIT;

/// The most records a training reads unless its task says otherwise.
const DEFAULT_MAX_RECORDS: u64 = 1_000_000;

/// The most records a training may read at all (memory bound).
const MAX_RECORDS: u64 = 10_000_000;

/// Records predicted per batch unless the task says otherwise.
const DEFAULT_BATCH: usize = 1000;

/// Loaded models kept, by checksum.
const MODELS_KEPT: usize = 4;

/// How often training progress is sent at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// A failure with whether retrying can help.
type Failure = (String, ErrorClass);

fn permanent(message: impl Into<String>) -> Failure {
    (message.into(), ErrorClass::Permanent)
}

/// Runs ML tasks.
pub struct MlExecutor {
    client: Client,
    storage: Arc<ProjectStorages>,
    connectors: Connectors,
    operations: Arc<crate::sandbox::operations::Operations>,
    models: Mutex<Vec<(String, Arc<Model>)>>,
}

impl MlExecutor {
    /// An executor talking to the orchestrator through `client`, with the
    /// projects' storage configs from `storage` and `filesystem` configs'
    /// folders under `storage_root`.
    pub fn new(
        client: Client,
        storage: Arc<ProjectStorages>,
        storage_root: impl Into<std::path::PathBuf>,
    ) -> MlExecutor {
        let operations = Arc::new(crate::sandbox::operations::Operations::default());
        MlExecutor {
            client,
            storage,
            connectors: Connectors::new(
                mimir_storage::Secrets::default(),
                storage_root,
                operations.clone(),
            ),
            operations,
            models: Mutex::new(Vec::new()),
        }
    }

    async fn model(&self, id: &str) -> Result<MlModel, Failure> {
        let path = format!("/api/ml-models/{}", encode(id));
        self.client
            .call(Method::GET, &path, None)
            .await
            .map_err(|e| classify(format!("cannot load model {id}"), e))
    }

    /// Opens the storage `id` of the task's project.
    async fn open(
        &self,
        project: &ProjectStorage,
        id: &str,
    ) -> Result<Arc<mimir_storage::Storage>, Failure> {
        let config = project.config(id).map_err(permanent)?;
        self.connectors
            .get_resolved(config)
            .await
            .map_err(|e| storage_failure(id, e))
    }

    /// Reads up to `max` records `query` chooses, page by page.
    async fn read(
        &self,
        storage: &mimir_storage::Storage,
        query: &QueryRequest,
        max: u64,
        cancel: &CancellationToken,
    ) -> Result<Vec<Record>, Failure> {
        let mut records = Vec::new();
        let mut offset = query.offset.unwrap_or(0);
        loop {
            if cancel.is_cancelled() {
                return Err(("cancelled while reading".into(), ErrorClass::Permanent));
            }
            let want = PAGE.min(max - records.len() as u64);
            let page = QueryRequest {
                limit: Some(want),
                offset: Some(offset),
                ..query.clone()
            };
            let checked = Query::check(&page).map_err(|e| permanent(format!("query: {e}")))?;
            let got = storage
                .retrieve(&checked)
                .await
                .map_err(|e| storage_failure(storage.id(), e))?;
            let n = got.len() as u64;
            records.extend(got);
            offset += n;
            if n < want || records.len() as u64 >= max {
                return Ok(records);
            }
        }
    }

    /// The artifact of `version`, loaded, verified and kept by checksum.
    async fn load(&self, model: &MlModel, version: &ModelVersion) -> Result<Arc<Model>, Failure> {
        if let Some((_, loaded)) = self
            .models
            .lock()
            .iter()
            .find(|(sum, _)| *sum == version.checksum)
        {
            return Ok(loaded.clone());
        }
        let path = format!(
            "/api/ml-models/{}/versions/{}/artifact",
            encode(&model.id),
            version.version
        );
        let bytes = self
            .client
            .call_bytes(Method::GET, &path)
            .await
            .map_err(|e| {
                classify(
                    format!("cannot fetch model {} v{}", model.id, version.version),
                    e,
                )
            })?;
        let sum = mimir_ml::checksum(&bytes);
        if sum != version.checksum {
            // A corrupt transfer may go right next time.
            return Err((
                format!(
                    "model {} v{}: the artifact's checksum is {sum}, the registry says {}",
                    model.id, version.version, version.checksum
                ),
                ErrorClass::Transient,
            ));
        }
        let loaded = tokio::task::spawn_blocking(move || Model::load(&bytes))
            .await
            .map_err(|e| {
                (
                    format!("loading the model panicked: {e}"),
                    ErrorClass::Transient,
                )
            })?
            .map_err(|e| ml_failure(format!("model {} v{}", model.id, version.version), e))?;
        let loaded = Arc::new(loaded);
        let mut models = self.models.lock();
        if models.len() >= MODELS_KEPT {
            models.remove(0);
        }
        models.push((version.checksum.clone(), loaded.clone()));
        Ok(loaded)
    }

    /// Reads the training dataset: the task's `input_datasets` (paged, in
    /// order, up to `max_records`), or what a pipeline's step answered.
    async fn dataset(
        &self,
        task: &WorkTask,
        project: &ProjectStorage,
        output: Option<&Value>,
        cancel: &CancellationToken,
    ) -> Result<Vec<Record>, Failure> {
        let parameters = &task.task_spec.parameters;
        let query = query_of(parameters.get("query"))?;
        let max = match parameters.get("max_records") {
            None => DEFAULT_MAX_RECORDS,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_RECORDS).contains(n))
                .ok_or_else(|| {
                    permanent(format!(
                        "task_spec.parameters.max_records must be 1 to {MAX_RECORDS}"
                    ))
                })?,
        };
        if let Some(output) = output {
            return match pipeline_output(output)? {
                PipelineOutput::Records(records) => {
                    Ok(records.into_iter().take(max as usize).collect())
                }
                PipelineOutput::Reference { storage_id, query } => {
                    let storage = self.open(project, &storage_id).await?;
                    self.read(&storage, &query, max, cancel).await
                }
            };
        }
        let datasets = &task.data_access.input_datasets;
        if datasets.is_empty() {
            return Err(permanent(
                "data_access.input_datasets is empty: a training reads its dataset from storage configs or a pipeline",
            ));
        }
        let mut records = Vec::new();
        for id in datasets {
            let left = max - records.len() as u64;
            if left == 0 {
                break;
            }
            let storage = self.open(project, id).await?;
            records.extend(self.read(&storage, &query, left, cancel).await?);
        }
        Ok(records)
    }

    /// Trains the task's model on its dataset, or on `output` (what the
    /// task's pipeline answered) when given.
    async fn train(
        &self,
        task: &WorkTask,
        model: MlModel,
        output: Option<&Value>,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let parameters = &task.task_spec.parameters;
        let config: TrainingConfig = match parameters.get("training_config") {
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| permanent(format!("task_spec.parameters.training_config: {e}")))?,
            None => model.training_config.clone(),
        };
        config.check(model.model_type).map_err(permanent)?;
        let project = self.storage.get(task).await?;
        let read_started = Instant::now();
        let records = self.dataset(task, &project, output, cancel).await?;
        let read_ms = read_started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(records = records.len(), model_id = %model.id, "training data read");

        // Training runs on a blocking thread; progress and cancellation
        // cross over through a channel and a flag.
        let stop = Arc::new(AtomicBool::new(false));
        let (progress_tx, mut progress_rx) =
            tokio::sync::watch::channel(None::<mimir_ml::Progress>);
        let started = Instant::now();
        let training = tokio::task::spawn_blocking({
            let stop = stop.clone();
            let model_type = model.model_type;
            let config = config.clone();
            move || {
                let mut progress = |p: mimir_ml::Progress| {
                    let _ = progress_tx.send(Some(p));
                };
                mimir_ml::train(model_type, &config, &records, &mut progress, &stop)
            }
        });
        let reporter = {
            let client = self.client.clone();
            let path = format!("/api/worktasks/{}/progress", task.worktask_id);
            let worker_id = task.worker_id.clone();
            let attempt = task.attempt;
            let model_type = model.model_type;
            async move {
                while progress_rx.changed().await.is_ok() {
                    let Some(p) = *progress_rx.borrow_and_update() else {
                        continue;
                    };
                    let steps = json!([
                        {"name": "read", "plugin": "ml", "action": "read", "status": "completed",
                         "duration_ms": read_ms, "error": ""},
                        {"name": "train", "plugin": "ml", "action": model_type.as_str(), "status": "running",
                         "duration_ms": started.elapsed().as_secs_f64() * 1000.0, "error": "",
                         "progress": {"done": p.done, "total": p.total, "unit": p.unit}},
                    ]);
                    let body = json!({"worker_id": worker_id, "attempt": attempt, "steps": steps});
                    if let Err(error) = client.call::<Value>(Method::POST, &path, Some(&body)).await
                    {
                        tracing::debug!(%error, "cannot report training progress");
                    }
                    tokio::time::sleep(PROGRESS_EVERY).await;
                }
            }
        };
        let reporter = tokio::spawn(reporter);
        let trained = tokio::select! {
            joined = training => joined,
            () = cancel.cancelled() => {
                stop.store(true, Ordering::Relaxed);
                reporter.abort();
                return Err(("training was cancelled".into(), ErrorClass::Permanent));
            }
        };
        reporter.abort();
        let trained = trained
            .map_err(|e| (format!("training panicked: {e}"), ErrorClass::Permanent))?
            .map_err(|e| ml_failure(format!("training {}", model.model_type), e))?;
        let duration = started.elapsed();
        let checksum = mimir_ml::checksum(&trained.artifact);
        let upload = json!({
            "worktask_id": task.worktask_id,
            "attempt": task.attempt,
            "feature_columns": trained.feature_columns,
            "label_column": trained.label_column,
            "performance_metrics": trained.metrics,
            "training_config": config,
            "training_duration_ms": duration.as_millis() as u64,
            "artifact_base64": base64::engine::general_purpose::STANDARD.encode(&trained.artifact),
        });
        let path = format!(
            "/api/workers/{}/ml-models/{}/versions",
            encode(&task.worker_id),
            encode(&model.id)
        );
        let version: ModelVersion = self
            .client
            .call(Method::POST, &path, Some(&upload))
            .await
            .map_err(|e| {
                classify(
                    format!("cannot register the new version of model {}", model.id),
                    e,
                )
            })?;
        Ok(json!({
            "model_id": model.id,
            "version": version.version,
            "checksum": checksum,
            "model_type": model.model_type,
            "performance_metrics": trained.metrics,
            "train_rows": trained.metrics.train_rows,
            "test_rows": trained.metrics.test_rows,
            "training_duration_ms": duration.as_millis() as u64,
        }))
    }

    async fn infer(
        &self,
        task: &WorkTask,
        model: MlModel,
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let parameters = &task.task_spec.parameters;
        let number =
            match parameters.get("version") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(
                    || permanent("task_spec.parameters.version must be a version number"),
                )?),
            };
        let version = model.version(number).cloned().ok_or_else(|| {
            permanent(match number {
                Some(n) => format!("model {} has no version {n}", model.id),
                None => format!("model {} has no trained version", model.id),
            })
        })?;
        let batch_size = match parameters.get("batch_size") {
            None => DEFAULT_BATCH,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| permanent("task_spec.parameters.batch_size must be 1 to 10000"))?
                as usize,
        };
        let input = parameters
            .get("input")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                permanent(
                    "task_spec.parameters.input is required: {storage_id, query} or {records}",
                )
            })?;
        let project = self.storage.get(task).await?;
        let loaded = self.load(&model, &version).await?;
        let records: Vec<Record> = match (input.get("records"), input.get("storage_id")) {
            (Some(records), None) => records
                .as_array()
                .ok_or_else(|| permanent("input.records must be an array of objects"))?
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    r.as_object()
                        .cloned()
                        .ok_or_else(|| permanent(format!("input.records[{i}] is not an object")))
                })
                .collect::<Result<_, _>>()?,
            (None, Some(Value::String(id))) => {
                let storage = self.open(&project, id).await?;
                let query = query_of(input.get("query"))?;
                self.read(&storage, &query, MAX_RECORDS, cancel).await?
            }
            _ => {
                return Err(permanent(
                    "task_spec.parameters.input must have either records or storage_id",
                ));
            }
        };
        // A missing feature fails here, by name, before any prediction.
        if let Some(first) = records.first() {
            loaded
                .check_input(first)
                .map_err(|e| ml_failure(format!("model {} v{}", model.id, version.version), e))?;
        }
        let output = match parameters.get("output") {
            None | Some(Value::Null) => None,
            Some(output) => {
                let id = output
                    .get("storage_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| permanent("output.storage_id is required"))?;
                let entity = output
                    .get("entity_type")
                    .and_then(Value::as_str)
                    .unwrap_or("predictions");
                let entity = Name::new(entity, "output.entity_type")
                    .map_err(|e| permanent(e.to_string()))?;
                Some((self.open(&project, id).await?, entity))
            }
        };

        let started = Instant::now();
        let mut batches: Vec<(u64, f64)> = Vec::new();
        let mut inline: Vec<Value> = Vec::new();
        let mut stored = 0u64;
        let records = Arc::new(records);
        let mut start = 0;
        while start < records.len() {
            if cancel.is_cancelled() {
                return Err(("inference was cancelled".into(), ErrorClass::Permanent));
            }
            let end = (start + batch_size).min(records.len());
            let batch_started = Instant::now();
            let predictions = tokio::task::spawn_blocking({
                let loaded = loaded.clone();
                let records = records.clone();
                move || loaded.predict(&records[start..end])
            })
            .await
            .map_err(|e| (format!("prediction panicked: {e}"), ErrorClass::Permanent))?
            .map_err(|e| {
                ml_failure(
                    format!(
                        "model {} v{}, records {start}..{end}",
                        model.id, version.version
                    ),
                    e,
                )
            })?;
            batches.push(((end - start) as u64, batch_started.elapsed().as_secs_f64()));
            match &output {
                Some((storage, entity)) => {
                    let rows = predictions
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let index = start + i;
                            let input_id = records[index]
                                .get("id")
                                .cloned()
                                .unwrap_or_else(|| json!(index));
                            let mut row = Record::new();
                            row.insert("input_id".into(), input_id);
                            row.insert("prediction".into(), p.prediction);
                            row.insert("confidence".into(), json!(p.confidence));
                            row.insert("model_id".into(), json!(model.id));
                            row.insert("version".into(), json!(version.version));
                            row
                        })
                        .collect();
                    stored += storage
                        .store(entity, rows)
                        .await
                        .map_err(|e| storage_failure(storage.id(), e))?;
                }
                None => inline.extend(predictions.into_iter().enumerate().map(|(i, p)| {
                    json!({"index": start + i, "prediction": p.prediction, "confidence": p.confidence})
                })),
            }
            start = end;
        }
        let mut result = json!({
            "model_id": model.id,
            "model_name": model.name,
            "version": version.version,
            "items": records.len(),
            "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
            "batches": batches,
        });
        match &output {
            Some((storage, entity)) => {
                result["output"] = json!({"storage_id": storage.id(), "entity_type": entity.as_str(), "stored": stored});
            }
            None => result["predictions"] = Value::Array(inline),
        }
        Ok(result)
    }
}

impl MlExecutor {
    /// Trains the task's model on `output`, what its pipeline's last step
    /// (or `parameters.output_step`) answered: records, a CIR document, or
    /// a storage reference (`storage.retrieve` with `"as": "reference"`).
    pub async fn train_on_output(
        &self,
        task: &WorkTask,
        output: &Value,
        cancel: CancellationToken,
    ) -> Finished {
        let ran = async {
            let model = self.model(&task.task_spec.model_id).await?;
            if model.project_id != task.project_id {
                return Err(permanent(format!(
                    "model {} belongs to project {}, not to the task's {}",
                    model.id, model.project_id, task.project_id
                )));
            }
            self.train(task, model, Some(output), &cancel).await
        }
        .await;
        self.finished(ran)
    }

    fn finished(&self, ran: Result<Value, Failure>) -> Finished {
        let operations = self.operations.take();
        let finished = match ran {
            Ok(result) => Finished::completed(result),
            Err((why, class)) => Finished::failed(why, None).classed(class),
        };
        finished.with_storage_operations(operations)
    }
}

#[async_trait]
impl Executor for MlExecutor {
    async fn execute(&self, task: &WorkTask, cancel: CancellationToken) -> Finished {
        let ran = async {
            let model = self.model(&task.task_spec.model_id).await?;
            if model.project_id != task.project_id {
                return Err(permanent(format!(
                    "model {} belongs to project {}, not to the task's {}",
                    model.id, model.project_id, task.project_id
                )));
            }
            match task.task_type {
                WorkTaskType::MlTraining => self.train(task, model, None, &cancel).await,
                WorkTaskType::MlInference => self.infer(task, model, &cancel).await,
                other => Err(permanent(format!("{other} tasks do not run models"))),
            }
        }
        .await;
        self.finished(ran)
    }
}

/// What a pipeline step answered, as training data.
enum PipelineOutput {
    Records(Vec<Record>),
    Reference {
        storage_id: String,
        query: QueryRequest,
    },
}

/// Reads a step's answer as training data: an array of records, a CIR
/// document (`data`), or a storage reference (`{storage_id, query}`).
fn pipeline_output(output: &Value) -> Result<PipelineOutput, Failure> {
    let records = |items: &Vec<Value>| -> Result<Vec<Record>, Failure> {
        items
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.as_object().cloned().ok_or_else(|| {
                    permanent(format!(
                        "the pipeline's output item {i} is not a record (a JSON object)"
                    ))
                })
            })
            .collect()
    };
    match output {
        Value::Array(items) => Ok(PipelineOutput::Records(records(items)?)),
        Value::Object(map) => {
            if let Some(Value::Array(items)) = map.get("data") {
                return Ok(PipelineOutput::Records(records(items)?));
            }
            if let Some(Value::String(storage_id)) = map.get("storage_id") {
                return Ok(PipelineOutput::Reference {
                    storage_id: storage_id.clone(),
                    query: query_of(map.get("query"))?,
                });
            }
            Err(permanent(
                "the pipeline's output is neither records, a CIR document nor a storage reference",
            ))
        }
        _ => Err(permanent(
            "the pipeline's output is neither records, a CIR document nor a storage reference",
        )),
    }
}

/// A CIRQuery from the task's parameters (none: every record of `default`).
fn query_of(value: Option<&Value>) -> Result<QueryRequest, Failure> {
    let request: QueryRequest = match value {
        None | Some(Value::Null) => QueryRequest::default(),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| permanent(format!("query: {e}")))?
        }
    };
    // Checked once up front, so a bad query fails before anything is read.
    Query::check(&QueryRequest {
        limit: Some(1),
        ..request.clone()
    })
    .map_err(|e| permanent(format!("query: {e}")))?;
    Ok(request)
}

/// An orchestrator call's failure: 4xx answers are permanent (the model is
/// gone, the lease lost), the rest may pass.
fn classify(what: String, error: ClientError) -> Failure {
    let class = match &error {
        ClientError::Api { status, .. }
            if status.is_client_error() && *status != reqwest::StatusCode::TOO_MANY_REQUESTS =>
        {
            ErrorClass::Permanent
        }
        _ => ErrorClass::Transient,
    };
    (format!("{what}: {error}"), class)
}

/// A storage failure: outages retry, everything else fails for good.
fn storage_failure(id: &str, error: StorageError) -> Failure {
    let class = match error.kind {
        ErrorKind::Unavailable | ErrorKind::Timeout => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    };
    (format!("storage {id}: {error}"), class)
}

/// An ML failure: only internal ones may pass on a retry.
fn ml_failure(what: String, error: MlError) -> Failure {
    let class = match error {
        MlError::Internal(_) => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    };
    (format!("{what}: {error}"), class)
}

/// One path segment, percent-encoded.
fn encode(segment: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a valid base URL");
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(segment);
    }
    url.path()[1..].to_string()
}
