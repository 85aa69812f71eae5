//! The storage operations an executor's job ran, collected for its
//! [`super::protocol::Outcome`], so the worker and the orchestrator count
//! them in their metrics. A job that runs very many operations folds those
//! past [`MAX_OPERATIONS`] into one event per kind, so what it reports stays
//! small whatever it does.

use mimir_storage::{Observer, OperationEvent};
use parking_lot::Mutex;

/// Operations a job reports one by one; later ones are folded together.
pub const MAX_OPERATIONS: usize = 1000;

/// Collects the running job's operations (an executor runs one job at a time).
#[derive(Debug, Default)]
pub struct Operations {
    events: Mutex<Collected>,
}

#[derive(Debug, Default)]
struct Collected {
    each: Vec<OperationEvent>,
    /// One per operation, backend and outcome, past the bound.
    folded: Vec<OperationEvent>,
}

impl Operations {
    /// Everything collected since the last call, and a fresh start.
    pub fn take(&self) -> Vec<OperationEvent> {
        let Collected { mut each, folded } = std::mem::take(&mut *self.events.lock());
        each.extend(folded);
        each
    }
}

impl Observer for Operations {
    fn observe(&self, event: &OperationEvent) {
        let mut events = self.events.lock();
        if events.each.len() < MAX_OPERATIONS {
            events.each.push(*event);
            return;
        }
        match events.folded.iter_mut().find(|e| e.alike(event)) {
            Some(folded) => folded.fold(event),
            None => events.folded.push(*event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimir_core::PluginType;
    use mimir_storage::Operation;

    fn event(operation: Operation, failed: bool) -> OperationEvent {
        OperationEvent {
            operation,
            backend: PluginType::Filesystem,
            seconds: 0.001,
            records: 2,
            failed,
            count: 1,
        }
    }

    #[test]
    fn operations_past_the_bound_are_folded_by_kind() {
        let operations = Operations::default();
        for _ in 0..MAX_OPERATIONS + 500 {
            operations.observe(&event(Operation::Store, false));
        }
        operations.observe(&event(Operation::Store, true));
        let taken = operations.take();
        assert_eq!(taken.len(), MAX_OPERATIONS + 2);
        let total: u64 = taken.iter().map(|e| e.count).sum();
        assert_eq!(total, MAX_OPERATIONS as u64 + 501);
        assert_eq!(taken[MAX_OPERATIONS].count, 500);
        assert_eq!(taken[MAX_OPERATIONS].records, 1000);
        assert!(operations.take().is_empty(), "taking starts afresh");
    }
}
