//! Workers known to the orchestrator: who they are, when they were last heard
//! from and how much they did. Kept in memory; workers register again after an
//! orchestrator restart.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// What a worker says of itself when it registers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Registration {
    /// A stable id; one is made up when empty.
    pub worker_id: String,
    /// Host it runs on.
    pub hostname: String,
    /// Its process id.
    pub pid: u32,
    /// Task types it runs; empty for all.
    pub types: Vec<String>,
    /// Tasks it runs at once.
    pub concurrency: u32,
    /// Its version.
    pub version: String,
    /// True for a worker of the orchestrator's local pool.
    pub local: bool,
}

/// One worker as `GET /api/workers` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerView {
    /// Its id.
    pub worker_id: String,
    /// `idle`, `busy`, `draining` or `lost` (no heartbeat for a lease's lifetime).
    pub state: &'static str,
    /// Its process id.
    pub pid: u32,
    /// Its host.
    pub hostname: String,
    /// A task it is running, if any.
    pub current_task: Option<String>,
    /// Tasks it holds now.
    pub running_tasks: usize,
    /// Free slots it waits to fill: a lease call of it is waiting for work.
    pub waiting_slots: usize,
    /// Milliseconds since it was last heard from.
    pub last_heartbeat_age_ms: u64,
    /// Tasks it completed.
    pub tasks_completed: u64,
    /// Attempts of it that failed.
    pub tasks_failed: u64,
    /// Tasks it runs at once.
    pub concurrency: u32,
    /// Whether the local pool started it.
    pub local: bool,
}

#[derive(Debug)]
struct Record {
    registration: Registration,
    registered_at: Instant,
    last_seen: Instant,
    last_busy: Instant,
    completed: u64,
    failed: u64,
    draining: bool,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    workers: Mutex<HashMap<String, Record>>,
    /// Local workers that deregistered themselves and whose exit the pool
    /// has not yet collected: their exit is a clean one, not a death.
    departed: Mutex<HashSet<String>>,
}

impl Registry {
    /// Adds or refreshes a worker; returns its id.
    pub fn register(&self, mut registration: Registration) -> String {
        if registration.worker_id.is_empty() {
            registration.worker_id = format!("worker-{}", uuid::Uuid::now_v7().simple());
        }
        let id = registration.worker_id.clone();
        let now = Instant::now();
        let mut workers = self.workers.lock();
        let record = workers.entry(id.clone()).or_insert_with(|| Record {
            registration: registration.clone(),
            registered_at: now,
            last_seen: now,
            last_busy: now,
            completed: 0,
            failed: 0,
            draining: false,
        });
        record.registration = registration;
        record.last_seen = now;
        record.draining = false;
        id
    }

    /// Notes that a worker was heard from; false when it is unknown.
    pub fn touch(&self, worker_id: &str, busy: bool) -> bool {
        let mut workers = self.workers.lock();
        let Some(record) = workers.get_mut(worker_id) else {
            return false;
        };
        let now = Instant::now();
        record.last_seen = now;
        if busy {
            record.last_busy = now;
        }
        true
    }

    /// The workers that run tasks of `task_type` (those registered for
    /// every type included), by id.
    pub fn running(&self, task_type: mimir_core::WorkTaskType) -> Vec<String> {
        let mut ids: Vec<String> = self
            .workers
            .lock()
            .iter()
            .filter(|(_, r)| {
                let types = &r.registration.types;
                types.is_empty() || types.iter().any(|t| t == task_type.as_str())
            })
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The task types a worker runs; empty for all (or when unknown).
    pub fn types(&self, worker_id: &str) -> Vec<mimir_core::WorkTaskType> {
        self.workers
            .lock()
            .get(worker_id)
            .map(|r| {
                r.registration
                    .types
                    .iter()
                    .filter_map(|t| t.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Counts a finished attempt of a worker.
    pub fn count(&self, worker_id: &str, completed: bool) {
        if let Some(record) = self.workers.lock().get_mut(worker_id) {
            if completed {
                record.completed += 1;
            } else {
                record.failed += 1;
            }
            record.last_busy = Instant::now();
        }
    }

    /// Marks a worker as on its way out (it leases no more).
    pub fn drain(&self, worker_id: &str) {
        if let Some(record) = self.workers.lock().get_mut(worker_id) {
            record.draining = true;
        }
    }

    /// Forgets a worker; returns how long it was registered.
    pub fn remove(&self, worker_id: &str) -> Option<Duration> {
        self.workers
            .lock()
            .remove(worker_id)
            .map(|r| r.registered_at.elapsed())
    }

    /// Forgets a worker that deregistered itself (a stopped worker says
    /// goodbye); returns how long it was registered. A local one is
    /// remembered until [`Registry::take_departed`] collects it.
    pub fn leave(&self, worker_id: &str) -> Option<Duration> {
        let record = self.workers.lock().remove(worker_id)?;
        if record.registration.local {
            self.departed.lock().insert(worker_id.to_string());
        }
        Some(record.registered_at.elapsed())
    }

    /// Whether a local worker deregistered itself before it exited; forgets it.
    pub fn take_departed(&self, worker_id: &str) -> bool {
        self.departed.lock().remove(worker_id)
    }

    /// Forgets workers silent for `after`; returns each with its lifetime.
    pub fn remove_silent(&self, after: Duration) -> Vec<(String, Duration)> {
        let now = Instant::now();
        let mut gone = Vec::new();
        self.workers.lock().retain(|id, r| {
            let silent = now.duration_since(r.last_seen) >= after;
            if silent {
                gone.push((id.clone(), now.duration_since(r.registered_at)));
            }
            !silent
        });
        gone
    }

    /// Workers heard from within `fresh`.
    pub fn active(&self, fresh: Duration) -> usize {
        let now = Instant::now();
        self.workers
            .lock()
            .values()
            .filter(|r| now.duration_since(r.last_seen) < fresh)
            .count()
    }

    /// How long the worker `worker_id` has been idle, if it was heard from
    /// within `fresh`.
    pub fn idle(&self, worker_id: &str, fresh: Duration) -> Option<Duration> {
        let now = Instant::now();
        let workers = self.workers.lock();
        let record = workers.get(worker_id)?;
        (now.duration_since(record.last_seen) < fresh).then(|| now.duration_since(record.last_busy))
    }

    /// Local workers heard from within `fresh`, and how long each has been idle.
    pub fn local_workers(&self, fresh: Duration) -> Vec<(String, Duration, bool)> {
        let now = Instant::now();
        let workers = self.workers.lock();
        workers
            .values()
            .filter(|r| r.registration.local && now.duration_since(r.last_seen) < fresh)
            .map(|r| {
                (
                    r.registration.worker_id.clone(),
                    now.duration_since(r.last_busy),
                    r.draining,
                )
            })
            .collect()
    }

    /// Every worker, with the tasks each holds.
    pub fn view(
        &self,
        held: &HashMap<String, Vec<uuid::Uuid>>,
        lost_after: Duration,
    ) -> Vec<WorkerView> {
        let now = Instant::now();
        let workers = self.workers.lock();
        let mut views: Vec<WorkerView> = workers
            .values()
            .map(|r| {
                let tasks = held
                    .get(&r.registration.worker_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let age = now.duration_since(r.last_seen);
                let state = if age > lost_after {
                    "lost"
                } else if r.draining {
                    "draining"
                } else if tasks.is_empty() {
                    "idle"
                } else {
                    "busy"
                };
                WorkerView {
                    worker_id: r.registration.worker_id.clone(),
                    state,
                    pid: r.registration.pid,
                    hostname: r.registration.hostname.clone(),
                    current_task: tasks.first().map(ToString::to_string),
                    running_tasks: tasks.len(),
                    waiting_slots: 0,
                    last_heartbeat_age_ms: age.as_millis() as u64,
                    tasks_completed: r.completed,
                    tasks_failed: r.failed,
                    concurrency: r.registration.concurrency,
                    local: r.registration.local,
                }
            })
            .collect();
        views.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        views
    }
}
