//! Worker backends: what carries out the autoscaler's decisions.
//!
//! The orchestrator runs one backend, chosen by `orchestrator.workerBackend`:
//! the local pool of `mimir-aip worker` child processes (the embedded
//! default), or Kubernetes Jobs across one or more clusters. The API, the
//! dashboard and readiness see a backend only through this trait.

use super::Registry;
use super::pool::Decision;
use async_trait::async_trait;
use mimir_core::{Reason, WorkTask, WorkTaskType};
use mimir_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// One cluster as the dashboard and `/api/workers` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClusterView {
    /// `primary` or an additional cluster's name.
    pub name: String,
    /// Worker Jobs it runs now.
    pub workers: u32,
    /// Its `maxWorkers`.
    pub max_workers: u32,
    /// Whether it takes new Jobs (API answers, circuit closed).
    pub up: bool,
    /// `closed`, `open` (skipped until `retry_at`) or `half_open` (one probe).
    pub circuit: &'static str,
    /// Why it is down, when it is.
    pub last_error: String,
    /// When an open circuit is next tried (Unix seconds).
    pub retry_at: Option<f64>,
}

/// What starts and stops workers.
#[async_trait]
pub trait WorkerBackend: Send + Sync + 'static {
    /// `local` or `kubernetes`.
    fn kind(&self) -> &'static str;

    /// Runs the backend until the orchestrator stops: scaling, dispatching
    /// and watching what it started.
    /// Duties that must run once across replicas wait for `leadership`.
    async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        leadership: Arc<crate::leadership::Leadership>,
    );

    /// Asks every worker to stop and waits up to `grace` for them.
    async fn stop_all(&self, registry: &Registry, grace: Duration);

    /// Whether the worker should stop leasing and exit.
    fn should_stop(&self, worker_id: &str) -> bool;

    /// Resolves when some worker is asked to stop (wakes long-polling leases).
    async fn stop_requested(&self);

    /// The last scaling decision.
    fn decision(&self) -> Decision;

    /// Whether its loop ran recently (readiness).
    fn is_running(&self) -> bool;

    /// Whether it starts workers that run tasks of this type.
    fn starts_workers_for(&self, task_type: WorkTaskType) -> bool;

    /// Its own reasons a waiting task has not started (capacity, pods).
    fn waiting_reasons(&self, task: &WorkTask) -> Vec<Reason>;

    /// The clusters it uses; empty for the local pool.
    fn clusters(&self) -> Vec<ClusterView> {
        Vec::new()
    }
}
