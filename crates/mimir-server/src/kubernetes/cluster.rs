//! One cluster: its API client, the Jobs it runs for us and its circuit.

use super::circuit::Circuit;
use super::config::{ClusterConfig, KubernetesConfig};
use super::pod_state::PodState;
use crate::workers::ClusterView;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use mimir_telemetry::Metrics;
use mimir_telemetry::metrics::{ClusterLabel, JobFailureLabels, KubernetesCallLabels};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A Job the backend started or adopted and has not seen end.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The task.
    pub id: Uuid,
    /// The attempt it runs.
    pub attempt: u32,
    /// Whether the API has confirmed the Job exists.
    pub created: bool,
    /// When the backend started tracking it.
    pub since: Instant,
    /// Its pod's state as last seen.
    pub pod: Option<PodState>,
    /// Since when its pod has failed to start (image pull, config).
    pub start_failing_since: Option<Instant>,
    /// Since when its pod is gone without having ended.
    pub gone_since: Option<Instant>,
}

impl Tracked {
    /// Attempt `attempt` of task `id`, tracked from now; `created` once the
    /// API has confirmed its Job.
    pub fn new(id: Uuid, attempt: u32, created: bool) -> Tracked {
        Tracked {
            id,
            attempt,
            created,
            since: Instant::now(),
            pod: None,
            start_failing_since: None,
            gone_since: None,
        }
    }
}

/// A pool worker Job the backend started or adopted and has not seen end.
/// Its worker's id is the Job's name.
#[derive(Debug, Clone)]
pub struct PoolJob {
    /// Whether the API has confirmed the Job exists.
    pub created: bool,
    /// When the backend started tracking it.
    pub since: Instant,
    /// Its pod's state as last seen.
    pub pod: Option<PodState>,
    /// Since when its pod has failed to start (image pull, config).
    pub start_failing_since: Option<Instant>,
}

impl PoolJob {
    /// A pool Job tracked from now.
    pub fn new(created: bool) -> PoolJob {
        PoolJob {
            created,
            since: Instant::now(),
            pod: None,
            start_failing_since: None,
        }
    }
}

/// What a cluster knows, behind one lock.
#[derive(Debug)]
pub struct ClusterState {
    /// Its circuit breaker.
    pub circuit: Circuit,
    /// Its Jobs of one attempt each, by name.
    pub jobs: HashMap<String, Tracked>,
    /// Its pool worker Jobs, by name.
    pub pool: HashMap<String, PoolJob>,
    /// Whether the Jobs that exist were listed and adopted since this
    /// orchestrator started leading: until then it has no room, or Jobs a
    /// previous leader left would not count against `maxWorkers`.
    pub listed: bool,
}

impl ClusterState {
    /// Worker Jobs it runs for us, of both kinds: what `maxWorkers` caps.
    pub fn workers(&self) -> u32 {
        (self.jobs.len() + self.pool.len()) as u32
    }
}

/// One Kubernetes cluster.
pub struct Cluster {
    /// Its configuration.
    pub config: ClusterConfig,
    /// Worker Jobs in its namespace.
    pub jobs: Api<Job>,
    /// Worker pods in its namespace.
    pub pods: Api<Pod>,
    /// What it knows.
    pub state: Mutex<ClusterState>,
    /// One API call's timeout.
    pub api_timeout: Duration,
    metrics: Arc<Metrics>,
    label: ClusterLabel,
}

/// Why a Kubernetes call failed, kept short for logs and the task.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The API answered with an error status.
    #[error("{code} {reason}: {message}")]
    Api {
        /// HTTP status.
        code: u16,
        /// `AlreadyExists`, `NotFound`, `Invalid`, `Forbidden`, ...
        reason: String,
        /// The API server's message.
        message: String,
    },
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The API could not be reached or spoke nonsense.
    #[error("{0}")]
    Transport(String),
}

impl CallError {
    /// The HTTP status, when the API answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            CallError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl Cluster {
    /// A cluster reached through `client`.
    pub fn new(
        config: ClusterConfig,
        client: kube::Client,
        settings: &KubernetesConfig,
        metrics: Arc<Metrics>,
    ) -> Cluster {
        let label = ClusterLabel {
            cluster: config.name.clone(),
        };
        metrics
            .cluster_max_workers
            .get_or_create(&label)
            .set(i64::from(config.max_workers));
        metrics.cluster_workers.get_or_create(&label).set(0);
        metrics.cluster_up.get_or_create(&label).set(1);
        Cluster {
            jobs: Api::namespaced(client.clone(), &config.namespace),
            pods: Api::namespaced(client, &config.namespace),
            state: Mutex::new(ClusterState {
                circuit: Circuit::new(settings.circuit_failures, settings.circuit_cooldown),
                jobs: HashMap::new(),
                pool: HashMap::new(),
                listed: false,
            }),
            api_timeout: settings.api_timeout,
            config,
            metrics,
            label,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Runs one API call under the timeout, timing it.
    pub async fn call<T>(
        &self,
        verb: &'static str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.api_timeout, call).await;
        self.metrics
            .kubernetes_api_duration
            .get_or_create(&KubernetesCallLabels {
                cluster: self.config.name.clone(),
                verb,
            })
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Err(_) => Err(CallError::Timeout(self.api_timeout)),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(kube::Error::Api(status))) => Err(CallError::Api {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            }),
            Ok(Err(error)) => Err(CallError::Transport(error.to_string())),
        }
    }

    /// Counts an attempt that ended badly.
    pub fn count_failure(&self, reason: &'static str) {
        self.metrics
            .kubernetes_job_failures
            .get_or_create(&JobFailureLabels {
                cluster: self.config.name.clone(),
                reason,
            })
            .inc();
    }

    /// Counts a worker Job started (`mimir_workers_spawned_total`, as local
    /// workers count).
    pub fn count_spawned(&self) {
        self.metrics.workers_spawned.inc();
    }

    /// How many more Jobs it may take now (room under `maxWorkers`, gated by
    /// its circuit); none until the Jobs that exist were listed.
    pub fn room(&self, now: Instant) -> u32 {
        let mut state = self.state.lock();
        if !state.listed {
            return 0;
        }
        let running = state.workers();
        let room = self.config.max_workers.saturating_sub(running);
        state.circuit.admits(now, room)
    }

    /// Publishes its gauges.
    pub fn publish(&self, now: Instant) {
        let mut state = self.state.lock();
        let up = matches!(state.circuit.state(now), super::circuit::State::Closed);
        self.metrics
            .cluster_workers
            .get_or_create(&self.label)
            .set(i64::from(state.workers()));
        self.metrics
            .cluster_up
            .get_or_create(&self.label)
            .set(i64::from(up));
    }

    /// Records a failed call or Job start; logs when it opens the circuit.
    pub fn failed(&self, error: &CallError) {
        let opened = self
            .state
            .lock()
            .circuit
            .failed(Instant::now(), error.to_string());
        if opened {
            tracing::warn!(cluster = %self.config.name, %error, "the cluster's circuit opened: it gets no new Jobs until a probe succeeds");
            self.publish(Instant::now());
        }
    }

    /// Records a successful call.
    pub fn succeeded(&self) {
        self.state.lock().circuit.succeeded();
    }

    /// Records a Job whose pod could not start; logs when it opens the circuit.
    pub fn start_failed(&self, why: &str) {
        let opened = self
            .state
            .lock()
            .circuit
            .start_failed(Instant::now(), format!("Jobs fail to start: {why}"));
        if opened {
            tracing::warn!(cluster = %self.config.name, why, "the cluster's circuit opened: its pods keep failing to start; it gets no new Jobs until a probe's pod starts");
            self.publish(Instant::now());
        }
    }

    /// How the dashboard and `/api/workers` show it.
    pub fn view(&self) -> ClusterView {
        let now = Instant::now();
        let mut state = self.state.lock();
        let circuit = state.circuit.name(now);
        let retry_at = match state.circuit.state(now) {
            super::circuit::State::Open { until } => Some(
                chrono::Utc::now().timestamp_millis() as f64 / 1000.0
                    + until.saturating_duration_since(now).as_secs_f64(),
            ),
            _ => None,
        };
        ClusterView {
            name: self.config.name.clone(),
            workers: state.workers(),
            max_workers: self.config.max_workers,
            up: circuit == "closed",
            circuit,
            last_error: state.circuit.last_error().to_string(),
            retry_at,
        }
    }
}
