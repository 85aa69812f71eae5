//! The embedded SQLite backend: one file, WAL journal, group commit.
//!
//! Writes go through one writer thread ([`writer`]); reads use a small pool of
//! read-only connections, which WAL lets run beside the writer.

mod attempts;
mod backup;
mod catalog;
mod dir_lock;
mod models;
mod row;
mod schedules;
mod schema;
mod writer;

pub use backup::{BackupError, BackupReport, DEFAULT_BACKUP_WAIT, backup};

use crate::live::Live;
use crate::{Checkpoints, DueSchedule, ScheduleAdvance, ScheduleFilter, WebhookDelivery};
use crate::{LeaseRequest, ListPage, ListQuery, Renewal, Store, StoreError, TaskCounts, Term};
use async_trait::async_trait;
use catalog::CatalogWrite;
use chrono::{DateTime, Utc};
use mimir_core::Schedule;
use mimir_core::{
    Aging, Attempt, MlModel, ModelChange, Pipeline, Priority, Project, QueueIndex, RetryPolicy,
    StorageConfig, WorkTask, WorkTaskResult, WorkTaskStatus, WorkTaskType,
};
use models::ModelWrite;
use parking_lot::Mutex;
use r2d2_sqlite::SqliteConnectionManager;
use row::TASK_COLUMNS;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};
use schedules::{ScheduleWrite, Written};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use writer::{Command, Core, Op, Outcome, Writer};

/// File name of the database inside the data directory.
pub const DB_FILE_NAME: &str = "mimir.db";

/// Defaults to 4: read connections beside the writer.
pub const DEFAULT_READERS: u32 = 4;

/// How the SQLite store is opened.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Aging for the queue order, if any. Defaults to none.
    pub aging: Option<Aging>,
    /// Sync the WAL on every commit (`synchronous=FULL`), so an acknowledged write
    /// survives power loss, not just a crash. Defaults to true.
    pub durable: bool,
    /// Read connections. Defaults to [`DEFAULT_READERS`].
    pub readers: u32,
    /// Backoff of failed attempts. Defaults to [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// How long a lease lasts without a heartbeat. Defaults to [`DEFAULT_LEASE_TTL`].
    pub lease_ttl: Duration,
    /// Where task lifecycle events go. Defaults to none.
    pub events: Option<Arc<dyn crate::EventSink>>,
}

/// Defaults to 15 s: a worker silent for this long is taken for lost.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            aging: None,
            durable: true,
            readers: DEFAULT_READERS,
            retry: RetryPolicy::default(),
            lease_ttl: DEFAULT_LEASE_TTL,
            events: None,
        }
    }
}

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    /// Held while the store is open: one store per data directory.
    _dir_lock: dir_lock::DirLock,
    path: PathBuf,
    commands: mpsc::Sender<Command>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    live: Arc<Mutex<Live>>,
    queue_signal: Arc<Notify>,
    /// Set by the writer while commits fail for want of space.
    storage_full: Arc<AtomicBool>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, applies migrations and
    /// rebuilds the queue from disk. Errors name the path at fault.
    pub fn open(data_dir: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let open_error = |path: &Path, reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| open_error(data_dir, e.to_string()))?;
        let dir_lock = dir_lock::DirLock::take(data_dir)?;
        let path = data_dir.join(DB_FILE_NAME);
        let mut conn = Connection::open(&path).map_err(|e| open_error(&path, e.to_string()))?;
        schema::prepare_writer(&conn, options.durable)
            .map_err(|e| open_error(&path, e.to_string()))?;
        schema::migrate(&mut conn).map_err(|e| open_error(&path, e.to_string()))?;
        let (live, next_seq) =
            schema::load_live(&conn, QueueIndex::new(options.aging), options.lease_ttl)
                .map_err(|e| open_error(&path, e.to_string()))?;
        tracing::info!(
            path = %path.display(),
            queued = live.queue.len(),
            tasks = live.counts.total(),
            "store opened"
        );
        let live = Arc::new(Mutex::new(live));

        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(schema::prepare_reader);
        let readers = r2d2::Pool::builder()
            .max_size(options.readers.max(1))
            .min_idle(Some(1))
            .build(manager)
            .map_err(|e| open_error(&path, e.to_string()))?;

        let (commands, receiver) = mpsc::channel(writer::MAX_GROUP);
        let queue_signal = Arc::new(Notify::new());
        let storage_full = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            conn,
            core: Core {
                live: live.clone(),
                queue_signal: queue_signal.clone(),
                retry: options.retry,
                next_seq,
                events: options.events.clone(),
            },
            events_capacity: 0,
            storage_full: storage_full.clone(),
            full: false,
        };
        std::thread::Builder::new()
            .name("mimir-store-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| open_error(&path, format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            _dir_lock: dir_lock,
            path,
            commands,
            readers,
            live,
            queue_signal,
            storage_full,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command { op, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    async fn write_tasks(&self, op: Op) -> Result<Vec<WorkTask>, StoreError> {
        match self.write(op).await? {
            Outcome::Tasks(tasks) => Ok(tasks),
            other => Err(StoreError::Corrupt(format!(
                "writer answered {other:?} where tasks were expected"
            ))),
        }
    }

    async fn write_task(&self, op: Op) -> Result<WorkTask, StoreError> {
        match self.write(op).await? {
            Outcome::Task(task) => Ok(*task),
            other => Err(StoreError::Corrupt(format!(
                "writer answered {other:?} where a task was expected"
            ))),
        }
    }

    async fn write_model(&self, id: &str, write: ModelWrite) -> Result<MlModel, StoreError> {
        match self.write(Op::Model(write)).await? {
            Outcome::Model(Some(model)) => Ok(*model),
            Outcome::Model(None) => Err(StoreError::Missing {
                kind: "model",
                id: id.to_string(),
            }),
            other => Err(StoreError::Corrupt(format!(
                "writer answered {other:?} where a model was expected"
            ))),
        }
    }

    async fn write_schedule(&self, write: ScheduleWrite) -> Result<Written, StoreError> {
        match self.write(Op::Schedule(write)).await? {
            Outcome::Schedule(written) => Ok(written),
            other => Err(StoreError::Corrupt(format!(
                "writer answered {other:?} where a schedule write was expected"
            ))),
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        body: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            body(&conn)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("read task failed: {e}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn shared(&self) -> bool {
        false
    }

    async fn submit(&self, tasks: Vec<WorkTask>) -> Result<Vec<WorkTask>, StoreError> {
        if tasks.is_empty() {
            return Ok(tasks);
        }
        let rows = tasks
            .into_iter()
            .map(row::NewRow::encode)
            .collect::<Result<Vec<_>, _>>()?;
        self.write_tasks(Op::Submit(rows)).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<WorkTask>, StoreError> {
        self.read(move |conn| writer::select_task(conn, id)).await
    }

    async fn list(&self, query: ListQuery) -> Result<ListPage, StoreError> {
        self.read(move |conn| list(conn, &query)).await
    }

    async fn attempts(&self, id: Uuid) -> Result<Option<Vec<Attempt>>, StoreError> {
        self.read(move |conn| attempts::select(conn, id)).await
    }

    async fn cancel(&self, id: Uuid, at: DateTime<Utc>) -> Result<WorkTask, StoreError> {
        self.write_task(Op::Cancel { id, at }).await
    }

    async fn queue_length(&self) -> Result<usize, StoreError> {
        let live = self.live.lock();
        let scheduled: u64 = WorkTaskType::ALL
            .into_iter()
            .map(|t| live.counts.get(t, WorkTaskStatus::Scheduled))
            .sum();
        Ok(live.queue.len() + scheduled as usize)
    }

    async fn most_urgent(
        &self,
        min: Priority,
        limit: usize,
    ) -> Result<(usize, Vec<WorkTask>), StoreError> {
        let (total, entries) = {
            let live = self.live.lock();
            (
                live.queue.count_at_least(min),
                live.queue.most_urgent(min, limit),
            )
        };
        let tasks = self
            .read(move |conn| {
                let mut tasks = Vec::with_capacity(entries.len());
                for entry in entries {
                    // A task may have left the queue since; skip it rather than fail.
                    if let Some(task) = writer::select_task(conn, entry.id)? {
                        tasks.push(task);
                    }
                }
                Ok(tasks)
            })
            .await?;
        Ok((total, tasks))
    }

    async fn counts(&self) -> Result<TaskCounts, StoreError> {
        Ok(self.live.lock().counts.clone())
    }

    async fn lease(&self, request: LeaseRequest) -> Result<Vec<WorkTask>, StoreError> {
        if request.max == 0 {
            return Ok(Vec::new());
        }
        self.write_tasks(Op::Lease(request)).await
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
        self.write(Op::Start {
            worker_id: worker_id.to_string(),
            started,
            at,
        })
        .await
        .map(drop)
    }

    async fn finish(
        &self,
        id: Uuid,
        worker_id: Option<String>,
        report: WorkTaskResult,
        at: DateTime<Utc>,
    ) -> Result<WorkTask, StoreError> {
        self.write_task(Op::Finish {
            id,
            worker_id,
            report: Box::new(report),
            at,
        })
        .await
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
        match self
            .write(Op::FinishMany {
                worker_id: worker_id.to_string(),
                reports,
                at,
            })
            .await?
        {
            Outcome::Statuses(statuses) => Ok(statuses),
            other => Err(StoreError::Corrupt(format!(
                "writer answered {other:?} where statuses were expected"
            ))),
        }
    }

    async fn release(&self, worker_id: &str, tasks: Vec<(Uuid, u32)>) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        self.write(Op::Release {
            worker_id: worker_id.to_string(),
            tasks,
        })
        .await
        .map(drop)
    }

    /// In memory, no disk write: one process owns the data directory, and
    /// after a restart every running task gets a fresh lease.
    async fn renew(&self, worker_id: &str, held: &[(Uuid, u32)]) -> Result<Renewal, StoreError> {
        let mut live = self.live.lock();
        let expires = Instant::now() + live.lease_ttl;
        let mut renewal = Renewal::default();
        for (id, attempt) in held {
            match live.leases.get_mut(id) {
                Some(lease) if lease.worker_id == worker_id && lease.attempt == *attempt => {
                    lease.expires = expires
                }
                _ => renewal.lost.push(*id),
            }
        }
        renewal.cancelled = live.notices.remove(worker_id).unwrap_or_default();
        Ok(renewal)
    }

    /// One process owns the data directory: its term is always current.
    async fn expire_leases(&self, at: DateTime<Utc>, _term: Term) -> Result<usize, StoreError> {
        let now = Instant::now();
        let expired: Vec<(Uuid, u32, String)> = {
            let live = self.live.lock();
            live.leases
                .iter()
                .filter(|(_, lease)| lease.expires <= now)
                .map(|(id, lease)| (*id, lease.attempt, lease.worker_id.clone()))
                .collect()
        };
        let count = expired.len();
        for (id, attempt, worker_id) in expired {
            let reason = format!("worker {worker_id} lost: its lease expired");
            tracing::warn!(worktask_id = %id, worker_id, attempt, "lease expired");
            self.write(Op::Expire {
                id,
                attempt,
                reason,
                at,
            })
            .await?;
        }
        Ok(count)
    }

    async fn lead(&self, _candidate: &str, _ttl: Duration) -> Result<Option<Term>, StoreError> {
        // The data directory's lock already makes this process the only one.
        Ok(Some(Term(1)))
    }

    async fn resign(&self, _candidate: &str, _term: Term) -> Result<(), StoreError> {
        Ok(())
    }

    async fn place(
        &self,
        placements: Vec<crate::Placement>,
        _term: Term,
    ) -> Result<(), StoreError> {
        if placements.is_empty() {
            return Ok(());
        }
        self.write(Op::Place(placements)).await.map(drop)
    }

    async fn queue_position(
        &self,
        id: Uuid,
    ) -> Result<Option<mimir_core::explain::QueuePosition>, StoreError> {
        let entry = self
            .read(move |conn| {
                let mut select = conn.prepare_cached(&format!(
                    "SELECT {} FROM worktasks WHERE id = ?1 AND status = 'queued'",
                    row::QUEUE_COLUMNS
                ))?;
                Ok(select
                    .query_row([id.as_bytes()], row::queue_entry_from_row)
                    .optional()?)
            })
            .await?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        Ok(self.live.lock().queue.position(&entry))
    }

    async fn forfeit(&self, worker_id: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        for lease in self.live.lock().leases.values_mut() {
            if lease.worker_id == worker_id {
                lease.expires = now;
            }
        }
        Ok(())
    }

    async fn holds(&self, worker_id: &str, id: Uuid, attempt: u32) -> Result<bool, StoreError> {
        Ok(self
            .live
            .lock()
            .leases
            .get(&id)
            .is_some_and(|lease| lease.worker_id == worker_id && lease.attempt == attempt))
    }

    async fn leases_by_worker(&self) -> Result<HashMap<String, Vec<Uuid>>, StoreError> {
        let mut by_worker: HashMap<String, Vec<Uuid>> = HashMap::new();
        for (id, lease) in &self.live.lock().leases {
            by_worker
                .entry(lease.worker_id.clone())
                .or_default()
                .push(*id);
        }
        Ok(by_worker)
    }

    fn queue_signal(&self) -> Arc<Notify> {
        self.queue_signal.clone()
    }

    async fn next_eligible_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .live
            .lock()
            .queue
            .next_eligible_at()
            .and_then(DateTime::from_timestamp_micros))
    }

    async fn create_project(&self, project: Project) -> Result<Project, StoreError> {
        self.write(Op::Catalog(CatalogWrite::InsertProject(project.clone())))
            .await?;
        Ok(project)
    }

    async fn get_project(&self, id: &str) -> Result<Option<Project>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| catalog::get_project(conn, &id)).await
    }

    async fn list_projects(
        &self,
        after: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> Result<Vec<mimir_core::ProjectListing>, StoreError> {
        self.read(move |conn| catalog::list_projects(conn, after, limit))
            .await
    }

    async fn delete_project(&self, id: &str) -> Result<(), StoreError> {
        self.write(Op::Catalog(CatalogWrite::DeleteProject(id.to_string())))
            .await
            .map(drop)
    }

    async fn put_pipeline(&self, pipeline: Pipeline, create: bool) -> Result<Pipeline, StoreError> {
        let id = pipeline.id.clone();
        self.write(Op::Catalog(CatalogWrite::PutPipeline { pipeline, create }))
            .await?;
        let stored = self.get_pipeline(&id).await?;
        stored.ok_or(StoreError::Missing {
            kind: "pipeline",
            id,
        })
    }

    async fn get_pipeline(&self, id: &str) -> Result<Option<Pipeline>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| catalog::get_pipeline(conn, &id))
            .await
    }

    async fn list_pipelines(
        &self,
        project_id: Option<String>,
    ) -> Result<Vec<Pipeline>, StoreError> {
        self.read(move |conn| catalog::list_pipelines(conn, project_id.as_deref()))
            .await
    }

    async fn delete_pipeline(&self, id: &str) -> Result<(), StoreError> {
        self.write(Op::Catalog(CatalogWrite::DeletePipeline(id.to_string())))
            .await
            .map(drop)
    }

    async fn put_storage_config(
        &self,
        config: StorageConfig,
        create: bool,
    ) -> Result<StorageConfig, StoreError> {
        let id = config.id.clone();
        self.write(Op::Catalog(CatalogWrite::PutStorageConfig {
            config,
            create,
        }))
        .await?;
        let stored = self.get_storage_config(&id).await?;
        stored.ok_or(StoreError::Missing {
            kind: "storage config",
            id,
        })
    }

    async fn get_storage_config(&self, id: &str) -> Result<Option<StorageConfig>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| catalog::get_storage_config(conn, &id))
            .await
    }

    async fn list_storage_configs(
        &self,
        project_id: Option<String>,
    ) -> Result<Vec<StorageConfig>, StoreError> {
        self.read(move |conn| catalog::list_storage_configs(conn, project_id.as_deref()))
            .await
    }

    async fn delete_storage_config(&self, id: &str) -> Result<(), StoreError> {
        self.write(Op::Catalog(CatalogWrite::DeleteStorageConfig(
            id.to_string(),
        )))
        .await
        .map(drop)
    }

    async fn put_model(&self, model: MlModel, create: bool) -> Result<MlModel, StoreError> {
        let id = model.id.clone();
        self.write_model(
            &id,
            ModelWrite::Put {
                model: Box::new(model),
                create,
            },
        )
        .await
    }

    async fn get_model(&self, id: &str) -> Result<Option<MlModel>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| models::get_model(conn, &id)).await
    }

    async fn list_models(&self, project_id: Option<String>) -> Result<Vec<MlModel>, StoreError> {
        self.read(move |conn| models::list_models(conn, project_id.as_deref()))
            .await
    }

    async fn delete_model(&self, id: &str) -> Result<(), StoreError> {
        self.write(Op::Model(ModelWrite::Delete(id.to_string())))
            .await
            .map(drop)
    }

    async fn change_model(&self, id: &str, change: ModelChange) -> Result<MlModel, StoreError> {
        self.write_model(
            id,
            ModelWrite::Change {
                id: id.to_string(),
                change,
                // Stored to the microsecond: the answer must equal a later read.
                at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 6),
            },
        )
        .await
    }

    async fn put_schedule(&self, schedule: Schedule, create: bool) -> Result<Schedule, StoreError> {
        match self
            .write_schedule(ScheduleWrite::Put {
                schedule: Box::new(schedule),
                create,
            })
            .await?
        {
            Written::Schedule(schedule) => Ok(*schedule),
            other => Err(StoreError::Corrupt(format!(
                "writer answered {other:?} where a schedule was expected"
            ))),
        }
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| schedules::get(conn, &id)).await
    }

    async fn list_schedules(
        &self,
        filter: ScheduleFilter,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<Schedule>, StoreError> {
        self.read(move |conn| schedules::list(conn, &filter, after.as_deref(), limit))
            .await
    }

    async fn delete_schedule(&self, id: &str) -> Result<(), StoreError> {
        self.write_schedule(ScheduleWrite::Delete(id.to_string()))
            .await
            .map(drop)
    }

    async fn due_schedules(
        &self,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueSchedule>, StoreError> {
        self.read(move |conn| schedules::due(conn, at, limit)).await
    }

    async fn next_schedule_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(schedules::next_due).await
    }

    /// One process owns the data directory: its term is always current.
    async fn advance_schedules(
        &self,
        advances: Vec<ScheduleAdvance>,
        _term: Option<Term>,
    ) -> Result<Vec<bool>, StoreError> {
        if advances.is_empty() {
            return Ok(Vec::new());
        }
        let mut encoded = Vec::with_capacity(advances.len());
        for mut advance in advances {
            let tasks = std::mem::take(&mut advance.tasks)
                .into_iter()
                .map(row::NewRow::encode)
                .collect::<Result<Vec<_>, _>>()?;
            encoded.push((advance, tasks));
        }
        match self.write(Op::Advance(encoded)).await? {
            Outcome::Applied(applied) => Ok(applied),
            other => Err(StoreError::Corrupt(format!(
                "writer answered {other:?} where advances were expected"
            ))),
        }
    }

    async fn get_checkpoints(&self, pipeline_id: &str) -> Result<Option<Checkpoints>, StoreError> {
        let id = pipeline_id.to_string();
        self.read(move |conn| schedules::get_checkpoints(conn, &id))
            .await
    }

    async fn put_checkpoints(
        &self,
        pipeline_id: &str,
        values: serde_json::Map<String, serde_json::Value>,
        replace: bool,
        at: DateTime<Utc>,
    ) -> Result<Checkpoints, StoreError> {
        match self
            .write_schedule(ScheduleWrite::Checkpoints {
                pipeline_id: pipeline_id.to_string(),
                values,
                replace,
                at,
            })
            .await?
        {
            Written::Checkpoints(checkpoints) => Ok(*checkpoints),
            other => Err(StoreError::Corrupt(format!(
                "writer answered {other:?} where checkpoints were expected"
            ))),
        }
    }

    async fn submit_webhook(
        &self,
        delivery: WebhookDelivery,
        task: WorkTask,
    ) -> Result<Option<WorkTask>, StoreError> {
        let task = Box::new(row::NewRow::encode(task)?);
        match self.write(Op::Webhook { delivery, task }).await? {
            Outcome::Webhook(task) => Ok(task.map(|t| *t)),
            other => Err(StoreError::Corrupt(format!(
                "writer answered {other:?} where a webhook's task was expected"
            ))),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.storage_full.load(Ordering::Relaxed) {
            // Writes failed for want of space: one small write tells whether
            // they succeed again (and clears the flag when they do).
            self.write(Op::Probe).await?;
        }
        self.read(schema::check_current).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.write(Op::Close).await.map(drop)
    }
}

/// How far submission times may run out of arrival order: times are taken
/// when a request arrives, positions when its commit runs. Time filters widen
/// their position bounds by this much and then test the time exactly.
const SUBMIT_ORDER_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Which end of a time boundary [`seq_bound`] looks for.
#[derive(Clone, Copy, PartialEq)]
enum Bound {
    /// The first position submitted at or after the time.
    First,
    /// The last position submitted at or before the time.
    Last,
}

/// The position where submissions cross `at`, by binary search over `seq`
/// (the primary key), so a time filter narrows the scan without an index on
/// `submitted_at`, which every submission would pay for.
fn seq_bound(conn: &Connection, at: DateTime<Utc>, bound: Bound) -> Result<i64, StoreError> {
    let at = row::micros(at);
    // Two subqueries: SQLite answers a lone min() or max() from the key's
    // ends, but both in one query scan the table.
    let (min, max): (Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT (SELECT min(seq) FROM worktasks), (SELECT max(seq) FROM worktasks)",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (Some(mut low), Some(mut high)) = (min, max) else {
        return Ok(0);
    };
    let mut first_at = conn.prepare_cached(
        "SELECT seq, submitted_at FROM worktasks WHERE seq >= ?1 ORDER BY seq LIMIT 1",
    )?;
    // Invariant: positions below `low` are before `at`, and `high` is past
    // the last position when no position reaches it.
    high += 1;
    while low < high {
        let mid = low + (high - low) / 2;
        let (seq, submitted): (i64, i64) =
            first_at.query_row([mid], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let before = match bound {
            Bound::First => submitted < at,
            Bound::Last => submitted <= at,
        };
        if before {
            low = seq + 1;
        } else {
            high = mid;
        }
    }
    Ok(match bound {
        Bound::First => low,
        Bound::Last => low - 1,
    })
}

fn list(conn: &Connection, query: &ListQuery) -> Result<ListPage, StoreError> {
    let mut sql = format!("SELECT {TASK_COLUMNS}, seq FROM worktasks WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(statuses) = query.status {
        let marks: Vec<&str> = statuses.statuses().map(|_| "?").collect();
        sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
        args.extend(statuses.statuses().map(|s| s.as_str().to_string().into()));
    }
    if let Some(task_type) = query.task_type {
        sql.push_str(" AND type = ?");
        args.push(task_type.as_str().to_string().into());
    }
    if let Some(project) = &query.project_id {
        sql.push_str(" AND project_id = ?");
        args.push(project.clone().into());
    }
    if let Some(min) = query.min_priority {
        sql.push_str(" AND priority >= ?");
        args.push(i64::from(min.get()).into());
    }
    if let Some(max) = query.max_priority {
        sql.push_str(" AND priority <= ?");
        args.push(i64::from(max.get()).into());
    }
    if let Some(from) = query.submitted_from {
        sql.push_str(" AND submitted_at >= ? AND seq >= ?");
        args.push(row::micros(from).into());
        args.push(
            seq_bound(
                conn,
                from.checked_sub_signed(SUBMIT_ORDER_SLACK).unwrap_or(from),
                Bound::First,
            )?
            .into(),
        );
    }
    if let Some(until) = query.submitted_until {
        sql.push_str(" AND submitted_at < ? AND seq <= ?");
        args.push(row::micros(until).into());
        args.push(
            seq_bound(
                conn,
                until
                    .checked_add_signed(SUBMIT_ORDER_SLACK)
                    .unwrap_or(until),
                Bound::Last,
            )?
            .into(),
        );
    }
    if let Some(after) = query.after {
        sql.push_str(" AND seq < ?");
        args.push((after as i64).into());
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    let limit = query.limit.clamp(1, crate::MAX_LIST_LIMIT);
    args.push((limit as i64 + 1).into());
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params_from_iter(args))?;
    let mut tasks = Vec::with_capacity(limit);
    let mut last_seq = None;
    let mut more = false;
    while let Some(r) = rows.next()? {
        if tasks.len() == limit {
            more = true;
            break;
        }
        tasks.push(row::task_from_row(r)?);
        last_seq = Some(r.get::<_, u64>(row::TASK_COLUMN_COUNT)?);
    }
    Ok(ListPage {
        tasks,
        next: if more { last_seq } else { None },
    })
}
