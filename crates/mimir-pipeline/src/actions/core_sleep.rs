//! `core.sleep`: waits, cancellably.

use crate::params::{count, literals, reject_unknown, require};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::time::Duration;

const DOC: ActionDoc = ActionDoc {
    summary: "Waits, ending early when the run is cancelled.",
    parameters: &[ParamDoc::required(
        "ms",
        ParamType::Integer,
        "How long to wait, in milliseconds.",
    )],
    returns: "{} (an empty object)",
};

/// `core.sleep`: waits `ms` milliseconds and returns `{}`; ends early with
/// `cancelled` when the run is cancelled.
#[derive(Debug, Default)]
pub struct CoreSleep;

#[async_trait]
impl Action for CoreSleep {
    fn plugin(&self) -> &'static str {
        "core"
    }

    fn action(&self) -> &'static str {
        "sleep"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "ms")?;
        count(&literals(params), "ms")?;
        Ok(())
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        reject_unknown(&params, DOC.parameters)?;
        let ms =
            count(&params, "ms")?.ok_or_else(|| ActionError::parameter("ms", "is required"))?;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({})),
            () = run.cancel.cancelled() => Err(ActionError::Cancelled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn check_wants_a_whole_number_of_ms() {
        assert!(CoreSleep.check(&params(json!({"ms": 5}))).is_ok());
        assert!(
            CoreSleep
                .check(&params(json!({"ms": "$.params.ms"})))
                .is_ok()
        );
        assert!(CoreSleep.check(&params(json!({"ms": "5"}))).is_err());
        assert!(CoreSleep.check(&params(json!({}))).is_err());
        assert!(
            CoreSleep
                .check(&params(json!({"ms": 1, "extra": 1})))
                .is_err()
        );
    }
}
