//! Idle capacity: the free running slots of workers whose lease calls are
//! waiting for work.
//!
//! A task leased ahead (prefetched) by a busy worker must not wait there while
//! another worker sits idle. So while any worker waits for work, a lease call
//! gets no more tasks than its worker can start at once, and heartbeats ask
//! busy workers to give back the tasks they have not started.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Free slots of waiting workers, by worker.
#[derive(Debug, Default)]
pub struct IdleCapacity {
    /// Sum of `by_worker`: read on every lease call without a lock.
    total: AtomicUsize,
    by_worker: Mutex<HashMap<String, usize>>,
    /// Fires when the idle capacity falls to zero: lease calls held back for
    /// it may take tasks again.
    filled: Notify,
}

/// A worker's free slots, counted as idle until dropped.
#[derive(Debug)]
pub struct Waiting<'a> {
    capacity: &'a IdleCapacity,
    worker_id: String,
    slots: usize,
}

impl IdleCapacity {
    /// Counts `slots` free slots of `worker_id` while the guard lives.
    pub fn wait(&self, worker_id: &str, slots: usize) -> Waiting<'_> {
        if slots > 0 {
            *self
                .by_worker
                .lock()
                .entry(worker_id.to_string())
                .or_default() += slots;
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

    /// Free slots of waiting workers other than `worker_id`.
    pub fn besides(&self, worker_id: &str) -> usize {
        if self.total() == 0 {
            return 0;
        }
        let by_worker = self.by_worker.lock();
        let own = by_worker.get(worker_id).copied().unwrap_or(0);
        by_worker.values().sum::<usize>() - own
    }

    /// Resolves once no worker waits with free slots (at once if none does).
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
        if let Some(slots) = by_worker.get_mut(&self.worker_id) {
            *slots -= self.slots;
            if *slots == 0 {
                by_worker.remove(&self.worker_id);
            }
        }
        if self.capacity.total.fetch_sub(self.slots, Ordering::Relaxed) == self.slots {
            self.capacity.filled.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_slots_of_waiting_workers_until_they_stop_waiting() {
        let capacity = IdleCapacity::default();
        let a = capacity.wait("a", 2);
        let b = capacity.wait("b", 1);
        let none = capacity.wait("c", 0);
        assert_eq!(capacity.total(), 3);
        assert_eq!(capacity.besides("a"), 1);
        assert_eq!(capacity.besides("b"), 2);
        assert_eq!(capacity.besides("c"), 3);
        drop(a);
        assert_eq!(capacity.total(), 1);
        assert_eq!(capacity.besides("b"), 0);
        drop((b, none));
        assert_eq!(capacity.total(), 0);
        assert_eq!(capacity.besides("a"), 0);
    }

    #[tokio::test]
    async fn filled_resolves_when_the_last_waiting_worker_stops_waiting() {
        let capacity = std::sync::Arc::new(IdleCapacity::default());
        // Nothing waits: resolves at once.
        capacity.filled().await;
        let waiting = capacity.wait("a", 1);
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
