//! The backends, one module each.

pub mod filesystem;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod s3;
pub mod sql;

use crate::{CommonOptions, Connector, StorageError};
use mimir_core::{ConnectionSettings, PluginType};
use std::path::Path;
use std::sync::Arc;

/// Opens a connector for resolved `settings`. Database pools connect
/// lazily, so this answers at once (`filesystem_root` is where
/// `filesystem` configs' `base_path` lives) and a backend that is down fails the
/// first operation (within its timeout), not the config.
pub async fn open(
    plugin: PluginType,
    settings: &ConnectionSettings,
    options: &CommonOptions,
    filesystem_root: &Path,
) -> Result<Arc<dyn Connector>, StorageError> {
    match plugin {
        PluginType::Filesystem => Ok(Arc::new(filesystem::Filesystem::open(
            settings,
            filesystem_root,
        )?)),
        PluginType::Postgresql => Ok(Arc::new(postgres::Postgres::open(settings, options)?)),
        PluginType::Mysql => Ok(Arc::new(mysql::Mysql::open(settings, options)?)),
        PluginType::Redis => Ok(Arc::new(redis::Redis::open(settings, options)?)),
        PluginType::S3 => Ok(Arc::new(s3::S3::open(settings, options)?)),
    }
}

/// Checks settings without connecting: the options and URL a backend
/// needs are present and well formed. The API calls this before storing a
/// config, so mistakes are refused at once.
pub fn check(plugin: PluginType, settings: &ConnectionSettings) -> Result<(), StorageError> {
    CommonOptions::read(&settings.options)?;
    match plugin {
        PluginType::Filesystem => filesystem::check(settings),
        PluginType::Postgresql => postgres::check(settings),
        PluginType::Mysql => mysql::check(settings),
        PluginType::Redis => redis::check(settings),
        PluginType::S3 => s3::check(settings),
    }
}
