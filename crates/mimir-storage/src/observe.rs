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
