//! Watches on a cluster's worker Pods and Jobs, turned into attempt outcomes.
//!
//! Both watches select `app=mimir-worker`. `kube::runtime::watcher` lists,
//! then watches from the list's resourceVersion, and relists when the watch
//! breaks or its resourceVersion expires; each (re)list ends with
//! `InitDone`, when the backend compares what it tracks with what exists:
//! the first one after a start adopts the Jobs of running tasks, deletes
//! those of ended tasks and re-creates Jobs that were placed but never made.

use super::KubernetesBackend;
use super::cluster::{CallError, Cluster, Tracked};
use super::dispatch::{OOM_PREFIX, end_attempt};
use super::job_spec::{self, SELECTOR};
use super::pod_state::{PodState, classify, note};
use futures_util::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use mimir_core::{AttemptOutcome, ErrorClass, StatusFilter, WorkTaskStatus};
use mimir_store::{ListQuery, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A tracked Job missing from a relist is gone only when it was created
/// this long before (a Job just created may not be listed yet).
const LIST_GRACE: Duration = Duration::from_secs(10);

/// Watches the cluster's worker pods until the backend stops.
pub(super) async fn pods(
    backend: Arc<KubernetesBackend>,
    cluster: Arc<Cluster>,
    store: Arc<dyn Store>,
) {
    let config = watcher::Config::default().labels(SELECTOR);
    let mut events = watcher::watcher(cluster.pods.clone(), config)
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                if is_pool(&pod.metadata.labels) {
                    backend.on_pool_pod(&cluster, &store, &pod).await;
                } else {
                    backend.on_pod(&cluster, &store, &pod).await;
                }
            }
            Ok(Event::Delete(pod)) => {
                if is_pool(&pod.metadata.labels) {
                    backend.on_pool_pod_gone(&cluster, &store, &pod).await;
                } else {
                    backend.on_pod_gone(&cluster, &pod);
                }
            }
            Ok(Event::Init | Event::InitDone) => cluster.succeeded(),
            Err(error) => {
                tracing::warn!(cluster = cluster.name(), %error, "the pod watch failed; it resumes");
                cluster.failed(&CallError::Transport(format!("watching pods: {error}")));
            }
        }
    }
}

/// Watches the cluster's worker Jobs until the backend stops.
pub(super) async fn jobs(
    backend: Arc<KubernetesBackend>,
    cluster: Arc<Cluster>,
    store: Arc<dyn Store>,
) {
    let config = watcher::Config::default().labels(SELECTOR);
    let mut events = watcher::watcher(cluster.jobs.clone(), config)
        .default_backoff()
        .boxed();
    let mut listed: HashSet<String> = HashSet::new();
    let mut first = true;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(job)) => {
                if let Some(name) = job.metadata.name.clone() {
                    listed.insert(name);
                }
                if is_pool(&job.metadata.labels) {
                    if first {
                        backend.adopt_pool_job(&cluster, &job);
                    }
                    continue;
                }
                backend.on_job(&cluster, &store, &job).await;
                if first {
                    backend.adopt_or_delete(&cluster, &store, &job).await;
                }
            }
            Ok(Event::InitDone) => {
                cluster.succeeded();
                backend.on_relisted(&cluster, &store, &listed, first).await;
                if first {
                    // What exists is tracked now: the cluster has room.
                    cluster.state.lock().listed = true;
                    backend.room_freed.notify_one();
                }
                first = false;
            }
            Ok(Event::Apply(job)) => backend.on_job(&cluster, &store, &job).await,
            Ok(Event::Delete(job)) => backend.on_job_deleted(&cluster, &store, &job).await,
            Err(error) => {
                tracing::warn!(cluster = cluster.name(), %error, "the Job watch failed; it resumes");
                cluster.failed(&CallError::Transport(format!("watching Jobs: {error}")));
            }
        }
    }
}

/// Whether labels are a pool worker Job's (or its pod's).
fn is_pool(labels: &Option<std::collections::BTreeMap<String, String>>) -> bool {
    labels.as_ref().is_some_and(job_spec::is_pool)
}

impl KubernetesBackend {
    /// A pod changed: note its state; when it ended, end its attempt.
    async fn on_pod(&self, cluster: &Cluster, store: &Arc<dyn Store>, pod: &Pod) {
        let Some((id, attempt)) = pod.metadata.labels.as_ref().and_then(job_spec::job_attempt)
        else {
            return;
        };
        let name = job_spec::job_name(id, attempt);
        let state = classify(pod);
        let newly_unschedulable;
        {
            let mut st = cluster.state.lock();
            let Some(tracked) = st.jobs.get_mut(&name) else {
                return;
            };
            let change = note(&mut tracked.pod, &mut tracked.start_failing_since, &state);
            newly_unschedulable = change.newly_unschedulable;
            if change.started {
                st.circuit.started();
            }
            if state.is_final() {
                st.jobs.remove(&name);
            }
        }
        if newly_unschedulable {
            cluster.count_failure("unschedulable");
            if let PodState::Unschedulable { message } = &state {
                tracing::info!(cluster = cluster.name(), job = %name, worktask_id = %id, %message, "the worker pod cannot be scheduled yet");
            }
        }
        if !state.is_final() {
            return;
        }
        self.room_freed.notify_one();
        let (reason, outcome, message) = match state {
            PodState::Succeeded => return,
            PodState::OomKilled { limit } => {
                let factor = self.config.oom_memory_factor;
                let cap = self.config.oom_memory_cap_bytes;
                let next = match job_spec::raised_memory(&limit, 1, factor, cap) {
                    Some(bytes) => format!(
                        "{} ({factor}x, at most {})",
                        job_spec::memory_quantity(bytes),
                        job_spec::memory_quantity(cap)
                    ),
                    None => format!("{factor}x the memory"),
                };
                (
                    "oom_killed",
                    AttemptOutcome::Failed,
                    format!(
                        "{OOM_PREFIX} the worker pod exceeded its memory limit{} in cluster {}; the next attempt asks for {next}",
                        if limit.is_empty() {
                            String::new()
                        } else {
                            format!(" of {limit}")
                        },
                        cluster.name(),
                    ),
                )
            }
            PodState::Evicted { message } => (
                "evicted",
                AttemptOutcome::Failed,
                format!(
                    "lost: the worker pod was evicted in cluster {} ({message}); retried",
                    cluster.name()
                ),
            ),
            PodState::DeadlineExceeded => (
                "deadline_exceeded",
                AttemptOutcome::Timeout,
                format!(
                    "the worker Job passed its activeDeadlineSeconds in cluster {}",
                    cluster.name()
                ),
            ),
            PodState::Failed { exit_code, message } => (
                "failed",
                AttemptOutcome::Failed,
                format!(
                    "the worker pod failed in cluster {} (exit code {}{}{})",
                    cluster.name(),
                    exit_code.map_or("unknown".to_string(), |c| c.to_string()),
                    if message.is_empty() { "" } else { ": " },
                    message
                ),
            ),
            _ => return,
        };
        cluster.count_failure(reason);
        end_attempt(
            store.as_ref(),
            id,
            attempt,
            &name,
            outcome,
            message,
            ErrorClass::Transient,
        )
        .await;
    }

    /// A pod was deleted. If its attempt had not ended, the Job's own event
    /// (deadline, deletion) may explain it; if none does within a grace
    /// period, housekeeping ends it as a lost node.
    fn on_pod_gone(&self, cluster: &Cluster, pod: &Pod) {
        let Some((id, attempt)) = pod.metadata.labels.as_ref().and_then(job_spec::job_attempt)
        else {
            return;
        };
        let name = job_spec::job_name(id, attempt);
        let mut st = cluster.state.lock();
        if let Some(tracked) = st.jobs.get_mut(&name)
            && tracked.created
        {
            tracked.gone_since.get_or_insert_with(Instant::now);
        }
    }

    /// A Job changed: a deadline it passed ends its attempt as a timeout.
    async fn on_job(&self, cluster: &Cluster, store: &Arc<dyn Store>, job: &Job) {
        let Some(name) = job.metadata.name.clone() else {
            return;
        };
        let failed = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "Failed" && c.status == "True")
                    .map(|c| c.reason.clone().unwrap_or_default())
            });
        if failed.as_deref() != Some("DeadlineExceeded") {
            return;
        }
        let Some(tracked) = cluster.state.lock().jobs.remove(&name) else {
            return;
        };
        self.room_freed.notify_one();
        cluster.count_failure("deadline_exceeded");
        let message = format!(
            "the worker Job passed its activeDeadlineSeconds in cluster {}",
            cluster.name()
        );
        end_attempt(
            store.as_ref(),
            tracked.id,
            tracked.attempt,
            &name,
            AttemptOutcome::Timeout,
            message,
            ErrorClass::Transient,
        )
        .await;
    }

    /// A Job was deleted: by us (no longer tracked), by its TTL after it
    /// ended (no longer tracked), or by someone else while it ran.
    async fn on_job_deleted(&self, cluster: &Cluster, store: &Arc<dyn Store>, job: &Job) {
        let Some(name) = job.metadata.name.clone() else {
            return;
        };
        if self.pool_job_gone(cluster, store, &name).await {
            return;
        }
        let Some(tracked) = cluster.state.lock().jobs.remove(&name) else {
            return;
        };
        self.room_freed.notify_one();
        self.job_vanished(cluster, store, &name, &tracked).await;
    }

    async fn job_vanished(
        &self,
        cluster: &Cluster,
        store: &Arc<dyn Store>,
        name: &str,
        tracked: &Tracked,
    ) {
        let message = format!(
            "lost: the worker Job {name} was deleted in cluster {} before its task ended; retried",
            cluster.name()
        );
        self.lose_attempt(
            cluster,
            store,
            name,
            (tracked.id, tracked.attempt),
            "deleted",
            message,
        )
        .await;
    }

    /// A Job found at start: adopt it when its task's attempt still runs
    /// under it; end that attempt when the Job ended meanwhile; else delete
    /// it.
    async fn adopt_or_delete(&self, cluster: &Cluster, store: &Arc<dyn Store>, job: &Job) {
        let Some(name) = job.metadata.name.clone() else {
            return;
        };
        let Some((id, attempt)) = job.metadata.labels.as_ref().and_then(job_spec::job_attempt)
        else {
            return;
        };
        if cluster.state.lock().jobs.contains_key(&name) {
            return;
        }
        let task = match store.get(id).await {
            Ok(task) => task,
            Err(error) => {
                tracing::warn!(%error, job = %name, "cannot look up the task of a Job found at start; it is left alone");
                return;
            }
        };
        let runs_here = task
            .as_ref()
            .is_some_and(|t| t.status.is_running() && t.attempt == attempt && t.worker_id == name);
        let ended = job
            .status
            .as_ref()
            .is_some_and(|s| s.succeeded.unwrap_or(0) > 0 || s.failed.unwrap_or(0) > 0);
        if runs_here && ended {
            // Its pod ended while no one watched, and its worker did not
            // report: no pod event will come to say so.
            let message = format!(
                "lost: the worker Job {name} in cluster {} ended while the orchestrator was away, without reporting its task; retried",
                cluster.name()
            );
            self.lose_attempt(cluster, store, &name, (id, attempt), "failed", message)
                .await;
        } else if runs_here {
            tracing::info!(cluster = cluster.name(), job = %name, worktask_id = %id, attempt, "adopted a running Job");
            cluster
                .state
                .lock()
                .jobs
                .insert(name, Tracked::new(id, attempt, true));
        } else {
            tracing::info!(cluster = cluster.name(), job = %name, worktask_id = %id, attempt, "deleting the Job of an attempt that has ended");
            self.delete_job(cluster, &name).await;
        }
    }

    /// After a (re)list: tracked Jobs that no longer exist were deleted;
    /// after the first, attempts placed here whose Job was never created get
    /// it now.
    async fn on_relisted(
        &self,
        cluster: &Cluster,
        store: &Arc<dyn Store>,
        listed: &HashSet<String>,
        first: bool,
    ) {
        let now = Instant::now();
        let vanished: Vec<(String, Tracked)> = {
            let mut st = cluster.state.lock();
            let names: Vec<String> = st
                .jobs
                .iter()
                .filter(|(name, t)| {
                    t.created && !listed.contains(*name) && now.duration_since(t.since) > LIST_GRACE
                })
                .map(|(name, _)| name.clone())
                .collect();
            names
                .into_iter()
                .filter_map(|name| st.jobs.remove(&name).map(|t| (name, t)))
                .collect()
        };
        for (name, tracked) in &vanished {
            self.job_vanished(cluster, store, name, tracked).await;
        }
        let vanished_pool: Vec<String> = cluster
            .state
            .lock()
            .pool
            .iter()
            .filter(|(name, job)| {
                job.created && !listed.contains(*name) && now.duration_since(job.since) > LIST_GRACE
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &vanished_pool {
            self.pool_job_gone(cluster, store, name).await;
        }
        if !vanished.is_empty() {
            self.room_freed.notify_one();
        }
        if first {
            self.recreate_placed(cluster, store, listed).await;
        }
    }

    /// Tasks placed in this cluster whose Job does not exist (the
    /// orchestrator stopped between placing and creating): create it, under
    /// the same name.
    async fn recreate_placed(
        &self,
        cluster: &Cluster,
        store: &Arc<dyn Store>,
        listed: &HashSet<String>,
    ) {
        let Ok(status) = "scheduled".parse::<StatusFilter>() else {
            return;
        };
        let mut after = None;
        loop {
            let query = ListQuery {
                status: Some(status),
                limit: mimir_store::MAX_LIST_LIMIT,
                after,
                ..ListQuery::default()
            };
            let page = match store.list(query).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "cannot list placed tasks to re-create their Jobs");
                    return;
                }
            };
            for task in &page.tasks {
                let placed_here = task.status == WorkTaskStatus::Scheduled
                    && task.cluster_name == cluster.name()
                    && task.kubernetes_job_name == task.worker_id
                    && !task.kubernetes_job_name.is_empty()
                    && !listed.contains(&task.kubernetes_job_name);
                if !placed_here
                    || cluster
                        .state
                        .lock()
                        .jobs
                        .contains_key(&task.kubernetes_job_name)
                {
                    continue;
                }
                cluster.state.lock().jobs.insert(
                    task.kubernetes_job_name.clone(),
                    Tracked::new(task.worktask_id, task.attempt, false),
                );
                tracing::info!(cluster = cluster.name(), job = %task.kubernetes_job_name, worktask_id = %task.worktask_id, "creating the Job of an attempt placed before a restart");
                self.create_job(store, cluster, task).await;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return,
            }
        }
    }
}
