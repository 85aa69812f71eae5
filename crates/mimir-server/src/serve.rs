//! Running the orchestrator: open the store, bind, serve until asked to stop.

use crate::config::{Config, ConfigError};
use crate::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore, StoreError};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Why the orchestrator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `config` until `shutdown` resolves; reports the bound address through
/// `on_listening` (useful with port 0).
pub async fn run(
    config: Config,
    on_listening: impl FnOnce(std::net::SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let valid = config.validate()?;
    let data_dir = config.data_dir.clone();
    let options = SqliteOptions {
        aging: valid.aging,
        durable: config.store.durable,
        ..SqliteOptions::default()
    };
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&data_dir, options))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let listener = TcpListener::bind(valid.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: valid.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let state = AppState {
        store: Arc::new(store),
        retry: valid.retry,
        max_body_bytes: config.api.max_body_bytes,
    };
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "orchestrator listening");
    on_listening(addr);
    axum::serve(listener, api::app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("orchestrator stopped");
    Ok(())
}
