//! The single writer: group commit over one SQLite connection.
//!
//! Every write goes through one thread that owns the write connection. It takes
//! whatever commands are waiting (up to [`MAX_GROUP`]), runs them in one
//! transaction (a refused command writes nothing), commits once, and
//! only then updates the in-memory projection and answers. One fsync thus covers
//! every request that arrived while the previous commit was in flight.

use super::catalog::{self, CatalogWrite};
use super::models::{self, ModelWrite};
use super::row::{self, INSERT_TASK, NewRow, QUEUE_COLUMNS, TASK_COLUMNS};
use super::schedules::{self, ScheduleWrite, Written};
use crate::live::{Change, Live};
use crate::{EventSink, LeaseRequest, ScheduleAdvance, StoreError, WebhookDelivery};
use chrono::{DateTime, Utc};
use mimir_core::lifecycle::{self, Plan};
use mimir_core::{
    Attempt, AttemptEnd, ErrorClass, InvalidTransition, MlModel, PerType, QueueEntry, RetryPolicy,
    TaskEvent, TaskEventKind, WorkTask, WorkTaskResult, WorkTaskStatus, WorkTaskType,
};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

/// Most commands one transaction takes.
pub(crate) const MAX_GROUP: usize = 4096;

/// A write the writer thread carries out.
pub(crate) enum Op {
    Submit(Vec<NewRow>),
    Cancel {
        id: Uuid,
        at: DateTime<Utc>,
    },
    Lease(LeaseRequest),
    Start {
        worker_id: String,
        started: Vec<(Uuid, u32)>,
        at: DateTime<Utc>,
    },
    Finish {
        id: Uuid,
        worker_id: Option<String>,
        report: Box<WorkTaskResult>,
        at: DateTime<Utc>,
    },
    Expire {
        id: Uuid,
        attempt: u32,
        reason: String,
        at: DateTime<Utc>,
    },
    Release {
        worker_id: String,
        tasks: Vec<(Uuid, u32)>,
    },
    FinishMany {
        worker_id: String,
        reports: Vec<WorkTaskResult>,
        at: DateTime<Utc>,
    },
    Place(Vec<crate::Placement>),
    Catalog(CatalogWrite),
    Model(ModelWrite),
    Schedule(ScheduleWrite),
    /// Applies each advance still at its revision, with its tasks.
    Advance(Vec<(ScheduleAdvance, Vec<NewRow>)>),
    /// Submits the task of a webhook request not seen within the window.
    Webhook {
        delivery: WebhookDelivery,
        task: Box<NewRow>,
    },
    /// A one-page write, to learn whether writes succeed again after the disk
    /// was full.
    Probe,
    /// Commit everything before it, checkpoint the WAL into the database
    /// file and stop: the store's clean shutdown.
    Close,
}

/// What a command produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    Tasks(Vec<WorkTask>),
    Task(Box<WorkTask>),
    Statuses(Vec<Result<WorkTaskStatus, StoreError>>),
    Model(Option<Box<MlModel>>),
    Schedule(Written),
    /// Whether each advance was applied.
    Applied(Vec<bool>),
    /// The webhook's task, `None` for a replay.
    Webhook(Option<Box<WorkTask>>),
    Done,
}

/// A command and where its answer goes.
pub(crate) struct Command {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// The writer thread: the connection and what the operations change.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) core: Core,
    /// How many events the last commit had: the next one's list starts with
    /// room for as many, rather than growing (and copying) by doubling.
    pub(crate) events_capacity: usize,
    /// Set while writes fail for want of space (shared with readiness).
    pub(crate) storage_full: Arc<AtomicBool>,
    /// This thread's copy of `storage_full`, so a commit only touches the
    /// shared flag when the state changes.
    pub(crate) full: bool,
}

/// What operations read and change besides the database.
pub(crate) struct Core {
    pub(crate) live: Arc<Mutex<Live>>,
    pub(crate) queue_signal: Arc<Notify>,
    pub(crate) retry: RetryPolicy,
    /// Next free position for `seq` and `queue_seq` (one counter keeps both unique).
    pub(crate) next_seq: u64,
    /// Where lifecycle events go after each commit.
    pub(crate) events: Option<Arc<dyn EventSink>>,
}

/// What one group of commands did, applied once it is committed.
#[derive(Default)]
struct Effects {
    changes: Vec<Change>,
    /// Entries taken off the queue by leases; put back if the commit fails.
    popped: Vec<QueueEntry>,
    /// Lifecycle events, published once committed; `None` when nobody listens.
    events: Option<Vec<TaskEvent>>,
}

impl Effects {
    fn event(
        &mut self,
        id: Uuid,
        task_type: WorkTaskType,
        at: DateTime<Utc>,
        kind: impl FnOnce() -> TaskEventKind,
    ) {
        if let Some(events) = &mut self.events {
            events.push(TaskEvent {
                id,
                task_type,
                at,
                kind: kind(),
            });
        }
    }
}

impl Writer {
    /// Runs until every sender is gone or a [`Op::Close`] arrives.
    pub(crate) fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut group = Vec::with_capacity(64);
        let mut close = None;
        while let Some(first) = commands.blocking_recv() {
            if matches!(first.op, Op::Close) {
                close = Some(first);
                break;
            }
            group.push(first);
            while group.len() < MAX_GROUP {
                match commands.try_recv() {
                    Ok(command) if matches!(command.op, Op::Close) => {
                        close = Some(command);
                        break;
                    }
                    Ok(command) => group.push(command),
                    Err(_) => break,
                }
            }
            self.commit_group(&mut group);
            if close.is_some() {
                break;
            }
        }
        if let Some(close) = close {
            // Later commands find the channel closed: the store is shut.
            drop(commands);
            let _ = close.reply.send(self.checkpoint().map(|()| Outcome::Done));
        }
        tracing::debug!("store writer stopped");
    }

    /// Copies the WAL into the database file and truncates it, so the file
    /// alone holds every commit.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let (busy, wal_pages, copied): (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        if busy != 0 {
            return Err(StoreError::CommitFailed(format!(
                "the WAL checkpoint was blocked by a reader ({copied} of {wal_pages} pages copied)"
            )));
        }
        // After TRUNCATE both counts read 0: the WAL is empty.
        tracing::info!("store checkpointed");
        Ok(())
    }

    /// Notes whether the last commit failed for want of space; the shared flag
    /// is only touched when that changes.
    fn note_full(&mut self, full: bool) {
        if full == self.full {
            return;
        }
        self.full = full;
        self.storage_full.store(full, Ordering::Relaxed);
        if full {
            tracing::error!("the store's disk is full: writes are refused until space is freed");
        } else {
            tracing::info!("the store writes again: space was freed");
        }
    }

    fn commit_group(&mut self, group: &mut Vec<Command>) {
        let mut effects = Effects {
            events: self
                .core
                .events
                .as_ref()
                .map(|_| Vec::with_capacity(self.events_capacity)),
            ..Effects::default()
        };
        let mut done = Vec::with_capacity(group.len());
        let seq_before = self.core.next_seq;
        // No savepoint per command: they cost more than the commands. A
        // database error (disk full, I/O) fails the whole group, which then
        // stores nothing; refusals are per command and write nothing.
        //
        // Leases are answered before the commit: a lease lost to a crash only
        // puts its task back in the queue, where the store still has it, and
        // the attempt's late result is refused. Their in-memory leases and
        // counts are recorded at once, so an early heartbeat finds them and
        // the queue length never misses a leased task.
        let mut early: Vec<Uuid> = Vec::new();
        let mut early_moves: Vec<(WorkTaskType, WorkTaskStatus, WorkTaskStatus)> = Vec::new();
        // Outside the transaction: when it aborts, the commands it never
        // reached stay here and are answered with the commit's error, rather
        // than dropped (a dropped answer reads as "the store has stopped").
        let mut pending = group.drain(..);
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            for command in pending.by_ref() {
                let is_lease = matches!(command.op, Op::Lease(_));
                let mark = effects.changes.len();
                match self.core.apply_op(&tx, command.op, &mut effects) {
                    Err(StoreError::Sqlite(error)) => {
                        done.push((command.reply, Err(StoreError::commit_failed(&error))));
                        return Err(error);
                    }
                    Ok(outcome) if is_lease => {
                        let mut live = self.core.live.lock();
                        let changes: Vec<Change> = effects.changes.drain(mark..).collect();
                        for change in changes {
                            match change {
                                Change::Leased { id, .. } => early.push(id),
                                Change::Moved {
                                    task_type,
                                    from,
                                    to,
                                    left: None,
                                    entered: None,
                                } => early_moves.push((task_type, from, to)),
                                later => {
                                    effects.changes.push(later);
                                    continue;
                                }
                            }
                            live.apply(change);
                        }
                        drop(live);
                        let _ = command.reply.send(Ok(outcome));
                    }
                    result => done.push((command.reply, result)),
                }
            }
            tx.commit()
        })();
        let untried: Vec<Command> = pending.collect();
        if let Err(error) = outcome {
            tracing::error!(
                %error,
                tried = done.len(),
                untried = untried.len(),
                "store commit failed"
            );
            self.core.next_seq = seq_before;
            let replies = done
                .into_iter()
                .map(|(reply, _)| reply)
                .chain(untried.into_iter().map(|command| command.reply));
            let mut live = self.core.live.lock();
            for id in early {
                live.leases.remove(&id);
            }
            for (task_type, from, to) in early_moves {
                live.counts.moved(task_type, to, from);
            }
            for entry in effects.popped {
                live.queue.insert(entry);
            }
            drop(live);
            // Before anyone hears of the failure, so a caller that asks
            // `/ready` next finds the store full.
            self.note_full(crate::error::is_disk_full(&error));
            for reply in replies {
                // A caller that went away no longer needs its answer.
                let _ = reply.send(Err(StoreError::commit_failed(&error)));
            }
            return;
        }
        debug_assert!(untried.is_empty(), "a committed group skipped commands");
        if self.full {
            self.note_full(false);
        }
        let mut enqueued = false;
        {
            let mut live = self.core.live.lock();
            for change in effects.changes {
                enqueued |= matches!(
                    change,
                    Change::Created(_)
                        | Change::Moved {
                            entered: Some(_),
                            ..
                        }
                );
                live.apply(change);
            }
        }
        if enqueued {
            self.core.queue_signal.notify_waiters();
        }
        if let (Some(sink), Some(events)) = (&self.core.events, effects.events)
            && !events.is_empty()
        {
            self.events_capacity = events.len();
            sink.publish(events);
        }
        for (reply, result) in done {
            let _ = reply.send(result);
        }
    }
}

impl Core {
    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Runs one operation. Every operation checks before it writes, so a
    /// refusal (not found, wrong status, stale attempt) leaves nothing behind; a
    /// database error aborts the whole group instead (see `commit_group`).
    fn apply_op(
        &mut self,
        conn: &Connection,
        op: Op,
        fx: &mut Effects,
    ) -> Result<Outcome, StoreError> {
        match op {
            Op::Submit(tasks) => self.submit(conn, tasks, fx).map(Outcome::Tasks),
            Op::Cancel { id, at } => self
                .cancel(conn, id, at, fx)
                .map(|t| Outcome::Task(Box::new(t))),
            Op::Lease(request) => self.lease(conn, request, fx).map(Outcome::Tasks),
            Op::Start {
                worker_id,
                started,
                at,
            } => {
                start(conn, &worker_id, &started, at, fx)?;
                Ok(Outcome::Done)
            }
            Op::Finish {
                id,
                worker_id,
                report,
                at,
            } => {
                self.finish(conn, id, worker_id.as_deref(), *report, at, fx)?;
                let task = select_task(conn, id)?.ok_or(StoreError::NotFound(id))?;
                Ok(Outcome::Task(Box::new(task)))
            }
            Op::FinishMany {
                worker_id,
                reports,
                at,
            } => {
                let mut statuses = Vec::with_capacity(reports.len());
                for report in reports {
                    let Some(id) = report.worktask_id else {
                        statuses.push(Err(StoreError::Corrupt(
                            "a result without worktask_id".into(),
                        )));
                        continue;
                    };
                    // Refusals are decided before anything is written, so a
                    // refused report leaves no trace and the others proceed.
                    statuses.push(self.finish(conn, id, Some(&worker_id), report, at, fx));
                }
                Ok(Outcome::Statuses(statuses))
            }
            Op::Expire {
                id,
                attempt,
                reason,
                at,
            } => {
                let Some(control) = Control::load(conn, id)? else {
                    return Ok(Outcome::Done);
                };
                let plan =
                    lifecycle::expiry(control.current(), attempt, &self.retry, at, rand::random());
                if let Some(plan) = plan {
                    fx.event(id, control.entry.task_type, at, || {
                        TaskEventKind::LeaseExpired {
                            worker_id: control.worker_id.clone(),
                            attempt,
                        }
                    });
                    let failed = Failure {
                        reason,
                        result: None,
                        started_at: None,
                        // A lost worker may do better elsewhere.
                        class: Some(ErrorClass::Transient),
                    };
                    self.attempt_failed(conn, &control, failed, plan, at, fx)?;
                }
                Ok(Outcome::Done)
            }
            Op::Release { worker_id, tasks } => {
                self.release(conn, &worker_id, &tasks, fx)?;
                Ok(Outcome::Done)
            }
            Op::Place(placements) => {
                place(conn, &placements, fx)?;
                Ok(Outcome::Done)
            }
            Op::Catalog(write) => {
                catalog::write(conn, write)?;
                Ok(Outcome::Done)
            }
            Op::Model(write) => Ok(Outcome::Model(models::write(conn, write)?.map(Box::new))),
            Op::Schedule(write) => Ok(Outcome::Schedule(schedules::write(conn, write)?)),
            Op::Advance(advances) => {
                let mut applied = Vec::with_capacity(advances.len());
                for (advance, tasks) in advances {
                    // The compare-and-set and the tasks it fires commit
                    // together, or neither does.
                    let done = schedules::advance(conn, &advance)?;
                    if done {
                        self.submit(conn, tasks, fx)?;
                    }
                    applied.push(done);
                }
                Ok(Outcome::Applied(applied))
            }
            Op::Webhook { delivery, task } => {
                if !schedules::remember_delivery(conn, &delivery)? {
                    return Ok(Outcome::Webhook(None));
                }
                let task = self.submit(conn, vec![*task], fx)?.pop();
                Ok(Outcome::Webhook(task.map(Box::new)))
            }
            Op::Probe => {
                // Rewriting the header's user version dirties one page, so
                // the commit must append to the WAL.
                let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                conn.pragma_update(None, "user_version", version)?;
                Ok(Outcome::Done)
            }
            // `run` takes it out before a group is formed.
            Op::Close => Ok(Outcome::Done),
        }
    }

    fn submit(
        &mut self,
        conn: &Connection,
        rows: Vec<NewRow>,
        fx: &mut Effects,
    ) -> Result<Vec<WorkTask>, StoreError> {
        let mut insert = conn.prepare_cached(INSERT_TASK)?;
        let mut tasks = Vec::with_capacity(rows.len());
        for new in rows {
            let seq = self.take_seq();
            row::insert_task(&mut insert, &new, seq)?;
            let task = new.task;
            fx.event(task.worktask_id, task.task_type, task.submitted_at, || {
                TaskEventKind::Submitted {
                    priority: task.priority,
                }
            });
            fx.changes.push(Change::Created(QueueEntry {
                id: task.worktask_id,
                task_type: task.task_type,
                priority: task.priority,
                seq,
                enqueued_at_us: row::micros(task.submitted_at),
                not_before_us: None,
            }));
            tasks.push(task);
        }
        Ok(tasks)
    }

    fn cancel(
        &mut self,
        conn: &Connection,
        id: Uuid,
        at: DateTime<Utc>,
        fx: &mut Effects,
    ) -> Result<WorkTask, StoreError> {
        let control = Control::load(conn, id)?.ok_or(StoreError::NotFound(id))?;
        let plan = lifecycle::cancel(control.status)
            .map_err(|source| StoreError::Transition { id, source })?;
        let to = WorkTaskStatus::Cancelled;
        // Cancelling a running task ends its attempt; a queued one has none.
        let ended = plan
            .ends_attempt
            .then(|| {
                control.ended(
                    control.started_at,
                    at,
                    AttemptEnd::Cancelled,
                    String::new(),
                    None,
                )
            })
            .transpose()?;
        conn.prepare_cached(
            "UPDATE worktasks SET status = ?2, completed_at = ?3, not_before = NULL, \
             attempts = CASE WHEN ?4 IS NULL THEN attempts ELSE json_insert(attempts, '$[#]', json(?4)) END \
             WHERE id = ?1",
        )?
        .execute(params![id.as_bytes(), to.as_str(), row::micros(at), ended])?;
        fx.event(id, control.entry.task_type, at, || {
            TaskEventKind::Cancelled {
                from: control.status,
            }
        });
        fx.changes.push(Change::Moved {
            task_type: control.entry.task_type,
            from: control.status,
            to,
            left: plan.leaves_queue.then_some(control.entry),
            entered: None,
        });
        if plan.ends_attempt {
            fx.changes.push(Change::Unleased { id });
            fx.changes.push(Change::CancelNotice {
                worker_id: control.worker_id.clone(),
                id,
            });
        }
        select_task(conn, id)?.ok_or(StoreError::NotFound(id))
    }

    fn lease(
        &mut self,
        conn: &Connection,
        request: LeaseRequest,
        fx: &mut Effects,
    ) -> Result<Vec<WorkTask>, StoreError> {
        let now_us = row::micros(request.at);
        let mut running = PerType::<usize>::default();
        let mut taken = Vec::new();
        if let Some(id) = request.only {
            // One named task (a one-task worker): only if it is waiting,
            // or already placed with this very worker (a Kubernetes Job's
            // worker taking up the attempt it was created for).
            let control = Control::load(conn, id)?.ok_or(StoreError::NotFound(id))?;
            if control.status == WorkTaskStatus::Scheduled && control.worker_id == request.worker_id
            {
                return Ok(select_task(conn, id)?.into_iter().collect());
            }
            if control.status != WorkTaskStatus::Queued {
                let source = InvalidTransition {
                    from: control.status,
                    to: WorkTaskStatus::Scheduled,
                };
                return Err(StoreError::Transition { id, source });
            }
            if self.live.lock().queue.remove(&control.entry) {
                taken.push(control.entry);
            }
        } else {
            let mut live = self.live.lock();
            for t in WorkTaskType::ALL {
                running[t] = (live.counts.get(t, WorkTaskStatus::Scheduled)
                    + live.counts.get(t, WorkTaskStatus::Spawned)
                    + live.counts.get(t, WorkTaskStatus::Executing))
                    as usize;
            }
            while taken.len() < request.max {
                let accept = |t: WorkTaskType| {
                    request
                        .types
                        .as_ref()
                        .is_none_or(|types| types.contains(&t))
                        && request
                            .limits
                            .get(&t)
                            .is_none_or(|limit| running[t] < *limit)
                };
                let Some(entry) = live.queue.pop(now_us, accept) else {
                    break;
                };
                running[entry.task_type] += 1;
                taken.push(entry);
            }
        }
        fx.popped.extend(taken.iter().copied());
        let mut update = conn.prepare_cached(&format!(
            "UPDATE worktasks SET status = 'scheduled', attempt = attempt + 1, worker_id = ?2, not_before = NULL, started_at = NULL \
             WHERE id = ?1 AND status = 'queued' RETURNING {TASK_COLUMNS}"
        ))?;
        let mut leased = Vec::with_capacity(taken.len());
        for entry in taken {
            let task = update
                .query_row(
                    params![entry.id.as_bytes(), request.worker_id],
                    row::task_from_row,
                )
                .optional()?;
            let Some(task) = task else {
                debug_assert!(false, "queued task {} missing from the store", entry.id);
                continue;
            };
            let attempt = task.attempt;
            fx.event(entry.id, entry.task_type, request.at, || {
                let eligible_us = entry.enqueued_at_us.max(entry.not_before_us.unwrap_or(0));
                TaskEventKind::Leased {
                    worker_id: request.worker_id.clone(),
                    attempt,
                    waiting_since: DateTime::from_timestamp_micros(eligible_us)
                        .unwrap_or(task.submitted_at),
                    submitted_at: task.submitted_at,
                    pipeline_id: task.task_spec.pipeline_id.clone(),
                    traceparent: task.traceparent.clone(),
                }
            });
            fx.changes.push(Change::Moved {
                task_type: entry.task_type,
                from: WorkTaskStatus::Queued,
                to: WorkTaskStatus::Scheduled,
                left: None,
                entered: None,
            });
            fx.changes.push(Change::Leased {
                id: entry.id,
                worker_id: request.worker_id.clone(),
                attempt,
            });
            leased.push(task);
        }
        Ok(leased)
    }

    fn finish(
        &mut self,
        conn: &Connection,
        id: Uuid,
        worker_id: Option<&str>,
        report: WorkTaskResult,
        at: DateTime<Utc>,
        fx: &mut Effects,
    ) -> Result<WorkTaskStatus, StoreError> {
        let mut control = Control::load(conn, id)?.ok_or(StoreError::NotFound(id))?;
        let reported = lifecycle::Report {
            by: worker_id,
            attempt: report.attempt,
            outcome: report.status,
            class: report.error_class,
        };
        let plan = lifecycle::report(control.current(), reported, &self.retry, at, rand::random())
            .map_err(|refusal| StoreError::refused_report(id, worker_id, refusal))?;
        let started_us = report.started_at.map(row::micros);
        if control.status == WorkTaskStatus::Scheduled {
            // A quick attempt reports its start with its end: both events count.
            let started = report.started_at.unwrap_or(at);
            fx.event(id, control.entry.task_type, started, || {
                TaskEventKind::Started {
                    worker_id: control.worker_id.clone(),
                    attempt: control.attempt,
                }
            });
        }
        if plan == Plan::Complete {
            // The completing attempt is not appended to `attempts`: the row
            // itself holds it (worker, start, end), so the success path stays
            // one plain UPDATE. `SqliteStore::attempts` adds it back.
            let result = row::to_json(&report.stored_result())?;
            conn.prepare_cached(
                "UPDATE worktasks SET status = 'completed', completed_at = ?2, \
                 started_at = coalesce(?3, started_at, ?2), result = ?4, error_message = '' WHERE id = ?1",
            )?
            .execute(params![id.as_bytes(), row::micros(at), started_us, result])?;
            fx.event(id, control.entry.task_type, at, || {
                TaskEventKind::Completed {
                    // The task's last event: its worker is not needed after.
                    worker_id: std::mem::take(&mut control.worker_id),
                    attempt: control.attempt,
                    started_at: report.started_at.or(control.started_at),
                    result: report.result,
                }
            });
            fx.changes.push(Change::Moved {
                task_type: control.entry.task_type,
                from: control.status,
                to: WorkTaskStatus::Completed,
                left: None,
                entered: None,
            });
            fx.changes.push(Change::Unleased { id });
        } else {
            if started_us.is_some() || report.result.is_some() {
                let result = report
                    .result
                    .as_ref()
                    .map(|_| report.stored_result())
                    .map(|r| row::to_json(&r))
                    .transpose()?;
                conn.prepare_cached("UPDATE worktasks SET started_at = coalesce(?2, started_at), result = coalesce(?3, result) WHERE id = ?1")?
                    .execute(params![id.as_bytes(), started_us, result])?;
            }
            let reason = if report.error_message.is_empty() {
                "the attempt failed without a message".to_string()
            } else {
                report.error_message
            };
            let failed = Failure {
                reason,
                result: report.result,
                started_at: report.started_at,
                class: report.error_class,
            };
            return self.attempt_failed(conn, &control, failed, plan, at, fx);
        }
        Ok(WorkTaskStatus::Completed)
    }

    /// An attempt ended badly: writes what the plan says (back to the queue
    /// with backoff, or the task's end).
    fn attempt_failed(
        &mut self,
        conn: &Connection,
        control: &Control,
        failure: Failure,
        plan: Plan,
        at: DateTime<Utc>,
        fx: &mut Effects,
    ) -> Result<WorkTaskStatus, StoreError> {
        let id = control.entry.id;
        let reason = failure.reason.as_str();
        let started_at = failure.started_at.or(control.started_at);
        let status = match plan {
            Plan::Complete => {
                return Err(StoreError::Corrupt(
                    "a completion planned as a failed attempt".into(),
                ));
            }
            Plan::Retry {
                retry_count,
                not_before,
                end,
            } => {
                let ended =
                    control.ended(started_at, at, end, failure.reason.clone(), failure.class)?;
                let seq = self.take_seq();
                conn.prepare_cached(
                    "UPDATE worktasks SET status = 'queued', retry_count = ?2, retry_reason = ?3, error_message = ?3, \
                     not_before = ?4, queue_seq = ?5, queued_at = ?6, \
                     attempts = json_insert(attempts, '$[#]', json(?7)) WHERE id = ?1",
                )?
                .execute(params![id.as_bytes(), retry_count, reason, row::micros(not_before), seq, row::micros(at), ended])?;
                let entry = QueueEntry {
                    seq,
                    enqueued_at_us: row::micros(at),
                    not_before_us: Some(row::micros(not_before)),
                    ..control.entry
                };
                fx.changes.push(Change::Moved {
                    task_type: control.entry.task_type,
                    from: control.status,
                    to: WorkTaskStatus::Queued,
                    left: None,
                    entered: Some(entry),
                });
                fx.event(id, control.entry.task_type, at, || TaskEventKind::Retried {
                    worker_id: control.worker_id.clone(),
                    attempt: control.attempt,
                    retry_count,
                    max_retries: control.max_retries,
                    reason: failure.reason,
                    started_at,
                    not_before,
                    result: failure.result,
                });
                WorkTaskStatus::Queued
            }
            Plan::End {
                status: final_status,
                end,
            } => {
                let ended =
                    control.ended(started_at, at, end, failure.reason.clone(), failure.class)?;
                conn.prepare_cached(
                    "UPDATE worktasks SET status = ?2, completed_at = ?3, error_message = ?4, \
                     attempts = json_insert(attempts, '$[#]', json(?5)) WHERE id = ?1",
                )?
                .execute(params![
                    id.as_bytes(),
                    final_status.as_str(),
                    row::micros(at),
                    reason,
                    ended
                ])?;
                fx.changes.push(Change::Moved {
                    task_type: control.entry.task_type,
                    from: control.status,
                    to: final_status,
                    left: None,
                    entered: None,
                });
                fx.event(id, control.entry.task_type, at, || TaskEventKind::Failed {
                    worker_id: control.worker_id.clone(),
                    attempt: control.attempt,
                    status: final_status,
                    reason: failure.reason,
                    retry_count: control.retry_count,
                    started_at,
                    result: failure.result,
                });
                final_status
            }
        };
        fx.changes.push(Change::Unleased { id });
        Ok(status)
    }

    fn release(
        &mut self,
        conn: &Connection,
        worker_id: &str,
        tasks: &[(Uuid, u32)],
        fx: &mut Effects,
    ) -> Result<(), StoreError> {
        for &(id, attempt) in tasks {
            let Some(control) = Control::load(conn, id)? else {
                continue;
            };
            if control.status != WorkTaskStatus::Scheduled
                || control.attempt != attempt
                || control.worker_id != worker_id
            {
                continue;
            }
            // Back in its old place (its queue_seq is unchanged): an unstarted
            // task has not used up an attempt.
            let entry = control.entry;
            conn.prepare_cached(
                "UPDATE worktasks SET status = 'queued', worker_id = '' WHERE id = ?1",
            )?
            .execute(params![id.as_bytes()])?;
            fx.event(id, entry.task_type, Utc::now(), || {
                TaskEventKind::Released {
                    worker_id: worker_id.to_string(),
                }
            });
            fx.changes.push(Change::Moved {
                task_type: entry.task_type,
                from: WorkTaskStatus::Scheduled,
                to: WorkTaskStatus::Queued,
                left: None,
                entered: Some(QueueEntry {
                    not_before_us: None,
                    ..entry
                }),
            });
            fx.changes.push(Change::Unleased { id });
        }
        Ok(())
    }
}

fn start(
    conn: &Connection,
    worker_id: &str,
    started: &[(Uuid, u32)],
    at: DateTime<Utc>,
    fx: &mut Effects,
) -> Result<(), StoreError> {
    let mut update = conn.prepare_cached(
        "UPDATE worktasks SET status = 'executing', started_at = ?4 \
         WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'scheduled' RETURNING type",
    )?;
    for &(id, attempt) in started {
        let task_type: Option<String> = update
            .query_row(
                params![id.as_bytes(), attempt, worker_id, row::micros(at)],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(task_type) = task_type {
            let task_type: WorkTaskType = task_type.parse().map_err(StoreError::Corrupt)?;
            fx.event(id, task_type, at, || TaskEventKind::Started {
                worker_id: worker_id.to_string(),
                attempt,
            });
            fx.changes.push(Change::Moved {
                task_type,
                from: WorkTaskStatus::Scheduled,
                to: WorkTaskStatus::Executing,
                left: None,
                entered: None,
            });
        }
    }
    Ok(())
}

/// What the writer needs to know of a task to change its status.
pub(crate) struct Control {
    pub(crate) entry: QueueEntry,
    pub(crate) status: WorkTaskStatus,
    pub(crate) attempt: u32,
    pub(crate) retry_count: u32,
    pub(crate) max_retries: u32,
    pub(crate) worker_id: String,
    pub(crate) started_at: Option<DateTime<Utc>>,
}

/// Why an attempt failed, and what it reported.
struct Failure {
    reason: String,
    result: Option<serde_json::Value>,
    started_at: Option<DateTime<Utc>>,
    /// Recorded with the attempt (the plan already decided on it).
    class: Option<ErrorClass>,
}

/// Columns [`Control::from_row`] reads.
pub(crate) const CONTROL_COLUMNS: &str =
    "status, attempt, retry_count, max_retries, worker_id, started_at";

impl Control {
    /// What the state machine needs to decide ([`lifecycle`]).
    pub(crate) fn current(&self) -> lifecycle::Current<'_> {
        lifecycle::Current {
            status: self.status,
            attempt: self.attempt,
            worker_id: &self.worker_id,
            retry_count: self.retry_count,
            max_retries: self.max_retries,
        }
    }

    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Control> {
        let status: String = r.get(6)?;
        Ok(Control {
            entry: row::queue_entry_from_row(r)?,
            status: status.parse().map_err(|e: String| {
                rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, e.into())
            })?,
            attempt: r.get(7)?,
            retry_count: r.get(8)?,
            max_retries: r.get(9)?,
            worker_id: r.get(10)?,
            started_at: r
                .get::<_, Option<i64>>(11)?
                .and_then(DateTime::from_timestamp_micros),
        })
    }

    /// The history record of the current attempt, ending now, as JSON.
    fn ended(
        &self,
        started_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        outcome: AttemptEnd,
        error: String,
        error_class: Option<ErrorClass>,
    ) -> Result<String, StoreError> {
        let attempt = Attempt::ended(
            self.attempt,
            self.worker_id.clone(),
            started_at,
            at,
            outcome,
            error,
            error_class,
        );
        Ok(row::to_json(&attempt)?)
    }

    fn load(conn: &Connection, id: Uuid) -> Result<Option<Control>, StoreError> {
        let mut select = conn.prepare_cached(&format!(
            "SELECT {QUEUE_COLUMNS}, {CONTROL_COLUMNS} FROM worktasks WHERE id = ?1"
        ))?;
        Ok(select
            .query_row([id.as_bytes()], Control::from_row)
            .optional()?)
    }
}

/// Moves the leases of scheduled attempts to the workers placed to run them.
fn place(
    conn: &Connection,
    placements: &[crate::Placement],
    fx: &mut Effects,
) -> Result<(), StoreError> {
    let mut update = conn.prepare_cached(
        "UPDATE worktasks SET worker_id = ?3, cluster_name = ?4, kubernetes_job_name = ?5 \
         WHERE id = ?1 AND attempt = ?2 AND status = 'scheduled'",
    )?;
    for p in placements {
        let changed = update.execute(params![
            p.id.as_bytes(),
            p.attempt,
            p.worker_id,
            p.cluster_name,
            p.kubernetes_job_name
        ])?;
        if changed == 1 {
            fx.changes.push(Change::Leased {
                id: p.id,
                worker_id: p.worker_id.clone(),
                attempt: p.attempt,
            });
        }
    }
    Ok(())
}

pub(crate) fn select_task(conn: &Connection, id: Uuid) -> Result<Option<WorkTask>, StoreError> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM worktasks WHERE id = ?1"
    ))?;
    Ok(select
        .query_row([id.as_bytes()], row::task_from_row)
        .optional()?)
}

#[cfg(test)]
mod tests;
