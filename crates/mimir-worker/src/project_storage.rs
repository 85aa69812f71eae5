//! A project's storage configs as a worker gets them: fetched from the
//! orchestrator's worker protocol
//! (`GET /api/workers/{id}/storage-configs?project_id=P`), their
//! `${env:…}` / `${file:…}` references resolved here, once, where the
//! worker's environment and secrets directory are (`MIMIR_SECRETS_DIR`), and
//! kept for a few seconds so a burst of tasks costs one fetch. Pipelines hand
//! them to their executor process; ML tasks open connectors with them.

use mimir_client::Client;
use mimir_core::{ErrorClass, StorageConfig, WorkTask};
use mimir_storage::Secrets;
use parking_lot::Mutex;
use reqwest::Method;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long fetched configs are reused.
const CONFIGS_TTL: Duration = Duration::from_secs(2);

/// A project's storage configs, resolved, and those that would not resolve.
#[derive(Debug, Default)]
pub struct ProjectStorage {
    /// Resolved configs.
    pub configs: Vec<StorageConfig>,
    /// Config id → why its references did not resolve (naming the
    /// reference, never a value).
    pub unavailable: BTreeMap<String, String>,
}

impl ProjectStorage {
    /// The resolved config `id`, or why there is none (a permanent failure:
    /// the config is missing, of another project, or unresolvable).
    pub fn config(&self, id: &str) -> Result<&StorageConfig, String> {
        if let Some(config) = self.configs.iter().find(|c| c.id == id) {
            return Ok(config);
        }
        match self.unavailable.get(id) {
            Some(why) => Err(format!("storage {id} cannot be used: {why}")),
            None => Err(format!(
                "storage {id} is not a storage config of this task's project"
            )),
        }
    }
}

/// The worker protocol's answer with a project's configs (credentials
/// included: only workers may ask).
#[derive(serde::Deserialize)]
struct ConfigsAnswer {
    configs: Vec<StorageConfig>,
}

/// Fetches and keeps projects' storage configs.
pub struct ProjectStorages {
    client: Client,
    secrets: Secrets,
    fetched: Mutex<HashMap<String, (Instant, Arc<ProjectStorage>)>>,
}

impl ProjectStorages {
    /// Configs fetched through `client`, references resolved by `secrets`.
    pub fn new(client: Client, secrets: Secrets) -> ProjectStorages {
        ProjectStorages {
            client,
            secrets,
            fetched: Mutex::new(HashMap::new()),
        }
    }

    /// The storage configs of `task`'s project, fetched or reused.
    pub async fn get(&self, task: &WorkTask) -> Result<Arc<ProjectStorage>, (String, ErrorClass)> {
        let project = task.project_id.as_str();
        if let Some((fetched, storage)) = self.fetched.lock().get(project)
            && fetched.elapsed() < CONFIGS_TTL
        {
            return Ok(storage.clone());
        }
        let path = storage_configs_path(&task.worker_id, project);
        let answer: ConfigsAnswer =
            self.client
                .call(Method::GET, &path, None)
                .await
                .map_err(|e| {
                    (
                        format!("cannot load the storage configs of project {project}: {e}"),
                        ErrorClass::Transient,
                    )
                })?;
        let mut storage = ProjectStorage::default();
        for mut config in answer.configs {
            if config.project_id != project {
                tracing::warn!(storage_id = %config.id, "the orchestrator sent a storage config of another project; ignored");
                continue;
            }
            match self.secrets.resolve(&config.config) {
                Ok(settings) => {
                    config.config = settings;
                    storage.configs.push(config);
                }
                // The reason names the reference, never a value.
                Err(error) => {
                    storage.unavailable.insert(config.id, error.message);
                }
            }
        }
        let storage = Arc::new(storage);
        self.fetched
            .lock()
            .insert(project.to_string(), (Instant::now(), storage.clone()));
        Ok(storage)
    }
}

/// `/api/workers/{worker_id}/storage-configs?project_id=P`, encoded.
fn storage_configs_path(worker_id: &str, project: &str) -> String {
    let mut url = reqwest::Url::parse("http://worker/api/workers/").expect("a valid base URL");
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .push(worker_id)
            .push("storage-configs");
    }
    url.query_pairs_mut().append_pair("project_id", project);
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configs_path_encodes_ids() {
        assert_eq!(
            storage_configs_path("local-1", "p 1&x"),
            "/api/workers/local-1/storage-configs?project_id=p+1%26x"
        );
    }
}
