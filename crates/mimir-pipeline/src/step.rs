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
///
/// A step with `for_each` runs a list of inner steps once per item instead of
/// an action, and has no `plugin`, `action` or `parameters`:
///
/// ```json
/// {"name": "pages", "for_each": {"items": "$.list.data", "as": "page",
///  "concurrency": 4, "steps": [
///    {"name": "fetch", "plugin": "http", "action": "request",
///     "parameters": {"url": "$.page.url"}}]}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the pipeline; later steps read this step's entry as `$.name`.
    pub name: String,
    /// The plugin, e.g. `file`. Empty (and absent from the JSON) for a
    /// `for_each` step.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub plugin: String,
    /// The plugin's action, e.g. `read`. Empty (and absent from the JSON)
    /// for a `for_each` step.
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
    /// pipeline's `step_timeout_ms`, if any, applies (except to a `for_each`
    /// step, whose inner steps it applies to instead). A step over its time
    /// is stopped (within a second, whatever it is doing) and the attempt
    /// ends as `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// A jq program over the context object (`{"params": ..., "<earlier
    /// step>": entry, ..., "<as>": item}` inside loops): the step runs only
    /// when its first output is neither `false` nor `null`; otherwise it is
    /// recorded as skipped and has no context entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Runs inner steps once per item instead of an action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEach>,
}

/// Most items a `for_each` step runs: 10,000. More fails the step.
pub const MAX_FOR_EACH_ITEMS: usize = 10_000;

/// Most items a `for_each` step runs at once: 32.
pub const MAX_FOR_EACH_CONCURRENCY: usize = 32;

/// What a `for_each` step runs: `steps` once per item of `items`.
///
/// Each item runs in its own scope: `$.<as>` is the item, the entries of the
/// steps before the loop and `$.params` are readable, and an inner step's
/// entry is visible to the later inner steps of the same item only. The
/// step's entry is an array in item order whose element i is the object of
/// item i's inner step entries (`{"error": "...", "index": i}` for a failed
/// item with `continue_on_error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForEach {
    /// A reference to an array, e.g. `$.list.data`; at most
    /// [`MAX_FOR_EACH_ITEMS`] items.
    pub items: String,
    /// The name inner steps read the item under (`$.item`). Defaults to `item`.
    #[serde(rename = "as", default = "default_item_name")]
    pub item_name: String,
    /// How many items run at once, 1 to [`MAX_FOR_EACH_CONCURRENCY`].
    /// Defaults to 1.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// When true a failed item becomes `{"error", "index"}` in the entry and
    /// the step succeeds; when false (the default) the failure of the lowest
    /// failing index fails the step.
    #[serde(default)]
    pub continue_on_error: bool,
    /// The steps run for each item, in order.
    pub steps: Vec<Step>,
}

/// The default `as`: `item`.
pub const DEFAULT_ITEM_NAME: &str = "item";

fn default_item_name() -> String {
    DEFAULT_ITEM_NAME.to_string()
}

fn default_concurrency() -> usize {
    1
}

impl Step {
    /// `plugin.action`, as errors and logs name it; `for_each` for a loop.
    pub fn qualified_action(&self) -> String {
        if self.for_each.is_some() && self.plugin.is_empty() {
            return "for_each".to_string();
        }
        format!("{}.{}", self.plugin, self.action)
    }
}

/// True when any of `steps`, or of the steps inside their loops at any
/// depth, uses `plugin`: what tells a worker to fetch what that plugin
/// needs (storage configs, checkpoints).
pub fn uses_plugin(steps: &[Step], plugin: &str) -> bool {
    steps.iter().any(|step| {
        step.plugin == plugin
            || step
                .for_each
                .as_ref()
                .is_some_and(|each| uses_plugin(&each.steps, plugin))
    })
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
            when: None,
            for_each: None,
        };
        let json = serde_json::to_value(&step).expect("serializes");
        assert!(json.get("output").is_none());
        assert_eq!(json["parameters"], serde_json::json!({}));
    }

    #[test]
    fn a_for_each_step_parses_with_defaults_and_has_no_action() {
        let step: Step = serde_json::from_value(serde_json::json!({
            "name": "each", "when": ".params.on",
            "for_each": {"items": "$.list", "steps": [
                {"name": "say", "plugin": "core", "action": "log"}]}
        }))
        .expect("valid loop");
        let each = step.for_each.as_ref().expect("a loop");
        assert_eq!(
            (
                each.item_name.as_str(),
                each.concurrency,
                each.continue_on_error
            ),
            ("item", 1, false)
        );
        assert_eq!(step.qualified_action(), "for_each");
        assert!(uses_plugin(std::slice::from_ref(&step), "core"));
        assert!(!uses_plugin(std::slice::from_ref(&step), "storage"));
        let json = serde_json::to_value(&step).expect("serializes");
        assert!(json.get("plugin").is_none() && json.get("action").is_none());
        assert_eq!(json["for_each"]["as"], "item");

        let err = serde_json::from_value::<Step>(serde_json::json!({
            "name": "each", "for_each": {"items": "$.list", "steps": [], "parallel": 2}
        }))
        .expect_err("unknown field");
        assert!(err.to_string().contains("parallel"), "{err}");
    }

    #[test]
    fn an_existing_step_serializes_exactly_as_before() {
        let text = r#"{"name":"a","plugin":"core","action":"log","parameters":{"message":"hi"},"timeout_ms":5}"#;
        let step: Step = serde_json::from_str(text).expect("valid step");
        assert_eq!(serde_json::to_string(&step).expect("serializes"), text);
    }
}
