//! What a storage operation reports, for metrics: the orchestrator and
//! workers turn these into the `mimir_storage_*` series.

use crate::ErrorKind;
use mimir_core::PluginType;
pub use mimir_core::storage_operation::{Operation, OperationEvent};

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
        record_operation(&self.metrics, event);
    }

    fn retried(&self, operation: Operation, backend: PluginType, _kind: ErrorKind) {
        let labels = mimir_telemetry::metrics::StorageLabels {
            operation: operation.as_str(),
            backend: backend.as_str(),
        };
        self.metrics.storage_retries.get_or_create(&labels).inc();
    }
}

/// Records `event` into `metrics`. An event standing for several
/// operations adds all of them to the counters and its mean to the latency
/// histogram once: exact counts, and no cost that grows with `count` (the
/// orchestrator records what workers send).
pub fn record_operation(metrics: &mimir_telemetry::Metrics, event: &OperationEvent) {
    let count = event.count.max(1);
    let seconds = if event.seconds.is_finite() && event.seconds > 0.0 {
        event.seconds / count as f64
    } else {
        0.0
    };
    let (operation, backend) = (event.operation.as_str(), event.backend.as_str());
    metrics.record_storage(operation, backend, seconds, event.records, event.failed);
    if count > 1 {
        let labels = mimir_telemetry::metrics::StorageLabels { operation, backend };
        metrics
            .storage_operations
            .get_or_create(&labels)
            .inc_by(count - 1);
        if event.failed {
            metrics
                .storage_errors
                .get_or_create(&labels)
                .inc_by(count - 1);
        }
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
