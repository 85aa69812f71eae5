//! What `checkpoint.load` and `checkpoint.save` share.

use crate::checkpoints::{Checkpoints, check_key};
use crate::params::required_string;
use crate::{ActionError, RunContext};
use serde_json::{Map, Value};

/// The `key` parameter, checked.
pub(crate) fn key(params: &Map<String, Value>) -> Result<&str, ActionError> {
    let key = required_string(params, "key")?;
    check_key(key).map_err(|reason| ActionError::parameter("key", reason))?;
    Ok(key)
}

/// The run's checkpoints, or why there are none.
pub(crate) fn checkpoints(run: &RunContext) -> Result<&Checkpoints, ActionError> {
    run.checkpoints.as_deref().ok_or_else(|| {
        ActionError::Permanent(
            "this run has no checkpoints: checkpoint steps work only in a pipeline run (a pipeline_execution task)"
                .to_string(),
        )
    })
}
