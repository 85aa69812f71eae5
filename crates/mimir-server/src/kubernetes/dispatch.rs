//! Dispatch: waiting tasks become Jobs, as far as the clusters have room.
//!
//! The dispatcher wakes when a task is queued, when a Job ends, and every
//! [`TICK`]. It leases as many tasks as the clusters have room for, places
//! each in a cluster (so every attempt's lease is held by its Job's worker
//! id and the task names its Job and cluster before the Job exists), then
//! creates the Jobs concurrently. A create that fails gives the task back to
//! the queue at its place and counts against the cluster's circuit.

use super::KubernetesBackend;
use super::cluster::{CallError, Cluster, Tracked};
use super::job_spec;
use super::pod_state::PodState;
use chrono::Utc;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use mimir_core::{AttemptOutcome, ErrorClass, WorkTask, WorkTaskResult};
use mimir_store::{LeaseRequest, Placement, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often the dispatcher looks even when nothing woke it (renewals,
/// image pull deadlines, gauges).
pub const TICK: Duration = Duration::from_millis(250);
/// The worker id tasks are leased under between lease and placement.
const DISPATCHER: &str = "kubernetes-dispatcher";
/// Most tasks leased at once.
const MAX_BATCH: usize = 1024;
/// Most Job creates in flight.
const MAX_CREATES: usize = 128;
/// How an attempt ended by an OOM kill starts its error message; the next
/// attempt's memory counts these.
pub const OOM_PREFIX: &str = "OOMKilled:";
/// How long a deleted pod is left for its Job's own event (deadline,
/// deletion) to explain it before it counts as a lost node.
const POD_GONE_GRACE: Duration = Duration::from_secs(2);

impl KubernetesBackend {
    /// Runs until the orchestrator stops.
    /// Only the leader dispatches: Jobs are created once across replicas.
    pub(super) async fn dispatch(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        registry: Arc<crate::workers::Registry>,
        leadership: Arc<crate::leadership::Leadership>,
    ) {
        let signal = store.queue_signal();
        let creates = Arc::new(tokio::sync::Semaphore::new(MAX_CREATES));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let queued = signal.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let freed = self.room_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let leased = match leadership.term() {
                Some(term) => self.dispatch_once(&store, &creates, term).await,
                None => 0,
            };
            if leased >= MAX_BATCH {
                continue;
            }
            tokio::select! {
                _ = &mut queued => {}
                _ = &mut freed => {}
                _ = tick.tick() => {
                    self.housekeeping(&store).await;
                    if leadership.leads() {
                        self.scale_pool(&store, &registry).await;
                    }
                }
            }
        }
    }

    /// Leases what fits, places it and starts the creates; returns how many
    /// tasks it leased.
    async fn dispatch_once(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        creates: &Arc<tokio::sync::Semaphore>,
        term: mimir_store::Term,
    ) -> usize {
        // Pool workers lease the pool's types themselves.
        let types = self.config.pool.as_ref().map(|pool| {
            mimir_core::WorkTaskType::ALL
                .into_iter()
                .filter(|t| !pool.types.contains(t))
                .collect::<Vec<_>>()
        });
        if types.as_ref().is_some_and(|t| t.is_empty())
            || store.queue_length().await.unwrap_or(1) == 0
        {
            return 0;
        }
        let now = Instant::now();
        let mut rooms: Vec<u32> = self.clusters.iter().map(|c| c.room(now)).collect();
        let total: u32 = rooms.iter().sum();
        if total == 0 {
            return 0;
        }
        let request = LeaseRequest {
            worker_id: DISPATCHER.to_string(),
            max: (total as usize).min(MAX_BATCH),
            types,
            limits: self.type_limits.clone(),
            only: None,
            at: Utc::now(),
        };
        let tasks = match store.lease(request).await {
            Ok(tasks) => tasks,
            Err(error) => {
                tracing::warn!(%error, "cannot lease tasks for Kubernetes Jobs");
                return 0;
            }
        };
        let leased = tasks.len();
        let mut placements = Vec::with_capacity(leased);
        let mut jobs = Vec::with_capacity(leased);
        for task in tasks {
            let Some(i) = choose(&task.task_spec.preferred_cluster, &self.clusters, &rooms) else {
                // Room was counted before the lease; nothing else takes it.
                debug_assert!(false, "a leased task found no room");
                continue;
            };
            rooms[i] -= 1;
            let cluster = &self.clusters[i];
            let name = job_spec::job_name(task.worktask_id, task.attempt);
            {
                let mut state = cluster.state.lock();
                state.circuit.sent(now);
                state.jobs.insert(
                    name.clone(),
                    Tracked::new(task.worktask_id, task.attempt, false),
                );
            }
            placements.push(Placement {
                id: task.worktask_id,
                attempt: task.attempt,
                worker_id: name.clone(),
                cluster_name: cluster.name().to_string(),
                kubernetes_job_name: name,
            });
            jobs.push((cluster.clone(), task));
        }
        if let Err(error) = store.place(placements, term).await {
            // The attempts stay leased to the dispatcher: their leases
            // expire and the tasks are retried.
            tracing::error!(%error, tasks = jobs.len(), "cannot record where tasks run; they are retried once their leases expire");
            for (cluster, task) in &jobs {
                cluster
                    .state
                    .lock()
                    .jobs
                    .remove(&job_spec::job_name(task.worktask_id, task.attempt));
            }
            return leased;
        }
        for (cluster, mut task) in jobs {
            let name = job_spec::job_name(task.worktask_id, task.attempt);
            task.worker_id = name.clone();
            task.cluster_name = cluster.name().to_string();
            task.kubernetes_job_name = name;
            let permit = creates.clone().acquire_owned().await;
            let backend = self.clone();
            let store = store.clone();
            tokio::spawn(async move {
                let _permit = permit;
                backend.create_job(&store, &cluster, &task).await;
            });
        }
        leased
    }

    /// Creates the Job of `task`'s current attempt in `cluster`; a Job of
    /// that name that exists already is adopted.
    pub(super) async fn create_job(
        &self,
        store: &Arc<dyn Store>,
        cluster: &Cluster,
        task: &WorkTask,
    ) {
        let name = job_spec::job_name(task.worktask_id, task.attempt);
        let oom_kills = if task.retry_count > 0 {
            oom_kills(store.as_ref(), task.worktask_id).await
        } else {
            0
        };
        let quantities = job_spec::resources(task, &self.config, oom_kills);
        let job = job_spec::build(task, &cluster.config, &self.config, &quantities);
        let created = cluster
            .call("create", cluster.jobs.create(&PostParams::default(), &job))
            .await;
        let outcome = match created {
            Ok(_) => Ok(false),
            Err(CallError::Api { code: 409, .. }) => Ok(true),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(adopted) => {
                cluster.succeeded();
                if let Some(tracked) = cluster.state.lock().jobs.get_mut(&name) {
                    tracked.created = true;
                }
                if !adopted {
                    cluster.count_spawned();
                }
                if adopted {
                    tracing::info!(cluster = cluster.name(), job = %name, worktask_id = %task.worktask_id, "adopted the existing Job of this attempt");
                } else {
                    tracing::debug!(cluster = cluster.name(), job = %name, worktask_id = %task.worktask_id, memory = %quantities.requests.memory, "Job created");
                }
            }
            Err(error) => {
                cluster.state.lock().jobs.remove(&name);
                cluster.count_failure("create_failed");
                self.room_freed.notify_one();
                if matches!(error.code(), Some(400 | 422)) {
                    // The cluster refuses this Job as written: it will
                    // refuse it again.
                    tracing::warn!(cluster = cluster.name(), job = %name, %error, "the cluster refused the Job; the task fails");
                    let why = format!(
                        "the cluster {} refused the worker Job: {error}",
                        cluster.name()
                    );
                    end_attempt(
                        store.as_ref(),
                        task.worktask_id,
                        task.attempt,
                        &name,
                        AttemptOutcome::Failed,
                        why,
                        ErrorClass::Permanent,
                    )
                    .await;
                } else {
                    tracing::warn!(cluster = cluster.name(), job = %name, %error, "cannot create the Job; the task goes back to the queue");
                    cluster.failed(&error);
                    if let Err(error) = store
                        .release(&name, vec![(task.worktask_id, task.attempt)])
                        .await
                    {
                        tracing::error!(%error, worktask_id = %task.worktask_id, "cannot give the task back; it is retried once its lease expires");
                    }
                }
            }
        }
    }

    /// Renews the leases of Jobs whose worker has not started, fails tasks
    /// whose pods cannot start past the grace period, settles pods gone
    /// without explanation, and publishes gauges and the decision.
    pub(super) async fn housekeeping(&self, store: &Arc<dyn Store>) {
        *self.last_tick.lock() = Some(Instant::now());
        let now = Instant::now();
        for cluster in &self.clusters {
            let mut drop_jobs: Vec<(String, Uuid, u32, String)> = Vec::new();
            let mut start_failed: Vec<(String, Uuid, u32, String)> = Vec::new();
            let mut lost: Vec<(String, Uuid, u32)> = Vec::new();
            // Jobs whose worker has not started hold their lease through
            // the orchestrator: renewed outside the lock (a store call).
            let waiting: Vec<(String, Uuid, u32)> = {
                let state = cluster.state.lock();
                state
                    .jobs
                    .iter()
                    .filter(|(_, t)| {
                        !matches!(t.pod, Some(PodState::Running)) && t.gone_since.is_none()
                    })
                    .map(|(name, t)| (name.clone(), t.id, t.attempt))
                    .collect()
            };
            let mut dropped = std::collections::HashSet::new();
            for (name, id, attempt) in waiting {
                let renewal = match store.renew(&name, &[(id, attempt)]).await {
                    Ok(renewal) => renewal,
                    Err(error) => {
                        tracing::warn!(%error, job = %name, "cannot renew a waiting Job's lease");
                        continue;
                    }
                };
                let why = if !renewal.cancelled.is_empty() {
                    "cancelled"
                } else if !renewal.lost.is_empty() {
                    "its lease was lost"
                } else {
                    continue;
                };
                dropped.insert(name.clone());
                drop_jobs.push((name, id, attempt, why.into()));
            }
            {
                let state = cluster.state.lock();
                for (name, tracked) in &state.jobs {
                    if dropped.contains(name) {
                        continue;
                    }
                    if let (Some(since), Some(PodState::StartFailing { reason, message })) =
                        (tracked.start_failing_since, &tracked.pod)
                        && now.duration_since(since) >= self.config.image_pull_grace
                    {
                        start_failed.push((
                            name.clone(),
                            tracked.id,
                            tracked.attempt,
                            format!("{reason}: {message}"),
                        ));
                    }
                    if tracked
                        .gone_since
                        .is_some_and(|since| now.duration_since(since) >= POD_GONE_GRACE)
                    {
                        lost.push((name.clone(), tracked.id, tracked.attempt));
                    }
                }
                drop(state);
            }
            for (name, id, attempt, why) in drop_jobs {
                cluster.state.lock().jobs.remove(&name);
                tracing::info!(cluster = cluster.name(), job = %name, worktask_id = %id, attempt, "deleting the Job: {why}");
                self.delete_job(cluster, &name).await;
                self.room_freed.notify_one();
            }
            for (name, id, attempt, why) in start_failed {
                cluster.state.lock().jobs.remove(&name);
                // Every pod that cannot start its container counts as
                // `image_pull`, config errors (a missing Secret) included:
                // MimirImagePullsFailing is the alert for both.
                cluster.count_failure("image_pull");
                let message = if why.contains("Image") {
                    format!(
                        "image pull failing in cluster {} for {} s: {why}; check orchestrator.workerImage and the registry's credentials",
                        cluster.name(),
                        self.config.image_pull_grace.as_secs()
                    )
                } else {
                    format!(
                        "the worker container cannot start in cluster {} ({why})",
                        cluster.name()
                    )
                };
                tracing::warn!(cluster = cluster.name(), job = %name, worktask_id = %id, "{message}");
                cluster.start_failed(&why);
                end_attempt(
                    store.as_ref(),
                    id,
                    attempt,
                    &name,
                    AttemptOutcome::Failed,
                    message,
                    ErrorClass::Permanent,
                )
                .await;
                self.delete_job(cluster, &name).await;
                self.room_freed.notify_one();
            }
            for (name, id, attempt) in lost {
                if cluster.state.lock().jobs.remove(&name).is_none() {
                    continue;
                }
                let message = format!(
                    "lost: the worker pod in cluster {} went away before its task ended (its node was lost, or someone deleted it); retried",
                    cluster.name()
                );
                self.lose_attempt(cluster, store, &name, (id, attempt), "node_lost", message)
                    .await;
                self.room_freed.notify_one();
            }
            self.pool_housekeeping(cluster).await;
            cluster.publish(now);
        }
        match store.queue_length().await {
            Ok(waiting) => self.decide(waiting),
            Err(error) => tracing::warn!(%error, "cannot read the queue length"),
        }
    }

    /// Ends an attempt whose worker is gone without a result as lost (it is
    /// retried), counts why, and deletes its Job if it still exists.
    pub(super) async fn lose_attempt(
        &self,
        cluster: &Cluster,
        store: &Arc<dyn Store>,
        job: &str,
        (id, attempt): (Uuid, u32),
        reason: &'static str,
        message: String,
    ) {
        cluster.count_failure(reason);
        end_attempt(
            store.as_ref(),
            id,
            attempt,
            job,
            AttemptOutcome::Failed,
            message,
            ErrorClass::Transient,
        )
        .await;
        self.delete_job(cluster, job).await;
    }

    /// Deletes a Job and its pods; one already gone is fine.
    pub(super) async fn delete_job(&self, cluster: &Cluster, name: &str) {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match cluster
            .call("delete", cluster.jobs.delete(name, &params))
            .await
        {
            Ok(_) | Err(CallError::Api { code: 404, .. }) => {}
            Err(error) => {
                tracing::warn!(cluster = cluster.name(), job = %name, %error, "cannot delete the Job; its ttlSecondsAfterFinished removes it");
            }
        }
    }

    fn decide(&self, queue_length: usize) {
        let views: Vec<_> = self.clusters.iter().map(|c| c.view()).collect();
        let active: u32 = views.iter().map(|v| v.workers).sum();
        let capacity: u32 = views.iter().filter(|v| v.up).map(|v| v.max_workers).sum();
        let pool = self.pool.as_ref().map(|p| p.decision());
        let pool_waiting = pool.as_ref().map_or(0, |p| p.waiting);
        let pool_desired = pool.as_ref().map_or(0, |p| p.desired);
        let pool_jobs: u32 = self
            .clusters
            .iter()
            .map(|c| c.state.lock().pool.len() as u32)
            .sum();
        // One Job per waiting task of the other types, as room allows.
        let single_waiting = queue_length.saturating_sub(pool_waiting);
        let single_active = active.saturating_sub(pool_jobs);
        let desired =
            ((single_active as usize + single_waiting) as u32 + pool_desired).min(capacity);
        let (action, reason_code, mut reason) = if queue_length == 0 {
            ("hold", "steady", "no task waits".to_string())
        } else if active >= capacity {
            (
                "hold",
                "max_workers",
                format!(
                    "{queue_length} tasks wait; every usable cluster runs its maxWorkers ({})",
                    views
                        .iter()
                        .map(|v| format!(
                            "{} {}/{}{}",
                            v.name,
                            v.workers,
                            v.max_workers,
                            if v.up { "" } else { ", down" }
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        } else if single_waiting == 0 {
            ("hold", "steady", String::new())
        } else {
            (
                "spawn",
                "queue_depth",
                format!("{single_waiting} tasks wait; one Job each, as room allows"),
            )
        };
        if let Some(pool) = pool {
            let pool_part = format!("pool workers: {}", pool.reason);
            reason = if reason.is_empty() {
                pool_part
            } else {
                format!("{reason}; {pool_part}")
            };
        } else if reason.is_empty() {
            reason = "no task waits".to_string();
        }
        let mut decision = self.decision.lock();
        decision.desired = desired;
        decision.active = active;
        decision.queue_length = queue_length;
        decision.action = action;
        decision.reason_code = reason_code;
        decision.reason = reason;
    }
}

/// The cluster a task goes to: its preferred cluster when that has room,
/// else the first in order with room.
pub fn choose(preferred: &str, clusters: &[Arc<Cluster>], rooms: &[u32]) -> Option<usize> {
    let names: Vec<&str> = clusters.iter().map(|c| c.name()).collect();
    choose_by_name(preferred, &names, rooms)
}

/// [`choose`] over names.
pub fn choose_by_name(preferred: &str, names: &[&str], rooms: &[u32]) -> Option<usize> {
    if !preferred.is_empty()
        && let Some(i) = names.iter().position(|n| *n == preferred)
        && rooms[i] > 0
    {
        return Some(i);
    }
    rooms.iter().position(|room| *room > 0)
}

/// How many earlier attempts of the task were OOM-killed.
async fn oom_kills(store: &dyn Store, id: Uuid) -> u32 {
    match store.attempts(id).await {
        Ok(Some(attempts)) => attempts
            .iter()
            .filter(|a| a.error.starts_with(OOM_PREFIX))
            .count() as u32,
        _ => 0,
    }
}

/// Ends an attempt on behalf of its Job's worker; a refusal (the worker
/// reported first, or the attempt is no longer current) is expected.
pub(super) async fn end_attempt(
    store: &dyn Store,
    id: Uuid,
    attempt: u32,
    job: &str,
    status: AttemptOutcome,
    message: String,
    class: ErrorClass,
) {
    let report = WorkTaskResult {
        worktask_id: Some(id),
        status,
        error_message: message,
        attempt: Some(attempt),
        worker_id: Some(job.to_string()),
        error_class: Some(class),
        output_location: String::new(),
        metadata: serde_json::Value::Null,
        started_at: None,
        result: None,
        storage_operations: Vec::new(),
    };
    match store
        .finish(id, Some(job.to_string()), report, Utc::now())
        .await
    {
        Ok(task) => {
            tracing::info!(worktask_id = %id, attempt, job, status = %task.status, error = %task.error_message, "attempt ended by what Kubernetes reported");
        }
        Err(error) => {
            tracing::debug!(worktask_id = %id, attempt, job, %error, "attempt already settled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_cluster_wins_while_it_has_room_then_clusters_fill_in_order() {
        let names = ["primary", "site-b", "site-c"];
        assert_eq!(choose_by_name("", &names, &[2, 5, 5]), Some(0));
        assert_eq!(choose_by_name("", &names, &[0, 5, 5]), Some(1));
        assert_eq!(choose_by_name("", &names, &[0, 0, 1]), Some(2));
        assert_eq!(choose_by_name("", &names, &[0, 0, 0]), None);
        assert_eq!(choose_by_name("site-c", &names, &[2, 5, 5]), Some(2));
        assert_eq!(
            choose_by_name("site-c", &names, &[2, 5, 0]),
            Some(0),
            "full: the usual order"
        );
        assert_eq!(choose_by_name("nowhere", &names, &[0, 1, 0]), Some(1));
    }
}
