//! The Job that runs one task attempt: a pure function of the task, its
//! cluster and the configuration.

use super::config::{ClusterConfig, KubernetesConfig, Quantities};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mimir_core::WorkTask;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The label every worker Job and pod carries.
pub const APP_LABEL: (&str, &str) = ("app", "mimir-worker");
/// The label selector of everything the backend manages.
pub const SELECTOR: &str = "app=mimir-worker";
/// Label: the task's id.
pub const TASK_LABEL: &str = "worktask-id";
/// Label: the task's type.
pub const TYPE_LABEL: &str = "worktask-type";
/// Label: the attempt the Job runs.
pub const ATTEMPT_LABEL: &str = "worktask-attempt";
/// Label: the cluster's name, as the orchestrator calls it.
pub const CLUSTER_LABEL: &str = "mimir-cluster";
/// Label of pool worker Jobs (`"true"`): they lease many tasks and carry no
/// task's labels.
pub const POOL_LABEL: &str = "mimir-worker-pool";
/// Seconds an attempt's Job may run beyond the task's timeout: the worker
/// stops the task at its timeout and reports it; the Job's deadline only
/// catches a worker that cannot.
const DEADLINE_SLACK_SECONDS: u64 = 120;

/// The Job of attempt `attempt` of task `id`: `mimir-<id>-<attempt>`, at
/// most 52 characters, so a restarted orchestrator finds the same name.
pub fn job_name(id: Uuid, attempt: u32) -> String {
    format!("mimir-{id}-{attempt}")
}

/// A new pool worker Job's name, which is also its worker's id.
pub fn pool_job_name() -> String {
    format!("mimir-pool-{}", Uuid::now_v7().simple())
}

/// Whether labels are a pool worker Job's.
pub fn is_pool(labels: &BTreeMap<String, String>) -> bool {
    labels.get(POOL_LABEL).is_some_and(|v| v == "true")
}

/// The task and attempt a Job's labels name.
pub fn job_attempt(labels: &BTreeMap<String, String>) -> Option<(Uuid, u32)> {
    let id = labels.get(TASK_LABEL)?.parse().ok()?;
    let attempt = labels.get(ATTEMPT_LABEL)?.parse().ok()?;
    Some((id, attempt))
}

/// Memory of the next attempt after `oom_kills` OOM kills: `memory` times
/// the factor for each, capped; `None` when `memory` is not a quantity.
pub fn raised_memory(memory: &str, oom_kills: u32, factor: f64, cap_bytes: u64) -> Option<u64> {
    let base = mimir_core::memory_bytes(memory)?;
    let raised = base as f64 * factor.powi(oom_kills.min(64) as i32);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let raised = raised.min(cap_bytes as f64) as u64;
    Some(raised.max(base.min(cap_bytes)))
}

/// A byte count as a Kubernetes quantity in whole MiB (rounded up), or in
/// bytes when smaller than one.
pub fn memory_quantity(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes < MIB {
        bytes.to_string()
    } else {
        format!("{}Mi", bytes.div_ceil(MIB))
    }
}

/// The requests and limits of a task's Job: the task's own
/// `resource_requirements` where they differ from its type's built-in
/// defaults (a user asked for them), else `orchestrator.resources` for its
/// type; limits from `orchestrator.resources`, never below the requests.
/// `oom_kills` earlier attempts killed for memory raise request and limit.
pub fn resources(task: &WorkTask, config: &KubernetesConfig, oom_kills: u32) -> JobQuantities {
    let defaults = task.task_type.default_resources();
    let configured = &config.resources[task.task_type];
    let own = &task.resource_requirements;
    let pick = |own: &str, default: &str, configured: &str| {
        if !own.is_empty() && own != default || configured.is_empty() {
            own.to_string()
        } else {
            configured.to_string()
        }
    };
    let mut requests = Quantities {
        cpu: pick(&own.cpu, &defaults.cpu, &configured.requests.cpu),
        memory: pick(&own.memory, &defaults.memory, &configured.requests.memory),
    };
    let mut limits = configured.limits.clone();
    // A limit below the request is refused by the API server.
    if let (Some(limit), Some(request)) = (
        mimir_core::submission::cpu_millis(&limits.cpu),
        mimir_core::submission::cpu_millis(&requests.cpu),
    ) && limit < request
    {
        limits.cpu = requests.cpu.clone();
    }
    if let (Some(limit), Some(request)) = (
        mimir_core::memory_bytes(&limits.memory),
        mimir_core::memory_bytes(&requests.memory),
    ) && limit < request
    {
        limits.memory = requests.memory.clone();
    }
    if oom_kills > 0 {
        let factor = config.oom_memory_factor;
        let cap = config.oom_memory_cap_bytes;
        if let Some(bytes) = raised_memory(&requests.memory, oom_kills, factor, cap) {
            requests.memory = memory_quantity(bytes);
        }
        if let Some(bytes) = raised_memory(&limits.memory, oom_kills, factor, cap) {
            limits.memory = memory_quantity(bytes);
        }
    }
    JobQuantities {
        requests,
        limits,
        gpu: task.resource_requirements.gpu,
    }
}

/// What a Job's container asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct JobQuantities {
    /// Requests.
    pub requests: Quantities,
    /// Limits (empty fields: none).
    pub limits: Quantities,
    /// One `nvidia.com/gpu`.
    pub gpu: bool,
}

fn quantity_map(q: &Quantities, gpu: bool) -> Option<BTreeMap<String, Quantity>> {
    let mut map = BTreeMap::new();
    if !q.cpu.is_empty() {
        map.insert("cpu".to_string(), Quantity(q.cpu.clone()));
    }
    if !q.memory.is_empty() {
        map.insert("memory".to_string(), Quantity(q.memory.clone()));
    }
    if gpu {
        map.insert("nvidia.com/gpu".to_string(), Quantity("1".into()));
    }
    (!map.is_empty()).then_some(map)
}

/// The Job running attempt `task.attempt` of `task` in `cluster`.
pub fn build(
    task: &WorkTask,
    cluster: &ClusterConfig,
    config: &KubernetesConfig,
    quantities: &JobQuantities,
) -> Job {
    let name = job_name(task.worktask_id, task.attempt);
    let labels = BTreeMap::from([
        (APP_LABEL.0.to_string(), APP_LABEL.1.to_string()),
        (TASK_LABEL.to_string(), task.worktask_id.to_string()),
        (
            TYPE_LABEL.to_string(),
            task.task_type.as_str().replace('_', "-"),
        ),
        (ATTEMPT_LABEL.to_string(), task.attempt.to_string()),
        (CLUSTER_LABEL.to_string(), cluster.name.clone()),
    ]);
    let mut env = vec![
        plain("WORKTASK_ID", &task.worktask_id.to_string()),
        plain("WORKTASK_TYPE", task.task_type.as_str()),
    ];
    // The container's memory bounds the task, not the task's own figure:
    // after an OOM kill the next attempt's Job has more.
    let memory = if quantities.limits.memory.is_empty() {
        &quantities.requests.memory
    } else {
        &quantities.limits.memory
    };
    if !memory.is_empty() {
        env.push(plain("MIMIR_TASK_MEMORY", memory));
    }
    let deadline = task
        .task_spec
        .timeout_ms
        .map(|ms| (ms.div_ceil(1000) + DEADLINE_SLACK_SECONDS).min(i64::MAX as u64) as i64);
    worker_job(name, labels, env, deadline, cluster, config, quantities)
}

/// A pool worker Job named `name` in `cluster`: a worker that leases tasks
/// of the pool's types until the orchestrator asks it to stop. It has no
/// deadline (it runs many tasks, each under its own timeout).
pub fn build_pool(name: &str, cluster: &ClusterConfig, config: &KubernetesConfig) -> Job {
    let pool = config.pool.as_ref();
    let labels = BTreeMap::from([
        (APP_LABEL.0.to_string(), APP_LABEL.1.to_string()),
        (POOL_LABEL.to_string(), "true".to_string()),
        (CLUSTER_LABEL.to_string(), cluster.name.clone()),
    ]);
    let types: Vec<&str> = pool
        .map(|p| p.types.iter().map(|t| t.as_str()).collect())
        .unwrap_or_default();
    let env = vec![plain("MIMIR_WORKER_TYPES", &types.join(","))];
    let resources = pool.map(|p| p.resources.clone()).unwrap_or_default();
    let quantities = JobQuantities {
        requests: resources.requests,
        limits: resources.limits,
        gpu: false,
    };
    worker_job(
        name.to_string(),
        labels,
        env,
        None,
        cluster,
        config,
        &quantities,
    )
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

/// The Job both kinds share: the worker container with the orchestrator's
/// URL, its worker id (the Job's name), the token from its Secret, `env`,
/// and the requests and limits; no retries of its own.
fn worker_job(
    name: String,
    labels: BTreeMap<String, String>,
    mut env: Vec<EnvVar>,
    deadline: Option<i64>,
    cluster: &ClusterConfig,
    config: &KubernetesConfig,
    quantities: &JobQuantities,
) -> Job {
    env.push(plain("MIMIR_ORCHESTRATOR_URL", &cluster.orchestrator_url));
    env.push(plain("MIMIR_WORKER_ID", &name));
    if let Some(secret) = &config.token_secret {
        env.push(EnvVar {
            name: "MIMIR_TOKEN".to_string(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        });
    }
    env.extend(config.worker_env.iter().map(|(k, v)| plain(k, v)));
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(cluster.namespace.clone()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: deadline,
            ttl_seconds_after_finished: Some(config.ttl_seconds_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: Some(cluster.service_account.clone()),
                    automount_service_account_token: Some(false),
                    containers: vec![Container {
                        name: "worker".into(),
                        image: Some(config.image.clone()),
                        image_pull_policy: Some(config.image_pull_policy.clone()),
                        args: Some(vec!["worker".into()]),
                        env: Some(env),
                        resources: Some(ResourceRequirements {
                            requests: quantity_map(&quantities.requests, quantities.gpu),
                            limits: quantity_map(&quantities.limits, quantities.gpu),
                            claims: None,
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::config::{Keys, KubernetesSettings, SecretKeyRef};
    use std::time::Duration;

    fn config(token: bool) -> KubernetesConfig {
        checked(token, &KubernetesSettings::default()).expect("valid")
    }

    fn checked(token: bool, settings: &KubernetesSettings) -> Result<KubernetesConfig, String> {
        KubernetesConfig::check(Keys {
            kubeconfig: "",
            namespace: "jobs",
            service_account: "mimir-worker",
            image: "mimir-aip:1.2",
            max_workers: 10,
            resources: &Default::default(),
            additional: &[],
            settings,
            has_token: token,
            lease_ttl: Duration::from_secs(15),
            min_workers: 0,
            queue_threshold: 5,
            idle_timeout: Duration::from_secs(30),
        })
    }

    fn pooled(types: &[&str]) -> KubernetesSettings {
        KubernetesSettings {
            pool_types: types.iter().map(|t| t.to_string()).collect(),
            ..KubernetesSettings::default()
        }
    }

    #[test]
    fn a_pool_job_leases_its_types_as_its_own_worker_with_the_largest_resources_and_no_deadline() {
        let config =
            checked(true, &pooled(&["pipeline_execution", "ml_inference"])).expect("valid");
        let pool = config.pool.clone().expect("a pool");
        // pipeline 500m/1Gi, inference 1/2Gi, neither with limits.
        assert_eq!(
            (
                pool.resources.requests.cpu.as_str(),
                pool.resources.requests.memory.as_str()
            ),
            ("1", "2Gi")
        );
        assert_eq!(pool.resources.limits, Quantities::default());
        assert!(config.pooled(mimir_core::WorkTaskType::PipelineExecution));
        assert!(!config.pooled(mimir_core::WorkTaskType::MlTraining));
        let name = pool_job_name();
        assert!(
            name.starts_with("mimir-pool-") && name.len() <= 63,
            "{name}"
        );
        assert_ne!(name, pool_job_name(), "every pool Job has its own name");
        let job = build_pool(&name, &config.clusters[0], &config);
        let labels = job.metadata.labels.clone().unwrap();
        assert!(is_pool(&labels));
        assert_eq!(job_attempt(&labels), None, "no task's labels");
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, None);
        let container = &spec.template.spec.unwrap().containers[0];
        let env = container.env.clone().unwrap();
        let value = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(value("MIMIR_WORKER_ID"), Some(name));
        assert_eq!(
            value("MIMIR_WORKER_TYPES").as_deref(),
            Some("pipeline_execution,ml_inference")
        );
        assert_eq!(value("WORKTASK_ID"), None);
        assert_eq!(
            value("MIMIR_TASK_MEMORY"),
            None,
            "tasks share the container"
        );
        let token = env.iter().find(|e| e.name == "MIMIR_TOKEN").expect("token");
        assert_eq!(token.value, None, "the token is never inline");
        let requests = container.resources.clone().unwrap().requests.unwrap();
        assert_eq!(requests["memory"].0, "2Gi");
        let limited = |limits: Quantities| {
            let settings = KubernetesSettings {
                pool_resources: Some(crate::kubernetes::config::ResourceSpec {
                    requests: Quantities {
                        cpu: "250m".into(),
                        memory: "512Mi".into(),
                    },
                    limits,
                }),
                ..pooled(&["pipeline_execution"])
            };
            checked(false, &settings)
        };
        let own = limited(Quantities {
            cpu: "1".into(),
            memory: "1Gi".into(),
        })
        .expect("valid");
        assert_eq!(own.pool.unwrap().resources.limits.memory, "1Gi");
    }

    #[test]
    fn bad_pool_settings_are_refused_naming_the_key() {
        let error = checked(false, &pooled(&["pipeline_execution", "nap"])).unwrap_err();
        assert!(
            error.starts_with("orchestrator.kubernetes.poolTypes[1]:"),
            "{error}"
        );
        let error = checked(false, &pooled(&["ml_training", "ml_training"])).unwrap_err();
        assert!(error.contains("listed twice"), "{error}");
        let stray = KubernetesSettings {
            pool_resources: Some(Default::default()),
            ..KubernetesSettings::default()
        };
        let error = checked(false, &stray).unwrap_err();
        assert!(
            error.starts_with("orchestrator.kubernetes.poolResources:"),
            "{error}"
        );
        let bad = KubernetesSettings {
            pool_resources: Some(crate::kubernetes::config::ResourceSpec {
                requests: Quantities {
                    cpu: "lots".into(),
                    memory: String::new(),
                },
                limits: Quantities::default(),
            }),
            ..pooled(&["pipeline_execution"])
        };
        let error = checked(false, &bad).unwrap_err();
        assert!(
            error.starts_with("orchestrator.kubernetes.poolResources.requests.cpu:"),
            "{error}"
        );
        assert_eq!(
            checked(false, &KubernetesSettings::default()).unwrap().pool,
            None
        );
    }

    fn task(json: &str) -> WorkTask {
        let new = serde_json::from_str::<mimir_core::Submission>(json)
            .expect("json")
            .validate()
            .expect("valid");
        let mut task = WorkTask::new(Uuid::now_v7(), chrono::Utc::now(), new);
        task.attempt = 3;
        task
    }

    #[test]
    fn a_job_carries_the_task_env_labels_and_no_inline_token() {
        let config = config(true);
        let t = task(
            r#"{"type":"pipeline_execution","project_id":"p","task_spec":{"pipeline_id":"x","timeout_ms":60000}}"#,
        );
        let q = resources(&t, &config, 0);
        let job = build(&t, &config.clusters[0], &config, &q);
        let name = job.metadata.name.clone().unwrap();
        assert_eq!(name, format!("mimir-{}-3", t.worktask_id));
        assert!(name.len() <= 63);
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(180));
        assert_eq!(spec.ttl_seconds_after_finished, Some(300));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("mimir-worker"));
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(job_attempt(&labels), Some((t.worktask_id, 3)));
        assert_eq!(labels["app"], "mimir-worker");
        assert_eq!(labels["worktask-type"], "pipeline-execution");
        let env = pod.containers[0].env.clone().unwrap();
        let value = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(value("WORKTASK_ID"), Some(t.worktask_id.to_string()));
        assert_eq!(
            value("WORKTASK_TYPE").as_deref(),
            Some("pipeline_execution")
        );
        assert_eq!(
            value("MIMIR_ORCHESTRATOR_URL").as_deref(),
            Some("http://mimir-orchestrator.jobs.svc:8080")
        );
        let token = env
            .iter()
            .find(|e| e.name == "MIMIR_TOKEN")
            .expect("token env");
        assert_eq!(token.value, None, "the token is never inline");
        let secret = token.value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            SecretKeyRef {
                name: secret.name,
                key: secret.key
            },
            config.token_secret.clone().unwrap()
        );
    }

    #[test]
    fn resources_come_from_the_task_or_the_type_defaults_and_grow_after_oom_kills() {
        let config = config(false);
        let training = task(
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"x","model_id":"m"}}"#,
        );
        let q = resources(&training, &config, 0);
        assert_eq!(
            (q.requests.cpu.as_str(), q.requests.memory.as_str()),
            ("4", "8Gi")
        );
        assert_eq!(
            (q.limits.cpu.as_str(), q.limits.memory.as_str()),
            ("8", "16Gi")
        );
        let own = task(
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"x","model_id":"m"},"resource_requirements":{"cpu":"16","memory":"32Gi","gpu":true}}"#,
        );
        let q = resources(&own, &config, 0);
        assert_eq!(q.requests.memory, "32Gi");
        assert_eq!(
            q.limits.memory, "32Gi",
            "a limit never falls below the request"
        );
        assert_eq!(q.limits.cpu, "16");
        assert!(q.gpu);
        let job = build(&own, &config.clusters[0], &config, &q);
        let container = &job.spec.unwrap().template.spec.unwrap().containers[0];
        let limits = container.resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["nvidia.com/gpu"].0, "1");
        let pipeline = task(
            r#"{"type":"pipeline_execution","project_id":"p","task_spec":{"pipeline_id":"x"}}"#,
        );
        assert_eq!(resources(&pipeline, &config, 1).requests.memory, "1536Mi");
        assert_eq!(resources(&pipeline, &config, 2).requests.memory, "2304Mi");
        assert_eq!(
            resources(&pipeline, &config, 40).requests.memory,
            "65536Mi",
            "capped"
        );
    }
}
