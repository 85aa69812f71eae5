//! Idle capacity: the free running slots of workers whose lease calls are
//! waiting for work.
//!
//! A task leased ahead (prefetched) by a busy worker must not wait there while
//! another worker sits idle. So while any worker waits for work, a lease call
//! gets no more tasks than its worker can start at once, and heartbeats ask
//! busy workers to give back the tasks they have not started. A waiting
//! worker counts for another only if it runs every task type that one runs:
//! a worker waiting for ML training does not hold back pipeline work.

use mimir_core::WorkTaskType;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Free slots of waiting workers, by worker.
#[derive(Debug, Default)]
pub struct IdleCapacity {
    /// Sum of `by_worker`: read on every lease call without a lock.
    total: AtomicUsize,
    by_worker: Mutex<HashMap<String, Idle>>,
    /// Fires when a worker stops waiting: lease calls held back for it may
    /// take tasks again.
    filled: Notify,
}

/// One waiting worker's free slots and the types it runs (empty: all).
#[derive(Debug, Default)]
struct Idle {
    slots: usize,
    types: Vec<WorkTaskType>,
}

impl Idle {
    /// Whether this worker could run every task a worker of `types` could.
    fn covers(&self, types: &[WorkTaskType]) -> bool {
        self.types.is_empty() || (!types.is_empty() && types.iter().all(|t| self.types.contains(t)))
    }
}

/// A worker's free slots, counted as idle until dropped.
#[derive(Debug)]
pub struct Waiting<'a> {
    capacity: &'a IdleCapacity,
    worker_id: String,
    slots: usize,
}

impl IdleCapacity {
    /// Counts `slots` free slots of `worker_id`, which runs `types` (empty:
    /// all), while the guard lives.
    pub fn wait(&self, worker_id: &str, types: &[WorkTaskType], slots: usize) -> Waiting<'_> {
        if slots > 0 {
            let mut by_worker = self.by_worker.lock();
            let idle = by_worker.entry(worker_id.to_string()).or_default();
            idle.slots += slots;
            idle.types = types.to_vec();
            self.total.fetch_add(slots, Ordering::Relaxed);
        }
        Waiting {
            capacity: self,
            worker_id: worker_id.to_string(),
            slots,
        }
    }

    /// Free slots of waiting workers.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Free slots `worker_id` waits to fill (0 when no lease call of it waits).
    pub fn of(&self, worker_id: &str) -> usize {
        if self.total() == 0 {
            return 0;
        }
        self.by_worker
            .lock()
            .get(worker_id)
            .map_or(0, |idle| idle.slots)
    }

    /// Free slots of waiting workers other than `worker_id` that run every
    /// type it runs (`types`, empty: all).
    pub fn besides(&self, worker_id: &str, types: &[WorkTaskType]) -> usize {
        if self.total() == 0 {
            return 0;
        }
        self.by_worker
            .lock()
            .iter()
            .filter(|(id, idle)| id.as_str() != worker_id && idle.covers(types))
            .map(|(_, idle)| idle.slots)
            .sum()
    }

    /// Resolves once a worker stops waiting (at once if none waits).
    pub async fn filled(&self) {
        let notified = self.filled.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.total() == 0 {
            return;
        }
        notified.await;
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.slots == 0 {
            return;
        }
        let mut by_worker = self.capacity.by_worker.lock();
        if let Some(idle) = by_worker.get_mut(&self.worker_id) {
            idle.slots -= self.slots;
            if idle.slots == 0 {
                by_worker.remove(&self.worker_id);
            }
        }
        self.capacity.total.fetch_sub(self.slots, Ordering::Relaxed);
        drop(by_worker);
        self.capacity.filled.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_slots_of_waiting_workers_until_they_stop_waiting() {
        let capacity = IdleCapacity::default();
        let a = capacity.wait("a", &[], 2);
        let b = capacity.wait("b", &[], 1);
        let none = capacity.wait("c", &[], 0);
        assert_eq!(capacity.total(), 3);
        assert_eq!(capacity.besides("a", &[]), 1);
        assert_eq!(capacity.besides("b", &[]), 2);
        assert_eq!(capacity.besides("c", &[]), 3);
        assert_eq!((capacity.of("a"), capacity.of("c")), (2, 0));
        drop(a);
        assert_eq!(capacity.of("a"), 0);
        assert_eq!(capacity.total(), 1);
        assert_eq!(capacity.besides("b", &[]), 0);
        drop((b, none));
        assert_eq!(capacity.total(), 0);
        assert_eq!(capacity.besides("a", &[]), 0);
    }

    #[test]
    fn a_waiting_worker_counts_only_for_workers_whose_types_it_runs() {
        use WorkTaskType::{MlInference, MlTraining, PipelineExecution};
        let capacity = IdleCapacity::default();
        let _training = capacity.wait("t", &[MlTraining], 1);
        // It cannot take what an all-types or a pipeline worker leased ahead.
        assert_eq!(capacity.besides("any", &[]), 0);
        assert_eq!(capacity.besides("p", &[PipelineExecution]), 0);
        assert_eq!(capacity.besides("ml", &[MlTraining, MlInference]), 0);
        assert_eq!(capacity.besides("t2", &[MlTraining]), 1);
        let _all = capacity.wait("all", &[], 2);
        assert_eq!(capacity.besides("p", &[PipelineExecution]), 2);
        assert_eq!(capacity.besides("t2", &[MlTraining]), 3);
    }

    #[tokio::test]
    async fn filled_resolves_when_a_waiting_worker_stops_waiting() {
        let capacity = std::sync::Arc::new(IdleCapacity::default());
        // Nothing waits: resolves at once.
        capacity.filled().await;
        let waiting = capacity.wait("a", &[], 1);
        let watcher = tokio::spawn({
            let capacity = capacity.clone();
            async move { capacity.filled().await }
        });
        tokio::task::yield_now().await;
        assert!(!watcher.is_finished());
        drop(waiting);
        tokio::time::timeout(std::time::Duration::from_secs(5), watcher)
            .await
            .expect("filled resolves once no worker waits")
            .unwrap();
    }
}
