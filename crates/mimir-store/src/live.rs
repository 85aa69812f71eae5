//! The in-memory projection of committed state: the queue order and task counts.

use crate::TaskCounts;
use mimir_core::{QueueEntry, QueueIndex, WorkTaskStatus, WorkTaskType};

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
}

/// Queue order and counts, changed only after the store committed.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) queue: QueueIndex,
    pub(crate) counts: TaskCounts,
}

impl Live {
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
        }
    }
}
