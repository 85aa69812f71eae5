//! A pipeline step as users write it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One step of a pipeline: which action to run, with which parameters, and how
/// to store its result in the pipeline context.
///
/// ```json
/// {"name": "load", "plugin": "file", "action": "read",
///  "parameters": {"path": "$.params.input"}, "output": {"data": "$.result"}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the pipeline; later steps read this step's entry as `$.name`.
    pub name: String,
    /// The plugin, e.g. `file`.
    pub plugin: String,
    /// The plugin's action, e.g. `read`.
    pub action: String,
    /// The action's parameters; string values that are references (`$.params.x`,
    /// `$.step.key`) are resolved just before the step runs.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// How to store the result R in the context: each value is `$.result` (R) or
    /// `$.result.path` (a part of R). Without it the context entry is R itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Map<String, Value>>,
    /// The longest the step may run, in milliseconds; without it the
    /// pipeline's `step_timeout_ms`, if any, applies. A step over its time is
    /// stopped (within a second, whatever it is doing) and the attempt ends
    /// as `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Step {
    /// `plugin.action`, as errors and logs name it.
    pub fn qualified_action(&self) -> String {
        format!("{}.{}", self.plugin, self.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_wire_form_and_refuses_unknown_fields() {
        let step: Step = serde_json::from_str(
            r#"{"name":"load","plugin":"file","action":"read","output":{"data":"$.result"}}"#,
        )
        .expect("valid step");
        assert!(step.parameters.is_empty());
        assert_eq!(step.qualified_action(), "file.read");
        assert!(step.output.is_some());

        let err = serde_json::from_str::<Step>(
            r#"{"name":"a","plugin":"core","action":"log","params":{}}"#,
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("params"), "{err}");
    }

    #[test]
    fn omits_an_absent_output_when_serialized() {
        let step = Step {
            name: "a".into(),
            plugin: "core".into(),
            action: "log".into(),
            parameters: Map::new(),
            output: None,
            timeout_ms: None,
        };
        let json = serde_json::to_value(&step).expect("serializes");
        assert!(json.get("output").is_none());
        assert_eq!(json["parameters"], serde_json::json!({}));
    }
}
