//! Schedules: pipelines fired on a clock.
//!
//! The rules of when a schedule fires are pure and live in
//! [`mimir_core::schedule`]. Here, [`scheduler`] runs them on the leader,
//! and [`fires`] turns a decision into the tasks and the store write that
//! records it. Every decision is stored together with the tasks it fires, in
//! one transaction that applies only if the schedule has not changed since
//! it was read: a restart neither skips nor repeats a fire, and with several
//! replicas exactly one fires each slot.

pub mod fires;
pub mod scheduler;

pub use scheduler::{SchedulerWake, run};
