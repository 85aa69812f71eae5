//! What every request handler shares.

use mimir_core::RetryPolicy;
use mimir_store::Store;
use std::sync::Arc;

/// Shared state of the orchestrator's handlers.
#[derive(Clone)]
pub struct AppState {
    /// The durable store and queue.
    pub store: Arc<dyn Store>,
    /// Retry backoff for failed attempts.
    pub retry: RetryPolicy,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
}

impl AppState {
    /// State over `store` with default limits.
    pub fn new(store: Arc<dyn Store>) -> AppState {
        AppState {
            store,
            retry: RetryPolicy::default(),
            max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
        }
    }
}
