//! The pool of long-lived worker Jobs, for the task types listed in
//! `orchestrator.kubernetes.poolTypes`.
//!
//! A Job per attempt pays a pod start (scheduling, image pull, process
//! start: seconds) for every task. For floods of short tasks the pool runs
//! worker Jobs that lease many tasks each, sized as the local pool is:
//! `clamp(ceil(waiting / queueThreshold), minWorkers, capacity)` over the
//! waiting tasks of the pool's types, up at once and down only after the
//! idle timeout. Pool Jobs count against each cluster's `maxWorkers` with
//! the Jobs of single attempts, and fill clusters in the same order.
//!
//! A surplus pool worker that has idled for the idle timeout is asked to
//! stop (its next lease or heartbeat answers `stop`); it exits, its pod
//! succeeds and its Job ends. A surplus Job whose pod has not started yet
//! holds no task and is deleted. A pool pod that ends any other way (OOM
//! kill, eviction, lost node, deleted Job, failed start) forfeits its
//! worker's leases at once, so its tasks are retried without waiting for
//! the leases to expire, and the pool starts another Job.

use super::KubernetesBackend;
use super::cluster::{Cluster, PoolJob};
use super::dispatch::choose;
use super::job_spec;
use super::pod_state::{PodState, classify, note};
use crate::workers::Registry;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use mimir_core::WorkTaskStatus;
use mimir_core::autoscale::{self, DampedDesired, Trend, desired_workers};
use mimir_store::Store;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The label Kubernetes' Job controller puts on a Job's pods.
const JOB_NAME_LABELS: [&str; 2] = ["batch.kubernetes.io/job-name", "job-name"];

/// What the pool decided last, for the backend's decision.
#[derive(Debug, Clone, Default)]
pub struct PoolDecision {
    /// Pool workers the queue calls for.
    pub desired: u32,
    /// Tasks of the pool's types that wait.
    pub waiting: usize,
    /// Why, in words.
    pub reason: String,
}

/// The pool's scaling state.
pub struct PoolScaler {
    damped: Mutex<DampedDesired>,
    /// Pool workers asked to stop, by worker id (= Job name).
    stopping: Mutex<HashSet<String>>,
    /// Wakes long-polling lease calls when a worker is asked to stop.
    stop_requested: tokio::sync::Notify,
    decision: Mutex<PoolDecision>,
}

impl PoolScaler {
    /// A pool that has decided nothing yet; a fall must last `cooldown`.
    pub fn new(cooldown: Duration) -> PoolScaler {
        PoolScaler {
            damped: Mutex::new(DampedDesired::new(cooldown)),
            stopping: Mutex::new(HashSet::new()),
            stop_requested: tokio::sync::Notify::new(),
            decision: Mutex::new(PoolDecision::default()),
        }
    }

    /// Whether the pool worker `worker_id` was asked to stop.
    pub fn should_stop(&self, worker_id: &str) -> bool {
        self.stopping.lock().contains(worker_id)
    }

    /// Resolves when some pool worker is asked to stop.
    pub async fn stop_requested(&self) {
        self.stop_requested.notified().await
    }

    /// The last decision.
    pub fn decision(&self) -> PoolDecision {
        self.decision.lock().clone()
    }
}

/// The Job a pod belongs to, by the Job controller's label.
pub fn pod_job_name(pod: &Pod) -> Option<String> {
    let labels = pod.metadata.labels.as_ref()?;
    JOB_NAME_LABELS
        .iter()
        .find_map(|key| labels.get(*key))
        .cloned()
}

impl KubernetesBackend {
    /// One scaling round: starts pool Jobs up to the desired count, asks
    /// idle surplus workers to stop, deletes surplus Jobs not yet started.
    pub(super) async fn scale_pool(self: &Arc<Self>, store: &Arc<dyn Store>, registry: &Registry) {
        let (Some(config), Some(scaler)) = (&self.config.pool, &self.pool) else {
            return;
        };
        let counts = match store.counts().await {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(%error, "cannot count waiting tasks: the worker pool is not scaled");
                return;
            }
        };
        let waiting: usize = config
            .types
            .iter()
            .map(|t| {
                counts.get(*t, WorkTaskStatus::Queued) + counts.get(*t, WorkTaskStatus::Scheduled)
            })
            .sum::<u64>() as usize;
        let now = Instant::now();
        let max: u32 = self.clusters.iter().map(|c| c.config.max_workers).sum();
        let called_for = desired_workers(waiting, config.threshold, config.min, max);
        let (desired, trend) = scaler.damped.lock().update(called_for, now);
        let by_queue = desired_workers(waiting, config.threshold, 0, max);
        let mut reason = autoscale::reason(trend, waiting, by_queue, desired, config.idle_timeout);

        // Every pool Job, by cluster, and whether its worker was asked to stop.
        let stopping = scaler.stopping.lock().clone();
        let mut running: Vec<(Arc<Cluster>, String, PoolJob)> = Vec::new();
        for cluster in &self.clusters {
            let state = cluster.state.lock();
            for (name, job) in &state.pool {
                running.push((cluster.clone(), name.clone(), job.clone()));
            }
        }
        let staying = running
            .iter()
            .filter(|(_, name, _)| !stopping.contains(name))
            .count() as u32;
        if staying < desired {
            let mut missing = desired - staying;
            // Call back workers asked to stop before starting new ones.
            for (_, name, _) in running.iter().filter(|(_, n, _)| stopping.contains(n)) {
                if missing == 0 {
                    break;
                }
                scaler.stopping.lock().remove(name);
                missing -= 1;
            }
            let mut rooms: Vec<u32> = self.clusters.iter().map(|c| c.room(now)).collect();
            let mut started = 0;
            for _ in 0..missing {
                let Some(i) = choose("", &self.clusters, &rooms) else {
                    break;
                };
                rooms[i] -= 1;
                started += 1;
                let cluster = self.clusters[i].clone();
                let name = job_spec::pool_job_name();
                {
                    let mut state = cluster.state.lock();
                    state.circuit.sent(now);
                    state.pool.insert(name.clone(), PoolJob::new(false));
                }
                let backend = self.clone();
                tokio::spawn(async move { backend.create_pool_job(&cluster, &name).await });
            }
            reason = if started < missing {
                format!(
                    "{reason}; started {started} pool workers, {} more wait for room in a cluster",
                    missing - started
                )
            } else {
                format!("{reason}; started {started} pool workers")
            };
        } else if staying > desired {
            let mut surplus = staying - desired;
            let fresh = self.config.lease_ttl;
            // Jobs whose worker never started hold no task: deleted first.
            for (cluster, name, job) in &running {
                if surplus == 0 {
                    break;
                }
                let started = matches!(job.pod, Some(PodState::Running))
                    || registry.idle(name, fresh).is_some();
                if stopping.contains(name) || started || !job.created {
                    continue;
                }
                cluster.state.lock().pool.remove(name);
                tracing::info!(cluster = cluster.name(), job = %name, "deleting a surplus pool Job whose worker has not started");
                self.delete_job(cluster, name).await;
                surplus -= 1;
            }
            for (cluster, name, _) in &running {
                if surplus == 0 {
                    break;
                }
                if stopping.contains(name) {
                    continue;
                }
                let Some(idle) = registry.idle(name, fresh) else {
                    continue;
                };
                if idle >= config.idle_timeout {
                    scaler.stopping.lock().insert(name.clone());
                    surplus -= 1;
                    tracing::info!(cluster = cluster.name(), worker_id = %name, idle_s = idle.as_secs(), "stopping an idle surplus pool worker");
                    scaler.stop_requested.notify_waiters();
                }
            }
            reason = format!(
                "{reason}; surplus pool workers stop after {} s idle",
                config.idle_timeout.as_secs()
            );
        }
        if let Trend::Raised { .. } | Trend::Lowered { .. } = trend {
            tracing::info!(desired, waiting, "pool workers: {reason}");
        }
        *scaler.decision.lock() = PoolDecision {
            desired,
            waiting,
            reason,
        };
    }

    /// Creates the pool Job `name` in `cluster`.
    async fn create_pool_job(&self, cluster: &Cluster, name: &str) {
        let job = job_spec::build_pool(name, &cluster.config, &self.config);
        match cluster
            .call("create", cluster.jobs.create(&PostParams::default(), &job))
            .await
        {
            Ok(_) => {
                cluster.succeeded();
                cluster.count_spawned();
                if let Some(job) = cluster.state.lock().pool.get_mut(name) {
                    job.created = true;
                }
                tracing::debug!(cluster = cluster.name(), job = %name, "pool Job created");
            }
            Err(error) => {
                cluster.state.lock().pool.remove(name);
                cluster.count_failure("create_failed");
                if !matches!(error.code(), Some(400 | 422)) {
                    cluster.failed(&error);
                }
                tracing::warn!(cluster = cluster.name(), job = %name, %error, "cannot create a pool Job; the pool tries again");
            }
        }
    }

    /// A pool pod changed: note its state; when it ended, settle its worker.
    pub(super) async fn on_pool_pod(&self, cluster: &Cluster, store: &Arc<dyn Store>, pod: &Pod) {
        let Some(name) = pod_job_name(pod) else {
            return;
        };
        let state = classify(pod);
        let newly_unschedulable;
        {
            let mut st = cluster.state.lock();
            let Some(job) = st.pool.get_mut(&name) else {
                return;
            };
            let change = note(&mut job.pod, &mut job.start_failing_since, &state);
            newly_unschedulable = change.newly_unschedulable;
            if change.started {
                st.circuit.started();
            }
            if state.is_final() {
                st.pool.remove(&name);
            }
        }
        if newly_unschedulable {
            cluster.count_failure("unschedulable");
        }
        if !state.is_final() {
            return;
        }
        let asked = self
            .pool
            .as_ref()
            .is_some_and(|p| p.stopping.lock().remove(&name));
        let reason = match state {
            PodState::Succeeded => {
                tracing::info!(cluster = cluster.name(), worker_id = %name, asked, "pool worker stopped");
                None
            }
            PodState::OomKilled { .. } => Some("oom_killed"),
            PodState::Evicted { .. } => Some("evicted"),
            PodState::DeadlineExceeded => Some("deadline_exceeded"),
            _ => Some("failed"),
        };
        if let Some(reason) = reason {
            self.pool_worker_lost(cluster, store, &name, reason).await;
        } else {
            forfeit(store, &name).await;
        }
        self.room_freed.notify_one();
    }

    /// A pool pod was deleted before it ended (a lost node, or someone
    /// deleted it): its worker is gone.
    pub(super) async fn on_pool_pod_gone(
        &self,
        cluster: &Cluster,
        store: &Arc<dyn Store>,
        pod: &Pod,
    ) {
        let Some(name) = pod_job_name(pod) else {
            return;
        };
        let tracked = {
            let mut st = cluster.state.lock();
            match st.pool.get(&name) {
                Some(job) if job.created => st.pool.remove(&name),
                _ => None,
            }
        };
        if tracked.is_some() {
            self.pool_worker_lost(cluster, store, &name, "node_lost")
                .await;
            self.delete_job(cluster, &name).await;
            self.room_freed.notify_one();
        }
    }

    /// A pool Job vanished (deleted by someone, or missing from a relist).
    /// Returns whether it was a pool Job this backend tracked.
    pub(super) async fn pool_job_gone(
        &self,
        cluster: &Cluster,
        store: &Arc<dyn Store>,
        name: &str,
    ) -> bool {
        if cluster.state.lock().pool.remove(name).is_none() {
            return false;
        }
        self.pool_worker_lost(cluster, store, name, "deleted").await;
        self.room_freed.notify_one();
        true
    }

    /// A pool Job found at start: its worker still runs unless the Job ended.
    pub(super) fn adopt_pool_job(&self, cluster: &Cluster, job: &Job) {
        let Some(name) = job.metadata.name.clone() else {
            return;
        };
        let ended = job
            .status
            .as_ref()
            .is_some_and(|s| s.succeeded.unwrap_or(0) > 0 || s.failed.unwrap_or(0) > 0);
        if ended || self.pool.is_none() {
            return;
        }
        let mut state = cluster.state.lock();
        if let std::collections::hash_map::Entry::Vacant(entry) = state.pool.entry(name) {
            tracing::info!(cluster = cluster.name(), job = %entry.key(), "adopted a running pool Job");
            entry.insert(PoolJob::new(true));
        }
    }

    /// Pool pods that cannot start past the grace period: their Jobs are
    /// deleted (the pool starts others) and count against the cluster.
    pub(super) async fn pool_housekeeping(&self, cluster: &Cluster) {
        let now = Instant::now();
        let failing: Vec<(String, String)> = {
            let state = cluster.state.lock();
            state
                .pool
                .iter()
                .filter_map(|(name, job)| match (&job.pod, job.start_failing_since) {
                    (Some(PodState::StartFailing { reason, message }), Some(since))
                        if now.duration_since(since) >= self.config.image_pull_grace =>
                    {
                        Some((name.clone(), format!("{reason}: {message}")))
                    }
                    _ => None,
                })
                .collect()
        };
        for (name, why) in failing {
            cluster.state.lock().pool.remove(&name);
            cluster.count_failure("image_pull");
            tracing::warn!(cluster = cluster.name(), job = %name, "a pool worker cannot start for {} s ({why}); its Job is deleted", self.config.image_pull_grace.as_secs());
            cluster.start_failed(&why);
            self.delete_job(cluster, &name).await;
            self.room_freed.notify_one();
        }
    }

    /// Counts a pool worker that ended badly and lets its leases expire
    /// now, so its tasks are retried at once.
    async fn pool_worker_lost(
        &self,
        cluster: &Cluster,
        store: &Arc<dyn Store>,
        name: &str,
        reason: &'static str,
    ) {
        cluster.count_failure(reason);
        if let Some(pool) = &self.pool {
            pool.stopping.lock().remove(name);
        }
        tracing::warn!(cluster = cluster.name(), worker_id = %name, reason, "a pool worker ended without being asked to; the tasks it held are retried");
        forfeit(store, name).await;
    }
}

async fn forfeit(store: &Arc<dyn Store>, worker_id: &str) {
    if let Err(error) = store.forfeit(worker_id).await {
        tracing::warn!(%error, worker_id, "cannot forfeit a pool worker's leases: they expire instead");
    }
}
