//! The objects the stand-in holds, and every change to them, made under one lock.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector as KubeLabelSelector, ListMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::{List, Metadata};
use rand::Rng;
use tokio::sync::oneshot;

use crate::config::{FaultRule, PodFault};
use crate::events::{EventLog, EventType};
use crate::record::{JobPhase, JobRecord, Stats};
use crate::resource::Kind;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, delete_success};
use crate::validate;

/// The node every scheduled pod is bound to.
pub(crate) const NODE_NAME: &str = "standin-node";

/// Why a running pod must stop, sent to its task.
#[derive(Debug)]
pub(crate) enum Kill {
    /// End with this exit code, as if the container's process had exited so.
    Exit(i32),
    /// One of [`PodFault::OomKilled`], [`PodFault::Evicted`], [`PodFault::NodeLost`].
    Fault(PodFault),
}

/// How a pod ended, as its task saw it.
#[derive(Debug, Clone)]
pub(crate) enum Ending {
    Exited(i32),
    StartError(String),
    OomKilled,
    Evicted,
    NodeLost,
    DeadlineExceeded,
}

/// A finished Job to delete after its `ttlSecondsAfterFinished`.
#[derive(Debug)]
pub(crate) struct Expiry {
    pub namespace: String,
    pub job: String,
    pub uid: String,
    pub after: Duration,
}

/// What a new pod's task needs.
pub(crate) struct PodStart {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub fault: Option<PodFault>,
    pub deadline: Option<Duration>,
    pub grace: Duration,
    pub kill: oneshot::Receiver<Kill>,
}

/// How a delete propagates to the Job's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Propagation {
    Orphan,
    Background,
    Foreground,
}

struct JobEntry {
    job: Job,
    created_at: SystemTime,
    finished_at: Option<SystemTime>,
    pod: Option<String>,
    phase: JobPhase,
}

struct PodEntry {
    pod: Pod,
    job: Option<String>,
    kill: Option<oneshot::Sender<Kill>>,
    /// The tail of the process's stdout and stderr; None until a process started.
    log: Option<Vec<u8>>,
}

/// How much of a pod's output is kept for `GET …/pods/{name}/log`.
const MAX_LOG: usize = 1024 * 1024;

struct RuleState {
    rule: FaultRule,
    selector: LabelSelector,
    left: Option<usize>,
}

type Key = (String, String);

fn key(ns: &str, name: &str) -> Key {
    (ns.to_owned(), name.to_owned())
}

/// Now, to the second, as the API server writes times.
fn now() -> Time {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Time(
        Timestamp::new(i64::try_from(secs).unwrap_or(i64::MAX), 0).unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

/// Every object, the event log and the counters.
pub(crate) struct Store {
    pub log: EventLog,
    jobs: BTreeMap<Key, JobEntry>,
    pods: BTreeMap<Key, PodEntry>,
    secrets: HashMap<Key, BTreeMap<String, String>>,
    rules: Vec<RuleState>,
    stats: Stats,
}

impl Store {
    pub(crate) fn new(event_history: usize) -> Self {
        Self {
            log: EventLog::new(event_history),
            jobs: BTreeMap::new(),
            pods: BTreeMap::new(),
            secrets: HashMap::new(),
            rules: Vec::new(),
            stats: Stats::default(),
        }
    }

    // ----- reads -----

    pub(crate) fn get(&self, kind: Kind, ns: &str, name: &str) -> Result<Bytes, ApiError> {
        let k = key(ns, name);
        let json = match kind {
            Kind::Job => self.jobs.get(&k).map(|e| serde_json::to_vec(&e.job)),
            Kind::Pod => self.pods.get(&k).map(|e| serde_json::to_vec(&e.pod)),
        };
        match json {
            Some(json) => Ok(Bytes::from(json.expect("Kubernetes objects serialize"))),
            None => Err(ApiError::not_found(kind, name)),
        }
    }

    /// A page of the collection, sorted by namespace and name, as etcd keys are.
    pub(crate) fn list(
        &self,
        kind: Kind,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        after: Option<Key>,
    ) -> Bytes {
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let rv = self.log.current().to_string();
        match kind {
            Kind::Job => {
                let (items, cont) = page(&self.jobs, ns, labels, fields, limit, after, |e| &e.job);
                list_body(items, rv, cont)
            }
            Kind::Pod => {
                let (items, cont) = page(&self.pods, ns, labels, fields, limit, after, |e| &e.pod);
                list_body(items, rv, cont)
            }
        }
    }

    /// The current objects matching, as ADDED lines, for a watch from resourceVersion 0.
    pub(crate) fn snapshot_lines(
        &self,
        kind: Kind,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Bytes> {
        fn line<T: serde::Serialize + Clone>(obj: &T) -> Bytes {
            #[derive(serde::Serialize)]
            struct Line<'a, T> {
                #[serde(rename = "type")]
                ty: &'static str,
                object: &'a T,
            }
            let mut v = serde_json::to_vec(&Line {
                ty: "ADDED",
                object: obj,
            })
            .expect("Kubernetes objects serialize");
            v.push(b'\n');
            Bytes::from(v)
        }
        let mut lines = Vec::new();
        match kind {
            Kind::Job => {
                for ((n, name), e) in &self.jobs {
                    if ns.is_none_or(|ns| ns == n)
                        && fields.matches(n, name)
                        && labels.matches(labels_of(&e.job))
                    {
                        lines.push(line(&e.job));
                    }
                }
            }
            Kind::Pod => {
                for ((n, name), e) in &self.pods {
                    if ns.is_none_or(|ns| ns == n)
                        && fields.matches(n, name)
                        && labels.matches(labels_of(&e.pod))
                    {
                        lines.push(line(&e.pod));
                    }
                }
            }
        }
        lines
    }

    pub(crate) fn records(&self) -> Vec<JobRecord> {
        self.jobs
            .values()
            .map(|e| JobRecord::of(&e.job, e.created_at, e.finished_at, e.phase))
            .collect()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats.clone()
    }

    // ----- test controls -----

    pub(crate) fn set_secret(&mut self, ns: &str, name: &str, k: &str, value: &str) {
        self.secrets
            .entry(key(ns, name))
            .or_default()
            .insert(k.to_owned(), value.to_owned());
    }

    /// Adds a fault rule, and kills the running pods of matching Jobs for the faults that
    /// strike a running pod.
    pub(crate) fn add_rule(&mut self, rule: FaultRule) -> Result<(), String> {
        let selector = LabelSelector::parse(&rule.selector)?;
        let mut left = rule.times;
        if matches!(
            rule.fault,
            PodFault::OomKilled | PodFault::Evicted | PodFault::NodeLost
        ) {
            for entry in self.jobs.values() {
                if left == Some(0) {
                    break;
                }
                if entry.phase != JobPhase::Running || !selector.matches(labels_of(&entry.job)) {
                    continue;
                }
                let Some(pod_name) = &entry.pod else { continue };
                let ns = entry.job.metadata.namespace.clone().unwrap_or_default();
                if let Some(pod) = self.pods.get_mut(&key(&ns, pod_name))
                    && let Some(kill) = pod.kill.take()
                {
                    let _ = kill.send(Kill::Fault(rule.fault.clone()));
                    left = left.map(|n| n - 1);
                }
            }
        }
        self.rules.push(RuleState {
            rule,
            selector,
            left,
        });
        Ok(())
    }

    /// Ends the running pod of a Job with an exit code; false when it has none.
    pub(crate) fn finish_pod(&mut self, ns: &str, job: &str, exit_code: i32) -> bool {
        let Some(entry) = self.jobs.get(&key(ns, job)) else {
            return false;
        };
        let Some(pod_name) = &entry.pod else {
            return false;
        };
        match self
            .pods
            .get_mut(&key(ns, pod_name))
            .and_then(|p| p.kill.take())
        {
            Some(kill) => kill.send(Kill::Exit(exit_code)).is_ok(),
            None => false,
        }
    }

    // ----- jobs -----

    /// Creates a Job and its pod, as the API server and the Job controller do.
    pub(crate) fn create_job(
        &mut self,
        ns: &str,
        body: &[u8],
    ) -> Result<(Bytes, PodStart), ApiError> {
        let mut job: Job = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        })?;
        if let Some(body_ns) = job.metadata.namespace.as_deref()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if job.metadata.name.as_deref().is_none_or(str::is_empty)
            && let Some(prefix) = job.metadata.generate_name.as_deref()
        {
            job.metadata.name = Some(format!("{prefix}{}", random_suffix()));
        }
        validate::job(&job)?;
        let name = job.metadata.name.clone().unwrap_or_default();
        let k = key(ns, &name);
        if self.jobs.contains_key(&k) {
            self.stats.conflicts += 1;
            return Err(ApiError::already_exists(Kind::Job, &name));
        }

        let uid = uuid::Uuid::now_v7().to_string();
        let created = now();
        job.metadata.namespace = Some(ns.to_owned());
        job.metadata.uid = Some(uid.clone());
        job.metadata.creation_timestamp = Some(created.clone());
        job.metadata.generation = Some(1);
        job.metadata.deletion_timestamp = None;
        job.metadata.resource_version = None;
        let spec = job.spec.as_mut().expect("validated: a Job has a spec");
        let template_labels = spec
            .template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid.as_str()),
            ("job-name", name.as_str()),
        ] {
            template_labels.insert(k.to_owned(), v.to_owned());
        }
        let pod_labels = template_labels.clone();
        if job.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            job.metadata.labels = Some(pod_labels.clone());
        }
        spec.selector.get_or_insert_with(|| KubeLabelSelector {
            match_labels: Some(BTreeMap::from([(
                "batch.kubernetes.io/controller-uid".to_owned(),
                uid.clone(),
            )])),
            ..Default::default()
        });
        spec.parallelism.get_or_insert(1);
        spec.completions.get_or_insert(1);
        spec.backoff_limit.get_or_insert(6);
        spec.completion_mode
            .get_or_insert_with(|| "NonIndexed".to_owned());
        spec.suspend.get_or_insert(false);
        spec.pod_replacement_policy
            .get_or_insert_with(|| "TerminatingOrFailed".to_owned());
        let deadline = spec
            .active_deadline_seconds
            .map(|s| Duration::from_secs(s.unsigned_abs()));
        let mut pod_spec = spec.template.spec.clone().unwrap_or_default();
        let pod_annotations = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone());
        job.status = Some(JobStatus::default());

        self.log.emit(Kind::Job, EventType::Added, &mut job);
        let response = Bytes::from(serde_json::to_vec(&job).expect("Kubernetes objects serialize"));

        // The pod, as the Job controller makes it.
        let fault = self.take_fault(labels_of(&job));
        let mut pod_name = format!("{name}-{}", random_suffix());
        while self.pods.contains_key(&key(ns, &pod_name)) {
            pod_name = format!("{name}-{}", random_suffix());
        }
        let pod_uid = uuid::Uuid::now_v7().to_string();
        let grace = Duration::from_secs(
            pod_spec
                .termination_grace_period_seconds
                .unwrap_or(30)
                .unsigned_abs(),
        );
        pod_spec
            .service_account_name
            .get_or_insert_with(|| "default".to_owned());
        pod_spec.termination_grace_period_seconds.get_or_insert(30);
        let unschedulable = match &fault {
            Some(PodFault::Unschedulable(message)) => Some(message.clone()),
            _ => None,
        };
        let mut status = PodStatus {
            phase: Some("Pending".to_owned()),
            qos_class: Some(qos_class(&pod_spec).to_owned()),
            ..PodStatus::default()
        };
        match &unschedulable {
            Some(message) => {
                status.conditions = Some(vec![condition(
                    "PodScheduled",
                    "False",
                    Some("Unschedulable"),
                    Some(message),
                )]);
            }
            None => {
                pod_spec.node_name = Some(NODE_NAME.to_owned());
                status.host_ip = Some("10.0.0.1".to_owned());
                status.start_time = Some(now());
                status.conditions = Some(vec![
                    condition("PodScheduled", "True", None, None),
                    condition("Initialized", "True", None, None),
                    condition(
                        "Ready",
                        "False",
                        Some("ContainersNotReady"),
                        Some("containers with unready status"),
                    ),
                    condition(
                        "ContainersReady",
                        "False",
                        Some("ContainersNotReady"),
                        Some("containers with unready status"),
                    ),
                ]);
                status.container_statuses = Some(container_statuses(
                    &pod_spec,
                    false,
                    waiting("ContainerCreating", None),
                ));
            }
        }
        let mut pod = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(pod_name.clone()),
                generate_name: Some(format!("{name}-")),
                namespace: Some(ns.to_owned()),
                uid: Some(pod_uid.clone()),
                creation_timestamp: Some(now()),
                labels: Some(pod_labels),
                annotations: pod_annotations,
                owner_references: Some(vec![OwnerReference {
                    api_version: "batch/v1".to_owned(),
                    kind: "Job".to_owned(),
                    name: name.clone(),
                    uid: uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(pod_spec),
            status: Some(status),
        };
        self.log.emit(Kind::Pod, EventType::Added, &mut pod);
        let (kill_tx, kill_rx) = oneshot::channel();
        self.pods.insert(
            key(ns, &pod_name),
            PodEntry {
                pod,
                job: Some(name.clone()),
                kill: Some(kill_tx),
                log: None,
            },
        );

        let status = job.status.get_or_insert_with(Default::default);
        status.start_time = Some(now());
        status.active = Some(1);
        status.ready = Some(0);
        status.terminating = Some(0);
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
        self.log.emit(Kind::Job, EventType::Modified, &mut job);
        self.jobs.insert(
            k,
            JobEntry {
                job,
                created_at: SystemTime::now(),
                finished_at: None,
                pod: Some(pod_name.clone()),
                phase: JobPhase::Pending,
            },
        );

        self.stats.jobs_created += 1;
        self.stats.active += 1;
        self.stats.max_active = self.stats.max_active.max(self.stats.active);
        let start = PodStart {
            namespace: ns.to_owned(),
            name: pod_name,
            uid: pod_uid,
            fault,
            deadline,
            grace,
            kill: kill_rx,
        };
        Ok((response, start))
    }

    fn take_fault(&mut self, labels: &BTreeMap<String, String>) -> Option<PodFault> {
        for rule in &mut self.rules {
            if rule.left == Some(0) || !rule.selector.matches(labels) {
                continue;
            }
            rule.left = rule.left.map(|n| n - 1);
            return Some(rule.rule.fault.clone());
        }
        None
    }

    /// Deletes a Job; its pods go too unless orphaned. Answers what the API server answers.
    pub(crate) fn delete_job(
        &mut self,
        ns: &str,
        name: &str,
        propagation: Propagation,
    ) -> Result<Bytes, ApiError> {
        let Some(mut entry) = self.jobs.remove(&key(ns, name)) else {
            return Err(ApiError::not_found(Kind::Job, name));
        };
        if !entry.phase.is_finished() {
            self.stats.active -= 1;
        }
        let uid = entry.job.metadata.uid.clone().unwrap_or_default();
        let mut response = delete_success(Kind::Job, name, &uid);
        if propagation == Propagation::Foreground {
            entry.job.metadata.deletion_timestamp = Some(now());
            entry.job.metadata.finalizers = Some(vec!["foregroundDeletion".to_owned()]);
            self.log
                .emit(Kind::Job, EventType::Modified, &mut entry.job);
            response =
                Bytes::from(serde_json::to_vec(&entry.job).expect("Kubernetes objects serialize"));
        }
        if propagation == Propagation::Background {
            self.log.emit(Kind::Job, EventType::Deleted, &mut entry.job);
        }
        if let Some(pod_name) = &entry.pod {
            let pk = key(ns, pod_name);
            if propagation == Propagation::Orphan {
                if let Some(p) = self.pods.get_mut(&pk) {
                    p.job = None;
                    p.pod.metadata.owner_references = None;
                    self.log.emit(Kind::Pod, EventType::Modified, &mut p.pod);
                }
            } else if let Some(mut p) = self.pods.remove(&pk) {
                // Dropping the kill sender tells the pod's task to stop its process.
                self.log.emit(Kind::Pod, EventType::Deleted, &mut p.pod);
            }
        }
        if propagation != Propagation::Background {
            entry.job.metadata.finalizers = None;
            self.log.emit(Kind::Job, EventType::Deleted, &mut entry.job);
        }
        Ok(response)
    }

    /// Deletes a pod as `kubectl delete pod` would; its Job counts it failed. Also returns
    /// the Job's TTL after finishing, as [`Store::pod_ended`] does.
    pub(crate) fn delete_pod(
        &mut self,
        ns: &str,
        name: &str,
    ) -> Result<(Bytes, Option<Expiry>), ApiError> {
        let Some(mut entry) = self.pods.remove(&key(ns, name)) else {
            return Err(ApiError::not_found(Kind::Pod, name));
        };
        self.log.emit(Kind::Pod, EventType::Deleted, &mut entry.pod);
        let response =
            Bytes::from(serde_json::to_vec(&entry.pod).expect("Kubernetes objects serialize"));
        let expiry = entry.job.as_ref().and_then(|job| {
            self.finish_job(
                ns,
                job,
                false,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        });
        Ok((response, expiry))
    }

    // ----- pod lifecycle, called by pod tasks -----

    /// The container's environment, or why the kubelet could not build it.
    pub(crate) fn container_env(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let Some(entry) = self.pods.get(&key(ns, name)) else {
            return Ok(Vec::new());
        };
        crate::env::resolve(&entry.pod, &self.secrets)
    }

    /// Appends the process's output to the pod's log, keeping the last [`MAX_LOG`] bytes.
    pub(crate) fn append_log(&mut self, ns: &str, name: &str, uid: &str, bytes: &[u8]) {
        let Some(entry) = live_pod(&mut self.pods, ns, name, uid) else {
            return;
        };
        let log = entry.log.get_or_insert_with(Vec::new);
        log.extend_from_slice(bytes);
        if log.len() > MAX_LOG {
            let excess = log.len() - MAX_LOG;
            log.drain(..excess);
        }
    }

    /// The pod's log as `GET …/log` answers it: the last `tail_lines` lines, at most
    /// `limit_bytes`.
    pub(crate) fn pod_log(
        &self,
        ns: &str,
        name: &str,
        tail_lines: Option<usize>,
        limit_bytes: Option<usize>,
    ) -> Result<Bytes, ApiError> {
        let Some(entry) = self.pods.get(&key(ns, name)) else {
            return Err(ApiError::not_found(Kind::Pod, name));
        };
        let Some(log) = &entry.log else {
            let container = entry
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let running =
                entry.pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Pending");
            if running {
                return Ok(Bytes::new());
            }
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            )));
        };
        let mut start = 0;
        if let Some(tail) = tail_lines {
            let body = log.strip_suffix(b"\n").unwrap_or(log);
            let mut seen = 0;
            start = body.len() + 1;
            for (i, b) in body.iter().enumerate().rev() {
                if *b == b'\n' {
                    seen += 1;
                    if seen == tail {
                        break;
                    }
                }
                start = i;
            }
            if tail == 0 {
                start = log.len();
            }
            start = start.min(log.len());
        }
        let mut end = log.len();
        if let Some(limit) = limit_bytes {
            end = end.min(start + limit);
        }
        Ok(Bytes::copy_from_slice(&log[start..end]))
    }

    /// The image of the pod's first container.
    pub(crate) fn first_image(&self, ns: &str, name: &str) -> String {
        self.pods
            .get(&key(ns, name))
            .and_then(|p| p.pod.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    }

    /// Sets the first container's waiting reason (image pulls, config errors).
    pub(crate) fn pod_waiting(
        &mut self,
        ns: &str,
        name: &str,
        uid: &str,
        reason: &str,
        message: &str,
    ) {
        let Some(entry) = live_pod(&mut self.pods, ns, name, uid) else {
            return;
        };
        let spec = entry.pod.spec.clone().unwrap_or_default();
        let status = entry.pod.status.get_or_insert_with(Default::default);
        status.container_statuses = Some(container_statuses(
            &spec,
            false,
            waiting(reason, Some(message)),
        ));
        self.log
            .emit(Kind::Pod, EventType::Modified, &mut entry.pod);
    }

    /// The pod's container runs: phase Running, and its Job counts it ready.
    pub(crate) fn pod_running(&mut self, ns: &str, name: &str, uid: &str) {
        let Some(entry) = live_pod(&mut self.pods, ns, name, uid) else {
            return;
        };
        let spec = entry.pod.spec.clone().unwrap_or_default();
        let status = entry.pod.status.get_or_insert_with(Default::default);
        status.phase = Some("Running".to_owned());
        status.pod_ip = Some("10.244.0.2".to_owned());
        status.conditions = Some(vec![
            condition("PodScheduled", "True", None, None),
            condition("Initialized", "True", None, None),
            condition("Ready", "True", None, None),
            condition("ContainersReady", "True", None, None),
        ]);
        let running = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now()),
            }),
            ..Default::default()
        };
        status.container_statuses = Some(container_statuses(&spec, true, running));
        self.log
            .emit(Kind::Pod, EventType::Modified, &mut entry.pod);
        let job = entry.job.clone();
        if let Some(job) = job
            && let Some(j) = self.jobs.get_mut(&key(ns, &job))
        {
            j.phase = JobPhase::Running;
            j.job.status.get_or_insert_with(Default::default).ready = Some(1);
            self.log.emit(Kind::Job, EventType::Modified, &mut j.job);
        }
    }

    /// Records how the pod ended; returns the Job's TTL after finishing, and its uid.
    pub(crate) fn pod_ended(
        &mut self,
        ns: &str,
        name: &str,
        uid: &str,
        ending: Ending,
    ) -> Option<Expiry> {
        let entry = live_pod(&mut self.pods, ns, name, uid)?;
        let job = entry.job.clone();
        let succeeded = matches!(ending, Ending::Exited(0));
        let (job_reason, job_message) = match ending {
            Ending::DeadlineExceeded => (
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ),
            _ => (
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ),
        };
        match &ending {
            Ending::NodeLost | Ending::DeadlineExceeded => {
                if let Some(mut p) = self.pods.remove(&key(ns, name)) {
                    self.log.emit(Kind::Pod, EventType::Deleted, &mut p.pod);
                }
            }
            _ => {
                entry.kill = None;
                let spec = entry.pod.spec.clone().unwrap_or_default();
                let status = entry.pod.status.get_or_insert_with(Default::default);
                let (exit_code, reason, message) = match &ending {
                    Ending::Exited(0) => (0, "Completed", None),
                    Ending::Exited(code) => (*code, "Error", None),
                    Ending::StartError(message) => (128, "StartError", Some(message.clone())),
                    Ending::OomKilled => (137, "OOMKilled", None),
                    Ending::Evicted => (137, "Error", None),
                    Ending::NodeLost | Ending::DeadlineExceeded => unreachable!("handled above"),
                };
                status.phase = Some(if succeeded { "Succeeded" } else { "Failed" }.to_owned());
                if matches!(ending, Ending::Evicted) {
                    status.reason = Some("Evicted".to_owned());
                    status.message = Some("The node was low on resource: memory.".to_owned());
                }
                let ready_reason = if succeeded {
                    "PodCompleted"
                } else {
                    "PodFailed"
                };
                status.conditions = Some(vec![
                    condition("PodScheduled", "True", None, None),
                    condition("Initialized", "True", Some(ready_reason), None),
                    condition("Ready", "False", Some(ready_reason), None),
                    condition("ContainersReady", "False", Some(ready_reason), None),
                ]);
                let started_at = status
                    .container_statuses
                    .as_ref()
                    .and_then(|s| s.first())
                    .and_then(|s| s.state.as_ref())
                    .and_then(|s| s.running.as_ref())
                    .and_then(|r| r.started_at.clone());
                let terminated = ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code,
                        reason: Some(reason.to_owned()),
                        message,
                        started_at,
                        finished_at: Some(now()),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                status.container_statuses = Some(container_statuses(&spec, false, terminated));
                self.log
                    .emit(Kind::Pod, EventType::Modified, &mut entry.pod);
            }
        }
        let job = job?;
        self.finish_job(ns, &job, succeeded, job_reason, job_message)
    }

    /// Marks a Job Complete or Failed; returns (name, TTL, uid) when it has a TTL.
    fn finish_job(
        &mut self,
        ns: &str,
        name: &str,
        succeeded: bool,
        reason: &str,
        message: &str,
    ) -> Option<Expiry> {
        let entry = self.jobs.get_mut(&key(ns, name))?;
        if entry.phase.is_finished() {
            return None;
        }
        entry.phase = if succeeded {
            JobPhase::Succeeded
        } else {
            JobPhase::Failed
        };
        entry.finished_at = Some(SystemTime::now());
        self.stats.active -= 1;
        let finished = now();
        let status = entry.job.status.get_or_insert_with(Default::default);
        status.active = None;
        status.ready = Some(0);
        status.terminating = Some(0);
        let job_condition = |type_: &str| JobCondition {
            type_: type_.to_owned(),
            status: "True".to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_probe_time: Some(finished.clone()),
            last_transition_time: Some(finished.clone()),
        };
        if succeeded {
            status.succeeded = Some(1);
            status.completion_time = Some(finished.clone());
            let mut complete = (
                job_condition("SuccessCriteriaMet"),
                job_condition("Complete"),
            );
            for c in [&mut complete.0, &mut complete.1] {
                c.reason = Some("CompletionsReached".to_owned());
                c.message = Some("Reached expected number of succeeded pods".to_owned());
            }
            status.conditions = Some(vec![complete.0, complete.1]);
        } else {
            status.failed = Some(1);
            status.conditions = Some(vec![
                job_condition("FailureTarget"),
                job_condition("Failed"),
            ]);
        }
        self.log
            .emit(Kind::Job, EventType::Modified, &mut entry.job);
        let ttl = entry
            .job
            .spec
            .as_ref()
            .and_then(|s| s.ttl_seconds_after_finished)?;
        let uid = entry.job.metadata.uid.clone().unwrap_or_default();
        Some(Expiry {
            namespace: ns.to_owned(),
            job: name.to_owned(),
            uid,
            after: Duration::from_secs(ttl.unsigned_abs().into()),
        })
    }

    /// The TTL-after-finished controller: deletes the Job if it is still this one.
    pub(crate) fn expire_job(&mut self, ns: &str, name: &str, uid: &str) {
        let same = self
            .jobs
            .get(&key(ns, name))
            .is_some_and(|e| e.job.metadata.uid.as_deref() == Some(uid));
        if same {
            let _ = self.delete_job(ns, name, Propagation::Background);
        }
    }
}

/// The pod of this name, if it is still the one with this uid.
fn live_pod<'a>(
    pods: &'a mut BTreeMap<Key, PodEntry>,
    ns: &str,
    name: &str,
    uid: &str,
) -> Option<&'a mut PodEntry> {
    pods.get_mut(&key(ns, name))
        .filter(|p| p.pod.metadata.uid.as_deref() == Some(uid))
}

fn labels_of<T: Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>>(
    obj: &T,
) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    obj.metadata().labels.as_ref().unwrap_or(&EMPTY)
}

fn page<'a, E, T>(
    map: &'a BTreeMap<Key, E>,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    limit: usize,
    after: Option<Key>,
    obj: impl Fn(&'a E) -> &'a T,
) -> (Vec<T>, Option<Key>)
where
    T: Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> + Clone + 'a,
{
    use std::ops::Bound;
    let lower = match after {
        Some(k) => Bound::Excluded(k),
        None => Bound::Unbounded,
    };
    let mut items = Vec::new();
    let mut last = None;
    for ((n, name), e) in map.range((lower, Bound::Unbounded)) {
        if ns.is_some_and(|ns| ns != n) || !fields.matches(n, name) {
            continue;
        }
        let o = obj(e);
        if !labels.matches(labels_of(o)) {
            continue;
        }
        if items.len() == limit {
            return (items, last);
        }
        items.push(o.clone());
        last = Some((n.clone(), name.clone()));
    }
    (items, None)
}

fn list_body<T>(items: Vec<T>, rv: String, cont: Option<Key>) -> Bytes
where
    T: k8s_openapi::ListableResource + serde::Serialize,
{
    let list = List {
        items,
        metadata: ListMeta {
            resource_version: Some(rv),
            continue_: cont.map(|(ns, name)| crate::query::continue_token(&ns, &name)),
            ..ListMeta::default()
        },
    };
    Bytes::from(serde_json::to_vec(&list).expect("Kubernetes lists serialize"))
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn condition(
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.map(str::to_owned),
        message: message.map(str::to_owned),
        last_transition_time: Some(now()),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message: message.map(str::to_owned),
        }),
        ..Default::default()
    }
}

/// One status per container, all in the same state.
fn container_statuses(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    ready: bool,
    state: ContainerState,
) -> Vec<ContainerStatus> {
    spec.containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            ready,
            restart_count: 0,
            started: Some(ready),
            state: Some(state.clone()),
            ..Default::default()
        })
        .collect()
}

fn qos_class(spec: &k8s_openapi::api::core::v1::PodSpec) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in &spec.containers {
        let Some(r) = &c.resources else {
            guaranteed = false;
            continue;
        };
        let requests = r.requests.clone().unwrap_or_default();
        let limits = r.limits.clone().unwrap_or_default();
        any |= !requests.is_empty() || !limits.is_empty();
        for res in ["cpu", "memory"] {
            let limit = limits.get(res);
            let request = requests.get(res).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}
