//! What a storage operation reports, for metrics: the orchestrator and
//! workers turn these into the `mimir_storage_*` series.

use crate::ErrorKind;
use mimir_core::PluginType;
use serde::{Deserialize, Serialize};

/// A connector operation, as the metrics' `operation` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Records written.
    Store,
    /// Records read.
    Retrieve,
    /// Records changed.
    Update,
    /// Records removed.
    Delete,
    /// An entity definition created.
    CreateSchema,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 5] = [
        Operation::Store,
        Operation::Retrieve,
        Operation::Update,
        Operation::Delete,
        Operation::CreateSchema,
    ];

    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Store => "store",
            Operation::Retrieve => "retrieve",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::CreateSchema => "create_schema",
        }
    }
}

/// One finished operation (after its retries).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperationEvent {
    /// Which operation.
    pub operation: Operation,
    /// On which backend.
    pub backend: PluginType,
    /// How long it took, retries included.
    pub seconds: f64,
    /// Records stored, retrieved, updated or deleted.
    pub records: u64,
    /// Whether it failed.
    pub failed: bool,
}

/// Receives operation events.
pub trait Observer: Send + Sync {
    /// Called once per operation, when it ends.
    fn observe(&self, event: &OperationEvent);

    /// Called when a transient failure is about to be retried.
    fn retried(&self, operation: Operation, backend: PluginType, kind: ErrorKind) {
        let _ = (operation, backend, kind);
    }
}

/// An observer that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl Observer for Unobserved {
    fn observe(&self, _event: &OperationEvent) {}
}

/// Records operations into the process's metrics: the contract's
/// `mimir_storage_*` series, records moved and retries.
#[derive(Clone)]
pub struct MetricsObserver {
    metrics: std::sync::Arc<mimir_telemetry::Metrics>,
}

impl MetricsObserver {
    /// Records into `metrics`.
    pub fn new(metrics: std::sync::Arc<mimir_telemetry::Metrics>) -> MetricsObserver {
        MetricsObserver { metrics }
    }
}

impl Observer for MetricsObserver {
    fn observe(&self, event: &OperationEvent) {
        self.metrics.record_storage(
            event.operation.as_str(),
            event.backend.as_str(),
            event.seconds,
            event.records,
            event.failed,
        );
    }

    fn retried(&self, operation: Operation, backend: PluginType, _kind: ErrorKind) {
        let labels = mimir_telemetry::metrics::StorageLabels {
            operation: operation.as_str(),
            backend: backend.as_str(),
        };
        self.metrics.storage_retries.get_or_create(&labels).inc();
    }
}

/// Sets the pool gauges from the pools a process has open (call at scrape
/// time).
pub fn record_pools(metrics: &mimir_telemetry::Metrics, connectors: &crate::Connectors) {
    let open = connectors.pools();
    for plugin in PluginType::ALL {
        if plugin == PluginType::Filesystem {
            continue;
        }
        // A backend whose pools all closed reads zero, not its last value.
        let pool = open
            .iter()
            .find(|(p, _)| *p == plugin)
            .map(|(_, pool)| *pool)
            .unwrap_or_default();
        let backend = plugin.as_str();
        for (state, value) in [("idle", pool.idle), ("in_use", pool.in_use)] {
            let labels = mimir_telemetry::metrics::PoolLabels { backend, state };
            metrics
                .storage_pool_connections
                .get_or_create(&labels)
                .set(i64::from(value));
        }
        metrics
            .storage_pool_max
            .get_or_create(&mimir_telemetry::metrics::BackendLabel { backend })
            .set(i64::from(pool.max));
    }
}
