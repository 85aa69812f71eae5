//! Workers as Kubernetes Jobs, across one or more clusters.
//!
//! The backend leases waiting tasks from the store as far as the clusters
//! have room, names one Job per task attempt (`mimir-<task id>-<attempt>`),
//! hands each attempt's lease to its Job and creates the Job in the first
//! cluster with room: the task's `preferred_cluster`, else the primary until
//! its `maxWorkers`, then each additional cluster in order. A cluster whose
//! API fails, or whose Jobs keep failing to start, is skipped for a while
//! (its circuit opens). The pod's worker runs exactly its task
//! (`WORKTASK_ID`) and reports as any worker does.
//!
//! Watches on each cluster's Jobs and Pods turn what Kubernetes does into
//! attempt outcomes: an OOM kill is retried with more memory, an eviction or
//! a lost node is a lost attempt, an image that cannot be pulled fails the
//! task after a grace period, a pod the scheduler cannot place is shown on
//! the task. After a restart the backend adopts the Jobs of tasks still
//! running, creates those that were named but never created (the name is
//! deterministic, so a Job that does exist answers 409 and is adopted) and
//! deletes the Jobs of tasks that have ended.
//!
//! Task types listed in `orchestrator.kubernetes.poolTypes` are run instead
//! by a pool of long-lived worker Jobs that lease many tasks each (see
//! [`pool`]), for floods of short tasks.

mod circuit;
mod cluster;
pub mod config;
mod dispatch;
pub mod job_spec;
pub mod pod_state;
mod pool;
mod reasons;
mod watch;

pub use config::KubernetesConfig;

use crate::config::ConfigError;
use crate::workers::pool::Decision;
use crate::workers::{ClusterView, Registry, WorkerBackend};
use cluster::Cluster;
use mimir_core::{Reason, WorkTask, WorkTaskType};
use mimir_store::Store;
use mimir_telemetry::Metrics;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Kubernetes worker backend.
pub struct KubernetesBackend {
    config: KubernetesConfig,
    clusters: Vec<Arc<Cluster>>,
    type_limits: HashMap<WorkTaskType, usize>,
    decision: Mutex<Decision>,
    last_tick: Mutex<Option<Instant>>,
    /// Wakes the dispatcher when a Job ends and frees room.
    room_freed: tokio::sync::Notify,
    /// The pool of long-lived worker Jobs, when some types use one.
    pool: Option<pool::PoolScaler>,
}

impl KubernetesBackend {
    /// A backend over the configured clusters; reads their kubeconfigs (an
    /// unreadable one is an error) but does not reach their APIs yet: a
    /// cluster that does not answer is skipped until it does.
    pub async fn connect(
        config: KubernetesConfig,
        type_limits: HashMap<WorkTaskType, usize>,
        metrics: Arc<Metrics>,
    ) -> Result<KubernetesBackend, ConfigError> {
        let mut clusters = Vec::with_capacity(config.clusters.len());
        for (i, cluster) in config.clusters.iter().enumerate() {
            let field = if i == 0 {
                "orchestrator.kubeconfig".to_string()
            } else {
                format!("orchestrator.additionalClusters[{}].kubeconfig", i - 1)
            };
            let client = client(cluster, config.api_timeout)
                .await
                .map_err(|why| ConfigError::new(format!("{field}: {why}")))?;
            clusters.push(Arc::new(Cluster::new(
                cluster.clone(),
                client,
                &config,
                metrics.clone(),
            )));
        }
        tracing::info!(
            clusters = ?config.clusters.iter().map(|c| format!("{} ({} max, namespace {})", c.name, c.max_workers, c.namespace)).collect::<Vec<_>>(),
            image = %config.image,
            "workers run as Kubernetes Jobs"
        );
        let pool = config
            .pool
            .as_ref()
            .map(|p| pool::PoolScaler::new(p.idle_timeout));
        Ok(KubernetesBackend {
            pool,
            config,
            clusters,
            type_limits,
            decision: Mutex::new(Decision::default()),
            last_tick: Mutex::new(None),
            room_freed: tokio::sync::Notify::new(),
        })
    }

    fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.iter().find(|c| c.name() == name)
    }
}

/// A client for one cluster: its kubeconfig, or the in-cluster config (else
/// `$KUBECONFIG`) when it names none.
async fn client(
    cluster: &config::ClusterConfig,
    connect_timeout: Duration,
) -> Result<kube::Client, String> {
    let mut config = match &cluster.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| format!("{} is not a usable kubeconfig: {e}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            format!("empty, and neither an in-cluster config nor $KUBECONFIG works: {e}")
        })?,
    };
    config.connect_timeout = Some(connect_timeout);
    kube::Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))
}

#[async_trait::async_trait]
impl WorkerBackend for KubernetesBackend {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        leadership: Arc<crate::leadership::Leadership>,
    ) {
        // Jobs are created and watched by one orchestrator: the leader. A
        // replica that becomes leader lists every Job and Pod afresh and
        // adopts what runs; one that stops leading stops at once.
        let mut term = leadership.watch();
        loop {
            while term.borrow_and_update().is_none() {
                if term.changed().await.is_err() {
                    return;
                }
            }
            tracing::info!("this orchestrator leads: dispatching and watching Kubernetes Jobs");
            let mut duties = Vec::new();
            for cluster in &self.clusters {
                duties.push(tokio::spawn(watch::pods(
                    self.clone(),
                    cluster.clone(),
                    store.clone(),
                )));
                duties.push(tokio::spawn(watch::jobs(
                    self.clone(),
                    cluster.clone(),
                    store.clone(),
                )));
            }
            duties.push(tokio::spawn(self.clone().dispatch(
                store.clone(),
                registry.clone(),
                leadership.clone(),
            )));
            let abort_on_drop = AbortAll(duties);
            while term.borrow_and_update().is_some() {
                if term.changed().await.is_err() {
                    return;
                }
            }
            drop(abort_on_drop);
            // What another leader does next is learnt by listing afresh.
            for cluster in &self.clusters {
                let mut state = cluster.state.lock();
                state.jobs.clear();
                state.pool.clear();
                state.listed = false;
            }
            tracing::warn!(
                "this orchestrator no longer leads: Kubernetes dispatch and watches stopped"
            );
        }
    }

    async fn stop_all(&self, _registry: &Registry, _grace: Duration) {
        // Jobs outlive the orchestrator: their workers finish their task
        // and report to the orchestrator that comes back.
    }

    fn should_stop(&self, worker_id: &str) -> bool {
        self.pool.as_ref().is_some_and(|p| p.should_stop(worker_id))
    }

    async fn stop_requested(&self) {
        match &self.pool {
            Some(pool) => pool.stop_requested().await,
            None => std::future::pending::<()>().await,
        }
    }

    fn decision(&self) -> Decision {
        self.decision.lock().clone()
    }

    fn is_running(&self) -> bool {
        let stale = dispatch::TICK * 8 + Duration::from_secs(1);
        self.last_tick.lock().is_some_and(|at| at.elapsed() < stale)
    }

    fn starts_workers_for(&self, _task_type: WorkTaskType) -> bool {
        // A Job runs the task it was made for, whatever its type; pool
        // workers run the pool's types.
        true
    }

    fn waiting_reasons(&self, task: &WorkTask) -> Vec<Reason> {
        reasons::of(self, task)
    }

    fn clusters(&self) -> Vec<ClusterView> {
        self.clusters.iter().map(|c| c.view()).collect()
    }
}

/// Aborts the watches when the backend's loop ends.
struct AbortAll(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortAll {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
