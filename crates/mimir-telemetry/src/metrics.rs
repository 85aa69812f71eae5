//! The metric catalog: every metric Mimir AIP exports, in one registry.
//!
//! Naming: the contract names of DESIGN.md (`mimir_queue_*`, `mimir_workers_*`,
//! `mimir_tasks_total`, `mimir_task_*`, `mimir_storage_*`) are kept exactly;
//! everything else is `mimir_<subsystem>_<name>_<unit>[_total]`. Label values
//! are bounded: task types, statuses, routes, store methods, pipeline and step
//! names from the catalog, model names from the registry, worker ids of live
//! workers. Never a task id.
//!
//! Counters are registered without their `_total` suffix, which the encoder
//! adds.

use crate::inference::InferenceSummary;
use crate::process::ProcessCollector;
use crate::series::{PipelineSeries, TaskSeries};
use mimir_core::WorkTaskType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Buckets for task-scale durations: 1 ms to 1 hour.
pub const TASK_BUCKETS: [f64; 19] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0, 1800.0, 3600.0,
];

/// Buckets for request-scale durations: 50 µs to 10 s.
pub const REQUEST_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Coarser buckets for per-pipeline histograms, of which there may be
/// thousands: 10 ms to 1 hour.
pub const PIPELINE_BUCKETS: [f64; 10] = [
    0.01, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0,
];

/// Buckets for inference times, per batch and per item: 1 µs to 1 minute.
pub const INFERENCE_BUCKETS: [f64; 17] = [
    0.000001, 0.000005, 0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
    5.0, 10.0, 30.0, 60.0,
];

/// Buckets for schedule lag: 5 ms to 5 minutes (a late catch-up).
pub const SCHEDULE_LAG_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Buckets for worker lifetimes: 1 s to 1 day.
pub const WORKER_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 43200.0, 86400.0,
];

fn inference_histogram() -> Histogram {
    Histogram::new(INFERENCE_BUCKETS)
}

fn task_histogram() -> Histogram {
    Histogram::new(TASK_BUCKETS)
}

/// 1 ms to 10 s: Kubernetes API calls.
fn kubernetes_api_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

fn task_histogram_with_exemplars() -> HistogramWithExemplars<TraceExemplar> {
    HistogramWithExemplars::new(TASK_BUCKETS.into_iter())
}

fn pipeline_histogram() -> Histogram {
    Histogram::new(PIPELINE_BUCKETS)
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// A family of histograms made by a plain function.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
/// A family of histograms carrying trace exemplars.
pub type ExemplarHistogramFamily<L> =
    Family<L, HistogramWithExemplars<TraceExemplar>, fn() -> HistogramWithExemplars<TraceExemplar>>;
/// A gauge holding a float.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// `type`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// Work task type.
    pub r#type: &'static str,
}

/// `status`, `type`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusTypeLabels {
    /// Final status.
    pub status: &'static str,
    /// Work task type.
    pub r#type: &'static str,
}

/// `operation`, `backend` (the contract's storage labels): one storage
/// connector operation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageLabels {
    /// `store`, `retrieve`, `update`, `delete` or `create_schema`.
    pub operation: &'static str,
    /// The plugin type: `filesystem`, `postgresql`, `mysql`, `redis`, `s3`.
    pub backend: &'static str,
}

/// `backend`, `state`: connections of storage connector pools.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// The plugin type.
    pub backend: &'static str,
    /// `idle` or `in_use`.
    pub state: &'static str,
}

/// `backend`: one storage plugin type.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    /// The plugin type.
    pub backend: &'static str,
}

/// `storage_id`, `backend`: one storage config (as many series as configs,
/// which users create by hand, so the cardinality stays small).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageConfigLabels {
    /// The config's id.
    pub storage_id: String,
    /// The plugin type.
    pub backend: &'static str,
}

/// `method`, `backend`: one store call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreMethodLabels {
    /// The store method, e.g. `submit`, `lease`.
    pub method: &'static str,
    /// The backend.
    pub backend: &'static str,
}

/// `route`, `method`, `status`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template, e.g. `/api/worktasks/{id}`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// `route`, `method`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: String,
    /// HTTP method.
    pub method: String,
}

/// `pipeline`, `status`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineStatusLabels {
    /// Pipeline id.
    pub pipeline: String,
    /// `completed` or `failed`.
    pub status: &'static str,
}

/// `pipeline`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabel {
    /// Pipeline id.
    pub pipeline: String,
}

/// `step`, `plugin`, `action`: steps of the same name in several pipelines
/// share a series (per-pipeline times are in the pipeline histogram), which
/// keeps a catalog of thousands of pipelines cheap to scrape.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// Step name.
    pub step: String,
    /// Plugin of the step.
    pub plugin: String,
    /// Action of the step.
    pub action: String,
}

/// `plugin`, `action`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// Plugin.
    pub plugin: String,
    /// Action.
    pub action: String,
}

/// `action`, `reason`: one autoscaler decision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `spawn`, `stop` or `hold`.
    pub action: &'static str,
    /// Why, from a fixed set (see the pool).
    pub reason: &'static str,
}

/// `level`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabel {
    /// Log level.
    pub level: &'static str,
}

/// `reason`: why log lines were dropped.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `queue_full` or `push_failed`.
    pub reason: &'static str,
}

/// `model`, `worker`: items one worker predicted with one model.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelWorkerLabels {
    /// The model's name.
    pub model: String,
    /// The worker's id.
    pub worker: String,
}

/// `model`, `scope`: inference time per batch or per item.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelScopeLabels {
    /// The model's name.
    pub model: String,
    /// `batch` or `item`.
    pub scope: &'static str,
}

/// `model`, `outcome`: inference tasks ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelOutcomeLabels {
    /// The model's name.
    pub model: String,
    /// `completed`, `failed`, `timeout` or `cancelled`.
    pub outcome: &'static str,
}

/// `model_type`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelTypeLabel {
    /// The model type, e.g. `random_forest`.
    pub model_type: &'static str,
}

/// `model`, `metric`: one quality figure of a model's latest version.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelMetricLabels {
    /// The model's name.
    pub model: String,
    /// `accuracy`, `f1_score`, `r2_score`, …
    pub metric: &'static str,
}

/// `model`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    /// The model's name.
    pub model: String,
}

/// `cluster`: one Kubernetes cluster workers run in.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    /// The cluster's name (`primary` or an additional cluster's `name`).
    pub cluster: String,
}

/// `cluster`, `reason`: why a worker Job's attempt ended badly.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobFailureLabels {
    /// The cluster.
    pub cluster: String,
    /// `oom_killed`, `evicted`, `image_pull`, `unschedulable`,
    /// `deadline_exceeded`, `deleted`, `node_lost`, `create_failed` or `failed`.
    pub reason: &'static str,
}

/// `cluster`, `verb`: one Kubernetes API call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubernetesCallLabels {
    /// The cluster.
    pub cluster: String,
    /// `create` or `delete` (the calls the backend makes itself).
    pub verb: &'static str,
}

/// `schedule`, `outcome`: what became of a schedule's slots.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleOutcomeLabels {
    /// The schedule's name.
    pub schedule: String,
    /// `fired`, `skipped_overlap`, `caught_up` or `missed`.
    pub outcome: &'static str,
}

/// `pipeline`, `outcome`: webhook requests answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookOutcomeLabels {
    /// The pipeline's id.
    pub pipeline: String,
    /// `accepted`, `bad_signature`, `missing_signature`, `replayed`,
    /// `disabled` or `invalid`.
    pub outcome: &'static str,
}

/// `version`, `commit`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// Crate version.
    pub version: &'static str,
    /// Git commit the binary was built from, or `unknown`.
    pub commit: &'static str,
}

/// The exemplar of a duration: the trace it belongs to.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    /// W3C trace id (32 hex digits).
    pub trace_id: String,
}

/// Every metric of a process (orchestrator or worker), registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    // Contract metrics (DESIGN.md).
    /// Tasks waiting to run (set at scrape time).
    pub queue_length: Gauge,
    /// Tasks put on the queue per second over the last minute.
    pub queue_enqueue_rate: FloatGauge,
    /// 1 while this orchestrator leads the replicas on its store (does the
    /// lease reaper, scaling and dispatch), else 0.
    pub leader: Gauge,
    /// Tasks taken off the queue per second over the last minute.
    pub queue_dequeue_rate: FloatGauge,
    /// Tasks put on the queue: submissions, retries and handed-back leases.
    pub queue_enqueued: Counter,
    /// Tasks leased off the queue.
    pub queue_dequeued: Counter,
    /// Time from becoming eligible to being leased.
    pub queue_wait_time: ExemplarHistogramFamily<TypeLabel>,
    /// Workers registered and heard from (set at scrape time).
    pub workers_active: Gauge,
    /// Local workers started.
    pub workers_spawned: Counter,
    /// Workers that died or vanished without being asked to stop.
    pub workers_failed: Counter,
    /// Lifetime of workers, observed when they leave.
    pub worker_duration: Histogram,
    /// Tasks that reached a final status.
    pub tasks: Family<StatusTypeLabels, Counter>,
    /// Failed attempts sent back to the queue.
    pub task_retries: Family<TypeLabel, Counter>,
    /// Run time of the final attempt of finished tasks.
    pub task_duration: ExemplarHistogramFamily<TypeLabel>,
    /// Storage connector operations.
    pub storage_operations: Family<StorageLabels, Counter>,
    /// Storage connector operation latency, retries included.
    pub storage_latency: HistogramFamily<StorageLabels>,
    /// Storage connector operations that failed.
    pub storage_errors: Family<StorageLabels, Counter>,
    // Operator metrics.
    /// Records stored, retrieved, updated or deleted by storage connectors.
    pub storage_records: Family<StorageLabels, Counter>,
    /// Transient storage failures retried.
    pub storage_retries: Family<StorageLabels, Counter>,
    /// Storage connector pool connections by state.
    pub storage_pool_connections: Family<PoolLabels, Gauge>,
    /// The most connections storage connector pools open.
    pub storage_pool_max: Family<BackendLabel, Gauge>,
    /// 1 when an active storage config's backend answered its last health
    /// check, else 0.
    pub storage_up: Family<StorageConfigLabels, Gauge>,
    /// Metadata store call latency by method.
    pub store_call_duration: HistogramFamily<StoreMethodLabels>,
    /// Metadata store calls that failed in the backend.
    pub store_errors: Family<StoreMethodLabels, Counter>,
    /// HTTP requests answered.
    pub http_requests: Family<HttpLabels, Counter>,
    /// HTTP request latency.
    pub http_request_duration: HistogramFamily<RouteLabels>,
    /// Submission to first start of a task.
    pub task_start_latency: ExemplarHistogramFamily<TypeLabel>,
    /// Leases that expired because their worker went silent.
    pub lease_expiries: Family<TypeLabel, Counter>,
    /// Pipeline executions that finished.
    pub pipeline_executions: Family<PipelineStatusLabels, Counter>,
    /// Pipeline execution time (sum of its steps).
    pub pipeline_duration: HistogramFamily<PipelineLabel>,
    /// Step run time.
    pub step_duration: HistogramFamily<StepLabels>,
    /// Steps whose action failed.
    pub plugin_errors: Family<ActionLabels, Counter>,
    /// Items predicted, by model and worker (the seeds' frame count).
    pub inference_items: Family<ModelWorkerLabels, Counter>,
    /// Inference time of each batch and, per item, each batch's time over
    /// its size.
    pub inference_duration: HistogramFamily<ModelScopeLabels>,
    /// Inference tasks ended, by outcome.
    pub inference_requests: Family<ModelOutcomeLabels, Counter>,
    /// Duration of completed trainings, by model type.
    pub model_training_duration: HistogramFamily<ModelTypeLabel>,
    /// The latest version's quality figures (set at scrape time).
    pub model_quality: Family<ModelMetricLabels, FloatGauge>,
    /// 1 when a model is degraded, else 0 (set at scrape time).
    pub model_degraded: Family<ModelLabel, Gauge>,
    /// Worker Jobs running per cluster (set by the Kubernetes backend).
    pub cluster_workers: Family<ClusterLabel, Gauge>,
    /// `maxWorkers` per cluster.
    pub cluster_max_workers: Family<ClusterLabel, Gauge>,
    /// 1 while a cluster's API answers and its circuit is closed, else 0.
    pub cluster_up: Family<ClusterLabel, Gauge>,
    /// Worker Job attempts that ended badly, by cluster and reason.
    pub kubernetes_job_failures: Family<JobFailureLabels, Counter>,
    /// Kubernetes API call latency by cluster and verb.
    pub kubernetes_api_duration: Family<KubernetesCallLabels, Histogram>,
    /// Workers the autoscaler wants.
    pub autoscaler_desired_workers: Gauge,
    /// Autoscaler decisions by action and reason.
    pub autoscaler_decisions: Family<DecisionLabels, Counter>,
    /// Schedule slots by schedule and outcome.
    pub schedule_fires: Family<ScheduleOutcomeLabels, Counter>,
    /// From a slot's due time (with its jitter) to its task's submission.
    pub schedule_lag: Histogram,
    /// Webhook requests by pipeline and outcome.
    pub webhook_requests: Family<WebhookOutcomeLabels, Counter>,
}

impl Metrics {
    /// A registry holding every metric, plus build info and process metrics.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            queue_length: Gauge::default(),
            queue_enqueue_rate: FloatGauge::default(),
            leader: Gauge::default(),
            queue_dequeue_rate: FloatGauge::default(),
            queue_enqueued: Counter::default(),
            queue_dequeued: Counter::default(),
            queue_wait_time: Family::new_with_constructor(task_histogram_with_exemplars),
            workers_active: Gauge::default(),
            workers_spawned: Counter::default(),
            workers_failed: Counter::default(),
            worker_duration: Histogram::new(WORKER_BUCKETS),
            tasks: Family::default(),
            task_retries: Family::default(),
            task_duration: Family::new_with_constructor(task_histogram_with_exemplars),
            storage_operations: Family::default(),
            storage_latency: Family::new_with_constructor(request_histogram),
            storage_errors: Family::default(),
            storage_records: Family::default(),
            storage_retries: Family::default(),
            storage_pool_connections: Family::default(),
            storage_pool_max: Family::default(),
            storage_up: Family::default(),
            store_call_duration: Family::new_with_constructor(request_histogram),
            store_errors: Family::default(),
            http_requests: Family::default(),
            http_request_duration: Family::new_with_constructor(request_histogram),
            task_start_latency: Family::new_with_constructor(task_histogram_with_exemplars),
            lease_expiries: Family::default(),
            pipeline_executions: Family::default(),
            pipeline_duration: Family::new_with_constructor(pipeline_histogram),
            step_duration: Family::new_with_constructor(task_histogram),
            plugin_errors: Family::default(),
            inference_items: Family::default(),
            inference_duration: Family::new_with_constructor(inference_histogram),
            inference_requests: Family::default(),
            model_training_duration: Family::new_with_constructor(task_histogram),
            model_quality: Family::default(),
            model_degraded: Family::default(),
            cluster_workers: Family::default(),
            cluster_max_workers: Family::default(),
            cluster_up: Family::default(),
            kubernetes_job_failures: Family::default(),
            kubernetes_api_duration: Family::new_with_constructor(kubernetes_api_histogram),
            autoscaler_desired_workers: Gauge::default(),
            autoscaler_decisions: Family::default(),
            schedule_fires: Family::default(),
            schedule_lag: Histogram::new(SCHEDULE_LAG_BUCKETS),
            webhook_requests: Family::default(),
            registry: Registry::default(),
        };
        // The contract's storage series exist from the start, at zero, so
        // dashboards and rate() see every backend before its first operation.
        for plugin in mimir_core::PluginType::ALL {
            for operation in ["store", "retrieve", "update", "delete"] {
                let labels = StorageLabels {
                    operation,
                    backend: plugin.as_str(),
                };
                let _ = m.storage_operations.get_or_create(&labels);
                let _ = m.storage_errors.get_or_create(&labels);
                let _ = m.storage_latency.get_or_create(&labels);
                let _ = m.storage_records.get_or_create(&labels);
                let _ = m.storage_retries.get_or_create(&labels);
            }
        }
        let r = &mut m.registry;
        r.register(
            "mimir_queue_length",
            "Tasks waiting to run",
            m.queue_length.clone(),
        );
        r.register(
            "mimir_leader",
            "1 while this orchestrator leads the replicas sharing its store, else 0",
            m.leader.clone(),
        );
        r.register(
            "mimir_queue_enqueue_rate",
            "Tasks added to the queue per second over the last minute",
            m.queue_enqueue_rate.clone(),
        );
        r.register(
            "mimir_queue_dequeue_rate",
            "Tasks taken off the queue per second over the last minute",
            m.queue_dequeue_rate.clone(),
        );
        r.register(
            "mimir_queue_enqueued",
            "Tasks added to the queue (submissions, retries, handed-back leases)",
            m.queue_enqueued.clone(),
        );
        r.register(
            "mimir_queue_dequeued",
            "Tasks taken off the queue by workers",
            m.queue_dequeued.clone(),
        );
        r.register(
            "mimir_queue_wait_time_seconds",
            "Time tasks spend in the queue, from eligible to leased",
            m.queue_wait_time.clone(),
        );
        r.register(
            "mimir_workers_active",
            "Workers registered and heard from",
            m.workers_active.clone(),
        );
        r.register(
            "mimir_workers_spawned",
            "Local workers started",
            m.workers_spawned.clone(),
        );
        r.register(
            "mimir_workers_failed",
            "Workers that died or went silent without being asked to stop",
            m.workers_failed.clone(),
        );
        r.register(
            "mimir_worker_duration_seconds",
            "Lifetime of workers, observed when they leave",
            m.worker_duration.clone(),
        );
        r.register(
            "mimir_tasks",
            "Tasks that reached a final status",
            m.tasks.clone(),
        );
        r.register(
            "mimir_task_retries",
            "Failed attempts sent back to the queue",
            m.task_retries.clone(),
        );
        r.register(
            "mimir_task_duration_seconds",
            "Run time of the final attempt of finished tasks",
            m.task_duration.clone(),
        );
        r.register(
            "mimir_storage_operations",
            "Storage connector operations by operation and backend",
            m.storage_operations.clone(),
        );
        r.register(
            "mimir_storage_latency_seconds",
            "Storage connector operation latency, retries included",
            m.storage_latency.clone(),
        );
        r.register(
            "mimir_storage_errors",
            "Storage connector operations that failed",
            m.storage_errors.clone(),
        );
        r.register(
            "mimir_storage_records",
            "Records stored, retrieved, updated or deleted by storage connectors",
            m.storage_records.clone(),
        );
        r.register(
            "mimir_storage_retries",
            "Transient storage connector failures retried",
            m.storage_retries.clone(),
        );
        r.register(
            "mimir_storage_pool_connections",
            "Storage connector pool connections by state (this process)",
            m.storage_pool_connections.clone(),
        );
        r.register(
            "mimir_storage_pool_connections_max",
            "The most connections storage connector pools open (this process)",
            m.storage_pool_max.clone(),
        );
        r.register(
            "mimir_storage_up",
            "1 when an active storage config's backend answered its last health check, else 0",
            m.storage_up.clone(),
        );
        r.register(
            "mimir_store_call_duration_seconds",
            "Metadata store call latency by method",
            m.store_call_duration.clone(),
        );
        r.register(
            "mimir_store_errors",
            "Metadata store calls that failed in the backend, by method",
            m.store_errors.clone(),
        );
        r.register(
            "mimir_http_requests",
            "HTTP requests answered, by route, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "mimir_http_request_duration_seconds",
            "HTTP request latency by route and method",
            m.http_request_duration.clone(),
        );
        r.register(
            "mimir_task_start_latency_seconds",
            "Time from submission to the first start of a task",
            m.task_start_latency.clone(),
        );
        r.register(
            "mimir_lease_expiries",
            "Leases that expired because their worker went silent",
            m.lease_expiries.clone(),
        );
        r.register(
            "mimir_pipeline_executions",
            "Pipeline executions that finished, by pipeline and status",
            m.pipeline_executions.clone(),
        );
        r.register(
            "mimir_pipeline_execution_duration_seconds",
            "Pipeline execution time (its steps) by pipeline",
            m.pipeline_duration.clone(),
        );
        r.register(
            "mimir_pipeline_step_duration_seconds",
            "Pipeline step run time by step, plugin and action",
            m.step_duration.clone(),
        );
        r.register(
            "mimir_plugin_errors",
            "Pipeline steps whose action failed",
            m.plugin_errors.clone(),
        );
        r.register(
            "mimir_inference_items",
            "Items predicted, by model and worker",
            m.inference_items.clone(),
        );
        r.register(
            "mimir_inference_duration_seconds",
            "Inference time by model, per batch (scope=batch) and per item (scope=item)",
            m.inference_duration.clone(),
        );
        r.register(
            "mimir_inference_requests",
            "Inference tasks ended, by model and outcome",
            m.inference_requests.clone(),
        );
        r.register(
            "mimir_model_training_duration_seconds",
            "Duration of completed trainings, by model type",
            m.model_training_duration.clone(),
        );
        r.register(
            "mimir_model_quality",
            "Quality figures of each model's latest version, by metric",
            m.model_quality.clone(),
        );
        r.register(
            "mimir_model_degraded",
            "1 when a quality check found the model's latest version degraded, else 0",
            m.model_degraded.clone(),
        );
        r.register(
            "mimir_cluster_workers",
            "Worker Jobs running in a Kubernetes cluster",
            m.cluster_workers.clone(),
        );
        r.register(
            "mimir_cluster_max_workers",
            "Most worker Jobs a Kubernetes cluster may run (maxWorkers)",
            m.cluster_max_workers.clone(),
        );
        r.register(
            "mimir_cluster_up",
            "1 while a Kubernetes cluster's API answers and its circuit breaker is closed",
            m.cluster_up.clone(),
        );
        r.register(
            "mimir_kubernetes_job_failures",
            "Worker Job attempts that ended badly, by cluster and reason",
            m.kubernetes_job_failures.clone(),
        );
        r.register(
            "mimir_kubernetes_api_request_duration_seconds",
            "Kubernetes API call latency by cluster and verb",
            m.kubernetes_api_duration.clone(),
        );
        r.register(
            "mimir_autoscaler_desired_workers",
            "Workers the autoscaler wants",
            m.autoscaler_desired_workers.clone(),
        );
        r.register(
            "mimir_autoscaler_decisions",
            "Autoscaler decisions by action and reason",
            m.autoscaler_decisions.clone(),
        );
        r.register(
            "mimir_schedule_fires",
            "Schedule slots by schedule and outcome (fired, skipped_overlap, caught_up, missed)",
            m.schedule_fires.clone(),
        );
        r.register(
            "mimir_schedule_lag_seconds",
            "From a schedule slot's due time to its task's submission",
            m.schedule_lag.clone(),
        );
        r.register(
            "mimir_webhook_requests",
            "Pipeline webhook requests by pipeline and outcome",
            m.webhook_requests.clone(),
        );
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: crate::VERSION,
                commit: crate::COMMIT,
            })
            .set(1);
        r.register(
            "mimir_build_info",
            "Version and commit of this binary",
            build,
        );
        r.register_collector(Box::new(ProcessCollector));
        r.register_collector(Box::new(DroppedLogLines));
        // Every task series exists from the start at zero, so `rate()`,
        // `increase()` and alerts see the first event as an increase.
        for t in WorkTaskType::ALL {
            let _ = TaskSeries::new(&m, t);
        }
        m
    }

    /// Records one storage connector operation (after its retries).
    pub fn record_storage(
        &self,
        operation: &'static str,
        backend: &'static str,
        seconds: f64,
        records: u64,
        failed: bool,
    ) {
        let labels = StorageLabels { operation, backend };
        self.storage_operations.get_or_create(&labels).inc();
        self.storage_latency.get_or_create(&labels).observe(seconds);
        if records > 0 {
            self.storage_records.get_or_create(&labels).inc_by(records);
        }
        if failed {
            self.storage_errors.get_or_create(&labels).inc();
        }
    }

    /// Records the items `worker` predicted with `model` (its name) and each
    /// batch's time, per batch and per item. The orchestrator calls it with a
    /// finished task's reported summary, a worker with its own run's.
    pub fn record_inference(&self, model: &str, worker: &str, summary: &InferenceSummary) {
        self.inference_items
            .get_or_create(&ModelWorkerLabels {
                model: model.to_string(),
                worker: worker.to_string(),
            })
            .inc_by(summary.items);
        // One family guard at a time: a second `get_or_create` on the same
        // family while a guard is held deadlocks when it must insert.
        for (scope, per_item) in [("batch", false), ("item", true)] {
            let histogram = self.inference_duration.get_or_create(&ModelScopeLabels {
                model: model.to_string(),
                scope,
            });
            for &(size, seconds) in &summary.batches {
                if !per_item {
                    histogram.observe(seconds);
                } else if size > 0 {
                    histogram.observe(seconds / size as f64);
                }
            }
        }
    }

    /// Records an inference task of `model` that ended with `outcome`
    /// (`completed`, `failed`, `timeout` or `cancelled`).
    pub fn record_inference_request(&self, model: &str, outcome: &'static str) {
        self.inference_requests
            .get_or_create(&ModelOutcomeLabels {
                model: model.to_string(),
                outcome,
            })
            .inc();
    }

    /// Records a completed training of a `model_type` model.
    pub fn record_training(&self, model_type: &'static str, seconds: f64) {
        self.model_training_duration
            .get_or_create(&ModelTypeLabel { model_type })
            .observe(seconds);
    }

    /// Sets the quality and degraded gauges from the registry's models,
    /// dropping the series of models no longer there. The inference series
    /// of every model with a version start at zero, per outcome, scope and
    /// `inference_workers` (the workers that may run its inferences): a
    /// counter that appears only with its first increment loses that
    /// increment to `rate()`.
    pub fn set_model_gauges(&self, models: &[mimir_core::MlModel], inference_workers: &[String]) {
        self.model_quality.clear();
        self.model_degraded.clear();
        for model in models {
            if !model.versions.is_empty() {
                for outcome in ["completed", "failed", "timeout", "cancelled"] {
                    let _ = self.inference_requests.get_or_create(&ModelOutcomeLabels {
                        model: model.name.clone(),
                        outcome,
                    });
                }
                for scope in ["batch", "item"] {
                    let _ = self.inference_duration.get_or_create(&ModelScopeLabels {
                        model: model.name.clone(),
                        scope,
                    });
                }
                for worker in inference_workers {
                    let _ = self.inference_items.get_or_create(&ModelWorkerLabels {
                        model: model.name.clone(),
                        worker: worker.clone(),
                    });
                }
            }
            if let Some(latest) = model.versions.last() {
                for (metric, value) in latest.performance_metrics.figures() {
                    self.model_quality
                        .get_or_create(&ModelMetricLabels {
                            model: model.name.clone(),
                            metric,
                        })
                        .set(value);
                }
            }
            let degraded = model.status == mimir_core::ModelStatus::Degraded;
            self.model_degraded
                .get_or_create(&ModelLabel {
                    model: model.name.clone(),
                })
                .set(i64::from(degraded));
        }
    }

    /// Records a finished execution of `pipeline`; see [`PipelineSeries::record`].
    /// A recorder that sees many executions keeps a [`PipelineSeries`] instead.
    pub fn record_pipeline(&self, pipeline: &str, completed: bool, steps: &[serde_json::Value]) {
        PipelineSeries::new(self, pipeline).record(self, completed, steps);
    }

    /// The registry, for custom collectors and encoding.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Adds a collector that reads its values at scrape time.
    pub fn register_collector(
        &mut self,
        collector: Box<dyn prometheus_client::collector::Collector>,
    ) {
        self.registry.register_collector(collector);
    }
}

/// `mimir_log_messages_dropped_total{level}`, read from the log rate limit,
/// and the Loki sink's `mimir_loki_lines_sent_total` and
/// `mimir_loki_lines_dropped_total{reason}` (at zero when the sink is off).
#[derive(Debug)]
struct DroppedLogLines;

impl prometheus_client::collector::Collector for DroppedLogLines {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let (warn, error) = crate::rate_limit::dropped();
        let mut family = encoder.encode_descriptor(
            "mimir_log_messages_dropped",
            "Log lines dropped by the per-call-site rate limit",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (level, value) in [("warn", warn), ("error", error)] {
            let labels = LevelLabel { level };
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let sent = ConstCounter::new(crate::loki::sent());
        sent.encode(encoder.encode_descriptor(
            "mimir_loki_lines_sent",
            "Log lines pushed to Loki",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?)?;
        let (queue_full, push_failed) = crate::loki::dropped();
        let mut dropped = encoder.encode_descriptor(
            "mimir_loki_lines_dropped",
            "Log lines not delivered to Loki: the sink's queue was full, or the push failed after retries",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (reason, value) in [("queue_full", queue_full), ("push_failed", push_failed)] {
            let labels = ReasonLabel { reason };
            ConstCounter::new(value).encode(dropped.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn inference_counts_items_per_worker_and_times_per_batch_and_item() {
        let m = Metrics::new();
        let summary = InferenceSummary {
            items: 30,
            batches: vec![(20, 0.2), (10, 0.05)],
        };
        m.record_inference("churn", "w1", &summary);
        m.record_inference("churn", "w2", &summary);
        m.record_inference_request("churn", "completed");
        m.record_training("random_forest", 2.5);
        let text = crate::render(m.registry(), crate::Format::Prometheus);
        for (prefix, value) in [
            (
                "mimir_inference_items_total{model=\"churn\",worker=\"w1\"}",
                "30",
            ),
            (
                "mimir_inference_items_total{model=\"churn\",worker=\"w2\"}",
                "30",
            ),
            (
                "mimir_inference_duration_seconds_count{model=\"churn\",scope=\"batch\"}",
                "4",
            ),
            (
                "mimir_inference_duration_seconds_count{model=\"churn\",scope=\"item\"}",
                "4",
            ),
            (
                "mimir_inference_requests_total{model=\"churn\",outcome=\"completed\"}",
                "1",
            ),
            (
                "mimir_model_training_duration_seconds_sum{model_type=\"random_forest\"}",
                "2.5",
            ),
        ] {
            let found = line(&text, prefix).unwrap_or_else(|| panic!("{prefix} in\n{text}"));
            assert_eq!(found.rsplit(' ').next(), Some(value), "{found}");
        }
        // Per item: 0.2 s / 20 and 0.05 s / 10, twice.
        let sum = line(
            &text,
            "mimir_inference_duration_seconds_sum{model=\"churn\",scope=\"item\"}",
        )
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
        assert!((sum - 0.03).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn model_gauges_follow_the_registry() {
        let m = Metrics::new();
        let now = chrono::Utc::now();
        let version = mimir_core::ModelVersion {
            version: 1,
            checksum: "sha256:00".into(),
            size_bytes: 1,
            artifact_store: "data".into(),
            feature_columns: Vec::new(),
            label_column: String::new(),
            performance_metrics: mimir_core::PerformanceMetrics {
                accuracy: Some(0.75),
                ..Default::default()
            },
            training_config: Default::default(),
            training_task_id: None,
            training_duration_ms: None,
            created_at: now,
        };
        let model = mimir_core::MlModel {
            id: "m1".into(),
            project_id: "p".into(),
            name: "churn".into(),
            model_type: mimir_core::ModelType::RandomForest,
            status: mimir_core::ModelStatus::Degraded,
            status_reason: String::new(),
            training_config: Default::default(),
            performance_metrics: Default::default(),
            versions: vec![version],
            training_task_id: None,
            created_at: now,
            updated_at: now,
        };
        m.set_model_gauges(std::slice::from_ref(&model), &["w1".to_string()]);
        let text = crate::render(m.registry(), crate::Format::Prometheus);
        // The inference series start at zero before the first inference.
        assert!(
            text.contains("mimir_inference_items_total{model=\"churn\",worker=\"w1\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("mimir_inference_requests_total{model=\"churn\",outcome=\"failed\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("mimir_model_quality{model=\"churn\",metric=\"accuracy\"} 0.75"),
            "{text}"
        );
        assert!(
            text.contains("mimir_model_degraded{model=\"churn\"} 1"),
            "{text}"
        );
        m.set_model_gauges(&[], &[]);
        let text = crate::render(m.registry(), crate::Format::Prometheus);
        assert!(
            !text.contains("mimir_model_quality{model=\"churn\"")
                && !text.contains("mimir_model_degraded{model=\"churn\""),
            "a deleted model's gauges go"
        );
    }
}
