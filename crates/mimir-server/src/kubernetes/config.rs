//! The Kubernetes backend's configuration: the seed's Helm keys
//! (`orchestrator.kubeconfig`, `workerNamespace`, `workerServiceAccount`,
//! `workerImage`, `resources`, `additionalClusters`) and the backend's own
//! settings under `orchestrator.kubernetes`, checked once at start.

use mimir_core::{PerType, WorkTaskType};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `{cpu, memory}` as Kubernetes quantities.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Quantities {
    /// CPU, e.g. `500m` or `"4"`; empty leaves it unset.
    pub cpu: String,
    /// Memory, e.g. `1Gi`; empty leaves it unset.
    pub memory: String,
}

/// One task type's `orchestrator.resources` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceSpec {
    /// What the scheduler reserves.
    pub requests: Quantities,
    /// What the container may use at most; empty: no limit.
    pub limits: Quantities,
}

/// An entry of `orchestrator.additionalClusters`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdditionalCluster {
    /// Its name, in metrics, on tasks and in `task_spec.preferred_cluster`.
    pub name: String,
    /// Path of its kubeconfig file.
    pub kubeconfig: String,
    /// Namespace of its worker Jobs; defaults to `orchestrator.workerNamespace`.
    #[serde(default)]
    pub namespace: String,
    /// URL its pods reach the orchestrator at.
    #[serde(rename = "orchestratorURL")]
    pub orchestrator_url: String,
    /// Most worker Jobs it runs at once.
    pub max_workers: u32,
    /// Service account of its worker Jobs; defaults to
    /// `orchestrator.workerServiceAccount`.
    #[serde(default)]
    pub service_account: String,
}

/// A key of a Kubernetes Secret.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name, in the Job's namespace.
    pub name: String,
    /// The key holding the value.
    pub key: String,
}

/// `orchestrator.kubernetes.*`: how the backend runs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesSettings {
    /// The primary cluster's name. Defaults to `primary`.
    pub cluster_name: String,
    /// URL the primary cluster's pods reach the orchestrator at. Defaults to
    /// `http://mimir-orchestrator.<workerNamespace>.svc:8080`, the kustomize base's Service.
    #[serde(rename = "orchestratorURL")]
    pub orchestrator_url: String,
    /// The Secret key worker pods read `MIMIR_TOKEN` from, when
    /// `orchestrator.workerAuthToken` is set. Defaults to
    /// `{name: mimir-aip-worker-token, key: token}`. The token is never
    /// written into a Job.
    pub token_secret: SecretKeyRef,
    /// `imagePullPolicy` of worker containers. Defaults to `IfNotPresent`.
    pub image_pull_policy: String,
    /// How long a pod may fail to pull its image before its task fails, in
    /// milliseconds. Defaults to 60000.
    pub image_pull_grace_ms: u64,
    /// Memory of the next attempt after an OOM kill, as a multiple. Defaults to 1.5.
    pub oom_memory_factor: f64,
    /// Most memory an OOM retry asks for. Defaults to `64Gi`.
    pub oom_memory_cap: String,
    /// `ttlSecondsAfterFinished` of worker Jobs. Defaults to 300.
    pub ttl_seconds_after_finished: i32,
    /// Timeout of one Kubernetes API call, in milliseconds. Defaults to 10000.
    pub api_timeout_ms: u64,
    /// Failed API calls or Job starts in a row that open a cluster's circuit
    /// (it is skipped). Defaults to 5.
    pub circuit_failures: u32,
    /// How long an open circuit skips its cluster before one probe, in
    /// milliseconds. Defaults to 30000.
    pub circuit_cooldown_ms: u64,
    /// Task types run by a pool of long-lived worker Jobs that lease many
    /// tasks each, instead of one Job per attempt: for floods of short
    /// tasks, where a pod start per task would cost more than the task.
    /// Defaults to none.
    pub pool_types: Vec<String>,
    /// Requests and limits of pool worker Jobs. Defaults to the largest of
    /// the pool types' `orchestrator.resources`, field by field.
    pub pool_resources: Option<ResourceSpec>,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        KubernetesSettings {
            cluster_name: "primary".into(),
            orchestrator_url: String::new(),
            token_secret: SecretKeyRef {
                name: "mimir-aip-worker-token".into(),
                key: "token".into(),
            },
            image_pull_policy: "IfNotPresent".into(),
            image_pull_grace_ms: 60_000,
            oom_memory_factor: 1.5,
            oom_memory_cap: "64Gi".into(),
            ttl_seconds_after_finished: 300,
            api_timeout_ms: 10_000,
            circuit_failures: 5,
            circuit_cooldown_ms: 30_000,
            pool_types: Vec::new(),
            pool_resources: None,
        }
    }
}

/// One cluster, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Its name.
    pub name: String,
    /// Its kubeconfig; `None`: in-cluster config, else `$KUBECONFIG`.
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of its Jobs.
    pub namespace: String,
    /// URL its pods reach the orchestrator at.
    pub orchestrator_url: String,
    /// Most Jobs at once.
    pub max_workers: u32,
    /// Service account of its Jobs.
    pub service_account: String,
}

/// Requests and limits of one task type's Jobs, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobResources {
    /// Requests.
    pub requests: Quantities,
    /// Limits (empty fields: none).
    pub limits: Quantities,
}

/// The backend's configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesConfig {
    /// The primary cluster first, then the additional ones in order.
    pub clusters: Vec<ClusterConfig>,
    /// Worker image.
    pub image: String,
    /// `imagePullPolicy`.
    pub image_pull_policy: String,
    /// Where pods read the worker token, when there is one.
    pub token_secret: Option<SecretKeyRef>,
    /// Per-type defaults.
    pub resources: PerType<JobResources>,
    /// Grace before image pull failures fail the task.
    pub image_pull_grace: Duration,
    /// Memory multiple after an OOM kill.
    pub oom_memory_factor: f64,
    /// Most memory after OOM kills, in bytes.
    pub oom_memory_cap_bytes: u64,
    /// `ttlSecondsAfterFinished`.
    pub ttl_seconds_after_finished: i32,
    /// One API call's timeout.
    pub api_timeout: Duration,
    /// Failures in a row that open a circuit.
    pub circuit_failures: u32,
    /// How long an open circuit waits.
    pub circuit_cooldown: Duration,
    /// Lease lifetime: pending Jobs' leases are renewed well within it.
    pub lease_ttl: Duration,
    /// Extra environment for worker pods (log settings, tracing).
    pub worker_env: Vec<(String, String)>,
    /// The pool of long-lived worker Jobs, when some types use one.
    pub pool: Option<PoolConfig>,
}

/// How the pool of long-lived worker Jobs is sized: the local pool's rule
/// (`clamp(ceil(waiting / queueThreshold), minWorkers, capacity)`, damped by
/// the idle timeout) over the tasks of its types.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The task types its workers lease; the others get a Job per attempt.
    pub types: Vec<WorkTaskType>,
    /// Requests and limits of each pool worker Job.
    pub resources: JobResources,
    /// Pool workers kept even when idle (`orchestrator.minWorkers`).
    pub min: u32,
    /// Waiting tasks per pool worker (`orchestrator.queueThreshold`).
    pub threshold: u32,
    /// How long the queue must call for fewer workers before the pool
    /// shrinks, and how long a surplus worker idles before it is asked to
    /// stop (`orchestrator.idleTimeoutMs`).
    pub idle_timeout: Duration,
}

/// The seed's per-type defaults.
pub fn seed_resources() -> BTreeMap<String, ResourceSpec> {
    let q = |cpu: &str, memory: &str| Quantities {
        cpu: cpu.into(),
        memory: memory.into(),
    };
    BTreeMap::from([
        (
            "pipeline_execution".to_string(),
            ResourceSpec {
                requests: q("500m", "1Gi"),
                limits: Quantities::default(),
            },
        ),
        (
            "ml_training".to_string(),
            ResourceSpec {
                requests: q("4", "8Gi"),
                limits: q("8", "16Gi"),
            },
        ),
        (
            "ml_inference".to_string(),
            ResourceSpec {
                requests: q("1", "2Gi"),
                limits: Quantities::default(),
            },
        ),
    ])
}

/// What the orchestrator section says, as [`KubernetesConfig::check`] reads it.
pub struct Keys<'a> {
    /// `orchestrator.kubeconfig`.
    pub kubeconfig: &'a str,
    /// `orchestrator.workerNamespace`.
    pub namespace: &'a str,
    /// `orchestrator.workerServiceAccount`.
    pub service_account: &'a str,
    /// `orchestrator.workerImage`.
    pub image: &'a str,
    /// `orchestrator.maxWorkers`: the primary cluster's cap.
    pub max_workers: u32,
    /// `orchestrator.resources`.
    pub resources: &'a BTreeMap<String, ResourceSpec>,
    /// `orchestrator.additionalClusters`.
    pub additional: &'a [AdditionalCluster],
    /// `orchestrator.kubernetes`.
    pub settings: &'a KubernetesSettings,
    /// Whether a worker token is configured.
    pub has_token: bool,
    /// Lease lifetime.
    pub lease_ttl: Duration,
    /// `orchestrator.minWorkers`: pool workers kept when idle.
    pub min_workers: u32,
    /// `orchestrator.queueThreshold`.
    pub queue_threshold: u32,
    /// `orchestrator.idleTimeoutMs`.
    pub idle_timeout: Duration,
}

impl KubernetesConfig {
    /// Checks the keys; the error names the first bad one.
    pub fn check(keys: Keys<'_>) -> Result<KubernetesConfig, String> {
        let s = keys.settings;
        let label = |field: &str, value: &str| {
            mimir_core::check_label(field, value).map_err(|e| format!("{field}: {}", e.message))
        };
        label("orchestrator.kubernetes.clusterName", &s.cluster_name)?;
        dns_label("orchestrator.workerNamespace", keys.namespace)?;
        dns_subdomain("orchestrator.workerServiceAccount", keys.service_account)?;
        if keys.image.trim().is_empty() {
            return Err(
                "orchestrator.workerImage: a worker image is needed, e.g. mimir-aip:latest".into(),
            );
        }
        if !matches!(
            s.image_pull_policy.as_str(),
            "Always" | "IfNotPresent" | "Never"
        ) {
            return Err(format!(
                "orchestrator.kubernetes.imagePullPolicy: {:?} is not Always, IfNotPresent or Never",
                s.image_pull_policy
            ));
        }
        if !(1.0..=10.0).contains(&s.oom_memory_factor) {
            return Err(format!(
                "orchestrator.kubernetes.oomMemoryFactor: {} is not from 1 to 10",
                s.oom_memory_factor
            ));
        }
        let oom_memory_cap_bytes = mimir_core::memory_bytes(&s.oom_memory_cap).ok_or_else(|| {
            format!(
                "orchestrator.kubernetes.oomMemoryCap: {:?} is not a memory quantity such as 64Gi",
                s.oom_memory_cap
            )
        })?;
        if s.ttl_seconds_after_finished < 0 {
            return Err(
                "orchestrator.kubernetes.ttlSecondsAfterFinished must not be negative".into(),
            );
        }
        if s.api_timeout_ms == 0 || s.circuit_failures == 0 {
            return Err(
                "orchestrator.kubernetes.apiTimeoutMs and circuitFailures must be at least 1"
                    .into(),
            );
        }
        if !s.orchestrator_url.is_empty() {
            url(
                "orchestrator.kubernetes.orchestratorURL",
                &s.orchestrator_url,
            )?;
        }
        if s.token_secret.name.is_empty() || s.token_secret.key.is_empty() {
            return Err("orchestrator.kubernetes.tokenSecret needs a name and a key".into());
        }
        let mut resources = PerType::<JobResources>::default();
        let seeds = seed_resources();
        for (name, spec) in seeds.iter().chain(keys.resources.iter()) {
            let field = format!("orchestrator.resources.{name}");
            let task_type: WorkTaskType = name.parse().map_err(|_| {
                format!("{field}: not a task type (pipeline_execution, ml_training, ml_inference)")
            })?;
            for (part, q) in [("requests", &spec.requests), ("limits", &spec.limits)] {
                quantities(&format!("{field}.{part}"), q)?;
            }
            resources[task_type] = JobResources {
                requests: spec.requests.clone(),
                limits: spec.limits.clone(),
            };
        }
        let pool = pool(&keys, &resources)?;
        let mut clusters = vec![ClusterConfig {
            name: s.cluster_name.clone(),
            kubeconfig: (!keys.kubeconfig.is_empty()).then(|| PathBuf::from(keys.kubeconfig)),
            namespace: keys.namespace.to_string(),
            orchestrator_url: if s.orchestrator_url.is_empty() {
                format!("http://mimir-orchestrator.{}.svc:8080", keys.namespace)
            } else {
                s.orchestrator_url.clone()
            },
            max_workers: keys.max_workers,
            service_account: keys.service_account.to_string(),
        }];
        for (i, extra) in keys.additional.iter().enumerate() {
            let field = format!("orchestrator.additionalClusters[{i}]");
            label(&format!("{field}.name"), &extra.name)?;
            if clusters.iter().any(|c| c.name == extra.name) {
                return Err(format!("{field}.name: {:?} names two clusters", extra.name));
            }
            if extra.kubeconfig.is_empty() {
                return Err(format!(
                    "{field}.kubeconfig: an additional cluster needs a kubeconfig file"
                ));
            }
            url(&format!("{field}.orchestratorURL"), &extra.orchestrator_url)?;
            let namespace = if extra.namespace.is_empty() {
                keys.namespace
            } else {
                &extra.namespace
            };
            dns_label(&format!("{field}.namespace"), namespace)?;
            let service_account = if extra.service_account.is_empty() {
                keys.service_account
            } else {
                &extra.service_account
            };
            dns_subdomain(&format!("{field}.serviceAccount"), service_account)?;
            clusters.push(ClusterConfig {
                name: extra.name.clone(),
                kubeconfig: Some(PathBuf::from(&extra.kubeconfig)),
                namespace: namespace.to_string(),
                orchestrator_url: extra.orchestrator_url.clone(),
                max_workers: extra.max_workers,
                service_account: service_account.to_string(),
            });
        }
        Ok(KubernetesConfig {
            clusters,
            image: keys.image.to_string(),
            image_pull_policy: s.image_pull_policy.clone(),
            token_secret: keys.has_token.then(|| s.token_secret.clone()),
            resources,
            image_pull_grace: Duration::from_millis(s.image_pull_grace_ms),
            oom_memory_factor: s.oom_memory_factor,
            oom_memory_cap_bytes,
            ttl_seconds_after_finished: s.ttl_seconds_after_finished,
            api_timeout: Duration::from_millis(s.api_timeout_ms),
            circuit_failures: s.circuit_failures,
            circuit_cooldown: Duration::from_millis(s.circuit_cooldown_ms),
            lease_ttl: keys.lease_ttl,
            worker_env: Vec::new(),
            pool,
        })
    }

    /// Whether tasks of `task_type` are run by pool workers.
    pub fn pooled(&self, task_type: WorkTaskType) -> bool {
        self.pool
            .as_ref()
            .is_some_and(|p| p.types.contains(&task_type))
    }
}

/// The pool, when `orchestrator.kubernetes.poolTypes` names any type.
fn pool(keys: &Keys<'_>, resources: &PerType<JobResources>) -> Result<Option<PoolConfig>, String> {
    let s = keys.settings;
    let mut types = Vec::new();
    for (i, name) in s.pool_types.iter().enumerate() {
        let t: WorkTaskType = name.parse().map_err(|_| {
            format!(
                "orchestrator.kubernetes.poolTypes[{i}]: {name:?} is not a task type (pipeline_execution, ml_training, ml_inference)"
            )
        })?;
        if types.contains(&t) {
            return Err(format!(
                "orchestrator.kubernetes.poolTypes[{i}]: {name:?} is listed twice"
            ));
        }
        types.push(t);
    }
    if types.is_empty() {
        if s.pool_resources.is_some() {
            return Err(
                "orchestrator.kubernetes.poolResources: set without poolTypes, it would not be used"
                    .into(),
            );
        }
        return Ok(None);
    }
    let resources = match &s.pool_resources {
        Some(spec) => {
            for (part, q) in [("requests", &spec.requests), ("limits", &spec.limits)] {
                quantities(&format!("orchestrator.kubernetes.poolResources.{part}"), q)?;
            }
            JobResources {
                requests: spec.requests.clone(),
                limits: spec.limits.clone(),
            }
        }
        None => types
            .iter()
            .map(|t| resources[*t].clone())
            .reduce(|a, b| JobResources {
                requests: largest(&a.requests, &b.requests, false),
                limits: largest(&a.limits, &b.limits, true),
            })
            .unwrap_or_default(),
    };
    Ok(Some(PoolConfig {
        types,
        resources,
        min: keys.min_workers,
        threshold: keys.queue_threshold.max(1),
        idle_timeout: keys.idle_timeout,
    }))
}

/// The larger of two quantities, field by field. An empty field is the
/// larger for limits (no limit) and the smaller for requests (nothing
/// reserved).
fn largest(a: &Quantities, b: &Quantities, empty_is_larger: bool) -> Quantities {
    let pick = |a: &str, b: &str, parse: fn(&str) -> Option<u64>| -> String {
        if a.is_empty() || b.is_empty() {
            let empty = String::new();
            return match (empty_is_larger, a.is_empty()) {
                (true, _) => empty,
                (false, true) => b.to_string(),
                (false, false) => a.to_string(),
            };
        }
        match (parse(a), parse(b)) {
            (Some(x), Some(y)) if y > x => b.to_string(),
            _ => a.to_string(),
        }
    };
    Quantities {
        cpu: pick(&a.cpu, &b.cpu, mimir_core::submission::cpu_millis),
        memory: pick(&a.memory, &b.memory, mimir_core::memory_bytes),
    }
}

fn quantities(field: &str, q: &Quantities) -> Result<(), String> {
    let cpu_ok = q.cpu.is_empty() || mimir_core::submission::cpu_millis(&q.cpu).is_some();
    if !cpu_ok {
        return Err(format!(
            "{field}.cpu: {:?} is not a CPU quantity such as 500m or 2",
            q.cpu
        ));
    }
    if !q.memory.is_empty() && mimir_core::memory_bytes(&q.memory).is_none() {
        return Err(format!(
            "{field}.memory: {:?} is not a memory quantity such as 512Mi or 2Gi",
            q.memory
        ));
    }
    Ok(())
}

fn url(field: &str, value: &str) -> Result<(), String> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("{field}: {value:?} is not an http(s) URL"))
    }
}

/// A DNS-1123 label (namespaces).
fn dns_label(field: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field}: {value:?} is not a DNS label (lower-case letters, digits and '-', at most 63)"
        ))
    }
}

/// A DNS-1123 subdomain (service accounts).
fn dns_subdomain(field: &str, value: &str) -> Result<(), String> {
    if value.len() <= 253
        && !value.is_empty()
        && value.split('.').all(|p| dns_label(field, p).is_ok())
    {
        Ok(())
    } else {
        Err(format!("{field}: {value:?} is not a DNS subdomain name"))
    }
}
