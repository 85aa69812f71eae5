//! `mimir_storage_up{storage_id, backend}`: whether each active storage
//! config's backend answers, checked every [`INTERVAL`] (the seeds'
//! troubleshooting guide: "test storage health periodically"), so the
//! *backend down* alert fires before a pipeline step finds out. A config
//! deleted or made inactive loses its series.

use crate::AppState;
use futures_util::StreamExt;
use mimir_core::StorageConfig;
use mimir_telemetry::Metrics;
use mimir_telemetry::metrics::StorageConfigLabels;
use std::time::Duration;

/// How often every active config is checked.
pub const INTERVAL: Duration = Duration::from_secs(30);

/// Most configs checked at once, so many configs with a backend down do
/// not open many connections at once.
pub const CONCURRENCY: usize = 8;

fn labels(config: &StorageConfig) -> StorageConfigLabels {
    StorageConfigLabels {
        storage_id: config.id.clone(),
        backend: config.plugin_type.as_str(),
    }
}

/// Sets the gauge of `config`.
pub fn set(metrics: &Metrics, config: &StorageConfig, up: bool) {
    if !config.active {
        return;
    }
    metrics
        .storage_up
        .get_or_create(&labels(config))
        .set(i64::from(up));
}

/// Removes the series of `config` (deleted or inactive).
pub fn forget(metrics: &Metrics, config: &StorageConfig) {
    metrics.storage_up.remove(&labels(config));
}

/// Checks every config once: active ones within their timeout, at most
/// [`CONCURRENCY`] at a time; the series of inactive ones are removed.
pub async fn check_once(state: &AppState) {
    let configs = match state.store.list_storage_configs(None).await {
        Ok(configs) => configs,
        Err(error) => {
            tracing::warn!(%error, "cannot list storage configs to check their health");
            return;
        }
    };
    let (active, inactive): (Vec<_>, Vec<_>) = configs.into_iter().partition(|c| c.active);
    for config in &inactive {
        forget(&state.metrics, config);
    }
    futures_util::stream::iter(active)
        .for_each_concurrent(CONCURRENCY, |config| async move {
            let result =
                crate::api::storage::check_health(&state.storage, &config).await;
            if let Err(error) = &result {
                tracing::warn!(storage_id = %config.id, backend = %config.plugin_type, %error, "storage health check failed");
            }
            set(&state.metrics, &config, result.is_ok());
        })
        .await;
}

/// Runs [`check_once`] every [`INTERVAL`] (the first at once).
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        check_once(&state).await;
    }
}
