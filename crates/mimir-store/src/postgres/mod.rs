//! The PostgreSQL backend: one database shared by several orchestrator
//! processes.
//!
//! Nothing that processes must agree on lives in memory: queue positions,
//! leases and their expiry, task counts and the leadership are rows, changed
//! in the transaction of each operation. Leases take rows with
//! `FOR UPDATE SKIP LOCKED`, so concurrent leases never hand out a task
//! twice; task counts are kept by statement triggers ([`counts`]); commits
//! that queue tasks `NOTIFY` the other processes ([`notify`]).
//!
//! Reads `MIMIR_TEST_POSTGRES_URL` nowhere: the URL comes from
//! [`PostgresOptions::url`].

mod catalog;
mod counts;
mod leader;
mod leases;
mod models;
mod notify;
mod outcome;
mod queue;
mod row;
mod schedules;
mod schema;
mod tasks;

use crate::{Checkpoints, DueSchedule, ScheduleAdvance, ScheduleFilter, WebhookDelivery};
use crate::{
    EventSink, LeaseRequest, ListPage, ListQuery, Placement, Renewal, Store, StoreError,
    TaskCounts, Term,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mimir_core::Schedule;
use mimir_core::{
    Aging, Attempt, MlModel, ModelChange, Pipeline, Priority, Project, ProjectListing, RetryPolicy,
    StorageConfig, TaskEvent, TaskEventKind, WorkTask, WorkTaskResult, WorkTaskStatus,
    WorkTaskType,
};
use sqlx_postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, RwLock, RwLockReadGuard};
use uuid::Uuid;

/// Defaults to 16: connections in the pool.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// Defaults to 5 s: how long an operation waits for a free connection.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the PostgreSQL store is opened. Its `Debug` shows the URL without
/// its password.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database`. Errors never repeat
    /// its password.
    pub url: String,
    /// The schema holding the tables (created if missing, and set as the
    /// `search_path`); `None` for the server's default. Defaults to none.
    pub schema: Option<String>,
    /// Connections in the pool. Defaults to [`DEFAULT_POOL_SIZE`].
    pub pool_size: u32,
    /// How long an operation waits for a connection. Defaults to
    /// [`DEFAULT_ACQUIRE_TIMEOUT`].
    pub acquire_timeout: Duration,
    /// Aging for the queue order, if any. Defaults to none.
    pub aging: Option<Aging>,
    /// Backoff of failed attempts. Defaults to [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// How long a lease lasts without a heartbeat. Defaults to
    /// [`crate::sqlite::DEFAULT_LEASE_TTL`].
    pub lease_ttl: Duration,
    /// Where task lifecycle events go. Defaults to none.
    pub events: Option<Arc<dyn EventSink>>,
}

impl PostgresOptions {
    /// Options for `url` with every default.
    pub fn new(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: url.into(),
            schema: None,
            pool_size: DEFAULT_POOL_SIZE,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            aging: None,
            retry: RetryPolicy::default(),
            lease_ttl: crate::sqlite::DEFAULT_LEASE_TTL,
            events: None,
        }
    }
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("aging", &self.aging)
            .field("retry", &self.retry)
            .field("lease_ttl", &self.lease_ttl)
            .field("events", &self.events)
            .finish()
    }
}

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    aging: Option<Aging>,
    retry: RetryPolicy,
    lease_ttl: Duration,
    events: Option<Arc<dyn EventSink>>,
    queue_signal: Arc<Notify>,
    /// Writes hold it shared; `close` takes it exclusively, so it waits for
    /// the writes already running and then refuses later ones (`true`).
    closed: RwLock<bool>,
    /// The task relaying `NOTIFY`s to [`Store::queue_signal`].
    listener: notify::Listener,
}

/// `url` without its password, for messages: the user information ends at
/// the last `@` (a password may hold `/` or `@`), and a query string, which
/// may carry `password=`, is left out.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable URL>".into();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, _)) => (rest, "?..."),
        None => (rest, ""),
    };
    match rest.rsplit_once('@') {
        Some((user_info, host_and_path)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host_and_path}{query}")
        }
        None => format!("{scheme}://{rest}{query}"),
    }
}

impl PostgresStore {
    /// Connects, applies the migrations not yet applied and starts listening
    /// for other processes' queue changes.
    pub async fn open(options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let shown = redact(&options.url);
        let fail = |error: StoreError| {
            // The driver's messages do not carry the password; make sure.
            let reason = error.to_string();
            let reason = match password_of(&options.url) {
                Some(password) if !password.is_empty() => reason.replace(password, "***"),
                _ => reason,
            };
            let reason = format!("cannot open the store at {shown}: {reason}");
            match error {
                StoreError::Unavailable(_) => StoreError::Unavailable(reason),
                _ => StoreError::Postgres(reason),
            }
        };
        let mut connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| fail(StoreError::Postgres(format!("invalid URL: {e}"))))?
            .application_name("mimir-aip");
        if let Some(schema) = &options.schema {
            create_schema(&connect, schema).await.map_err(fail)?;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size.max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| fail(e.into()))?;
        schema::migrate(&pool).await.map_err(fail)?;
        let queue_signal = Arc::new(Notify::new());
        let listener = notify::Listener::start(pool.clone(), queue_signal.clone());
        tracing::info!(url = %shown, schema = ?options.schema, "store opened");
        Ok(PostgresStore {
            pool,
            aging: options.aging,
            retry: options.retry,
            lease_ttl: options.lease_ttl,
            events: options.events,
            queue_signal,
            closed: RwLock::new(false),
            listener,
        })
    }

    /// Admits one write, or refuses it once the store is closed.
    async fn writing(&self) -> Result<RwLockReadGuard<'_, bool>, StoreError> {
        let guard = self.closed.read().await;
        if *guard {
            return Err(StoreError::WriterGone);
        }
        Ok(guard)
    }

    /// Hands the events of a committed transaction to the sink.
    fn publish(&self, events: Events) {
        if let (Some(sink), Some(events)) = (&self.events, events.0)
            && !events.is_empty()
        {
            sink.publish(events);
        }
    }

    /// The start of a list of events, `None` inside when nobody listens.
    fn events(&self) -> Events {
        Events(self.events.as_ref().map(|_| Vec::new()))
    }

    /// Publishes the events of committed new tasks and wakes this process's
    /// leases (the others hear of them through the commit's `NOTIFY`).
    fn submitted(&self, tasks: &[WorkTask]) {
        if tasks.is_empty() {
            return;
        }
        let mut events = self.events();
        for task in tasks {
            events.push(task.worktask_id, task.task_type, task.submitted_at, || {
                TaskEventKind::Submitted {
                    priority: task.priority,
                }
            });
        }
        self.publish(events);
        self.queue_signal.notify_waiters();
    }

    /// The lease lifetime in microseconds, as the SQL binds it.
    fn lease_ttl_us(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_micros()).unwrap_or(i64::MAX)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.stop();
    }
}

/// The password in `url`, if it has one (in the user information, which
/// ends at the last `@`).
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let rest = rest.split('?').next()?;
    let user_info = rest.rsplit_once('@')?.0;
    user_info.split_once(':').map(|(_, password)| password)
}

/// Creates `schema` if it is missing, on a connection of its own.
async fn create_schema(connect: &PgConnectOptions, schema: &str) -> Result<(), StoreError> {
    use sqlx_core::connection::{ConnectOptions, Connection};
    let mut conn = connect.connect().await?;
    let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
    sqlx_core::raw_sql::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
        .execute(&mut conn)
        .await
        .or_else(|e| match &e {
            // Two replicas creating it at once: one of them loses the race.
            sqlx_core::Error::Database(db) if db.code().is_some_and(|c| c == "23505") => {
                Ok(sqlx_postgres::PgQueryResult::default())
            }
            _ => Err(e),
        })?;
    conn.close().await?;
    Ok(())
}

/// Events of one transaction, published once it commits.
pub(crate) struct Events(Option<Vec<TaskEvent>>);

impl Events {
    pub(crate) fn push(
        &mut self,
        id: Uuid,
        task_type: WorkTaskType,
        at: DateTime<Utc>,
        kind: impl FnOnce() -> TaskEventKind,
    ) {
        if let Some(events) = &mut self.0 {
            events.push(TaskEvent {
                id,
                task_type,
                at,
                kind: kind(),
            });
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn shared(&self) -> bool {
        true
    }

    async fn submit(&self, tasks: Vec<WorkTask>) -> Result<Vec<WorkTask>, StoreError> {
        if tasks.is_empty() {
            return Ok(tasks);
        }
        let _open = self.writing().await?;
        tasks::submit(&self.pool, &tasks).await?;
        self.submitted(&tasks);
        Ok(tasks)
    }

    async fn get(&self, id: Uuid) -> Result<Option<WorkTask>, StoreError> {
        tasks::get(&self.pool, id).await
    }

    async fn attempts(&self, id: Uuid) -> Result<Option<Vec<Attempt>>, StoreError> {
        tasks::attempts(&self.pool, id).await
    }

    async fn list(&self, query: ListQuery) -> Result<ListPage, StoreError> {
        tasks::list(&self.pool, &query).await
    }

    async fn cancel(&self, id: Uuid, at: DateTime<Utc>) -> Result<WorkTask, StoreError> {
        let _open = self.writing().await?;
        let mut events = self.events();
        let task = outcome::cancel(&self.pool, id, at, &mut events).await?;
        self.publish(events);
        Ok(task)
    }

    async fn queue_length(&self) -> Result<usize, StoreError> {
        counts::queue_length(&self.pool).await
    }

    async fn most_urgent(
        &self,
        min: Priority,
        limit: usize,
    ) -> Result<(usize, Vec<WorkTask>), StoreError> {
        let total = counts::waiting_at_least(&self.pool, min).await?;
        let tasks = tasks::most_urgent(&self.pool, min, limit).await?;
        Ok((total, tasks))
    }

    async fn counts(&self) -> Result<TaskCounts, StoreError> {
        counts::counts(&self.pool).await
    }

    async fn lease(&self, request: LeaseRequest) -> Result<Vec<WorkTask>, StoreError> {
        if request.max == 0 {
            return Ok(Vec::new());
        }
        let _open = self.writing().await?;
        let mut events = self.events();
        let leased = queue::lease(
            &self.pool,
            &request,
            self.aging,
            self.lease_ttl_us(),
            &mut events,
        )
        .await?;
        self.publish(events);
        Ok(leased)
    }

    async fn start(
        &self,
        worker_id: &str,
        started: Vec<(Uuid, u32)>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if started.is_empty() {
            return Ok(());
        }
        let _open = self.writing().await?;
        let mut events = self.events();
        queue::start(&self.pool, worker_id, &started, at, &mut events).await?;
        self.publish(events);
        Ok(())
    }

    async fn finish(
        &self,
        id: Uuid,
        worker_id: Option<String>,
        report: WorkTaskResult,
        at: DateTime<Utc>,
    ) -> Result<WorkTask, StoreError> {
        let _open = self.writing().await?;
        let mut events = self.events();
        let (task, requeued) = outcome::finish(
            &self.pool,
            &self.retry,
            id,
            worker_id.as_deref(),
            report,
            at,
            &mut events,
        )
        .await?;
        self.publish(events);
        if requeued {
            self.queue_signal.notify_waiters();
        }
        Ok(task)
    }

    async fn finish_many(
        &self,
        worker_id: &str,
        reports: Vec<WorkTaskResult>,
        at: DateTime<Utc>,
    ) -> Result<Vec<Result<WorkTaskStatus, StoreError>>, StoreError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let _open = self.writing().await?;
        let mut events = self.events();
        let statuses =
            outcome::finish_many(&self.pool, &self.retry, worker_id, reports, at, &mut events)
                .await?;
        self.publish(events);
        if statuses
            .iter()
            .any(|s| matches!(s, Ok(WorkTaskStatus::Queued)))
        {
            self.queue_signal.notify_waiters();
        }
        Ok(statuses)
    }

    async fn release(&self, worker_id: &str, tasks: Vec<(Uuid, u32)>) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let _open = self.writing().await?;
        let mut events = self.events();
        let released = queue::release(&self.pool, worker_id, &tasks, &mut events).await?;
        self.publish(events);
        if released > 0 {
            self.queue_signal.notify_waiters();
        }
        Ok(())
    }

    /// One UPDATE of the held rows' lease expiry.
    async fn renew(&self, worker_id: &str, held: &[(Uuid, u32)]) -> Result<Renewal, StoreError> {
        if held.is_empty() {
            return Ok(Renewal::default());
        }
        let _open = self.writing().await?;
        leases::renew(&self.pool, worker_id, held, self.lease_ttl_us()).await
    }

    async fn expire_leases(&self, at: DateTime<Utc>, term: Term) -> Result<usize, StoreError> {
        let _open = self.writing().await?;
        let mut events = self.events();
        let expired = leases::expire(&self.pool, &self.retry, at, term, &mut events).await;
        // Events of the batches that committed, even when a later one failed.
        self.publish(events);
        let expired = expired?;
        if expired > 0 {
            self.queue_signal.notify_waiters();
        }
        counts::compact_if_due(&self.pool).await?;
        Ok(expired)
    }

    async fn lead(&self, candidate: &str, ttl: Duration) -> Result<Option<Term>, StoreError> {
        let _open = self.writing().await?;
        leader::lead(&self.pool, candidate, ttl).await
    }

    async fn resign(&self, candidate: &str, term: Term) -> Result<(), StoreError> {
        let _open = self.writing().await?;
        leader::resign(&self.pool, candidate, term).await
    }

    async fn place(&self, placements: Vec<Placement>, term: Term) -> Result<(), StoreError> {
        if placements.is_empty() {
            return Ok(());
        }
        let _open = self.writing().await?;
        queue::place(&self.pool, &placements, term, self.lease_ttl_us()).await
    }

    async fn queue_position(
        &self,
        id: Uuid,
    ) -> Result<Option<mimir_core::explain::QueuePosition>, StoreError> {
        tasks::queue_position(&self.pool, id).await
    }

    async fn forfeit(&self, worker_id: &str) -> Result<(), StoreError> {
        let _open = self.writing().await?;
        leases::forfeit(&self.pool, worker_id).await
    }

    async fn holds(&self, worker_id: &str, id: Uuid, attempt: u32) -> Result<bool, StoreError> {
        leases::holds(&self.pool, worker_id, id, attempt).await
    }

    async fn leases_by_worker(&self) -> Result<HashMap<String, Vec<Uuid>>, StoreError> {
        leases::by_worker(&self.pool).await
    }

    fn queue_signal(&self) -> Arc<Notify> {
        self.queue_signal.clone()
    }

    async fn next_eligible_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        tasks::next_eligible_at(&self.pool).await
    }

    async fn create_project(&self, mut project: Project) -> Result<Project, StoreError> {
        let _open = self.writing().await?;
        // Answered as stored: PostgreSQL's text holds no NUL.
        project.description = row::text(project.description);
        catalog::create_project(&self.pool, &project).await?;
        Ok(project)
    }

    async fn get_project(&self, id: &str) -> Result<Option<Project>, StoreError> {
        catalog::get_project(&self.pool, id).await
    }

    async fn list_projects(
        &self,
        after: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> Result<Vec<ProjectListing>, StoreError> {
        catalog::list_projects(&self.pool, after, limit).await
    }

    async fn delete_project(&self, id: &str) -> Result<(), StoreError> {
        let _open = self.writing().await?;
        catalog::delete(&self.pool, "project", "projects", id).await
    }

    async fn put_pipeline(&self, pipeline: Pipeline, create: bool) -> Result<Pipeline, StoreError> {
        let _open = self.writing().await?;
        catalog::put_pipeline(&self.pool, &pipeline, create).await?;
        catalog::get_pipeline(&self.pool, &pipeline.id)
            .await?
            .ok_or(StoreError::Missing {
                kind: "pipeline",
                id: pipeline.id,
            })
    }

    async fn get_pipeline(&self, id: &str) -> Result<Option<Pipeline>, StoreError> {
        catalog::get_pipeline(&self.pool, id).await
    }

    async fn list_pipelines(
        &self,
        project_id: Option<String>,
    ) -> Result<Vec<Pipeline>, StoreError> {
        catalog::list_pipelines(&self.pool, project_id.as_deref()).await
    }

    async fn delete_pipeline(&self, id: &str) -> Result<(), StoreError> {
        let _open = self.writing().await?;
        schedules::delete_pipeline(&self.pool, id).await
    }

    async fn put_storage_config(
        &self,
        config: StorageConfig,
        create: bool,
    ) -> Result<StorageConfig, StoreError> {
        let _open = self.writing().await?;
        catalog::put_storage_config(&self.pool, &config, create).await?;
        catalog::get_storage_config(&self.pool, &config.id)
            .await?
            .ok_or(StoreError::Missing {
                kind: "storage config",
                id: config.id,
            })
    }

    async fn get_storage_config(&self, id: &str) -> Result<Option<StorageConfig>, StoreError> {
        catalog::get_storage_config(&self.pool, id).await
    }

    async fn list_storage_configs(
        &self,
        project_id: Option<String>,
    ) -> Result<Vec<StorageConfig>, StoreError> {
        catalog::list_storage_configs(&self.pool, project_id.as_deref()).await
    }

    async fn delete_storage_config(&self, id: &str) -> Result<(), StoreError> {
        let _open = self.writing().await?;
        catalog::delete(&self.pool, "storage config", "storage_configs", id).await
    }

    async fn put_model(&self, model: MlModel, create: bool) -> Result<MlModel, StoreError> {
        let _open = self.writing().await?;
        models::put(&self.pool, &model, create).await
    }

    async fn get_model(&self, id: &str) -> Result<Option<MlModel>, StoreError> {
        models::get(&self.pool, id).await
    }

    async fn list_models(&self, project_id: Option<String>) -> Result<Vec<MlModel>, StoreError> {
        models::list(&self.pool, project_id.as_deref()).await
    }

    async fn delete_model(&self, id: &str) -> Result<(), StoreError> {
        let _open = self.writing().await?;
        models::delete(&self.pool, id).await
    }

    async fn change_model(&self, id: &str, change: ModelChange) -> Result<MlModel, StoreError> {
        let _open = self.writing().await?;
        // Stored to the microsecond: the answer must equal a later read.
        let at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        models::change(&self.pool, id, change, at).await
    }

    async fn put_schedule(&self, schedule: Schedule, create: bool) -> Result<Schedule, StoreError> {
        let _open = self.writing().await?;
        schedules::put(&self.pool, &schedule, create).await
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        schedules::get(&self.pool, id).await
    }

    async fn list_schedules(
        &self,
        filter: ScheduleFilter,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<Schedule>, StoreError> {
        schedules::list(&self.pool, &filter, after.as_deref(), limit).await
    }

    async fn delete_schedule(&self, id: &str) -> Result<(), StoreError> {
        let _open = self.writing().await?;
        schedules::delete(&self.pool, id).await
    }

    async fn due_schedules(
        &self,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueSchedule>, StoreError> {
        schedules::due(&self.pool, at, limit).await
    }

    async fn next_schedule_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        schedules::next_due(&self.pool).await
    }

    async fn advance_schedules(
        &self,
        advances: Vec<ScheduleAdvance>,
        term: Option<Term>,
    ) -> Result<Vec<bool>, StoreError> {
        if advances.is_empty() {
            return Ok(Vec::new());
        }
        let _open = self.writing().await?;
        let (applied, fired) = schedules::advance(&self.pool, &advances, term).await?;
        self.submitted(&fired);
        Ok(applied)
    }

    async fn get_checkpoints(&self, pipeline_id: &str) -> Result<Option<Checkpoints>, StoreError> {
        schedules::get_checkpoints(&self.pool, pipeline_id).await
    }

    async fn put_checkpoints(
        &self,
        pipeline_id: &str,
        values: serde_json::Map<String, serde_json::Value>,
        replace: bool,
        at: DateTime<Utc>,
    ) -> Result<Checkpoints, StoreError> {
        let _open = self.writing().await?;
        schedules::put_checkpoints(&self.pool, pipeline_id, values, replace, at).await
    }

    async fn submit_webhook(
        &self,
        delivery: WebhookDelivery,
        task: WorkTask,
    ) -> Result<Option<WorkTask>, StoreError> {
        let _open = self.writing().await?;
        if !schedules::submit_webhook(&self.pool, &delivery, &task).await? {
            return Ok(None);
        }
        self.submitted(std::slice::from_ref(&task));
        Ok(Some(task))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        schema::check_current(&self.pool).await
    }

    /// Waits for the writes already running, then refuses later ones and
    /// stops listening. The pool stays open for reads, which the contract
    /// keeps answering after a close.
    async fn close(&self) -> Result<(), StoreError> {
        let mut closed = self.closed.write().await;
        *closed = true;
        self.listener.stop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/mimir"),
            "postgres://app:***@db:5432/mimir"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            redact("postgres://app:pa/ss@db/x"),
            "postgres://app:***@db/x",
            "a password holding a slash"
        );
        assert_eq!(
            redact("postgres://app@db/x?password=hunter2&sslmode=require"),
            "postgres://app@db/x?...",
            "a password in the query string"
        );
        assert_eq!(password_of("postgres://app:pa/ss@db/x"), Some("pa/ss"));
        assert_eq!(password_of("postgres://app:p%40ss@db/x"), Some("p%40ss"));
        let options = PostgresOptions::new("postgres://app:hunter2@db/x");
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
