//! The built-in actions, one file each.

mod checkpoint_common;
mod checkpoint_load;
mod checkpoint_save;
mod core_fail;
mod core_log;
mod core_sleep;
mod file_format;
mod file_read;
mod file_write;
mod http_request;
mod storage_common;
mod storage_delete;
mod storage_retrieve;
mod storage_schema;
mod storage_store;
mod storage_update;
mod transform_jq;

pub use checkpoint_load::CheckpointLoad;
pub use checkpoint_save::CheckpointSave;
pub use core_fail::{CoreFail, DEFAULT_FAIL_MESSAGE};
pub use core_log::CoreLog;
pub use core_sleep::CoreSleep;
pub use file_format::FileFormat;
pub use file_read::FileRead;
pub use file_write::FileWrite;
pub use http_request::{DEFAULT_HTTP_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES, HttpRequest};
pub use storage_delete::StorageDelete;
pub use storage_retrieve::StorageRetrieve;
pub use storage_schema::StorageSchema;
pub use storage_store::StorageStore;
pub use storage_update::StorageUpdate;
pub use transform_jq::TransformJq;

pub(crate) use storage_common::storage_error;

use crate::Action;
use crate::confinement::{Confinement, ConfinementError, FileRoots};
use std::sync::Arc;

/// One instance of every built-in action, confined by `confinement`.
pub(crate) fn builtin(confinement: &Confinement) -> Result<Vec<Arc<dyn Action>>, ConfinementError> {
    let roots = Arc::new(FileRoots::new(&confinement.file_roots)?);
    Ok(vec![
        Arc::new(HttpRequest::new(&confinement.http)?),
        Arc::new(FileRead::new(roots.clone())),
        Arc::new(FileWrite::new(roots)),
        Arc::new(TransformJq),
        Arc::new(CoreLog),
        Arc::new(CoreSleep),
        Arc::new(CoreFail),
        Arc::new(CheckpointLoad),
        Arc::new(CheckpointSave),
    ])
}

/// The `storage.*` actions. They reach storages through the run's
/// [`crate::RunContext::storages`], so they are registered only where a
/// process receives storage configs (executors) or validates pipelines that
/// will run there (the orchestrator).
pub(crate) fn storage() -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(StorageStore),
        Arc::new(StorageRetrieve),
        Arc::new(StorageUpdate),
        Arc::new(StorageDelete),
        Arc::new(StorageSchema),
    ]
}
