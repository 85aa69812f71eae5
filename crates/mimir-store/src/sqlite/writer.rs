//! The single writer: group commit over one SQLite connection.
//!
//! Every write goes through one thread that owns the write connection. It takes
//! whatever commands are waiting (up to [`MAX_GROUP`]), runs each inside its own
//! savepoint (a failing command does not spoil the others), commits once, and
//! only then updates the in-memory projection and answers. One fsync thus covers
//! every request that arrived while the previous commit was in flight.

use super::row::{self, INSERT_TASK, QUEUE_COLUMNS, TASK_COLUMNS};
use crate::StoreError;
use crate::live::{Change, Live};
use chrono::{DateTime, Utc};
use mimir_core::{QueueEntry, WorkTask, WorkTaskStatus};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most commands one transaction takes.
pub(crate) const MAX_GROUP: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write the writer thread carries out.
pub(crate) enum Command {
    Submit {
        tasks: Vec<WorkTask>,
        reply: Reply<Vec<WorkTask>>,
    },
    Cancel {
        id: Uuid,
        at: DateTime<Utc>,
        reply: Reply<WorkTask>,
    },
}

/// A command's result, held until the transaction commits.
// Short-lived and few per commit: boxing would cost more than the size.
#[allow(clippy::large_enum_variant)]
enum Done {
    Tasks(Reply<Vec<WorkTask>>, Result<Vec<WorkTask>, StoreError>),
    Task(Reply<WorkTask>, Result<WorkTask, StoreError>),
}

impl Done {
    fn fail(self, why: &str) {
        let error = || StoreError::CommitFailed(why.to_string());
        // A caller that went away no longer needs its answer.
        let _ = match self {
            Done::Tasks(reply, _) => reply.send(Err(error())).map_err(drop),
            Done::Task(reply, _) => reply.send(Err(error())).map_err(drop),
        };
    }

    fn send(self) {
        let _ = match self {
            Done::Tasks(reply, result) => reply.send(result).map_err(drop),
            Done::Task(reply, result) => reply.send(result).map_err(drop),
        };
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) live: Arc<Mutex<Live>>,
    /// Next free position for `seq` and `queue_seq` (one counter keeps both unique).
    pub(crate) next_seq: u64,
}

impl Writer {
    /// Runs until every sender is gone.
    pub(crate) fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut group = Vec::with_capacity(64);
        while let Some(first) = commands.blocking_recv() {
            group.push(first);
            while group.len() < MAX_GROUP {
                match commands.try_recv() {
                    Ok(command) => group.push(command),
                    Err(_) => break,
                }
            }
            self.commit_group(&mut group);
        }
        tracing::debug!("store writer stopped");
    }

    fn commit_group(&mut self, group: &mut Vec<Command>) {
        let mut changes = Vec::new();
        let mut done = Vec::with_capacity(group.len());
        let seq_before = self.next_seq;
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            for command in group.drain(..) {
                done.push(run_command(&tx, &mut self.next_seq, command, &mut changes));
            }
            tx.commit()
        })();
        if let Err(error) = outcome {
            tracing::error!(%error, commands = done.len(), "store commit failed");
            self.next_seq = seq_before;
            for command in group.drain(..) {
                drop(command);
            }
            let why = error.to_string();
            for d in done {
                d.fail(&why);
            }
            return;
        }
        {
            let mut live = self.live.lock();
            for change in changes {
                live.apply(change);
            }
        }
        for d in done {
            d.send();
        }
    }
}

/// Runs one command in a savepoint; its changes join `changes` only if it succeeds.
fn run_command(
    tx: &Transaction<'_>,
    next_seq: &mut u64,
    command: Command,
    changes: &mut Vec<Change>,
) -> Done {
    let mut mine = Vec::new();
    let seq_before = *next_seq;
    let done = match command {
        Command::Submit { tasks, reply } => {
            let result = in_savepoint(tx, |tx| submit(tx, next_seq, tasks, &mut mine));
            Done::Tasks(reply, result)
        }
        Command::Cancel { id, at, reply } => {
            let result = in_savepoint(tx, |tx| cancel(tx, id, at, &mut mine));
            Done::Task(reply, result)
        }
    };
    let ok = match &done {
        Done::Tasks(_, result) => result.is_ok(),
        Done::Task(_, result) => result.is_ok(),
    };
    if ok {
        changes.append(&mut mine);
    } else {
        *next_seq = seq_before;
    }
    done
}

fn in_savepoint<T>(
    tx: &Transaction<'_>,
    body: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    tx.execute_batch("SAVEPOINT command")?;
    match body(tx) {
        Ok(value) => {
            tx.execute_batch("RELEASE command")?;
            Ok(value)
        }
        Err(error) => {
            tx.execute_batch("ROLLBACK TO command; RELEASE command")?;
            Err(error)
        }
    }
}

fn submit(
    conn: &Connection,
    next_seq: &mut u64,
    tasks: Vec<WorkTask>,
    changes: &mut Vec<Change>,
) -> Result<Vec<WorkTask>, StoreError> {
    let mut insert = conn.prepare_cached(INSERT_TASK)?;
    for task in &tasks {
        let seq = *next_seq;
        *next_seq += 1;
        row::insert_task(&mut insert, task, seq)?;
        changes.push(Change::Created(QueueEntry {
            id: task.worktask_id,
            task_type: task.task_type,
            priority: task.priority,
            seq,
            enqueued_at_us: row::micros(task.submitted_at),
            not_before_us: None,
        }));
    }
    Ok(tasks)
}

pub(crate) fn select_task(conn: &Connection, id: Uuid) -> Result<Option<WorkTask>, StoreError> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM worktasks WHERE id = ?1"
    ))?;
    Ok(select
        .query_row([id.as_bytes()], row::task_from_row)
        .optional()?)
}

fn cancel(
    conn: &Connection,
    id: Uuid,
    at: DateTime<Utc>,
    changes: &mut Vec<Change>,
) -> Result<WorkTask, StoreError> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {QUEUE_COLUMNS}, status FROM worktasks WHERE id = ?1"
    ))?;
    let found = select
        .query_row([id.as_bytes()], |r| {
            let status: String = r.get(6)?;
            Ok((row::queue_entry_from_row(r)?, status))
        })
        .optional()?;
    let Some((entry, status)) = found else {
        return Err(StoreError::NotFound(id));
    };
    let from: WorkTaskStatus = status.parse().map_err(StoreError::Corrupt)?;
    let to = WorkTaskStatus::Cancelled;
    // Running tasks are cancelled through their worker, which must be told first.
    if from != WorkTaskStatus::Queued {
        return Err(StoreError::Transition {
            id,
            source: mimir_core::InvalidTransition { from, to },
        });
    }
    conn.prepare_cached(
        "UPDATE worktasks SET status = ?2, completed_at = ?3, not_before = NULL WHERE id = ?1",
    )?
    .execute(params![id.as_bytes(), to.as_str(), row::micros(at)])?;
    changes.push(Change::Moved {
        task_type: entry.task_type,
        from,
        to,
        left: Some(entry),
        entered: None,
    });
    select_task(conn, id)?.ok_or(StoreError::NotFound(id))
}
