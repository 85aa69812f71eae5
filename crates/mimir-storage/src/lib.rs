//! Storage connectors: CIR records in filesystem, PostgreSQL, MySQL/MariaDB,
//! Redis and S3 behind one [`Connector`] interface (the seeds' storage
//! plugins).
//!
//! - [`Query`] and [`Selection`] are checked once from the wire's CIRQuery;
//!   [`matching`] defines what every operator means, for every backend.
//! - [`Storage`] wraps one config's connector with timeouts, retries of
//!   transient failures, metrics events and spans; [`Connectors`] keeps one
//!   per config, each with its own bounded pool.
//! - [`conformance`] holds the behaviour every backend must show; each
//!   backend's tests run it unchanged against a real server.

pub mod backends;
pub mod bench;
pub mod cir;
pub mod conformance;
pub mod connector;
pub mod connectors;
pub mod error;
pub mod matching;
pub mod name;
pub mod observe;
pub mod options;
pub mod query;
pub mod schema;
pub mod secrets;
pub mod storage;
pub mod testing;

pub use connector::{Connector, PoolState, StorageMetadata, all_capabilities};
pub use connectors::Connectors;
pub use error::{ErrorKind, StorageError};
pub use matching::Record;
pub use name::{NAME_MAX_LEN, Name};
pub use observe::{
    MetricsObserver, Observer, Operation, OperationEvent, Unobserved, record_operation,
    record_pools,
};
pub use options::CommonOptions;
pub use query::{
    DEFAULT_ENTITY, DEFAULT_LIMIT, Direction, Filter, FilterRequest, MAX_LIMIT, Operator, Order,
    OrderRequest, Query, QueryRequest, Selection,
};
pub use schema::{Attribute, AttributeType, EntitySchema};
pub use secrets::Secrets;
pub use storage::Storage;
