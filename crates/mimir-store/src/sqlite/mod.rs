//! The embedded SQLite backend: one file, WAL journal, group commit.
//!
//! Writes go through one writer thread ([`writer`]); reads use a small pool of
//! read-only connections, which WAL lets run beside the writer.

mod row;
mod schema;
mod writer;

use crate::live::Live;
use crate::{ListPage, ListQuery, Store, StoreError, TaskCounts};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mimir_core::{Aging, Priority, QueueIndex, WorkTask};
use parking_lot::Mutex;
use r2d2_sqlite::SqliteConnectionManager;
use row::TASK_COLUMNS;
use rusqlite::{Connection, OpenFlags, params_from_iter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use writer::{Command, Writer};

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
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            aging: None,
            durable: true,
            readers: DEFAULT_READERS,
        }
    }
}

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    commands: mpsc::Sender<Command>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    live: Arc<Mutex<Live>>,
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
        let path = data_dir.join(DB_FILE_NAME);
        let mut conn = Connection::open(&path).map_err(|e| open_error(&path, e.to_string()))?;
        schema::prepare_writer(&conn, options.durable)
            .map_err(|e| open_error(&path, e.to_string()))?;
        schema::migrate(&mut conn).map_err(|e| open_error(&path, e.to_string()))?;
        let (live, next_seq) = schema::load_live(&conn, QueueIndex::new(options.aging))
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
        let writer = Writer {
            conn,
            live: live.clone(),
            next_seq,
        };
        std::thread::Builder::new()
            .name("mimir-store-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| open_error(&path, format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path,
            commands,
            readers,
            live,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
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

    async fn submit(&self, tasks: Vec<WorkTask>) -> Result<Vec<WorkTask>, StoreError> {
        if tasks.is_empty() {
            return Ok(tasks);
        }
        self.write(|reply| Command::Submit { tasks, reply }).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<WorkTask>, StoreError> {
        self.read(move |conn| writer::select_task(conn, id)).await
    }

    async fn list(&self, query: ListQuery) -> Result<ListPage, StoreError> {
        self.read(move |conn| list(conn, &query)).await
    }

    async fn cancel(&self, id: Uuid, at: DateTime<Utc>) -> Result<WorkTask, StoreError> {
        self.write(|reply| Command::Cancel { id, at, reply }).await
    }

    fn queue_length(&self) -> usize {
        self.live.lock().queue.len()
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

    fn counts(&self) -> TaskCounts {
        self.live.lock().counts.clone()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?)
        })
        .await
    }
}

fn list(conn: &Connection, query: &ListQuery) -> Result<ListPage, StoreError> {
    let mut sql = format!("SELECT {TASK_COLUMNS}, seq FROM worktasks WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(status) = query.status {
        sql.push_str(" AND status = ?");
        args.push(status.as_str().to_string().into());
    }
    if let Some(task_type) = query.task_type {
        sql.push_str(" AND type = ?");
        args.push(task_type.as_str().to_string().into());
    }
    if let Some(project) = &query.project_id {
        sql.push_str(" AND project_id = ?");
        args.push(project.clone().into());
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
        last_seq = Some(r.get::<_, u64>(19)?);
    }
    Ok(ListPage {
        tasks,
        next: if more { last_seq } else { None },
    })
}
