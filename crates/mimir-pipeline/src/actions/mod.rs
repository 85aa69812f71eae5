//! The built-in actions, one file each.

mod core_fail;
mod core_log;
mod core_sleep;
mod file_format;
mod file_read;
mod file_write;
mod http_request;
mod transform_jq;

pub use core_fail::{CoreFail, DEFAULT_FAIL_MESSAGE};
pub use core_log::CoreLog;
pub use core_sleep::CoreSleep;
pub use file_format::FileFormat;
pub use file_read::FileRead;
pub use file_write::FileWrite;
pub use http_request::{DEFAULT_HTTP_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES, HttpRequest};
pub use transform_jq::TransformJq;

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
    ])
}
