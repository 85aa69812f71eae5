//! `store.*`: which metadata store the orchestrator keeps its tasks in, and
//! opening it.
//!
//! SQLite in the data directory is the embedded default: one process, no
//! server to run. PostgreSQL (`store.backend: postgres`, `store.url` or
//! `MIMIR_STORE_URL`) lets several orchestrator replicas share one queue.

use crate::config::ConfigError;
use mimir_core::{Aging, RetryPolicy};
use mimir_store::{
    EventSink, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store, StoreError,
};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Defaults to 16: connections each replica keeps to PostgreSQL.
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// Defaults to 5 s: longest wait for a PostgreSQL connection.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// The metadata store's backend.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One file in the data directory (the default).
    Sqlite,
    /// A PostgreSQL database several replicas share.
    Postgres,
}

/// `store.*` as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StoreConfig {
    /// `sqlite` or `postgres`. Defaults to `postgres` when `url` is set,
    /// else `sqlite`.
    pub backend: Option<StoreBackend>,
    /// SQLite: fsync every commit, so acknowledged writes survive power
    /// loss. Defaults to true; false still survives a crash of the process.
    pub durable: bool,
    /// PostgreSQL connection string (`postgres://user:password@host/db`);
    /// `MIMIR_STORE_URL` or `--store-url` wins. Never logged.
    pub url: String,
    /// PostgreSQL schema for the tables, created if missing. Defaults to
    /// the connection's search path (`public`).
    pub schema: String,
    /// PostgreSQL connections per replica. Defaults to [`DEFAULT_POOL_SIZE`].
    pub pool_size: u32,
    /// Longest wait for a PostgreSQL connection, in ms. Defaults to
    /// [`DEFAULT_CONNECT_TIMEOUT_MS`].
    pub connect_timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: None,
            durable: true,
            url: String::new(),
            schema: String::new(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
        }
    }
}

/// The checked choice of store.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreChoice {
    /// SQLite in the data directory.
    Sqlite {
        /// fsync every commit.
        durable: bool,
    },
    /// A shared PostgreSQL database.
    Postgres {
        /// The connection string (holds credentials: never log it).
        url: String,
        /// Schema of the tables, if not the search path's.
        schema: Option<String>,
        /// Connections per replica.
        pool_size: u32,
        /// Longest wait for a connection.
        connect_timeout: Duration,
    },
}

impl StoreConfig {
    /// Checks the keys; errors name the key at fault.
    pub fn validate(&self) -> Result<StoreChoice, ConfigError> {
        let backend = self.backend.unwrap_or(if self.url.is_empty() {
            StoreBackend::Sqlite
        } else {
            StoreBackend::Postgres
        });
        match backend {
            StoreBackend::Sqlite => {
                if !self.url.is_empty() {
                    return Err(ConfigError::new(
                        "store.url: set only with store.backend: postgres (SQLite lives in the data directory)".into(),
                    ));
                }
                Ok(StoreChoice::Sqlite {
                    durable: self.durable,
                })
            }
            StoreBackend::Postgres => {
                if self.url.is_empty() {
                    return Err(ConfigError::new(
                        "store.url: store.backend postgres needs a connection string (store.url or MIMIR_STORE_URL), e.g. postgres://mimir@db:5432/mimir".into(),
                    ));
                }
                if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
                    return Err(ConfigError::new(
                        "store.url: must begin with postgres:// or postgresql://".into(),
                    ));
                }
                let schema = (!self.schema.is_empty()).then(|| self.schema.clone());
                if let Some(schema) = &schema {
                    let valid = schema.len() <= 63
                        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                        && schema
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                    if !valid {
                        return Err(ConfigError::new(format!(
                            "store.schema: {schema:?} must be 1-63 lowercase letters, digits or _, not beginning with a digit"
                        )));
                    }
                }
                if self.pool_size == 0 || self.pool_size > 1000 {
                    return Err(ConfigError::new(format!(
                        "store.poolSize: {} must be from 1 to 1000",
                        self.pool_size
                    )));
                }
                if self.connect_timeout_ms == 0 {
                    return Err(ConfigError::new(
                        "store.connectTimeoutMs must be at least 1".into(),
                    ));
                }
                Ok(StoreChoice::Postgres {
                    url: self.url.clone(),
                    schema,
                    pool_size: self.pool_size,
                    connect_timeout: Duration::from_millis(self.connect_timeout_ms),
                })
            }
        }
    }
}

/// What every backend is opened with.
pub struct StoreSettings {
    /// Queue aging, if on.
    pub aging: Option<Aging>,
    /// Retry backoff.
    pub retry: RetryPolicy,
    /// Lease lifetime.
    pub lease_ttl: Duration,
    /// Where task lifecycle events go.
    pub events: Option<Arc<dyn EventSink>>,
}

/// Opens the chosen store: SQLite in `data_dir`, or PostgreSQL (migrated
/// under a lock, so replicas starting together do not race).
pub async fn open(
    choice: &StoreChoice,
    data_dir: &Path,
    settings: StoreSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    let StoreSettings {
        aging,
        retry,
        lease_ttl,
        events,
    } = settings;
    match choice {
        StoreChoice::Sqlite { durable } => {
            let options = SqliteOptions {
                aging,
                durable: *durable,
                retry,
                lease_ttl,
                events,
                ..SqliteOptions::default()
            };
            let data_dir = data_dir.to_path_buf();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&data_dir, options))
                .await
                .map_err(|e| StoreError::Corrupt(format!("the store's opening failed: {e}")))??;
            Ok(Arc::new(store))
        }
        StoreChoice::Postgres {
            url,
            schema,
            pool_size,
            connect_timeout,
        } => {
            let options = PostgresOptions {
                url: url.clone(),
                schema: schema.clone(),
                pool_size: *pool_size,
                acquire_timeout: *connect_timeout,
                aging,
                retry,
                lease_ttl,
                events,
            };
            Ok(Arc::new(PostgresStore::open(options).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> StoreConfig {
        serde_yaml_ng::from_str(yaml).expect("parses")
    }

    #[test]
    fn sqlite_is_the_default_and_a_url_means_postgres() {
        assert_eq!(
            StoreConfig::default().validate().expect("valid"),
            StoreChoice::Sqlite { durable: true }
        );
        let choice = config("url: postgres://mimir@db/mimir\n")
            .validate()
            .expect("valid");
        assert!(matches!(
            choice,
            StoreChoice::Postgres { pool_size: 16, .. }
        ));
    }

    #[test]
    fn bad_store_keys_are_named() {
        for (yaml, key) in [
            ("backend: postgres\n", "store.url"),
            ("backend: sqlite\nurl: postgres://db/x\n", "store.url"),
            ("url: mysql://db/x\n", "store.url"),
            ("url: postgres://db/x\nschema: Bad-Name\n", "store.schema"),
            ("url: postgres://db/x\npoolSize: 0\n", "store.poolSize"),
            (
                "url: postgres://db/x\nconnectTimeoutMs: 0\n",
                "store.connectTimeoutMs",
            ),
        ] {
            let error = config(yaml).validate().expect_err(yaml).to_string();
            assert!(error.starts_with(key), "{yaml}: {error}");
        }
        assert!(serde_yaml_ng::from_str::<StoreConfig>("backend: oracle\n").is_err());
    }
}
