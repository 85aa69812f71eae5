//! `checkpoint.load`: reads one of the pipeline's checkpoints.

use super::checkpoint_common::{checkpoints, key};
use crate::params::{literals, reject_unknown, require};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value, json};

const DOC: ActionDoc = ActionDoc {
    summary: "Reads one of the pipeline's checkpoints (durable values kept from run to run, such as the last id loaded), or the default when it was never saved.",
    parameters: &[
        ParamDoc::required(
            "key",
            ParamType::String,
            "The checkpoint's name, at most 128 characters.",
        ),
        ParamDoc::optional(
            "default",
            ParamType::Any,
            Some("null"),
            "The value when the checkpoint was never saved.",
        ),
    ],
    returns: "{key, value, found}: value is the saved value (a save earlier in this run first), else default; found says whether it was saved",
};

/// `checkpoint.load`: returns `{"key", "value", "found"}`, `value` being
/// what this run saved under `key`, else what the pipeline has stored,
/// else `default` (null). Fails permanently outside a pipeline run that has
/// checkpoints ([`crate::RunContext::checkpoints`]).
#[derive(Debug, Default)]
pub struct CheckpointLoad;

#[async_trait]
impl Action for CheckpointLoad {
    fn plugin(&self) -> &'static str {
        "checkpoint"
    }

    fn action(&self) -> &'static str {
        "load"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "key")?;
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
        let checkpoints = checkpoints(run)?;
        let (value, found) = match checkpoints.load(&key) {
            Some(value) => (value, true),
            None => (params.remove("default").unwrap_or(Value::Null), false),
        };
        Ok(json!({"key": key, "value": value, "found": found}))
    }
}
