//! `/api/storage`: storage configs (project-scoped CRUD whose answers never
//! carry a credential), operations through their connectors (store,
//! retrieve, update, delete, schema, health, metadata), and the worker
//! protocol's one way to read a project's configs with their credentials.

pub(super) mod configs;
pub(super) mod errors;
pub(super) mod operations;
pub(super) mod worker;

pub use operations::check_health;
