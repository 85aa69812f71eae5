//! The interface every storage backend implements.

use crate::{EntitySchema, Name, Query, Record, Selection, StorageError};
use async_trait::async_trait;
use mimir_core::PluginType;
use serde::{Deserialize, Serialize};

/// What a backend can do, answered by `metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageMetadata {
    /// The plugin type.
    pub storage_type: PluginType,
    /// The backend's version (the server's, where it says).
    pub version: String,
    /// `store`, `retrieve`, `update`, `delete`, `schema_creation`.
    pub capabilities: Vec<String>,
}

/// Connections of a backend's pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolState {
    /// Open and waiting for work.
    pub idle: u32,
    /// Running an operation.
    pub in_use: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// A storage backend, reached through one storage config.
///
/// Implementations hold a bounded pool of connections and are shared by
/// every operation on their config. Inputs arrive checked ([`Query`],
/// [`Selection`], [`Name`]), and every method must:
/// - mean exactly what [`crate::matching`] says, for every operator;
/// - keep insertion order for ties and for queries without `order_by`;
/// - refuse records that do not fit the entity's schema, once one is created;
/// - fail with [`StorageError::unavailable`] (not hang, not panic) when the
///   backend goes away, and work again by itself when it comes back.
///
/// The conformance suite ([`crate::conformance`]) holds each backend to this.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The plugin type.
    fn plugin_type(&self) -> PluginType;

    /// Stores records (JSON objects) of one entity type, all or none;
    /// answers how many were stored.
    async fn store(&self, entity_type: &Name, records: Vec<Record>) -> Result<u64, StorageError>;

    /// One page of the records a query chooses, in its order.
    async fn retrieve(&self, query: &Query) -> Result<Vec<Record>, StorageError>;

    /// Sets `updates` (attribute to value; null clears) on every chosen
    /// record; answers how many changed.
    async fn update(&self, selection: &Selection, updates: &Record) -> Result<u64, StorageError>;

    /// Deletes every chosen record; answers how many.
    async fn delete(&self, selection: &Selection) -> Result<u64, StorageError>;

    /// Creates an entity type from its definition (a typed table and its
    /// indexes on SQL backends). Creating the same definition again is a
    /// no-op; a different one for an entity type that has records is refused.
    async fn create_schema(&self, schema: &EntitySchema) -> Result<(), StorageError>;

    /// Whether the backend answers now.
    async fn health(&self) -> Result<(), StorageError>;

    /// The backend's type, version and capabilities.
    async fn metadata(&self) -> Result<StorageMetadata, StorageError>;

    /// The pool's connections, for the pool gauges; `None` for backends
    /// without connections (the filesystem).
    fn pool(&self) -> Option<PoolState> {
        None
    }
}

/// Every capability a full connector has.
pub fn all_capabilities() -> Vec<String> {
    ["store", "retrieve", "update", "delete", "schema_creation"]
        .into_iter()
        .map(String::from)
        .collect()
}
