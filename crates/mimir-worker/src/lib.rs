//! The worker runtime: lease tasks from the orchestrator, run them, keep their
//! leases alive with heartbeats, report how each attempt ended.
//!
//! Three loops share one table of held tasks:
//! - the lease loop asks for as many tasks as there are free slots (those it
//!   runs at once plus, while tasks are short, those it leases ahead; both
//!   adapt to what the worker measures: [`mimir_core::sizing`]), long-polling when the
//!   queue is empty;
//! - the heartbeat loop renews the leases of every held task and stops the ones
//!   the orchestrator says were cancelled or lost, and gives back unstarted
//!   tasks while other workers are idle;
//! - the reporter sends finished attempts in batches and retries until the
//!   orchestrator has them, so an orchestrator restart loses no result.
//!
//! On shutdown the worker stops leasing, gives back tasks it never started,
//! finishes the running ones, reports them and leaves.

mod executor;
mod machine_load;
pub mod metrics;
mod ml_executor;
mod pipeline_executor;
mod project_storage;
mod runtime;
pub mod sandbox;
mod task_executor;

pub use executor::{Executor, Finished};
pub use ml_executor::MlExecutor;
pub use pipeline_executor::PipelineExecutor;
pub use project_storage::{ProjectStorage, ProjectStorages};
pub use runtime::{DEFAULT_SHUTDOWN_GRACE, DEFAULT_WAIT, WorkerConfig, WorkerError, run};
pub use task_executor::TaskExecutor;
