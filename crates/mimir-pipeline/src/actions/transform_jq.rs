//! `transform.jq`: reshapes data with a jq program.

use crate::params::{literals, reject_unknown, require, required_string, string};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext, jq};
use async_trait::async_trait;
use serde_json::{Map, Value};

const DOC: ActionDoc = ActionDoc {
    summary: "Reshapes data with a jq program, compiled when the pipeline is saved.",
    parameters: &[
        ParamDoc::required("program", ParamType::String, "The jq program."),
        ParamDoc::optional(
            "input",
            ParamType::Any,
            Some("null"),
            "The value the program reads, usually a reference such as \"$.load.data\".",
        ),
    ],
    returns: "the program's output: null for none, the value for one, an array for several",
};

/// `transform.jq`: runs the jq `program` on `input` (null when absent) and
/// returns its output: null for none, the value for one, an array for
/// several. The program is compiled at validation time too, so a typo is
/// refused when the pipeline is saved. See [`crate::jq`] for the filters
/// available.
#[derive(Debug, Default)]
pub struct TransformJq;

#[async_trait]
impl Action for TransformJq {
    fn plugin(&self) -> &'static str {
        "transform"
    }

    fn action(&self) -> &'static str {
        "jq"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "program")?;
        if let Some(program) = string(&literals(params), "program")? {
            jq::compile(program).map_err(|reason| {
                ActionError::parameter("program", format!("does not compile: {reason}"))
            })?;
        }
        Ok(())
    }

    async fn run(
        &self,
        mut params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        reject_unknown(&params, DOC.parameters)?;
        let program = required_string(&params, "program")?.to_string();
        let input = params.remove("input").unwrap_or(Value::Null);
        let cancel = run.cancel.clone();
        // jq work is CPU-bound and may be long; keep it off the async threads.
        tokio::task::spawn_blocking(move || {
            let filter = jq::compile(&program).map_err(ActionError::JqCompile)?;
            jq::run(&filter, &input, &|| cancel.is_cancelled()).map_err(|reason| {
                if cancel.is_cancelled() {
                    ActionError::Cancelled
                } else {
                    ActionError::JqRuntime(reason)
                }
            })
        })
        .await
        .map_err(|e| ActionError::failed(format!("the jq program stopped: {e}")))?
    }
}
