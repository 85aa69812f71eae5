//! The `Store` trait: what the orchestrator needs from a metadata backend.

use crate::{ListPage, ListQuery, StoreError, TaskCounts};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mimir_core::{Priority, WorkTask};
use uuid::Uuid;

/// A durable home for work tasks and their queue.
///
/// Writes return only once durable. Backends group concurrent writes into shared
/// transactions, so callers may issue many small writes at once.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short backend name for metrics and logs (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Stores new queued tasks in one transaction and queues them; returns them
    /// as stored, in the same order.
    async fn submit(&self, tasks: Vec<WorkTask>) -> Result<Vec<WorkTask>, StoreError>;

    /// One task.
    async fn get(&self, id: Uuid) -> Result<Option<WorkTask>, StoreError>;

    /// A page of tasks, newest first.
    async fn list(&self, query: ListQuery) -> Result<ListPage, StoreError>;

    /// Cancels a task; a queued task leaves the queue at once.
    async fn cancel(&self, id: Uuid, at: DateTime<Utc>) -> Result<WorkTask, StoreError>;

    /// Tasks waiting to run (including those in retry backoff).
    fn queue_length(&self) -> usize;

    /// Waiting tasks whose priority is at least `min`, how many in all, and up
    /// to `limit` of them, most urgent first.
    async fn most_urgent(
        &self,
        min: Priority,
        limit: usize,
    ) -> Result<(usize, Vec<WorkTask>), StoreError>;

    /// Task counts by type and status.
    fn counts(&self) -> TaskCounts;

    /// Checks that the store answers a query.
    async fn ping(&self) -> Result<(), StoreError>;
}
