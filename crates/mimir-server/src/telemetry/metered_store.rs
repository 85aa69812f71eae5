//! A [`Store`] that measures every call of the metadata store it wraps:
//! `mimir_store_call_duration_seconds` and `mimir_store_errors_total` by
//! method. (The contract's `mimir_storage_*` metrics are about storage
//! connectors, not this store.) Queue length, counts and lease renewals are
//! measured too: the embedded store answers them from memory, a shared one
//! from the database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mimir_core::{
    Attempt, MlModel, ModelChange, Pipeline, Priority, Project, Schedule, StorageConfig, WorkTask,
    WorkTaskResult, WorkTaskStatus,
};
use mimir_store::{
    Checkpoints, DueSchedule, LeaseRequest, ListPage, ListQuery, Renewal, ScheduleAdvance,
    ScheduleFilter, Store, StoreError, TaskCounts, Term, WebhookDelivery,
};
use mimir_telemetry::Metrics;
use mimir_telemetry::metrics::StoreMethodLabels;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;
use uuid::Uuid;

/// The store methods measured, with their contract operation.
#[derive(Debug, Clone, Copy)]
enum Method {
    Submit,
    Get,
    Attempts,
    List,
    Cancel,
    MostUrgent,
    Lease,
    Start,
    Finish,
    FinishMany,
    Release,
    Place,
    QueuePosition,
    ExpireLeases,
    QueueLength,
    Counts,
    Renew,
    Forfeit,
    Holds,
    LeasesByWorker,
    NextEligibleAt,
    Lead,
    CreateProject,
    GetProject,
    ListProjects,
    DeleteProject,
    PutPipeline,
    GetPipeline,
    ListPipelines,
    DeletePipeline,
    PutStorageConfig,
    GetStorageConfig,
    ListStorageConfigs,
    DeleteStorageConfig,
    PutModel,
    GetModel,
    ListModels,
    DeleteModel,
    ChangeModel,
    PutSchedule,
    GetSchedule,
    ListSchedules,
    DeleteSchedule,
    DueSchedules,
    NextScheduleDue,
    AdvanceSchedules,
    GetCheckpoints,
    PutCheckpoints,
    SubmitWebhook,
    Ping,
}

impl Method {
    const ALL: [Method; 50] = [
        Method::Submit,
        Method::Get,
        Method::Attempts,
        Method::List,
        Method::Cancel,
        Method::MostUrgent,
        Method::Lease,
        Method::Start,
        Method::Finish,
        Method::FinishMany,
        Method::Release,
        Method::Place,
        Method::QueuePosition,
        Method::ExpireLeases,
        Method::QueueLength,
        Method::Counts,
        Method::Renew,
        Method::Forfeit,
        Method::Holds,
        Method::LeasesByWorker,
        Method::NextEligibleAt,
        Method::Lead,
        Method::CreateProject,
        Method::GetProject,
        Method::ListProjects,
        Method::DeleteProject,
        Method::PutPipeline,
        Method::GetPipeline,
        Method::ListPipelines,
        Method::DeletePipeline,
        Method::PutStorageConfig,
        Method::GetStorageConfig,
        Method::ListStorageConfigs,
        Method::DeleteStorageConfig,
        Method::PutModel,
        Method::GetModel,
        Method::ListModels,
        Method::DeleteModel,
        Method::ChangeModel,
        Method::PutSchedule,
        Method::GetSchedule,
        Method::ListSchedules,
        Method::DeleteSchedule,
        Method::DueSchedules,
        Method::NextScheduleDue,
        Method::AdvanceSchedules,
        Method::GetCheckpoints,
        Method::PutCheckpoints,
        Method::SubmitWebhook,
        Method::Ping,
    ];

    fn name(self) -> &'static str {
        match self {
            Method::Submit => "submit",
            Method::Get => "get",
            Method::Attempts => "attempts",
            Method::List => "list",
            Method::Cancel => "cancel",
            Method::MostUrgent => "most_urgent",
            Method::Lease => "lease",
            Method::Start => "start",
            Method::Finish => "finish",
            Method::FinishMany => "finish_many",
            Method::Release => "release",
            Method::Place => "place",
            Method::QueuePosition => "queue_position",
            Method::ExpireLeases => "expire_leases",
            Method::QueueLength => "queue_length",
            Method::Counts => "counts",
            Method::Renew => "renew",
            Method::Forfeit => "forfeit",
            Method::Holds => "holds",
            Method::LeasesByWorker => "leases_by_worker",
            Method::NextEligibleAt => "next_eligible_at",
            Method::Lead => "lead",
            Method::CreateProject => "create_project",
            Method::GetProject => "get_project",
            Method::ListProjects => "list_projects",
            Method::DeleteProject => "delete_project",
            Method::PutPipeline => "put_pipeline",
            Method::GetPipeline => "get_pipeline",
            Method::ListPipelines => "list_pipelines",
            Method::DeletePipeline => "delete_pipeline",
            Method::PutStorageConfig => "put_storage_config",
            Method::GetStorageConfig => "get_storage_config",
            Method::ListStorageConfigs => "list_storage_configs",
            Method::DeleteStorageConfig => "delete_storage_config",
            Method::PutModel => "put_model",
            Method::GetModel => "get_model",
            Method::ListModels => "list_models",
            Method::DeleteModel => "delete_model",
            Method::ChangeModel => "change_model",
            Method::PutSchedule => "put_schedule",
            Method::GetSchedule => "get_schedule",
            Method::ListSchedules => "list_schedules",
            Method::DeleteSchedule => "delete_schedule",
            Method::DueSchedules => "due_schedules",
            Method::NextScheduleDue => "next_schedule_due",
            Method::AdvanceSchedules => "advance_schedules",
            Method::GetCheckpoints => "get_checkpoints",
            Method::PutCheckpoints => "put_checkpoints",
            Method::SubmitWebhook => "submit_webhook",
            Method::Ping => "ping",
        }
    }
}

/// The metric handles of one method, looked up once.
struct Handles {
    errors: Counter,
    call: Histogram,
}

/// The measuring wrapper.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    handles: Vec<Handles>,
}

impl MeteredStore {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn Store>, metrics: &Metrics) -> MeteredStore {
        let backend = inner.backend();
        let handles = Method::ALL
            .iter()
            .map(|method| {
                let labels = StoreMethodLabels {
                    method: method.name(),
                    backend,
                };
                Handles {
                    errors: metrics.store_errors.get_or_create(&labels).clone(),
                    call: metrics.store_call_duration.get_or_create(&labels).clone(),
                }
            })
            .collect();
        MeteredStore { inner, handles }
    }

    async fn measure<T>(
        &self,
        method: Method,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        let seconds = started.elapsed().as_secs_f64();
        let h = &self.handles[method as usize];
        h.call.observe(seconds);
        if let Err(error) = &result
            && error.is_backend_failure()
        {
            h.errors.inc();
        }
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    async fn submit(&self, tasks: Vec<WorkTask>) -> Result<Vec<WorkTask>, StoreError> {
        self.measure(Method::Submit, self.inner.submit(tasks)).await
    }
    async fn get(&self, id: Uuid) -> Result<Option<WorkTask>, StoreError> {
        self.measure(Method::Get, self.inner.get(id)).await
    }
    async fn attempts(&self, id: Uuid) -> Result<Option<Vec<Attempt>>, StoreError> {
        self.measure(Method::Attempts, self.inner.attempts(id))
            .await
    }
    async fn list(&self, query: ListQuery) -> Result<ListPage, StoreError> {
        self.measure(Method::List, self.inner.list(query)).await
    }
    async fn cancel(&self, id: Uuid, at: DateTime<Utc>) -> Result<WorkTask, StoreError> {
        self.measure(Method::Cancel, self.inner.cancel(id, at))
            .await
    }
    async fn lead(
        &self,
        candidate: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Term>, StoreError> {
        self.measure(Method::Lead, self.inner.lead(candidate, ttl))
            .await
    }
    async fn resign(&self, candidate: &str, term: Term) -> Result<(), StoreError> {
        self.measure(Method::Lead, self.inner.resign(candidate, term))
            .await
    }
    async fn queue_length(&self) -> Result<usize, StoreError> {
        self.measure(Method::QueueLength, self.inner.queue_length())
            .await
    }
    async fn most_urgent(
        &self,
        min: Priority,
        limit: usize,
    ) -> Result<(usize, Vec<WorkTask>), StoreError> {
        self.measure(Method::MostUrgent, self.inner.most_urgent(min, limit))
            .await
    }
    async fn counts(&self) -> Result<TaskCounts, StoreError> {
        self.measure(Method::Counts, self.inner.counts()).await
    }
    async fn lease(&self, request: LeaseRequest) -> Result<Vec<WorkTask>, StoreError> {
        self.measure(Method::Lease, self.inner.lease(request)).await
    }
    async fn start(
        &self,
        worker_id: &str,
        started: Vec<(Uuid, u32)>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.measure(Method::Start, self.inner.start(worker_id, started, at))
            .await
    }
    async fn finish(
        &self,
        id: Uuid,
        worker_id: Option<String>,
        report: WorkTaskResult,
        at: DateTime<Utc>,
    ) -> Result<WorkTask, StoreError> {
        self.measure(Method::Finish, self.inner.finish(id, worker_id, report, at))
            .await
    }
    async fn finish_many(
        &self,
        worker_id: &str,
        reports: Vec<WorkTaskResult>,
        at: DateTime<Utc>,
    ) -> Result<Vec<Result<WorkTaskStatus, StoreError>>, StoreError> {
        self.measure(
            Method::FinishMany,
            self.inner.finish_many(worker_id, reports, at),
        )
        .await
    }
    async fn release(&self, worker_id: &str, tasks: Vec<(Uuid, u32)>) -> Result<(), StoreError> {
        self.measure(Method::Release, self.inner.release(worker_id, tasks))
            .await
    }
    async fn place(
        &self,
        placements: Vec<mimir_store::Placement>,
        term: Term,
    ) -> Result<(), StoreError> {
        self.measure(Method::Place, self.inner.place(placements, term))
            .await
    }
    async fn queue_position(
        &self,
        id: Uuid,
    ) -> Result<Option<mimir_core::explain::QueuePosition>, StoreError> {
        self.measure(Method::QueuePosition, self.inner.queue_position(id))
            .await
    }
    async fn renew(&self, worker_id: &str, held: &[(Uuid, u32)]) -> Result<Renewal, StoreError> {
        self.measure(Method::Renew, self.inner.renew(worker_id, held))
            .await
    }
    async fn expire_leases(&self, at: DateTime<Utc>, term: Term) -> Result<usize, StoreError> {
        self.measure(Method::ExpireLeases, self.inner.expire_leases(at, term))
            .await
    }
    async fn forfeit(&self, worker_id: &str) -> Result<(), StoreError> {
        self.measure(Method::Forfeit, self.inner.forfeit(worker_id))
            .await
    }
    async fn holds(&self, worker_id: &str, id: Uuid, attempt: u32) -> Result<bool, StoreError> {
        self.measure(Method::Holds, self.inner.holds(worker_id, id, attempt))
            .await
    }
    async fn leases_by_worker(&self) -> Result<HashMap<String, Vec<Uuid>>, StoreError> {
        self.measure(Method::LeasesByWorker, self.inner.leases_by_worker())
            .await
    }
    fn queue_signal(&self) -> Arc<Notify> {
        self.inner.queue_signal()
    }
    async fn next_eligible_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.measure(Method::NextEligibleAt, self.inner.next_eligible_at())
            .await
    }
    async fn create_project(&self, project: Project) -> Result<Project, StoreError> {
        self.measure(Method::CreateProject, self.inner.create_project(project))
            .await
    }
    async fn get_project(&self, id: &str) -> Result<Option<Project>, StoreError> {
        self.measure(Method::GetProject, self.inner.get_project(id))
            .await
    }
    async fn list_projects(
        &self,
        after: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> Result<Vec<mimir_core::ProjectListing>, StoreError> {
        self.measure(Method::ListProjects, self.inner.list_projects(after, limit))
            .await
    }
    async fn delete_project(&self, id: &str) -> Result<(), StoreError> {
        self.measure(Method::DeleteProject, self.inner.delete_project(id))
            .await
    }
    async fn put_pipeline(&self, pipeline: Pipeline, create: bool) -> Result<Pipeline, StoreError> {
        self.measure(
            Method::PutPipeline,
            self.inner.put_pipeline(pipeline, create),
        )
        .await
    }
    async fn get_pipeline(&self, id: &str) -> Result<Option<Pipeline>, StoreError> {
        self.measure(Method::GetPipeline, self.inner.get_pipeline(id))
            .await
    }
    async fn list_pipelines(
        &self,
        project_id: Option<String>,
    ) -> Result<Vec<Pipeline>, StoreError> {
        self.measure(Method::ListPipelines, self.inner.list_pipelines(project_id))
            .await
    }
    async fn delete_pipeline(&self, id: &str) -> Result<(), StoreError> {
        self.measure(Method::DeletePipeline, self.inner.delete_pipeline(id))
            .await
    }
    async fn put_storage_config(
        &self,
        config: StorageConfig,
        create: bool,
    ) -> Result<StorageConfig, StoreError> {
        self.measure(
            Method::PutStorageConfig,
            self.inner.put_storage_config(config, create),
        )
        .await
    }
    async fn get_storage_config(&self, id: &str) -> Result<Option<StorageConfig>, StoreError> {
        self.measure(Method::GetStorageConfig, self.inner.get_storage_config(id))
            .await
    }
    async fn list_storage_configs(
        &self,
        project_id: Option<String>,
    ) -> Result<Vec<StorageConfig>, StoreError> {
        self.measure(
            Method::ListStorageConfigs,
            self.inner.list_storage_configs(project_id),
        )
        .await
    }
    async fn delete_storage_config(&self, id: &str) -> Result<(), StoreError> {
        self.measure(
            Method::DeleteStorageConfig,
            self.inner.delete_storage_config(id),
        )
        .await
    }
    async fn put_model(&self, model: MlModel, create: bool) -> Result<MlModel, StoreError> {
        self.measure(Method::PutModel, self.inner.put_model(model, create))
            .await
    }
    async fn get_model(&self, id: &str) -> Result<Option<MlModel>, StoreError> {
        self.measure(Method::GetModel, self.inner.get_model(id))
            .await
    }
    async fn list_models(&self, project_id: Option<String>) -> Result<Vec<MlModel>, StoreError> {
        self.measure(Method::ListModels, self.inner.list_models(project_id))
            .await
    }
    async fn delete_model(&self, id: &str) -> Result<(), StoreError> {
        self.measure(Method::DeleteModel, self.inner.delete_model(id))
            .await
    }
    async fn change_model(&self, id: &str, change: ModelChange) -> Result<MlModel, StoreError> {
        self.measure(Method::ChangeModel, self.inner.change_model(id, change))
            .await
    }
    async fn put_schedule(&self, schedule: Schedule, create: bool) -> Result<Schedule, StoreError> {
        self.measure(
            Method::PutSchedule,
            self.inner.put_schedule(schedule, create),
        )
        .await
    }
    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        self.measure(Method::GetSchedule, self.inner.get_schedule(id))
            .await
    }
    async fn list_schedules(
        &self,
        filter: ScheduleFilter,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<Schedule>, StoreError> {
        self.measure(
            Method::ListSchedules,
            self.inner.list_schedules(filter, after, limit),
        )
        .await
    }
    async fn delete_schedule(&self, id: &str) -> Result<(), StoreError> {
        self.measure(Method::DeleteSchedule, self.inner.delete_schedule(id))
            .await
    }
    async fn due_schedules(
        &self,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueSchedule>, StoreError> {
        self.measure(Method::DueSchedules, self.inner.due_schedules(at, limit))
            .await
    }
    async fn next_schedule_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.measure(Method::NextScheduleDue, self.inner.next_schedule_due())
            .await
    }
    async fn advance_schedules(
        &self,
        advances: Vec<ScheduleAdvance>,
        term: Option<Term>,
    ) -> Result<Vec<bool>, StoreError> {
        self.measure(
            Method::AdvanceSchedules,
            self.inner.advance_schedules(advances, term),
        )
        .await
    }
    async fn get_checkpoints(&self, pipeline_id: &str) -> Result<Option<Checkpoints>, StoreError> {
        self.measure(
            Method::GetCheckpoints,
            self.inner.get_checkpoints(pipeline_id),
        )
        .await
    }
    async fn put_checkpoints(
        &self,
        pipeline_id: &str,
        values: Map<String, Value>,
        replace: bool,
        at: DateTime<Utc>,
    ) -> Result<Checkpoints, StoreError> {
        self.measure(
            Method::PutCheckpoints,
            self.inner.put_checkpoints(pipeline_id, values, replace, at),
        )
        .await
    }
    async fn submit_webhook(
        &self,
        delivery: WebhookDelivery,
        task: WorkTask,
    ) -> Result<Option<WorkTask>, StoreError> {
        self.measure(
            Method::SubmitWebhook,
            self.inner.submit_webhook(delivery, task),
        )
        .await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.measure(Method::Ping, self.inner.ping()).await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}
