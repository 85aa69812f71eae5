//! The storages a process has open: one connector (and one bounded pool)
//! per storage config, opened on first use and replaced when the config
//! changes.

use crate::{CommonOptions, Observer, PoolState, Secrets, Storage, StorageError, backends};
use chrono::{DateTime, Utc};
use mimir_core::{PluginType, StorageConfig};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// An open storage and the config version it was opened for.
type Opened = (DateTime<Utc>, Arc<Storage>);

/// Open storages by config id.
pub struct Connectors {
    secrets: Secrets,
    filesystem_root: PathBuf,
    observer: Arc<dyn Observer>,
    open: Mutex<HashMap<String, Opened>>,
}

impl Connectors {
    /// None open yet; references resolved by `secrets`, `filesystem`
    /// configs' folders under `filesystem_root`, operations reported to
    /// `observer`.
    pub fn new(
        secrets: Secrets,
        filesystem_root: impl Into<PathBuf>,
        observer: Arc<dyn Observer>,
    ) -> Connectors {
        Connectors {
            secrets,
            filesystem_root: filesystem_root.into(),
            observer,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The storage for `config`: the open one if the config is unchanged,
    /// else a new connector (the old one closes when its last operation
    /// ends). An inactive config is refused. References in the config are
    /// resolved here, by this process's [`Secrets`].
    pub async fn get(&self, config: &StorageConfig) -> Result<Arc<Storage>, StorageError> {
        self.open_config(config, true).await
    }

    /// The storage for a config whose references another process already
    /// resolved (a worker resolves them and hands the result to its
    /// executors): its values are used as they are, never resolved again,
    /// so a secret that happens to contain `${` stays that secret.
    pub async fn get_resolved(&self, config: &StorageConfig) -> Result<Arc<Storage>, StorageError> {
        self.open_config(config, false).await
    }

    async fn open_config(
        &self,
        config: &StorageConfig,
        resolve: bool,
    ) -> Result<Arc<Storage>, StorageError> {
        if !config.active {
            return Err(StorageError::invalid(format!(
                "storage {} ({}) is inactive: activate it with PUT /api/storage/configs/{}",
                config.id, config.plugin_type, config.id
            )));
        }
        if let Some((version, storage)) = self.open.lock().get(&config.id)
            && *version == config.updated_at
        {
            return Ok(storage.clone());
        }
        let named =
            |e: StorageError| e.context(format!("storage {} ({})", config.id, config.plugin_type));
        let settings = if resolve {
            self.secrets.resolve(&config.config).map_err(named)?
        } else {
            config.config.clone()
        };
        let options = CommonOptions::read(&settings.options).map_err(named)?;
        let connector = backends::open(
            config.plugin_type,
            &settings,
            &options,
            &self.filesystem_root,
        )
        .await
        .map_err(named)?;
        let storage = Arc::new(Storage::new(
            config.id.clone(),
            connector,
            options,
            self.observer.clone(),
        ));
        self.open
            .lock()
            .insert(config.id.clone(), (config.updated_at, storage.clone()));
        Ok(storage)
    }

    /// Closes the storage of config `id` (deleted or changed).
    pub fn forget(&self, id: &str) {
        self.open.lock().remove(id);
    }

    /// Pool connections summed per backend, for the pool gauges.
    pub fn pools(&self) -> Vec<(PluginType, PoolState)> {
        let mut sums: HashMap<PluginType, PoolState> = HashMap::new();
        for (_, storage) in self.open.lock().values() {
            if let Some(pool) = storage.connector().pool() {
                let sum = sums.entry(storage.plugin_type()).or_default();
                sum.idle += pool.idle;
                sum.in_use += pool.in_use;
                sum.max += pool.max;
            }
        }
        let mut pools: Vec<_> = sums.into_iter().collect();
        pools.sort_by_key(|(plugin, _)| plugin.as_str());
        pools
    }
}
