//! The local worker pool: `mimir-aip worker` child processes, scaled from
//! queue depth.
//!
//! Every poll the queue calls for `clamp(ceil(queue_length / queueThreshold),
//! min, max)` workers. The desired count follows a rise at once but a fall only
//! once the queue has called for fewer for the idle timeout (a queue hovering
//! at a threshold would otherwise flip it every few polls); each change is
//! kept with its reason for the dashboard. Workers are spawned up to
//! `desired`; idle workers above it are asked to stop (their next lease
//! answers `stop`) once idle for the idle timeout; a worker that dies without
//! being asked (or without deregistering, as a worker stopped by a signal
//! does) is counted as failed, its leases are forfeited
//! at once and it is replaced.
//!
//! Workers outlive an orchestrator that crashed (they reconnect for a while),
//! so each child's pid is kept in a file under the data directory
//! (`workers/<worker_id>.pid`). A restarted orchestrator reads those files
//! before it first scales and adopts every worker whose process still runs
//! (checked by its `/proc` entry and command line): they count against
//! `maxWorkers` from the first poll, before they even register again, so a
//! restart never runs more workers than allowed.

use super::{Registry, pid_file};
use mimir_core::autoscale::{self, DampedDesired, Trend, desired_workers};
use mimir_store::Store;
use mimir_telemetry::Metrics;
use mimir_telemetry::metrics::DecisionLabels;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Defaults to 250 ms: how often the pool looks at the queue.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);
/// Changes of the desired count kept for the dashboard.
const KEPT_CHANGES: usize = 20;

/// Defaults to 30 s: how long a surplus worker idles before it is stopped,
/// and how long the queue must call for fewer workers before the desired
/// count falls.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the pool runs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The `mimir-aip` executable.
    pub exe: PathBuf,
    /// URL workers reach the orchestrator at.
    pub orchestrator_url: String,
    /// Token workers present, if any.
    pub token: Option<String>,
    /// Workers kept even when idle.
    pub min: u32,
    /// Most workers.
    pub max: u32,
    /// Queued tasks per worker.
    pub threshold: u32,
    /// Idle time before a surplus worker stops.
    pub idle_timeout: Duration,
    /// Poll interval.
    pub poll: Duration,
    /// Extra arguments for each worker (log format and level).
    pub worker_args: Vec<String>,
    /// A worker not heard from for this long no longer counts.
    pub fresh: Duration,
    /// Environment variables set for each worker.
    pub env: Vec<(String, String)>,
    /// Where each local worker's pid file is kept, so a restarted
    /// orchestrator adopts the workers its predecessor left; `None` keeps none.
    pub pid_dir: Option<PathBuf>,
}

/// The last scaling decision, for operators.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Decision {
    /// Workers the queue calls for.
    pub desired: u32,
    /// Workers running.
    pub active: u32,
    /// Queue length it was based on.
    pub queue_length: usize,
    /// Why the pool did what it did.
    pub reason: String,
    /// `spawn`, `stop` or `hold`.
    pub action: &'static str,
    /// The reason as a fixed code: `queue_depth`, `min_workers`, `max_workers`,
    /// `idle_surplus`, `busy_surplus`, `scale_down_cooldown` or `steady`.
    pub reason_code: &'static str,
    /// The last changes of the desired count, oldest first.
    pub changes: Vec<DesiredChange>,
}

/// One change of the desired worker count and why it was made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DesiredChange {
    /// Unix time of the change, in seconds.
    pub at: f64,
    /// Desired before.
    pub from: u32,
    /// Desired after.
    pub to: u32,
    /// Why, in words.
    pub reason: String,
}

/// The pool.
pub struct Pool {
    config: PoolConfig,
    children: Mutex<HashMap<String, Child>>,
    /// Workers a previous orchestrator started that still run, by id, with
    /// their pids: not our children, so watched through `/proc`.
    adopted: Mutex<HashMap<String, u32>>,
    stopping: Mutex<HashSet<String>>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    decision: Mutex<Decision>,
    /// The desired count, damped between polls.
    damped: Mutex<DampedDesired>,
    changes: Mutex<VecDeque<DesiredChange>>,
    /// When the autoscaler last polled, for readiness.
    last_poll: Mutex<Option<Instant>>,
    /// Wakes long-polling lease calls when workers are asked to stop.
    stop_requested: tokio::sync::Notify,
    /// Set once the orchestrator is stopping: no more scaling.
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Pool {
    /// A pool that has started nothing yet.
    pub fn new(config: PoolConfig, metrics: Arc<Metrics>) -> Pool {
        let first = u64::from(std::process::id()) << 16;
        let damped = DampedDesired::new(config.idle_timeout);
        Pool {
            config,
            children: Mutex::new(HashMap::new()),
            adopted: Mutex::new(HashMap::new()),
            stopping: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(first),
            metrics,
            decision: Mutex::new(Decision::default()),
            damped: Mutex::new(damped),
            changes: Mutex::new(VecDeque::with_capacity(KEPT_CHANGES)),
            last_poll: Mutex::new(None),
            stop_requested: tokio::sync::Notify::new(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the worker should stop leasing and exit.
    pub fn should_stop(&self, worker_id: &str) -> bool {
        self.stopping.lock().contains(worker_id)
    }

    /// Resolves when some worker is asked to stop.
    pub async fn stop_requested(&self) {
        self.stop_requested.notified().await
    }

    /// The last decision.
    pub fn decision(&self) -> Decision {
        self.decision.lock().clone()
    }

    /// Whether the autoscaler polled within a few poll intervals (it runs).
    pub fn is_running(&self) -> bool {
        let stale = self.config.poll * 8 + Duration::from_secs(1);
        self.last_poll.lock().is_some_and(|at| at.elapsed() < stale)
    }

    /// Asks every worker to stop (orchestrator shutdown) and waits up to
    /// `grace` for the pool's children to exit.
    pub async fn stop_all(&self, registry: &Registry, grace: Duration) {
        self.shutting_down.store(true, Ordering::SeqCst);
        {
            let mut stopping = self.stopping.lock();
            stopping.extend(self.children.lock().keys().cloned());
            stopping.extend(self.adopted.lock().keys().cloned());
            stopping.extend(
                registry
                    .local_workers(self.config.fresh)
                    .into_iter()
                    .map(|(id, _, _)| id),
            );
        }
        self.stop_requested.notify_waiters();
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            self.reap(None, registry).await;
            if self.children.lock().is_empty() && self.adopted.lock().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (id, child) in self.children.lock().iter_mut() {
            tracing::warn!(worker_id = %id, "worker did not stop in time; killing it");
            let _ = child.start_kill();
        }
    }

    /// Runs the pool until the task is dropped.
    /// Only the leader scales: with several orchestrators on one store, one
    /// pool decides.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        leadership: Arc<crate::leadership::Leadership>,
    ) {
        self.adopt();
        let mut tick = tokio::time::interval(self.config.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            *self.last_poll.lock() = Some(Instant::now());
            self.reap(Some(store.as_ref()), &registry).await;
            // Queued, and leased but not started: both wait for a worker.
            if !leadership.leads() {
                continue;
            }
            match store.queue_length().await {
                Ok(waiting) => self.scale(waiting, &registry),
                Err(error) => tracing::warn!(%error, "cannot read the queue length: not scaling"),
            }
        }
    }

    /// Takes on the workers a previous orchestrator left running (their pid
    /// files name processes that still run as those workers) and removes the
    /// files of the others.
    fn adopt(&self) {
        let Some(dir) = &self.config.pid_dir else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pid"))
                .map(str::to_string)
            else {
                continue;
            };
            let pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            match pid {
                Some(pid) if pid_file::runs_worker(pid, &id) => {
                    tracing::info!(worker_id = %id, pid, "adopted a worker left running by the previous orchestrator");
                    self.adopted.lock().insert(id, pid);
                }
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    /// Collects exited children and adopted workers. One that exited
    /// cleanly after it was asked to stop, or after it deregistered itself
    /// (stopped by SIGINT or SIGTERM), stopped; any other has failed.
    async fn reap(&self, store: Option<&dyn Store>, registry: &Registry) {
        // The exit status, when this process is the worker's parent.
        let mut exited: Vec<(String, Option<bool>)> = Vec::new();
        for (id, child) in self.children.lock().iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                exited.push((id.clone(), Some(status.success())));
            }
        }
        let adopted: Vec<(String, u32)> = self
            .adopted
            .lock()
            .iter()
            .map(|(id, pid)| (id.clone(), *pid))
            .collect();
        for (id, pid) in adopted {
            if !pid_file::runs_worker(pid, &id) {
                // Its exit status went to its new parent.
                exited.push((id, None));
            }
        }
        for (id, success) in exited {
            self.children.lock().remove(&id);
            self.adopted.lock().remove(&id);
            if let Some(dir) = &self.config.pid_dir {
                pid_file::remove(dir, &id);
            }
            let asked = self.stopping.lock().remove(&id);
            let left = registry.take_departed(&id);
            if !(asked || left) || success == Some(false) {
                self.metrics.workers_failed.inc();
                tracing::warn!(worker_id = %id, "worker died; its tasks will be retried and it will be replaced");
            } else if asked {
                tracing::info!(worker_id = %id, "worker stopped");
            } else {
                tracing::info!(worker_id = %id, "worker exited cleanly after deregistering (stopped by a signal); it will be replaced if needed");
            }
            if let Some(store) = store
                && let Err(error) = store.forfeit(&id).await
            {
                tracing::warn!(%error, worker_id = %id, "cannot forfeit a dead worker's leases: they expire instead");
            }
            if let Some(lifetime) = registry.remove(&id) {
                self.metrics.worker_duration.observe(lifetime.as_secs_f64());
            }
        }
    }

    fn scale(&self, queue_length: usize, registry: &Registry) {
        if self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let c = &self.config;
        let called_for = desired_workers(queue_length, c.threshold, c.min, c.max);
        let (desired, trend) = self.damped.lock().update(called_for, Instant::now());
        let by_queue = desired_workers(queue_length, c.threshold, 0, c.max);
        let why = autoscale::reason(trend, queue_length, by_queue, desired, c.idle_timeout);
        if let Trend::Raised { from } | Trend::Lowered { from } = trend {
            let mut changes = self.changes.lock();
            if changes.len() == KEPT_CHANGES {
                changes.pop_front();
            }
            changes.push_back(DesiredChange {
                at: chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
                from,
                to: desired,
                reason: why.clone(),
            });
        }
        let registered = registry.local_workers(c.fresh);
        let mut active: HashSet<String> = self.children.lock().keys().cloned().collect();
        active.extend(self.adopted.lock().keys().cloned());
        active.extend(registered.iter().map(|(id, _, _)| id.clone()));
        let stopping: HashSet<String> = self.stopping.lock().clone();
        let staying = active.iter().filter(|id| !stopping.contains(*id)).count() as u32;
        let mut reason = why.clone();
        let (mut action, mut reason_code) = match trend {
            Trend::Holding { .. } => ("hold", "scale_down_cooldown"),
            _ => ("hold", "steady"),
        };
        let wanted = desired_workers(queue_length, c.threshold, 0, u32::MAX);
        if staying < desired {
            action = "spawn";
            reason_code = if wanted < c.min {
                "min_workers"
            } else {
                "queue_depth"
            };
            // Call back workers asked to stop before spawning new ones.
            let mut revived = 0;
            for id in stopping
                .iter()
                .filter(|id| active.contains(*id))
                .take((desired - staying) as usize)
            {
                self.stopping.lock().remove(id);
                revived += 1;
            }
            let missing = desired - staying - revived;
            for _ in 0..missing {
                self.spawn();
            }
            reason = format!("{why}; started {missing}");
        } else if staying > desired {
            reason_code = "busy_surplus";
            let mut surplus = (staying - desired) as usize;
            for (id, idle, _) in &registered {
                if surplus == 0 {
                    break;
                }
                if *idle >= c.idle_timeout && !stopping.contains(id) {
                    (action, reason_code) = ("stop", "idle_surplus");
                    self.stopping.lock().insert(id.clone());
                    surplus -= 1;
                    tracing::info!(worker_id = %id, idle_s = idle.as_secs(), "stopping an idle surplus worker");
                    self.stop_requested.notify_waiters();
                }
            }
            reason = format!(
                "{why}; surplus workers stop after {} s idle",
                c.idle_timeout.as_secs()
            );
        }
        if action == "hold" && wanted > c.max {
            reason_code = "max_workers";
        }
        self.metrics
            .autoscaler_desired_workers
            .set(i64::from(desired));
        self.metrics
            .autoscaler_decisions
            .get_or_create(&DecisionLabels {
                action,
                reason: reason_code,
            })
            .inc();
        *self.decision.lock() = Decision {
            desired,
            active: active.len() as u32,
            queue_length,
            reason,
            action,
            reason_code,
            changes: self.changes.lock().iter().cloned().collect(),
        };
    }

    fn spawn(&self) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let worker_id = format!("local-{n:x}");
        let mut command = Command::new(&self.config.exe);
        command
            // The store's connection string is the orchestrator's alone:
            // workers (and the pipeline steps they run) never see it.
            .env_remove("MIMIR_STORE_URL")
            .arg("worker")
            .args([
                "--orchestrator",
                &self.config.orchestrator_url,
                "--worker-id",
                &worker_id,
                "--local",
                // Outlive an orchestrator crash long enough to reconnect, not forever.
                "--give-up-after",
                "300",
            ])
            .args(&self.config.worker_args)
            .stdin(Stdio::null())
            .kill_on_drop(false);
        if let Some(token) = &self.config.token {
            command.env("MIMIR_TOKEN", token);
        }
        command.envs(self.config.env.iter().map(|(k, v)| (k, v)));
        match command.spawn() {
            Ok(child) => {
                let pid = child.id().unwrap_or_default();
                tracing::info!(worker_id = %worker_id, pid, "worker spawned");
                if let Some(dir) = &self.config.pid_dir
                    && let Err(error) = pid_file::write(dir, &worker_id, pid)
                {
                    tracing::warn!(%error, worker_id = %worker_id, dir = %dir.display(), "cannot write the worker's pid file; a restarted orchestrator will not count it until it registers again");
                }
                self.metrics.workers_spawned.inc();
                self.children.lock().insert(worker_id, child);
            }
            Err(error) => {
                self.metrics.workers_failed.inc();
                tracing::error!(%error, exe = %self.config.exe.display(), "cannot spawn a worker");
            }
        }
    }
}

#[async_trait::async_trait]
impl super::WorkerBackend for Pool {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        leadership: Arc<crate::leadership::Leadership>,
    ) {
        Pool::run(self, store, registry, leadership).await
    }

    async fn stop_all(&self, registry: &Registry, grace: Duration) {
        Pool::stop_all(self, registry, grace).await
    }

    fn should_stop(&self, worker_id: &str) -> bool {
        Pool::should_stop(self, worker_id)
    }

    async fn stop_requested(&self) {
        Pool::stop_requested(self).await
    }

    fn decision(&self) -> Decision {
        Pool::decision(self)
    }

    fn is_running(&self) -> bool {
        Pool::is_running(self)
    }

    fn starts_workers_for(&self, _task_type: mimir_core::WorkTaskType) -> bool {
        // Local workers run every type.
        self.config.max > 0
    }

    fn waiting_reasons(&self, _task: &mimir_core::WorkTask) -> Vec<mimir_core::Reason> {
        let decision = self.decision();
        let mut reasons = Vec::new();
        if decision.active >= self.config.max && decision.queue_length > 0 {
            reasons.push(
                mimir_core::Reason::new(
                    mimir_core::ReasonCode::MaxWorkersReached,
                    format!(
                        "The local pool runs its most workers ({}, orchestrator.maxWorkers); the task waits for a free slot",
                        self.config.max
                    ),
                )
                .with("cluster", "local")
                .with("workers", decision.active)
                .with("max_workers", self.config.max),
            );
        }
        reasons
    }
}
