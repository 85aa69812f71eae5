//! What a worker pod's status means for its task attempt: a pure reading of
//! the Pod object the watch delivers.
//!
//! The rules follow what the kubelet and the controllers write: an OOM kill
//! is a container terminated with reason `OOMKilled`; an eviction is a
//! failed pod with reason `Evicted` (or a `DisruptionTarget` condition, as
//! preemption and node-pressure evictions set); a pod the scheduler cannot
//! place has `PodScheduled=False` with reason `Unschedulable` and the
//! scheduler's message; image and container-config problems leave the
//! container waiting with a reason the kubelet repeats until someone acts.

use k8s_openapi::api::core::v1::Pod;

/// Waiting reasons that do not resolve by waiting (image, config).
const START_FAILURES: [&str; 6] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// A worker pod's state, as far as its task is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Created, not yet placed or started, nothing wrong known.
    Pending,
    /// The scheduler cannot place it; its message says why.
    Unschedulable {
        /// The scheduler's message, e.g. "0/3 nodes are available: 3 Insufficient memory."
        message: String,
    },
    /// Its container cannot start (image pull, bad config).
    StartFailing {
        /// The kubelet's reason, e.g. `ImagePullBackOff`.
        reason: String,
        /// The kubelet's message.
        message: String,
    },
    /// Its container runs.
    Running,
    /// It ended with exit code 0.
    Succeeded,
    /// Killed for exceeding its memory limit.
    OomKilled {
        /// The container's memory limit, if known.
        limit: String,
    },
    /// Evicted or preempted from its node.
    Evicted {
        /// The reason given.
        message: String,
    },
    /// Stopped by the Job's `activeDeadlineSeconds`.
    DeadlineExceeded,
    /// It failed otherwise (non-zero exit).
    Failed {
        /// Exit code, when known.
        exit_code: Option<i32>,
        /// Reason and message, when given.
        message: String,
    },
}

impl PodState {
    /// Whether the pod has ended.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            PodState::Succeeded
                | PodState::OomKilled { .. }
                | PodState::Evicted { .. }
                | PodState::DeadlineExceeded
                | PodState::Failed { .. }
        )
    }
}

/// What a new reading of a pod changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The scheduler has just found it cannot place the pod.
    pub newly_unschedulable: bool,
    /// Its container has just started.
    pub started: bool,
}

/// Records `state` as the pod's last seen state in `last`, with since when it
/// has failed to start in `failing_since`; says what changed.
pub fn note(
    last: &mut Option<PodState>,
    failing_since: &mut Option<std::time::Instant>,
    state: &PodState,
) -> Change {
    let change = Change {
        newly_unschedulable: matches!(state, PodState::Unschedulable { .. })
            && !matches!(last, Some(PodState::Unschedulable { .. })),
        started: *state == PodState::Running && *last != Some(PodState::Running),
    };
    match state {
        PodState::StartFailing { .. } => {
            failing_since.get_or_insert_with(std::time::Instant::now);
        }
        _ => *failing_since = None,
    }
    *last = Some(state.clone());
    change
}

/// Reads a pod's state.
pub fn classify(pod: &Pod) -> PodState {
    let Some(status) = &pod.status else {
        return PodState::Pending;
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let reason = status.reason.as_deref().unwrap_or("");
    let message = status.message.clone().unwrap_or_default();
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    let terminated = containers
        .iter()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .next();
    let limit = || {
        pod.spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.resources.as_ref()?.limits.as_ref()?.get("memory"))
            .map(|q| q.0.clone())
            .unwrap_or_default()
    };
    if terminated.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled")) {
        return PodState::OomKilled { limit: limit() };
    }
    let disrupted = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
    match phase {
        "Succeeded" => PodState::Succeeded,
        "Failed" if reason == "Evicted" || reason == "Preempting" => PodState::Evicted {
            message: if message.is_empty() {
                reason.to_string()
            } else {
                message
            },
        },
        "Failed" if reason == "DeadlineExceeded" => PodState::DeadlineExceeded,
        "Failed" if disrupted.is_some() => PodState::Evicted {
            message: disrupted
                .and_then(|c| c.message.clone().or(c.reason.clone()))
                .unwrap_or_default(),
        },
        "Failed" => PodState::Failed {
            exit_code: terminated.map(|t| t.exit_code),
            message: [
                reason,
                &message,
                terminated.and_then(|t| t.reason.as_deref()).unwrap_or(""),
                terminated.and_then(|t| t.message.as_deref()).unwrap_or(""),
            ]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": "),
        },
        "Running" => PodState::Running,
        _ => {
            let waiting = containers
                .iter()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
                .find(|w| {
                    w.reason
                        .as_deref()
                        .is_some_and(|r| START_FAILURES.contains(&r))
                });
            if let Some(waiting) = waiting {
                return PodState::StartFailing {
                    reason: waiting.reason.clone().unwrap_or_default(),
                    message: waiting.message.clone().unwrap_or_default(),
                };
            }
            let unschedulable = status
                .conditions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                });
            match unschedulable {
                Some(c) => PodState::Unschedulable {
                    message: c.message.clone().unwrap_or_default(),
                },
                None => PodState::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "worker", "resources": {"limits": {"memory": "1Gi"}}}]},
            "status": status,
        }))
        .expect("a pod")
    }

    #[test]
    fn each_kubelet_and_scheduler_status_reads_as_its_outcome() {
        assert_eq!(
            classify(&pod(json!({"phase": "Pending"}))),
            PodState::Pending
        );
        assert_eq!(
            classify(&pod(
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}]})
            )),
            PodState::Unschedulable {
                message: "0/3 nodes are available: 3 Insufficient memory.".into()
            }
        );
        for reason in [
            "ImagePullBackOff",
            "ErrImagePull",
            "InvalidImageName",
            "CreateContainerConfigError",
        ] {
            let state = classify(&pod(
                json!({"phase": "Pending", "containerStatuses": [{"name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason, "message": "Back-off pulling image"}}}]}),
            ));
            assert_eq!(
                state,
                PodState::StartFailing {
                    reason: reason.into(),
                    message: "Back-off pulling image".into()
                }
            );
        }
        let container_creating = classify(&pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        ));
        assert_eq!(container_creating, PodState::Pending);
        assert_eq!(
            classify(&pod(json!({"phase": "Running"}))),
            PodState::Running
        );
        assert_eq!(
            classify(&pod(json!({"phase": "Succeeded"}))),
            PodState::Succeeded
        );
        let oom = classify(&pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
        ));
        assert_eq!(
            oom,
            PodState::OomKilled {
                limit: "1Gi".into()
            }
        );
        assert!(oom.is_final());
        assert_eq!(
            classify(&pod(
                json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."})
            )),
            PodState::Evicted {
                message: "The node was low on resource: memory.".into()
            }
        );
        assert_eq!(
            classify(&pod(
                json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler", "message": "preempted"}]})
            )),
            PodState::Evicted {
                message: "preempted".into()
            }
        );
        assert_eq!(
            classify(&pod(
                json!({"phase": "Failed", "reason": "DeadlineExceeded"})
            )),
            PodState::DeadlineExceeded
        );
        let failed = classify(&pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}),
        ));
        assert_eq!(
            failed,
            PodState::Failed {
                exit_code: Some(2),
                message: "Error".into()
            }
        );
    }
}
