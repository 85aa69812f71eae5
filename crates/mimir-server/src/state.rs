//! What every request handler shares.

use crate::workers::{Registry, WorkerBackend};
use mimir_core::WorkTaskType;
use mimir_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Shared state of the orchestrator's handlers.
#[derive(Clone)]
pub struct AppState {
    /// The durable store and queue.
    pub store: Arc<dyn Store>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Connected workers.
    pub workers: Arc<Registry>,
    /// Free slots of workers waiting for work.
    pub idle_capacity: Arc<crate::workers::IdleCapacity>,
    /// What starts workers (the local pool or Kubernetes Jobs), when the
    /// orchestrator starts any.
    pub backend: Option<Arc<dyn WorkerBackend>>,
    /// Most tasks of a type running at once.
    pub type_limits: HashMap<WorkTaskType, usize>,
    /// Lease lifetime without a heartbeat.
    pub lease_ttl: Duration,
    /// Token workers must present; `None` leaves worker endpoints open.
    pub worker_token: Option<String>,
    /// Token users must present; `None` leaves the user API open.
    pub api_token: Option<String>,
    /// The actions pipelines may use, for validating definitions.
    pub plugins: Arc<mimir_pipeline::Registry>,
    /// Live step progress of running tasks.
    pub progress: Arc<crate::progress::Progress>,
    /// The parameters each pipeline reads, for checking submissions.
    pub requirements: Arc<crate::requirements::PipelineRequirements>,
    /// The server listens on a loopback address only: requests must name a
    /// loopback host (`Host`), so a web page cannot reach it by DNS rebinding.
    pub loopback_only: bool,
    /// Every metric of the orchestrator.
    pub metrics: Arc<mimir_telemetry::Metrics>,
    /// Whether requests, store calls and task events are measured.
    pub record_metrics: bool,
    /// Who may scrape `/metrics`.
    pub scrape_auth: crate::telemetry::ScrapeAuth,
    /// The dashboard's last hour, second by second.
    pub timeline: Arc<crate::dashboard::Timeline>,
    /// The dashboard's pipeline run times since start.
    pub pipeline_stats: Arc<crate::dashboard::PipelineStats>,
    /// Cancelled when the orchestrator shuts down, to end long-lived streams.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The storage connectors the API's storage operations run through.
    pub storage: Arc<mimir_storage::Connectors>,
    /// Model artifacts in the data dir.
    pub artifacts: Arc<crate::ml::ArtifactStore>,
    /// Largest model artifact accepted, in bytes (`ml.maxArtifactBytes`).
    pub max_artifact_bytes: usize,
    /// Whether this process does the duties that must run once.
    pub leadership: Arc<crate::leadership::Leadership>,
    /// Wakes the scheduler when a schedule changes here.
    pub scheduler_wake: crate::schedules::SchedulerWake,
}

impl AppState {
    /// State over `store` with default limits and no pool.
    pub fn new(store: Arc<dyn Store>) -> AppState {
        AppState {
            store,
            max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
            workers: Arc::new(Registry::default()),
            idle_capacity: Arc::default(),
            backend: None,
            type_limits: HashMap::new(),
            lease_ttl: mimir_store::sqlite::DEFAULT_LEASE_TTL,
            worker_token: None,
            api_token: None,
            // Validation only: checks do not touch files or the network.
            plugins: Arc::new(
                mimir_pipeline::Registry::confined(&mimir_pipeline::Confinement::default())
                    .unwrap_or_default()
                    .with_storage(),
            ),
            progress: Arc::default(),
            requirements: Arc::default(),
            loopback_only: false,
            metrics: Arc::new(mimir_telemetry::Metrics::new()),
            record_metrics: true,
            scrape_auth: crate::telemetry::ScrapeAuth::default(),
            timeline: Arc::default(),
            pipeline_stats: Arc::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            storage: Arc::new(mimir_storage::Connectors::new(
                mimir_storage::Secrets::from_env(),
                std::env::temp_dir().join("mimir-aip-storage"),
                Arc::new(mimir_storage::Unobserved),
            )),
            artifacts: Arc::new(crate::ml::ArtifactStore::new(
                &std::env::temp_dir().join("mimir-aip-data"),
            )),
            max_artifact_bytes: crate::ml::DEFAULT_MAX_ARTIFACT_BYTES,
            leadership: crate::leadership::Leadership::new(
                "orchestrator".into(),
                crate::leadership::DEFAULT_LEADER_TTL,
            ),
            scheduler_wake: Default::default(),
        }
    }
}
