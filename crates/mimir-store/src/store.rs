//! The `Store` trait: what the orchestrator needs from a metadata backend.

use crate::{
    Checkpoints, DueSchedule, ListPage, ListQuery, ScheduleAdvance, ScheduleFilter, StoreError,
    TaskCounts, WebhookDelivery,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mimir_core::{
    Attempt, MlModel, ModelChange, Pipeline, Priority, Project, ProjectListing, Schedule,
    StorageConfig, WorkTask, WorkTaskResult, WorkTaskStatus, WorkTaskType,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// A worker asking for tasks.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    /// Who asks.
    pub worker_id: String,
    /// Most tasks to hand out.
    pub max: usize,
    /// Only these types; `None` for any.
    pub types: Option<Vec<WorkTaskType>>,
    /// Most tasks of a type running at once, across all workers.
    pub limits: HashMap<WorkTaskType, usize>,
    /// Only this task, whatever its place in the queue (a one-task worker).
    pub only: Option<Uuid>,
    /// Now.
    pub at: DateTime<Utc>,
}

/// Where a leased attempt runs: a Kubernetes Job in a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The task.
    pub id: Uuid,
    /// Its current attempt; a placement for any other attempt is ignored.
    pub attempt: u32,
    /// The worker that now holds the lease (the Job's worker id).
    pub worker_id: String,
    /// The cluster running it.
    pub cluster_name: String,
    /// The Job running it.
    pub kubernetes_job_name: String,
}

/// A leadership term among the processes sharing a store: leader-only writes
/// carry it, and a store refuses them once a newer term began, so a
/// deposed leader that has not noticed yet cannot write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

/// What a heartbeat learns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Renewal {
    /// Tasks whose lease the worker no longer holds: it must stop them.
    pub lost: Vec<Uuid>,
    /// Tasks cancelled by a user: the worker must stop them.
    pub cancelled: Vec<Uuid>,
}

/// A durable home for work tasks and their queue.
///
/// Writes return only once durable. Backends group concurrent writes into shared
/// transactions, so callers may issue many small writes at once.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short backend name for metrics and logs (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Whether other processes use this store at the same time (a shared
    /// database). What one process sees alone, such as a worker gone silent
    /// at it, then says nothing of the others: that worker may be talking
    /// to another replica.
    fn shared(&self) -> bool;

    /// Stores new queued tasks in one transaction and queues them; returns them
    /// as stored, in the same order.
    async fn submit(&self, tasks: Vec<WorkTask>) -> Result<Vec<WorkTask>, StoreError>;

    /// One task.
    async fn get(&self, id: Uuid) -> Result<Option<WorkTask>, StoreError>;

    /// The ended attempts of a task, oldest first; `None` when there is no such task.
    async fn attempts(&self, id: Uuid) -> Result<Option<Vec<Attempt>>, StoreError>;

    /// A page of tasks, newest first.
    async fn list(&self, query: ListQuery) -> Result<ListPage, StoreError>;

    /// Cancels a task; a queued task leaves the queue at once.
    async fn cancel(&self, id: Uuid, at: DateTime<Utc>) -> Result<WorkTask, StoreError>;

    /// Tasks waiting to run: queued (including those in retry backoff) and
    /// leased by a worker that has not reported them started (`scheduled`).
    /// The one figure the API, `mimir_queue_length`, the CLI and the
    /// autoscaler mean by "waiting".
    async fn queue_length(&self) -> Result<usize, StoreError>;

    /// Waiting tasks whose priority is at least `min`, how many in all, and up
    /// to `limit` of them, most urgent first.
    async fn most_urgent(
        &self,
        min: Priority,
        limit: usize,
    ) -> Result<(usize, Vec<WorkTask>), StoreError>;

    /// Task counts by type and status.
    async fn counts(&self) -> Result<TaskCounts, StoreError>;

    /// Hands up to `max` eligible tasks to a worker, most urgent first, each
    /// under a new attempt and lease (status `scheduled`).
    async fn lease(&self, request: LeaseRequest) -> Result<Vec<WorkTask>, StoreError>;

    /// Records that leased tasks began running (status `executing`); entries
    /// whose attempt is no longer current are ignored.
    async fn start(
        &self,
        worker_id: &str,
        started: Vec<(Uuid, u32)>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records the end of the current attempt: completes the task, or retries or
    /// fails it by the retry rules. A result for an old attempt is refused.
    async fn finish(
        &self,
        id: Uuid,
        worker_id: Option<String>,
        report: WorkTaskResult,
        at: DateTime<Utc>,
    ) -> Result<WorkTask, StoreError>;

    /// Records many attempt ends of one worker in one write; each report is
    /// accepted (the task's new status) or refused on its own.
    async fn finish_many(
        &self,
        worker_id: &str,
        reports: Vec<WorkTaskResult>,
        at: DateTime<Utc>,
    ) -> Result<Vec<Result<WorkTaskStatus, StoreError>>, StoreError>;

    /// Gives back leased tasks that never started, keeping their queue place.
    async fn release(&self, worker_id: &str, tasks: Vec<(Uuid, u32)>) -> Result<(), StoreError>;

    /// Renews the leases a worker holds and tells it which tasks it must
    /// stop. A backend shared by several processes stores the new expiry
    /// with the task; a single-process one may keep it in memory.
    async fn renew(&self, worker_id: &str, held: &[(Uuid, u32)]) -> Result<Renewal, StoreError>;

    /// Ends every attempt whose lease has expired (retried or failed by the
    /// retry rules); returns how many. A leader-only write: refused with
    /// [`StoreError::Deposed`] once `term` is no longer the current one.
    async fn expire_leases(&self, at: DateTime<Utc>, term: Term) -> Result<usize, StoreError>;

    /// Takes the leadership for `ttl`, or keeps it when `candidate` holds it
    /// already, and answers the term held; `None` while another candidate
    /// leads. A new leader gets a higher term than every earlier one. A
    /// store only one process can open (SQLite) always answers its one term.
    async fn lead(
        &self,
        candidate: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Term>, StoreError>;

    /// Gives up the leadership if `candidate` holds it in `term` (a clean
    /// shutdown), so another process takes over at once.
    async fn resign(&self, candidate: &str, term: Term) -> Result<(), StoreError>;

    /// Hands the leases of scheduled attempts to the workers that will run
    /// them and records where they run (`cluster_name`,
    /// `kubernetes_job_name`). Placements of attempts that are no longer
    /// current, or of tasks no longer scheduled, are ignored. A leader-only
    /// write, as [`Store::expire_leases`].
    async fn place(&self, placements: Vec<Placement>, term: Term) -> Result<(), StoreError>;

    /// Where a queued task stands in the queue; `None` when it is not queued
    /// (or waits out a retry backoff).
    async fn queue_position(
        &self,
        id: Uuid,
    ) -> Result<Option<mimir_core::explain::QueuePosition>, StoreError>;

    /// Lets every lease of a worker known to be gone expire now.
    async fn forfeit(&self, worker_id: &str) -> Result<(), StoreError>;

    /// Whether `worker_id` holds the lease of attempt `attempt` of task `id`.
    async fn holds(&self, worker_id: &str, id: Uuid, attempt: u32) -> Result<bool, StoreError>;

    /// Tasks held under a lease, by worker.
    async fn leases_by_worker(&self) -> Result<HashMap<String, Vec<Uuid>>, StoreError>;

    /// Signalled in this process whenever a task may have entered the queue,
    /// in this process or (for a shared backend) in another one, so
    /// long-polling leases wake. Waiters still poll now and then: a signal
    /// from another process can be late.
    fn queue_signal(&self) -> Arc<Notify>;

    /// When the earliest task in retry backoff becomes eligible.
    async fn next_eligible_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Registers a project; refused when its id is taken.
    async fn create_project(&self, project: Project) -> Result<Project, StoreError>;
    /// One project.
    async fn get_project(&self, id: &str) -> Result<Option<Project>, StoreError>;
    /// Up to `limit` projects, oldest first, after the one created at the
    /// given time with the given id (the last of the previous page): the
    /// registered ones and every other `project_id` a task, pipeline or
    /// storage config uses (created when first used), each with its task and
    /// pipeline counts.
    async fn list_projects(
        &self,
        after: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> Result<Vec<ProjectListing>, StoreError>;
    /// Removes a project's registration (its tasks, pipelines and storage
    /// configs stay).
    async fn delete_project(&self, id: &str) -> Result<(), StoreError>;
    /// Stores a new pipeline, or replaces one when `create` is false. Its
    /// `trigger_config` is stored with it (the webhook secret too, apart
    /// from the served JSON), except `schedule_ids`, which is never stored;
    /// a replacement whose webhook secret is `None` keeps the stored secret.
    async fn put_pipeline(&self, pipeline: Pipeline, create: bool) -> Result<Pipeline, StoreError>;
    /// One pipeline.
    async fn get_pipeline(&self, id: &str) -> Result<Option<Pipeline>, StoreError>;
    /// Pipelines, of one project or all, oldest first.
    async fn list_pipelines(&self, project_id: Option<String>)
    -> Result<Vec<Pipeline>, StoreError>;
    /// Removes a pipeline and its checkpoints; [`StoreError::Refused`]
    /// (naming them) while schedules fire it.
    async fn delete_pipeline(&self, id: &str) -> Result<(), StoreError>;
    /// Stores a new storage config, or replaces one when `create` is false
    /// (its `created_at` kept). Credentials are stored as given: callers
    /// redact what they answer.
    async fn put_storage_config(
        &self,
        config: StorageConfig,
        create: bool,
    ) -> Result<StorageConfig, StoreError>;
    /// One storage config.
    async fn get_storage_config(&self, id: &str) -> Result<Option<StorageConfig>, StoreError>;
    /// Storage configs, of one project or all, oldest first.
    async fn list_storage_configs(
        &self,
        project_id: Option<String>,
    ) -> Result<Vec<StorageConfig>, StoreError>;
    /// Removes a storage config.
    async fn delete_storage_config(&self, id: &str) -> Result<(), StoreError>;

    /// Stores a new model (no versions), or replaces a model's name and
    /// training config when `create` is false: status, versions and
    /// `created_at` are kept, whatever `model` says.
    async fn put_model(&self, model: MlModel, create: bool) -> Result<MlModel, StoreError>;
    /// One model with its versions.
    async fn get_model(&self, id: &str) -> Result<Option<MlModel>, StoreError>;
    /// Models (with their versions), of one project or all, oldest first.
    async fn list_models(&self, project_id: Option<String>) -> Result<Vec<MlModel>, StoreError>;
    /// Removes a model and its version records (the caller removes artifacts).
    async fn delete_model(&self, id: &str) -> Result<(), StoreError>;
    /// Applies a status or version change ([`MlModel::apply`]) in one
    /// transaction; a refused change is [`StoreError::Refused`] and stores
    /// nothing.
    async fn change_model(&self, id: &str, change: ModelChange) -> Result<MlModel, StoreError>;

    /// Stores a new schedule, or replaces one when `create` is false: then
    /// `created_at` and the record of past fires (`last_fire_at`,
    /// `last_task_id(s)`, `last_outcome`) are kept whatever `schedule` says.
    /// Either way the stored revision is one more than before (1 when new).
    /// Refused with [`StoreError::AlreadyExists`] when the id, or the name
    /// within the project, is taken; [`StoreError::Missing`] when replacing
    /// a schedule that is gone.
    async fn put_schedule(&self, schedule: Schedule, create: bool) -> Result<Schedule, StoreError>;
    /// One schedule.
    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError>;
    /// Up to `limit` schedules matching `filter`, by id, after the id
    /// `after` (the last of the previous page).
    async fn list_schedules(
        &self,
        filter: ScheduleFilter,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<Schedule>, StoreError>;
    /// Removes a schedule (the tasks it fired stay).
    async fn delete_schedule(&self, id: &str) -> Result<(), StoreError>;
    /// Up to `limit` enabled schedules that are due at `at` (`next_due_at`
    /// at or before it) or hold a queued fire, earliest due first.
    async fn due_schedules(
        &self,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueSchedule>, StoreError>;
    /// The earliest `next_due_at` of the enabled schedules.
    async fn next_schedule_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Applies the scheduler's decisions in one transaction: each advance
    /// whose schedule is still enabled and at its `revision` is stored with
    /// its tasks (and the revision bumped); the others store nothing.
    /// Answers, for each advance in order, whether it was applied. With a
    /// `term` it is a leader-only write, as [`Store::expire_leases`];
    /// without one (a user's run-now) anyone may make it.
    async fn advance_schedules(
        &self,
        advances: Vec<ScheduleAdvance>,
        term: Option<Term>,
    ) -> Result<Vec<bool>, StoreError>;

    /// A pipeline's checkpoints (empty when never saved); `None` when there
    /// is no such pipeline.
    async fn get_checkpoints(&self, pipeline_id: &str) -> Result<Option<Checkpoints>, StoreError>;
    /// Replaces a pipeline's checkpoints (`replace`), or merges `values` into
    /// them: a key set to null is removed. [`StoreError::Missing`] when the
    /// pipeline is gone.
    async fn put_checkpoints(
        &self,
        pipeline_id: &str,
        values: Map<String, Value>,
        replace: bool,
        at: DateTime<Utc>,
    ) -> Result<Checkpoints, StoreError>;

    /// Submits the task a webhook request starts, unless a request with the
    /// same signature reached this pipeline within the window: then stores
    /// nothing and answers `None`. The signature is remembered in the same
    /// transaction, and remembered ones older than the window are dropped.
    async fn submit_webhook(
        &self,
        delivery: WebhookDelivery,
        task: WorkTask,
    ) -> Result<Option<WorkTask>, StoreError>;

    /// Checks that the store answers a query and its migrations are applied.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Commits every write already asked for, then stops taking writes (later
    /// ones fail with [`StoreError::WriterGone`]) and leaves the data compact
    /// on disk: for SQLite, the WAL checkpointed into the database file.
    async fn close(&self) -> Result<(), StoreError>;
}
