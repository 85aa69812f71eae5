//! Where a store publishes the lifecycle events of tasks.

use mimir_core::TaskEvent;

/// Receives every task event once its change is committed, in commit order.
///
/// Called on the store's write path: an implementation must return at once
/// (hand the events to another thread), never block or do I/O.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Takes the events of one commit.
    fn publish(&self, events: Vec<TaskEvent>);
}
