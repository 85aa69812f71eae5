//! Isolation of pipeline steps: every attempt runs in a supervised executor
//! process, so a step that loops forever, allocates without bound, crashes or
//! ignores cancellation harms only that attempt.
//!
//! The worker keeps executors warm and reuses them (one attempt at a time
//! each), so isolation costs a pipe round trip per attempt, not a process
//! start. Before each attempt the worker sets the executor's memory limit
//! from the task's `resource_requirements.memory` (`RLIMIT_DATA`); past it an
//! allocation fails, the executor aborts, and the attempt ends with "memory
//! limit exceeded" while the worker carries on. A cancelled attempt, or one
//! whose step outlives its deadline, is stopped by killing its executor, so
//! it stops within a second whatever the step is doing. Executors inherit
//! only [`INHERITED_ENV`] and `OTEL_*`: the worker's token never reaches a step.
//!
//! Storage configs reach executors in the [`protocol::Job`], already
//! resolved by the worker (which has the environment and the secrets
//! directory): never in the task, the context or a step's parameters, and
//! never logged. Each executor keeps one set of connectors for its life, so
//! pools outlast jobs, and reports the storage operations a job ran in its
//! [`protocol::Outcome`].

pub mod child;
pub mod operations;
pub mod protocol;
mod supervisor;

pub use supervisor::{Ended, INHERITED_ENV, SandboxConfig, Sandboxes};
