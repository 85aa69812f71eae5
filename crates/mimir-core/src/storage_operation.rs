//! What one storage connector operation reports for metrics. The type lives
//! here because it crosses processes: executors send it to their worker,
//! workers forward it in their results (`WorkTaskResult::storage_operations`),
//! and the orchestrator counts it into the one scrape target.

use crate::PluginType;
use serde::{Deserialize, Serialize};

/// A connector operation, as the metrics' `operation` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// One finished operation (after its retries), or, with `count` above 1,
/// that many alike ones summed: a process that reports its operations
/// elsewhere folds them together past a bound instead of sending them all.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OperationEvent {
    /// Which operation.
    pub operation: Operation,
    /// On which backend.
    pub backend: PluginType,
    /// How long it took, retries included (summed over `count`).
    pub seconds: f64,
    /// Records stored, retrieved, updated or deleted (summed over `count`).
    pub records: u64,
    /// Whether it failed.
    pub failed: bool,
    /// How many operations this stands for. Defaults to 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

fn is_one(count: &u64) -> bool {
    *count == 1
}

impl OperationEvent {
    /// Whether `other` can be folded into this one (same operation, backend
    /// and outcome).
    pub fn alike(&self, other: &OperationEvent) -> bool {
        self.operation == other.operation
            && self.backend == other.backend
            && self.failed == other.failed
    }

    /// Adds `other`'s operations to this one's.
    pub fn fold(&mut self, other: &OperationEvent) {
        debug_assert!(self.alike(other));
        self.count = self.count.saturating_add(other.count.max(1));
        self.seconds += other.seconds;
        self.records = self.records.saturating_add(other.records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_operation_reads_and_writes_without_a_count() {
        let event: OperationEvent = serde_json::from_value(json!({
            "operation": "retrieve", "backend": "filesystem",
            "seconds": 0.5, "records": 3, "failed": false
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event.count, 1);
        let text = serde_json::to_string(&event).unwrap_or_default();
        assert!(!text.contains("count"), "{text}");
        let mut folded = event;
        folded.fold(&event);
        assert_eq!((folded.count, folded.records), (2, 6));
    }
}
