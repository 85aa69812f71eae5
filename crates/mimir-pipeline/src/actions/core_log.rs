//! `core.log`: writes a message to the worker's log.

use crate::params::{literals, reject_unknown, string};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use serde_json::{Map, Value, json};

const DOC: ActionDoc = ActionDoc {
    summary: "Writes a message to the worker's log (target mimir_pipeline::log) with the task, pipeline, step and attempt.",
    parameters: &[
        ParamDoc::optional(
            "message",
            ParamType::Any,
            Some("empty"),
            "What to log; a value that is not a string is logged as JSON.",
        ),
        ParamDoc::optional(
            "level",
            ParamType::String,
            Some("info"),
            "debug, info, warn or error.",
        ),
    ],
    returns: "{} (an empty object)",
};
const LEVELS: &str = "debug, info, warn, error";

/// `core.log`: emits a `tracing` event (target `mimir_pipeline::log`) at
/// `level` (debug, info, warn, error; default info) with `message` and the
/// `worktask_id`, `pipeline_id`, `step` and `attempt` fields. A message that
/// is not a string is logged as JSON. Returns `{}`.
#[derive(Debug, Default)]
pub struct CoreLog;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

fn level(params: &Map<String, Value>) -> Result<Level, ActionError> {
    match string(params, "level")? {
        None | Some("info") => Ok(Level::Info),
        Some("debug") => Ok(Level::Debug),
        Some("warn") => Ok(Level::Warn),
        Some("error") => Ok(Level::Error),
        Some(other) => Err(ActionError::parameter(
            "level",
            format!("must be one of {LEVELS}, got \"{other}\""),
        )),
    }
}

#[async_trait]
impl Action for CoreLog {
    fn plugin(&self) -> &'static str {
        "core"
    }

    fn action(&self) -> &'static str {
        "log"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        level(&literals(params))?;
        Ok(())
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        reject_unknown(&params, DOC.parameters)?;
        let level = level(&params)?;
        let message = match params.get("message") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        // tracing needs the level at compile time, hence one call per level.
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "mimir_pipeline::log",
                    $level,
                    worktask_id = %run.worktask_id,
                    pipeline_id = %run.pipeline_id,
                    step = %run.step,
                    attempt = run.attempt,
                    "{message}"
                )
            };
        }
        match level {
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
        Ok(json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_unknown_ones_are_refused() {
        let p = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(level(&p(json!({}))).unwrap(), Level::Info);
        assert_eq!(level(&p(json!({"level": "warn"}))).unwrap(), Level::Warn);
        let err = CoreLog.check(&p(json!({"level": "loud"}))).unwrap_err();
        assert!(
            err.to_string().contains("debug, info, warn, error"),
            "{err}"
        );
        assert!(
            CoreLog
                .check(&p(json!({"level": "$.params.level"})))
                .is_ok()
        );
    }
}
