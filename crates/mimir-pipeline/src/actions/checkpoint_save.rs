//! `checkpoint.save`: stages a new value of one of the pipeline's
//! checkpoints, kept only if the run succeeds.

use super::checkpoint_common::{checkpoints, key};
use crate::params::{literals, reject_unknown, require};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value, json};

const DOC: ActionDoc = ActionDoc {
    summary: "Saves a value of one of the pipeline's checkpoints (such as the last id loaded); it is kept only if the whole run succeeds, and later steps of this run read it back.",
    parameters: &[
        ParamDoc::required(
            "key",
            ParamType::String,
            "The checkpoint's name, at most 128 characters.",
        ),
        ParamDoc::required(
            "value",
            ParamType::Any,
            "Any JSON value; a run saves at most 64 KiB in all.",
        ),
    ],
    returns: "{key, value}",
};

/// `checkpoint.save`: stages `value` under `key` and returns
/// `{"key", "value"}`. The engine reports the staged saves in
/// [`crate::Execution::checkpoints`] only when the run succeeds. Fails
/// permanently outside a pipeline run that has checkpoints, and when the
/// key or the run's total is over its bound ([`crate::checkpoints`]).
#[derive(Debug, Default)]
pub struct CheckpointSave;

#[async_trait]
impl Action for CheckpointSave {
    fn plugin(&self) -> &'static str {
        "checkpoint"
    }

    fn action(&self) -> &'static str {
        "save"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "key")?;
        require(params, "value")?;
        let literals = literals(params);
        if literals.contains_key("key") {
            key(&literals)?;
        }
        Ok(())
    }

    async fn run(
        &self,
        mut params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        reject_unknown(&params, DOC.parameters)?;
        let key = key(&params)?.to_string();
        let value = params
            .remove("value")
            .ok_or_else(|| ActionError::parameter("value", "is required"))?;
        checkpoints(run)?
            .save(&key, value.clone())
            .map_err(ActionError::Permanent)?;
        Ok(json!({"key": key, "value": value}))
    }
}
