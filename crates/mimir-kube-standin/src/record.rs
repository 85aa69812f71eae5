//! What tests read back: the Jobs the stand-in was given, and its counters.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};

/// Where a Job is in its life, as its pod shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPhase {
    /// Its pod is Pending (starting, unschedulable, or pulling its image).
    Pending,
    /// Its pod is Running.
    Running,
    /// Its pod succeeded: condition Complete.
    Succeeded,
    /// Its pod failed, was lost, or ran past the deadline: condition Failed.
    Failed,
}

impl JobPhase {
    /// Whether the Job has finished, one way or the other.
    pub fn is_finished(self) -> bool {
        matches!(self, JobPhase::Succeeded | JobPhase::Failed)
    }
}

/// A Job the stand-in holds, with what its first container asked for.
#[derive(Debug, Clone)]
pub struct JobRecord {
    /// metadata.name
    pub name: String,
    /// metadata.namespace
    pub namespace: String,
    /// metadata.labels
    pub labels: BTreeMap<String, String>,
    /// The first container's `env`, as written in the Job (secrets unresolved).
    pub env: Vec<EnvVar>,
    /// The first container's resource requests and limits.
    pub resources: Option<ResourceRequirements>,
    /// spec.template.spec.serviceAccountName
    pub service_account_name: Option<String>,
    /// spec.activeDeadlineSeconds
    pub active_deadline_seconds: Option<i64>,
    /// spec.backoffLimit (defaulted to 6 as the API server does)
    pub backoff_limit: Option<i32>,
    /// spec.ttlSecondsAfterFinished
    pub ttl_seconds_after_finished: Option<i32>,
    /// Where the Job is in its life.
    pub phase: JobPhase,
    /// When the stand-in created it.
    pub created_at: SystemTime,
    /// When it finished (to the nanosecond, unlike the API's times), if it has.
    pub finished_at: Option<SystemTime>,
    /// The whole object as a GET would answer it.
    pub job: Job,
}

impl JobRecord {
    pub(crate) fn of(
        job: &Job,
        created_at: SystemTime,
        finished_at: Option<SystemTime>,
        phase: JobPhase,
    ) -> Self {
        let spec = job.spec.as_ref();
        let pod_spec = spec.and_then(|s| s.template.spec.as_ref());
        let container = pod_spec.and_then(|p| p.containers.first());
        Self {
            name: job.metadata.name.clone().unwrap_or_default(),
            namespace: job.metadata.namespace.clone().unwrap_or_default(),
            labels: job.metadata.labels.clone().unwrap_or_default(),
            env: container.and_then(|c| c.env.clone()).unwrap_or_default(),
            resources: container.and_then(|c| c.resources.clone()),
            service_account_name: pod_spec.and_then(|p| p.service_account_name.clone()),
            active_deadline_seconds: spec.and_then(|s| s.active_deadline_seconds),
            backoff_limit: spec.and_then(|s| s.backoff_limit),
            ttl_seconds_after_finished: spec.and_then(|s| s.ttl_seconds_after_finished),
            phase,
            created_at,
            finished_at,
            job: job.clone(),
        }
    }
}

/// Counters over the stand-in's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Jobs created (201 answers).
    pub jobs_created: u64,
    /// 409 AlreadyExists answers.
    pub conflicts: u64,
    /// The most Jobs unfinished and undeleted at once.
    pub max_active: u64,
    /// Jobs unfinished and undeleted now.
    pub active: u64,
}
