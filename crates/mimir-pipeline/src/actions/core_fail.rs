//! `core.fail`: fails on purpose, for testing retries and error reporting.

use crate::params::{boolean, count, literals, reject_unknown, string};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value, json};

const DOC: ActionDoc = ActionDoc {
    summary: "Fails on purpose, for testing retries and error reporting.",
    parameters: &[
        ParamDoc::optional(
            "message",
            ParamType::String,
            Some(DEFAULT_FAIL_MESSAGE),
            "The error message.",
        ),
        ParamDoc::optional(
            "times",
            ParamType::Integer,
            Some("always fail"),
            "Fail only attempts numbered below this (times: 2 fails attempts 0 and 1).",
        ),
        ParamDoc::optional(
            "permanent",
            ParamType::Boolean,
            Some("false"),
            "Make the failure permanent, so the task fails without retries.",
        ),
    ],
    returns: "{} on an attempt it lets pass; otherwise the step fails",
};

/// The message when none is given.
pub const DEFAULT_FAIL_MESSAGE: &str = "failed on purpose";

/// `core.fail`: fails with `message` (default "failed on purpose") while the
/// attempt number is below `times`; without `times` it always fails. Returns
/// `{}` when it does not fail, so `times: 2` fails attempts 0 and 1 and lets
/// attempt 2 succeed. With `permanent: true` the failure is permanent, so the
/// task fails without retries.
#[derive(Debug, Default)]
pub struct CoreFail;

#[async_trait]
impl Action for CoreFail {
    fn plugin(&self) -> &'static str {
        "core"
    }

    fn action(&self) -> &'static str {
        "fail"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        let literals = literals(params);
        string(&literals, "message")?;
        count(&literals, "times")?;
        boolean(&literals, "permanent")?;
        Ok(())
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        reject_unknown(&params, DOC.parameters)?;
        let message = string(&params, "message")?.unwrap_or(DEFAULT_FAIL_MESSAGE);
        let fails = match count(&params, "times")? {
            None => true,
            Some(times) => u64::from(run.attempt) < times,
        };
        if !fails {
            Ok(json!({}))
        } else if boolean(&params, "permanent")?.unwrap_or(false) {
            Err(ActionError::Permanent(message.to_string()))
        } else {
            Err(ActionError::failed(message))
        }
    }
}
