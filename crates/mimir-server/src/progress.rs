//! Live step progress of running pipeline tasks.
//!
//! Workers send the steps a long-running execution has finished so far; a
//! task's page shows them until its result, which is stored durably, replaces
//! them. Kept in memory only: progress that a restart loses is redrawn by the
//! next step.

use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// Steps finished so far, by task.
#[derive(Debug, Default)]
pub struct Progress {
    steps: Mutex<HashMap<Uuid, (u32, Vec<Value>)>>,
}

impl Progress {
    /// Records the steps attempt `attempt` of a task has finished.
    pub fn record(&self, id: Uuid, attempt: u32, steps: Vec<Value>) {
        self.steps.lock().insert(id, (attempt, steps));
    }

    /// The steps of the task's attempt `attempt`, if any were reported.
    pub fn steps(&self, id: Uuid, attempt: u32) -> Option<Vec<Value>> {
        let steps = self.steps.lock();
        steps
            .get(&id)
            .filter(|(a, _)| *a == attempt)
            .map(|(_, s)| s.clone())
    }

    /// Forgets a task (it finished or left its attempt).
    pub fn forget(&self, id: Uuid) {
        self.steps.lock().remove(&id);
    }
}
