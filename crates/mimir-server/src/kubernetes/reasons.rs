//! The backend's part of "why isn't my task running?": clusters full or
//! down for a queued task, and what its pod is waiting for once placed.

use super::KubernetesBackend;
use super::pod_state::PodState;
use mimir_core::{Reason, ReasonCode, WorkTask, WorkTaskStatus};

/// The backend's reasons `task` waits.
pub fn of(backend: &KubernetesBackend, task: &WorkTask) -> Vec<Reason> {
    match task.status {
        WorkTaskStatus::Queued if backend.config.pooled(task.task_type) => {
            let mut reasons = capacity(backend);
            reasons.extend(pool(backend));
            reasons
        }
        WorkTaskStatus::Queued => capacity(backend),
        WorkTaskStatus::Scheduled => pod(backend, task),
        _ => Vec::new(),
    }
}

/// Every cluster full or skipped: the task waits for room.
fn capacity(backend: &KubernetesBackend) -> Vec<Reason> {
    let views: Vec<_> = backend.clusters.iter().map(|c| c.view()).collect();
    let mut reasons = Vec::new();
    for view in views.iter().filter(|v| !v.up) {
        let mut reason = Reason::new(
            ReasonCode::ClusterUnavailable,
            format!(
                "Cluster {} gets no new Jobs: its circuit is {} after repeated failures ({})",
                view.name,
                view.circuit.replace('_', " "),
                view.last_error
            ),
        )
        .with("cluster", view.name.clone())
        .with("circuit", view.circuit)
        .with("last_error", view.last_error.clone());
        if let Some(at) = view.retry_at {
            reason = reason.with("retry_at", at);
        }
        reasons.push(reason);
    }
    let full = views.iter().all(|v| !v.up || v.workers >= v.max_workers);
    if full {
        let each = views
            .iter()
            .map(|v| format!("{} {}/{}", v.name, v.workers, v.max_workers))
            .collect::<Vec<_>>()
            .join(", ");
        reasons.push(
            Reason::new(
                ReasonCode::MaxWorkersReached,
                format!("Every usable cluster runs its maxWorkers ({each}); the task waits for a Job to end"),
            )
            .with(
                "clusters",
                serde_json::Value::Array(
                    views
                        .iter()
                        .map(|v| {
                            serde_json::json!({"cluster": v.name, "workers": v.workers, "max_workers": v.max_workers, "up": v.up})
                        })
                        .collect(),
                ),
            ),
        );
    }
    reasons
}

/// A task of a pool type waits for a pool worker: what the pool's pods that
/// have not started wait for.
fn pool(backend: &KubernetesBackend) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let mut starting = 0;
    for cluster in &backend.clusters {
        let jobs: Vec<(String, super::cluster::PoolJob)> = cluster
            .state
            .lock()
            .pool
            .iter()
            .map(|(name, job)| (name.clone(), job.clone()))
            .collect();
        for (name, job) in jobs {
            let base = |code, message: String| {
                Reason::new(code, message)
                    .with("cluster", cluster.name().to_string())
                    .with("job", name.clone())
                    .with("waiting_seconds", job.since.elapsed().as_secs())
            };
            match job.pod {
                Some(PodState::Unschedulable { message }) => reasons.push(
                    base(
                        ReasonCode::PodPending,
                        format!(
                            "The scheduler cannot place pool worker {name} in cluster {}: {message}",
                            cluster.name()
                        ),
                    )
                    .with("scheduler_message", message),
                ),
                Some(PodState::StartFailing { reason, message }) => {
                    reasons.push(
                        base(
                            ReasonCode::ImagePullFailing,
                            format!(
                                "Pool worker {name} in cluster {} cannot start: {reason}: {message}",
                                cluster.name()
                            ),
                        )
                        .with("kubelet_reason", reason)
                        .with("kubelet_message", message),
                    );
                }
                None | Some(PodState::Pending) => starting += 1,
                Some(_) => {}
            }
        }
    }
    if starting > 0 {
        reasons.push(
            Reason::new(
                ReasonCode::PodPending,
                format!("{starting} pool worker pods are starting; the task waits for one of them to lease it"),
            )
            .with("starting", starting),
        );
    }
    reasons
}

/// A placed task: what its pod waits for.
fn pod(backend: &KubernetesBackend, task: &WorkTask) -> Vec<Reason> {
    let Some(cluster) = backend.cluster(&task.cluster_name) else {
        return Vec::new();
    };
    let job = &task.kubernetes_job_name;
    let tracked = cluster.state.lock().jobs.get(job).cloned();
    let Some(tracked) = tracked else {
        return Vec::new();
    };
    let waited = tracked.since.elapsed().as_secs();
    let base = |code, message: String| {
        Reason::new(code, message)
            .with("cluster", cluster.name().to_string())
            .with("job", job.clone())
            .with("waiting_seconds", waited)
    };
    match tracked.pod {
        None if !tracked.created => vec![base(
            ReasonCode::PodPending,
            format!(
                "Its Job {job} is being created in cluster {}",
                cluster.name()
            ),
        )],
        None | Some(PodState::Pending) => vec![base(
            ReasonCode::PodPending,
            format!(
                "Its pod in cluster {} has not started yet ({waited} s)",
                cluster.name()
            ),
        )],
        Some(PodState::Unschedulable { message }) => vec![
            base(
                ReasonCode::PodPending,
                format!(
                    "The scheduler cannot place its pod in cluster {}: {message}",
                    cluster.name()
                ),
            )
            .with("scheduler_message", message),
        ],
        Some(PodState::StartFailing { reason, message }) => {
            let grace = backend.config.image_pull_grace.as_secs();
            let failing = tracked
                .start_failing_since
                .map_or(0, |s| s.elapsed().as_secs());
            vec![
                base(
                    ReasonCode::ImagePullFailing,
                    format!(
                        "Its pod in cluster {} cannot start: {reason}: {message} (for {failing} s; the task fails after {grace} s)",
                        cluster.name()
                    ),
                )
                .with("kubelet_reason", reason)
                .with("kubelet_message", message),
            ]
        }
        Some(_) => Vec::new(),
    }
}
