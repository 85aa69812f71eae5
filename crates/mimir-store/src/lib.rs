//! The durable metadata store of Mimir AIP.
//!
//! [`Store`] is what the orchestrator needs from a backend. [`SqliteStore`] is the
//! embedded default: it keeps the queue order ([`mimir_core::QueueIndex`]) and the
//! task counts in memory as a projection of what it has committed, and changes them
//! only after the matching transaction is durable, so a restart rebuilds exactly
//! what was acknowledged. [`PostgresStore`] is shared by several orchestrator
//! processes: everything they must agree on lives in the database.
//!
//! [`conformance`] holds the behaviour every backend must show; each backend's
//! tests run it unchanged.

pub mod conformance;
mod counts;
mod error;
mod events;
mod live;
pub mod postgres;
mod query;
mod schedules;
pub mod sqlite;
mod store;
mod trigger;

pub use counts::TaskCounts;
pub use error::StoreError;
pub use events::EventSink;
pub use postgres::{PostgresOptions, PostgresStore};
pub use query::{ListPage, ListQuery, MAX_LIST_LIMIT};
pub use schedules::{Checkpoints, DueSchedule, ScheduleAdvance, ScheduleFilter, WebhookDelivery};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{LeaseRequest, Placement, Renewal, Store, Term};
