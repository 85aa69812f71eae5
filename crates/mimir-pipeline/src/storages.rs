//! The storages a run's steps may use: the storage configs of the task's
//! project, opened through the process's one [`Connectors`] (so pools live
//! as long as the process, not the run).
//!
//! The configs arrive already resolved (their `${env:…}` / `${file:…}`
//! references replaced where the secrets live, in the worker), by a channel
//! steps cannot read: never the task, the context, a step's parameters or
//! its result. Steps name a storage by id; an id outside the project is
//! unknown here.

use crate::ActionError;
use mimir_core::StorageConfig;
use mimir_storage::{Connectors, Storage};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A run's storages, by config id.
pub struct Storages {
    project_id: String,
    connectors: Arc<Connectors>,
    configs: BTreeMap<String, StorageConfig>,
    /// Configs of the project that cannot be opened here, and why (a
    /// reference that did not resolve where the secrets are).
    unavailable: BTreeMap<String, String>,
}

impl Storages {
    /// The configs of `project_id` among `configs` (resolved ones: see
    /// [`Connectors::get_resolved`]), opened through `connectors`. Configs
    /// of other projects are dropped.
    pub fn new(
        project_id: impl Into<String>,
        connectors: Arc<Connectors>,
        configs: impl IntoIterator<Item = StorageConfig>,
    ) -> Storages {
        let project_id = project_id.into();
        let configs = configs
            .into_iter()
            .filter(|c| c.project_id == project_id)
            .map(|c| (c.id.clone(), c))
            .collect();
        Storages {
            project_id,
            connectors,
            configs,
            unavailable: BTreeMap::new(),
        }
    }

    /// The same storages, with configs that cannot be opened and why: a step
    /// naming one fails with that reason instead of "unknown".
    pub fn with_unavailable(mut self, unavailable: BTreeMap<String, String>) -> Storages {
        self.unavailable = unavailable;
        self
    }

    /// The project whose storages these are.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The storage config `id`, opened (or the open one reused).
    pub async fn open(&self, id: &str) -> Result<Arc<Storage>, ActionError> {
        if let Some(why) = self.unavailable.get(id) {
            return Err(ActionError::Permanent(format!("storage {id}: {why}")));
        }
        let Some(config) = self.configs.get(id) else {
            return Err(ActionError::Permanent(format!(
                "storage {id:?} is not a storage config of project {:?} (see GET /api/storage/configs?project_id={})",
                self.project_id, self.project_id
            )));
        };
        self.connectors
            .get_resolved(config)
            .await
            .map_err(crate::actions::storage_error)
    }
}

/// Names the configs, never their settings.
impl fmt::Debug for Storages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<(&String, &'static str)> = self
            .configs
            .iter()
            .map(|(id, c)| (id, c.plugin_type.as_str()))
            .collect();
        f.debug_struct("Storages")
            .field("project_id", &self.project_id)
            .field("configs", &ids)
            .field("unavailable", &self.unavailable.keys().collect::<Vec<_>>())
            .finish()
    }
}
