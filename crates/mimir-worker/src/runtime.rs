//! The worker's loops: lease, heartbeat, report.

use crate::machine_load::{self, CpuBusy};
use crate::{Executor, Finished};
use chrono::{DateTime, Utc};
use mimir_client::{Client, ClientError};
use mimir_core::sizing::{Load, SHORT, Sizing, cpus};
use mimir_core::{WorkTask, WorkTaskResult};
use parking_lot::Mutex;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// Defaults to 10 s: how long one lease call waits for work.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// A task running this long has its start reported before the next regular heartbeat.
const START_REPORT_AFTER: Duration = Duration::from_millis(100);
/// While it runs tasks a worker beats at least this often, so a cancelled
/// task stops within a second; an idle worker beats only to keep its leases.
const BUSY_BEAT: Duration = Duration::from_millis(400);
/// How often the worker adjusts how many tasks it runs at once.
const SIZING_PERIOD: Duration = Duration::from_millis(500);
/// Most results sent in one call.
const REPORT_BATCH: usize = 256;
/// Defaults to 30 s: how long a stopping worker lets running attempts finish
/// before it stops them and hands them back as failed (transient).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Orchestrator URL.
    pub orchestrator: String,
    /// Bearer token, if the orchestrator wants one.
    pub token: Option<String>,
    /// A stable id; the orchestrator makes one up when `None`.
    pub worker_id: Option<String>,
    /// Task types to run; empty for all.
    pub types: Vec<String>,
    /// Most tasks run at once; the worker adapts within it (see
    /// [`mimir_core::sizing`]). 1 runs one task at a time.
    pub concurrency: usize,
    /// Most tasks leased beyond those running, so the next starts without a
    /// round trip; the worker leases ahead only while tasks are short.
    pub prefetch: usize,
    /// Started by the orchestrator's local pool.
    pub local: bool,
    /// Longest wait of one lease call.
    pub wait: Duration,
    /// Exit when the orchestrator stays unreachable this long; `None` never.
    pub give_up_after: Option<Duration>,
    /// Run exactly this task, then exit (one-task mode).
    pub only: Option<Uuid>,
    /// Where this worker records its own metrics (`--metrics-listen`), if anywhere.
    pub metrics: Option<Arc<mimir_telemetry::Metrics>>,
    /// How long a stopping worker waits for running attempts before it stops
    /// them. Defaults to [`DEFAULT_SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// How the orchestrator is verified over HTTPS, and this worker's client
    /// certificate. Defaults to the system's roots and no certificate.
    pub tls: mimir_client::TlsOptions,
}

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The orchestrator was unreachable for too long.
    #[error("gave up: the orchestrator at {url} was unreachable for {seconds}s")]
    GaveUp {
        /// Its URL.
        url: String,
        /// For how long.
        seconds: u64,
    },
    /// The orchestrator refused the worker.
    #[error(transparent)]
    Client(#[from] ClientError),
}

#[derive(Debug)]
struct Held {
    attempt: u32,
    /// Set when it claimed a running slot.
    started_at: Option<DateTime<Utc>>,
    /// Being given back to the orchestrator unstarted: it must not start.
    returning: bool,
    /// The orchestrator was told it started.
    start_reported: bool,
    cancel: CancellationToken,
}

struct Shared {
    client: Client,
    config: WorkerConfig,
    worker_id: Mutex<String>,
    held: Mutex<HashMap<Uuid, Held>>,
    /// A slot came free (a result was reported).
    slot_freed: Notify,
    /// Limits the tasks running at once.
    slots: Slots,
    /// Fires when the worker should stop leasing.
    stop: CancellationToken,
    /// Since when the orchestrator has been unreachable.
    unreachable_since: Mutex<Option<Instant>>,
    /// Longest wait between tries of a call: the heartbeat interval once
    /// registered, so a lease is tried for several times before it can run
    /// out, however long the orchestrator was away.
    retry_cap_ms: std::sync::atomic::AtomicU64,
    registering: tokio::sync::Mutex<()>,
    /// How many tasks run at once and are leased ahead.
    sizing: Mutex<Sizing>,
    /// Tasks waiting in the orchestrator's queue, as the last heartbeat said.
    queue_waiting: std::sync::atomic::AtomicUsize,
    /// Set once the shutdown grace ran out: running attempts were stopped by
    /// the worker itself, and are reported as failed so they are retried.
    abandoning: std::sync::atomic::AtomicBool,
    metrics: Option<Arc<mimir_telemetry::Metrics>>,
}

#[derive(Deserialize)]
struct Registered {
    worker_id: String,
    heartbeat_interval_ms: u64,
}

#[derive(Deserialize)]
struct LeaseAnswer {
    worktasks: Vec<WorkTask>,
    stop: bool,
}

#[derive(Deserialize)]
struct HeartbeatAnswer {
    cancel: Vec<Uuid>,
    lost: Vec<Uuid>,
    stop: bool,
    /// Free slots of idle workers: give back up to this many unstarted tasks.
    #[serde(default)]
    give_back: usize,
    /// Tasks waiting in the orchestrator's queue.
    #[serde(default)]
    waiting: usize,
}

/// Running slots whose number changes while tasks wait for them.
#[derive(Debug)]
struct Slots {
    state: Mutex<SlotState>,
    freed: Notify,
}

#[derive(Debug)]
struct SlotState {
    running: usize,
    limit: usize,
}

impl Slots {
    fn new(limit: usize) -> Slots {
        Slots {
            state: Mutex::new(SlotState { running: 0, limit }),
            freed: Notify::new(),
        }
    }

    /// Waits for a free slot; first come, first served.
    async fn claim(&self) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = self.state.lock();
                if state.running < state.limit {
                    state.running += 1;
                    return;
                }
            }
            freed.await;
        }
    }

    fn release(&self) {
        self.state.lock().running -= 1;
        self.freed.notify_one();
    }

    fn resize(&self, limit: usize) {
        self.state.lock().limit = limit;
        self.freed.notify_waiters();
    }

    /// Slots free now.
    fn free(&self) -> usize {
        let state = self.state.lock();
        state.limit.saturating_sub(state.running)
    }
}

/// A claimed slot, given back when dropped.
struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Shared {
    fn id(&self) -> String {
        self.worker_id.lock().clone()
    }

    /// Tasks to hold at most: those it runs at once and, while its tasks are
    /// short, those it leases ahead. A long task held ahead would wait here
    /// while an idle worker could run it.
    fn capacity(&self) -> usize {
        let sizing = self.sizing.lock();
        sizing.concurrency() + sizing.prefetch(self.running_long())
    }

    /// Running tasks that have already run at least [`SHORT`].
    fn running_long(&self) -> usize {
        let now = Utc::now();
        self.held
            .lock()
            .values()
            .filter_map(|h| h.started_at)
            .filter(|t| (now - *t).to_std().unwrap_or_default() >= SHORT)
            .count()
    }

    /// Unstarted tasks held beyond what the worker can run soon: while its
    /// slots run long tasks it leases nothing ahead, so what it leased ahead
    /// before is better in the queue, where any free worker can take it.
    fn surplus(&self) -> usize {
        let running_long = self.running_long();
        let sizing = self.sizing.lock();
        if sizing.prefetch(running_long) > 0 {
            return 0;
        }
        let free = self.slots.free();
        drop(sizing);
        self.unstarted().saturating_sub(free)
    }

    /// Held tasks not started yet.
    fn unstarted(&self) -> usize {
        self.held
            .lock()
            .values()
            .filter(|h| h.started_at.is_none())
            .count()
    }

    /// Folds a finished task's duration into the typical duration.
    fn observe(&self, took: Duration) {
        self.sizing.lock().observe(took);
    }

    /// Waits before retrying an unreachable orchestrator; errors once it has
    /// been unreachable for longer than the worker accepts.
    async fn backoff(&self, error: &ClientError, delay: &mut Duration) -> Result<(), WorkerError> {
        // A certificate that does not verify will not verify on the next try.
        if let ClientError::Tls { url, message } = error {
            return Err(WorkerError::Client(ClientError::Tls {
                url: url.clone(),
                message: message.clone(),
            }));
        }
        let since = *self
            .unreachable_since
            .lock()
            .get_or_insert_with(Instant::now);
        if let Some(limit) = self.config.give_up_after
            && since.elapsed() > limit
        {
            return Err(WorkerError::GaveUp {
                url: self.config.orchestrator.clone(),
                seconds: since.elapsed().as_secs(),
            });
        }
        if is_store_trouble(error) {
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "the orchestrator cannot store now; retrying");
        } else {
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "cannot reach the orchestrator; retrying");
        }
        tokio::time::sleep(*delay).await;
        let cap = Duration::from_millis(
            self.retry_cap_ms
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(100),
        );
        *delay = (*delay * 2).min(Duration::from_secs(30)).min(cap);
        Ok(())
    }

    /// Forgets attempt `attempt` of task `id`; a newer attempt of the same
    /// task leased since (after a give-back) is kept.
    fn forget(&self, id: Uuid, attempt: u32) {
        let mut held = self.held.lock();
        if held.get(&id).is_some_and(|h| h.attempt == attempt) {
            held.remove(&id);
        }
    }

    fn reachable(&self) {
        *self.unreachable_since.lock() = None;
    }

    /// Registers, retrying while the orchestrator is unreachable. Returns the
    /// heartbeat interval.
    async fn register(&self) -> Result<Duration, WorkerError> {
        let _one_at_a_time = self.registering.lock().await;
        let mut delay = Duration::from_millis(200);
        loop {
            let body = json!({
                "worker_id": self.id(),
                "hostname": mimir_telemetry::hostname(),
                "pid": std::process::id(),
                "types": self.config.types,
                "concurrency": self.config.concurrency,
                "version": env!("CARGO_PKG_VERSION"),
                "local": self.config.local,
            });
            match self
                .client
                .call::<Registered>(Method::POST, "/api/workers/register", Some(&body))
                .await
            {
                Ok(registered) => {
                    self.reachable();
                    tracing::info!(worker_id = %registered.worker_id, orchestrator = %self.config.orchestrator, "worker registered");
                    *self.worker_id.lock() = registered.worker_id;
                    let every = registered.heartbeat_interval_ms.max(100);
                    self.retry_cap_ms
                        .store(every, std::sync::atomic::Ordering::Relaxed);
                    return Ok(Duration::from_millis(every));
                }
                Err(error @ ClientError::Api { .. }) => return Err(error.into()),
                Err(error) => self.backoff(&error, &mut delay).await?,
            }
        }
    }

    /// Runs a call; re-registers when the orchestrator forgot this worker and
    /// retries while it is unreachable.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, WorkerError> {
        let mut delay = Duration::from_millis(200);
        loop {
            let url = format!("/api/workers/{}{path}", self.id());
            match self.client.call::<T>(Method::POST, &url, Some(body)).await {
                Ok(answer) => {
                    self.reachable();
                    return Ok(answer);
                }
                Err(ClientError::Api { code, .. }) if code == "unknown_worker" => {
                    self.register().await?;
                }
                // The orchestrator's disk is full, its database is out of
                // reach, or it is shutting down (behind a load balancer,
                // another replica answers next): it stored nothing, so
                // results are kept and sent again rather than dropped.
                Err(error @ ClientError::Api { .. }) if is_store_trouble(&error) => {
                    self.backoff(&error, &mut delay).await?
                }
                Err(error @ ClientError::Api { .. }) => return Err(error.into()),
                Err(error) => self.backoff(&error, &mut delay).await?,
            }
        }
    }
}

/// Adjusts how many tasks run at once to what the worker measures, every
/// [`SIZING_PERIOD`].
async fn size(shared: Arc<Shared>) {
    let mut cpu = CpuBusy::default();
    cpu.sample();
    let mut look = tokio::time::interval(SIZING_PERIOD / 5);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut looks = 0;
    let mut backlog = true;
    loop {
        look.tick().await;
        // Every slot busy and a task waiting, here or in the queue, at every
        // look of the period.
        let waiting = shared.unstarted() > 0
            || shared
                .queue_waiting
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0;
        backlog &= waiting && shared.slots.free() == 0;
        looks += 1;
        if looks < 5 {
            continue;
        }
        let load = Load {
            backlog,
            cpu_busy: cpu.sample(),
            memory_available: machine_load::memory_available(),
        };
        (looks, backlog) = (0, true);
        let changed = shared.sizing.lock().adjust(load);
        if let Some(concurrency) = changed {
            tracing::debug!(
                concurrency,
                backlog = load.backlog,
                cpu_busy = load.cpu_busy,
                "tasks run at once changed"
            );
            shared.slots.resize(concurrency);
            shared.slot_freed.notify_one();
        }
    }
}

/// Runs the worker until `shutdown` resolves or the orchestrator asks it to stop.
pub async fn run(
    config: WorkerConfig,
    executor: Arc<dyn Executor>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), WorkerError> {
    let client =
        Client::with_tls(&config.orchestrator, &config.tls)?.with_token(config.token.clone());
    let sizing = Sizing::new(config.concurrency, config.prefetch, cpus());
    let shared = Arc::new(Shared {
        client,
        worker_id: Mutex::new(config.worker_id.clone().unwrap_or_default()),
        metrics: config.metrics.clone(),
        slots: Slots::new(sizing.concurrency()),
        sizing: Mutex::new(sizing),
        queue_waiting: std::sync::atomic::AtomicUsize::new(0),
        config,
        held: Mutex::new(HashMap::new()),
        slot_freed: Notify::new(),
        stop: CancellationToken::new(),
        unreachable_since: Mutex::new(None),
        registering: tokio::sync::Mutex::new(()),
        retry_cap_ms: std::sync::atomic::AtomicU64::new(30_000),
        abandoning: std::sync::atomic::AtomicBool::new(false),
    });
    let heartbeat_every = shared.register().await?;
    let (results, reports) = mpsc::unbounded_channel();
    let reporter = tokio::spawn(report(shared.clone(), reports));
    let heartbeat = tokio::spawn(beat(shared.clone(), heartbeat_every));
    let sizer = tokio::spawn(size(shared.clone()));
    let stop = shared.stop.clone();
    let stopper = async move {
        shutdown.await;
        tracing::info!("stopping: no more leases; finishing running tasks");
        stop.cancel();
    };
    let (leased, _) = tokio::join!(lease_loop(shared.clone(), executor, results), async {
        tokio::select! {
            _ = stopper => {}
            _ = shared.stop.cancelled() => {}
        }
    });
    let (mut runners, unstarted) = leased?;
    let grace = tokio::time::sleep(shared.config.shutdown_grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = runners.join_next() => if next.is_none() { break },
            () = &mut grace, if !shared.abandoning.load(std::sync::atomic::Ordering::Relaxed) => {
                shared.abandoning.store(true, std::sync::atomic::Ordering::Relaxed);
                let held = shared.held.lock();
                tracing::warn!(running = held.len(), grace_s = shared.config.shutdown_grace.as_secs(), "stopping the attempts still running after the shutdown grace");
                for task in held.values() {
                    task.cancel.cancel();
                }
            }
        }
    }
    let unstarted: Vec<(Uuid, u32)> = unstarted.lock().drain(..).collect();
    if !unstarted.is_empty() {
        let tasks: Vec<Value> = unstarted
            .iter()
            .map(|(id, attempt)| json!({"worktask_id": id, "attempt": attempt}))
            .collect();
        let _: Value = shared.call("/release", &json!({ "tasks": tasks })).await?;
        tracing::info!(
            count = unstarted.len(),
            "gave back tasks that never started"
        );
    }
    // Every runner is done, so the channel closes once the reporter drains it.
    reporter.await.map_err(|e| ClientError::Unexpected {
        url: String::new(),
        message: e.to_string(),
    })??;
    heartbeat.abort();
    sizer.abort();
    let leave = format!("/api/workers/{}", shared.id());
    let _ = shared
        .client
        .call::<Value>(Method::DELETE, &leave, None)
        .await;
    tracing::info!(worker_id = %shared.id(), "worker stopped");
    Ok(())
}

type Unstarted = Arc<Mutex<Vec<(Uuid, u32)>>>;

async fn lease_loop(
    shared: Arc<Shared>,
    executor: Arc<dyn Executor>,
    results: mpsc::UnboundedSender<WorkTaskResult>,
) -> Result<(tokio::task::JoinSet<()>, Unstarted), WorkerError> {
    let mut runners = tokio::task::JoinSet::new();
    let unstarted: Unstarted = Arc::default();
    while !shared.stop.is_cancelled() {
        while runners.try_join_next().is_some() {}
        let free = shared.capacity().saturating_sub(shared.held.lock().len());
        if free == 0 {
            tokio::select! {
                _ = shared.slot_freed.notified() => {}
                _ = shared.stop.cancelled() => {}
            }
            continue;
        }
        // Of those, how many would start at once; the rest wait here, and
        // the orchestrator withholds them while another worker is idle.
        let idle = shared
            .slots
            .free()
            .saturating_sub(shared.unstarted())
            .min(free);
        let mut body = json!({ "max": free, "idle": idle, "types": shared.config.types, "wait_ms": shared.config.wait.as_millis() as u64 });
        if let Some(only) = shared.config.only {
            body["worktask_id"] = json!(only);
            // One task, then stop: the loop ends once it is handed out.
            shared.stop.cancel();
        }
        let Some(answer) = lease(&shared, &body).await? else {
            break;
        };
        if answer.stop {
            tracing::info!("the orchestrator asked this worker to stop");
            shared.stop.cancel();
        }
        for task in answer.worktasks {
            let cancel = CancellationToken::new();
            shared.held.lock().insert(
                task.worktask_id,
                Held {
                    attempt: task.attempt,
                    started_at: None,
                    returning: false,
                    start_reported: false,
                    cancel: cancel.clone(),
                },
            );
            let (shared, executor, results, unstarted) = (
                shared.clone(),
                executor.clone(),
                results.clone(),
                unstarted.clone(),
            );
            runners.spawn(async move {
                let id = task.worktask_id;
                tokio::select! {
                    biased;
                    () = shared.slots.claim() => {}
                    _ = cancel.cancelled() => {
                        // Cancelled, lost or given back before it started.
                        shared.forget(id, task.attempt);
                        shared.slot_freed.notify_one();
                        return;
                    }
                    _ = shared.stop.cancelled(), if shared.config.only.is_none() => {
                        shared.forget(id, task.attempt);
                        unstarted.lock().push((id, task.attempt));
                        return;
                    }
                }
                let slot = Slot(&shared.slots);
                // Starting and giving back decide under one lock: a task
                // being given back never starts.
                let started_at = Utc::now();
                // A given-back attempt's runner may win a slot before it
                // sees its cancellation, and the task may be held again under
                // a newer attempt by then: only this very attempt starts.
                let claimed = match shared.held.lock().get_mut(&id) {
                    Some(held)
                        if !held.returning
                            && held.attempt == task.attempt
                            && !cancel.is_cancelled() =>
                    {
                        held.started_at = Some(started_at);
                        true
                    }
                    _ => false,
                };
                if !claimed {
                    shared.forget(id, task.attempt);
                    return;
                }
                execute(
                    &shared,
                    executor.as_ref(),
                    task,
                    cancel,
                    started_at,
                    &results,
                )
                .await;
                drop(slot);
            });
        }
    }
    Ok((runners, unstarted))
}

/// One lease call. An idle worker asked to stop does not wait out the long
/// poll: `None` then. (The orchestrator puts back any task a lease answer
/// dropped this way carried when the worker leaves.) A busy one waits, and
/// gives back what the answer brings.
async fn lease(shared: &Shared, body: &Value) -> Result<Option<LeaseAnswer>, WorkerError> {
    let call = shared.call::<LeaseAnswer>("/lease", body);
    tokio::pin!(call);
    let mut stopping = false;
    loop {
        tokio::select! {
            answer = &mut call => return answer.map(Some),
            _ = shared.stop.cancelled(), if !stopping && shared.config.only.is_none() => {
                if shared.held.lock().is_empty() {
                    return Ok(None);
                }
                stopping = true;
            }
        }
    }
}

async fn execute(
    shared: &Shared,
    executor: &dyn Executor,
    task: WorkTask,
    cancel: CancellationToken,
    started_at: DateTime<Utc>,
    results: &mpsc::UnboundedSender<WorkTaskResult>,
) {
    let span = attempt_span(&task, &shared.id());
    span.in_scope(|| tracing::debug!("task running"));
    let Finished {
        mut outcome,
        mut error,
        result,
        mut error_class,
        storage_operations,
    } = executor
        .execute(&task, cancel.clone())
        .instrument(span.clone())
        .await;
    let abandoned = shared.abandoning.load(std::sync::atomic::Ordering::Relaxed);
    if abandoned && cancel.is_cancelled() {
        outcome = mimir_core::AttemptOutcome::Failed;
        error = "the worker stopped before the attempt finished".into();
        error_class = Some(mimir_core::ErrorClass::Transient);
    }
    if !error.is_empty() {
        span.in_scope(|| tracing::debug!(%error, ?outcome, "attempt ended"));
    }
    if let Some(metrics) = &shared.metrics {
        crate::metrics::record_attempt(metrics, &task, outcome, started_at, result.as_ref());
        for operation in &storage_operations {
            mimir_storage::record_operation(metrics, operation);
        }
    }
    shared.observe((Utc::now() - started_at).to_std().unwrap_or_default());
    if cancel.is_cancelled() && !abandoned {
        // Cancelled or lost: the orchestrator has moved on and would refuse it.
        tracing::info!(worktask_id = %task.worktask_id, "task stopped: cancelled or its lease was lost");
        shared.forget(task.worktask_id, task.attempt);
        shared.slot_freed.notify_one();
        return;
    }
    let report = WorkTaskResult {
        worktask_id: Some(task.worktask_id),
        status: outcome,
        output_location: task.data_access.output_location.clone(),
        metadata: Value::Null,
        error_message: error,
        attempt: Some(task.attempt),
        worker_id: Some(task.worker_id.clone()),
        started_at: Some(started_at),
        result,
        error_class,
        // The orchestrator counts them too, so one scrape target has them all.
        storage_operations,
    };
    // The reporter outlives every runner, so the send cannot fail while it matters.
    let _ = results.send(report);
}

/// The span of one attempt: a child of the task's submission when it carries
/// a trace context, with the fields every line about the task carries.
fn attempt_span(task: &WorkTask, worker_id: &str) -> tracing::Span {
    let (trace_id, span_id) =
        mimir_telemetry::propagation::ids(&task.traceparent).unwrap_or_default();
    if !mimir_telemetry::otel::enabled() {
        // Without traces the span only serves debug lines: free at info.
        return tracing::debug_span!(
            "attempt",
            worktask_id = %task.worktask_id,
            r#type = %task.task_type,
            attempt = task.attempt,
            worker_id = %worker_id,
            pipeline_id = %task.task_spec.pipeline_id,
            trace_id,
            span_id,
        );
    }
    let span = tracing::info_span!(
        "attempt",
        otel.name = %format_args!("execute {}", task.task_type),
        otel.kind = "consumer",
        worktask_id = %task.worktask_id,
        r#type = %task.task_type,
        attempt = task.attempt,
        worker_id = %worker_id,
        pipeline_id = %task.task_spec.pipeline_id,
        trace_id,
        span_id,
    );
    mimir_telemetry::propagation::set_parent(&span, &task.traceparent);
    span
}

/// Whether the orchestrator refused a call because its disk is full (507).
/// An answer of the orchestrator's own trouble, which may pass: a full
/// disk, an unreachable database, a replica shutting down, any server
/// error. The call is made again (a result already stored is then refused
/// as such, and dropped) rather than the worker giving up its tasks.
fn is_store_trouble(error: &ClientError) -> bool {
    matches!(error, ClientError::Api { code, status, .. }
        if status.is_server_error()
            || matches!(code.as_str(), "storage_full" | "store_unavailable" | "shutting_down"))
}

/// Sends finished attempts in batches, retrying until the orchestrator has them.
async fn report(
    shared: Arc<Shared>,
    mut reports: mpsc::UnboundedReceiver<WorkTaskResult>,
) -> Result<(), WorkerError> {
    let mut batch = Vec::with_capacity(REPORT_BATCH);
    while let Some(first) = reports.recv().await {
        batch.push(first);
        while batch.len() < REPORT_BATCH {
            match reports.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let answer: Value = match shared.call("/results", &json!({ "results": batch })).await {
            Ok(answer) => answer,
            // None of them was this worker's to report (their leases were
            // lost): the orchestrator moved on, so they are dropped.
            Err(WorkerError::Client(ClientError::Api {
                status, message, ..
            })) if status == reqwest::StatusCode::CONFLICT => {
                tracing::warn!(count = batch.len(), %message, "results refused: their leases were lost");
                Value::Null
            }
            Err(error) => return Err(error),
        };
        for refused in answer["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["accepted"] == false)
        {
            tracing::warn!(worktask_id = %refused["worktask_id"], error = %refused["error"], "result refused");
        }
        {
            let mut held = shared.held.lock();
            for report in batch.drain(..) {
                if let Some(id) = report.worktask_id
                    && held
                        .get(&id)
                        .is_some_and(|h| Some(h.attempt) == report.attempt)
                {
                    held.remove(&id);
                }
            }
        }
        shared.slot_freed.notify_one();
    }
    Ok(())
}

/// Renews the leases of every held task; stops the ones the orchestrator names.
async fn beat(shared: Arc<Shared>, every: Duration) {
    // A quick look several times a second: a task that has run for a while
    // without its start being told triggers a heartbeat at once, so its status
    // turns `executing` promptly; tasks that finish quickly cost nothing.
    let mut look = tokio::time::interval(START_REPORT_AFTER.min(every));
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = tokio::time::Instant::now();
    loop {
        look.tick().await;
        let busy = !shared.held.lock().is_empty();
        let due = last_beat.elapsed() >= if busy { every.min(BUSY_BEAT) } else { every };
        let unreported_start = shared.held.lock().values().any(|h| {
            !h.start_reported
                && h.started_at.is_some_and(|t| {
                    (Utc::now() - t).to_std().unwrap_or_default() >= START_REPORT_AFTER
                })
        });
        let surplus = shared.surplus();
        if surplus > 0 {
            give_back(&shared, surplus).await;
        }
        if !due && !unreported_start {
            continue;
        }
        last_beat = tokio::time::Instant::now();
        let tasks: Vec<Value> = {
            let mut held = shared.held.lock();
            held.iter_mut()
                .map(|(id, h)| {
                    h.start_reported |= h.started_at.is_some();
                    json!({ "worktask_id": id, "attempt": h.attempt, "started_at": h.started_at })
                })
                .collect()
        };
        let answer: HeartbeatAnswer =
            match shared.call("/heartbeat", &json!({ "tasks": tasks })).await {
                Ok(answer) => answer,
                // None of the leases is this worker's any more: stop them all.
                Err(WorkerError::Client(ClientError::Api { status, .. }))
                    if status == reqwest::StatusCode::CONFLICT =>
                {
                    HeartbeatAnswer {
                        cancel: Vec::new(),
                        lost: tasks
                            .iter()
                            .filter_map(|t| t["worktask_id"].as_str())
                            .filter_map(|id| id.parse().ok())
                            .collect(),
                        stop: false,
                        give_back: 0,
                        waiting: 0,
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "heartbeat failed");
                    continue;
                }
            };
        {
            let held = shared.held.lock();
            for id in answer.cancel.iter().chain(&answer.lost) {
                if let Some(task) = held.get(id) {
                    tracing::info!(worktask_id = %id, "stopping a task the orchestrator no longer wants run");
                    task.cancel.cancel();
                }
            }
        }
        shared
            .queue_waiting
            .store(answer.waiting, std::sync::atomic::Ordering::Relaxed);
        if answer.give_back > 0 {
            give_back(&shared, answer.give_back).await;
        }
        if answer.stop {
            shared.stop.cancel();
        }
    }
}

/// Gives back up to `n` held tasks that have not started, for idle workers
/// to run: they return to their place in the queue.
async fn give_back(shared: &Shared, n: usize) {
    let tasks: Vec<Value> = {
        let mut held = shared.held.lock();
        held.iter_mut()
            .filter(|(_, h)| h.started_at.is_none() && !h.returning)
            .take(n)
            .map(|(id, h)| {
                h.returning = true;
                h.cancel.cancel();
                json!({ "worktask_id": id, "attempt": h.attempt })
            })
            .collect()
    };
    if tasks.is_empty() {
        return;
    }
    match shared
        .call::<Value>("/release", &json!({ "tasks": tasks }))
        .await
    {
        Ok(_) => tracing::debug!(
            count = tasks.len(),
            "gave back unstarted tasks to idle workers"
        ),
        // Their leases expire and the tasks are retried.
        Err(error) => {
            tracing::warn!(%error, count = tasks.len(), "could not give back unstarted tasks")
        }
    }
}
