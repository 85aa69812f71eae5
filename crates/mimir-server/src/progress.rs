//! Live step progress of running pipeline tasks.
//!
//! Workers send the steps a long-running execution has finished so far; a
//! task's page shows them until its result, which is stored durably, replaces
//! them. Kept in memory only: progress that a restart loses is redrawn by the
//! next step. Only the worker holding an attempt's lease may report it, each
//! report is bounded ([`MAX_PROGRESS_BYTES`], [`MAX_PROGRESS_STEPS`]), and an
//! attempt's entry goes when the attempt ends or its lease is lost, so what
//! is kept is bounded by the leases held.

use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// Largest progress report, in bytes of JSON.
pub const MAX_PROGRESS_BYTES: usize = 256 * 1024;

/// Most step records one progress report may hold.
pub const MAX_PROGRESS_STEPS: usize = 1000;

#[derive(Debug)]
struct Entry {
    worker_id: String,
    attempt: u32,
    steps: Vec<Value>,
}

/// Steps finished so far, by task.
#[derive(Debug, Default)]
pub struct Progress {
    steps: Mutex<HashMap<Uuid, Entry>>,
}

impl Progress {
    /// Records the steps attempt `attempt` of a task has finished on `worker_id`.
    /// The caller checked that the worker holds that attempt's lease.
    pub fn record(&self, id: Uuid, worker_id: &str, attempt: u32, steps: Vec<Value>) {
        debug_assert!(steps.len() <= MAX_PROGRESS_STEPS);
        let entry = Entry {
            worker_id: worker_id.to_string(),
            attempt,
            steps,
        };
        self.steps.lock().insert(id, entry);
    }

    /// The steps of the task's attempt `attempt`, if any were reported.
    pub fn steps(&self, id: Uuid, attempt: u32) -> Option<Vec<Value>> {
        let steps = self.steps.lock();
        steps
            .get(&id)
            .filter(|e| e.attempt == attempt)
            .map(|e| e.steps.clone())
    }

    /// Forgets a task (it finished or left its attempt).
    pub fn forget(&self, id: Uuid) {
        self.steps.lock().remove(&id);
    }

    /// The attempts with progress kept: (worker, task, attempt).
    pub fn attempts(&self) -> Vec<(String, Uuid, u32)> {
        self.steps
            .lock()
            .iter()
            .map(|(id, e)| (e.worker_id.clone(), *id, e.attempt))
            .collect()
    }

    /// Forgets these attempts (their leases are no longer held); a task's
    /// progress from a newer attempt since is kept.
    pub fn forget_attempts(&self, ended: &[(String, Uuid, u32)]) {
        let mut steps = self.steps.lock();
        for (worker_id, id, attempt) in ended {
            if steps
                .get(id)
                .is_some_and(|e| e.worker_id == *worker_id && e.attempt == *attempt)
            {
                steps.remove(id);
            }
        }
    }

    /// Attempts with progress kept.
    pub fn len(&self) -> usize {
        self.steps.lock().len()
    }

    /// Whether no progress is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
