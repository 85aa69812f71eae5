//! The in-memory projection of committed state: the queue order, task counts
//! and the leases workers hold.
//!
//! Lease expiry times live only here: a heartbeat renews a lease without a disk
//! write. After a restart every running task gets a fresh lease, so workers that
//! are still alive reconnect and keep their tasks, and tasks of workers that are
//! gone expire one lease later.

use crate::TaskCounts;
use mimir_core::{QueueEntry, QueueIndex, WorkTaskStatus, WorkTaskType};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A committed change the projection must follow.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A new task was stored, queued.
    Created(QueueEntry),
    /// A task changed status, leaving and/or (re)entering the queue.
    Moved {
        task_type: WorkTaskType,
        from: WorkTaskStatus,
        to: WorkTaskStatus,
        left: Option<QueueEntry>,
        entered: Option<QueueEntry>,
    },
    /// A worker now holds the task.
    Leased {
        id: Uuid,
        worker_id: String,
        attempt: u32,
    },
    /// The task's lease ended (result, expiry, cancel, release).
    Unleased { id: Uuid },
    /// The worker holding the task must stop it (it was cancelled).
    CancelNotice { worker_id: String, id: Uuid },
}

/// A worker's hold on a running task.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) worker_id: String,
    pub(crate) attempt: u32,
    pub(crate) expires: Instant,
}

/// Queue order, counts and leases, changed only after the store committed
/// (leases are also renewed in place by heartbeats).
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) queue: QueueIndex,
    pub(crate) counts: TaskCounts,
    pub(crate) leases: HashMap<Uuid, Lease>,
    pub(crate) notices: HashMap<String, Vec<Uuid>>,
    pub(crate) lease_ttl: Duration,
}

impl Live {
    pub(crate) fn new(queue: QueueIndex, counts: TaskCounts, lease_ttl: Duration) -> Live {
        Live {
            queue,
            counts,
            leases: HashMap::new(),
            notices: HashMap::new(),
            lease_ttl,
        }
    }

    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Created(entry) => {
                self.counts.add(entry.task_type, WorkTaskStatus::Queued, 1);
                self.queue.insert(entry);
            }
            Change::Moved {
                task_type,
                from,
                to,
                left,
                entered,
            } => {
                self.counts.moved(task_type, from, to);
                if let Some(entry) = left {
                    self.queue.remove(&entry);
                }
                if let Some(entry) = entered {
                    self.queue.insert(entry);
                }
            }
            Change::Leased {
                id,
                worker_id,
                attempt,
            } => {
                let expires = Instant::now() + self.lease_ttl;
                self.leases.insert(
                    id,
                    Lease {
                        worker_id,
                        attempt,
                        expires,
                    },
                );
            }
            Change::Unleased { id } => {
                self.leases.remove(&id);
            }
            Change::CancelNotice { worker_id, id } => {
                self.notices.entry(worker_id).or_default().push(id)
            }
        }
    }
}
