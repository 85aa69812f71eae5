//! The JSON schema of a pipeline step, built from the actions' parameter
//! tables: one alternative per `plugin.action`, with that action's
//! parameters, so a program can check a pipeline definition against the
//! OpenAPI document before sending it.
//!
//! A parameter whose value is a reference (`"$.params.x"`, `"$.step.key"`)
//! is resolved only when the step runs, so each typed parameter also takes
//! a reference string.

use mimir_pipeline::{ActionDoc, ParamType, Registry};
use serde_json::{Map, Value, json};

/// The name of the step schema among the document's components.
pub const STEP_SCHEMA: &str = "PipelineStep";

/// A string that is entirely a reference.
fn reference() -> Value {
    json!({"type": "string", "pattern": "^\\$\\.", "description": "A reference, resolved when the step runs"})
}

fn parameter_schema(kind: ParamType, description: &str) -> Value {
    let typed = match kind {
        ParamType::String => json!({"type": "string"}),
        ParamType::Integer => json!({"type": "integer", "minimum": 0}),
        ParamType::Boolean => json!({"type": "boolean"}),
        ParamType::Object => json!({"type": "object"}),
        ParamType::Array => json!({"type": "array"}),
        ParamType::Any => return json!({ "description": description }),
    };
    if kind == ParamType::String {
        let mut typed = typed;
        typed["description"] = json!(description);
        return typed;
    }
    json!({ "anyOf": [typed, reference()], "description": description })
}

fn action_schema(plugin: &str, action: &str, doc: &ActionDoc) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for param in doc.parameters {
        properties.insert(
            param.name.to_string(),
            parameter_schema(param.kind, param.description),
        );
        if param.required {
            required.push(param.name);
        }
    }
    let mut step_required = vec!["name", "plugin", "action"];
    if !required.is_empty() {
        step_required.push("parameters");
    }
    json!({
        "title": format!("{plugin}.{action}"),
        "description": doc.summary,
        "type": "object",
        "required": step_required,
        "additionalProperties": false,
        "properties": {
            "name": {
                "type": "string", "minLength": 1, "maxLength": mimir_core::LABEL_MAX_LEN,
                "pattern": mimir_core::LABEL_PATTERN,
                "description": "Unique within the pipeline; later steps read its entry as $.name"
            },
            "plugin": {"type": "string", "enum": [plugin]},
            "action": {"type": "string", "enum": [action]},
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false
            },
            "output": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "string"},
                "description": "How to keep the result R: each value is $.result or $.result.path"
            },
            "timeout_ms": {
                "type": ["integer", "null"], "minimum": 1,
                "description": "The longest the step may run, in milliseconds"
            }
        }
    })
}

/// The step schema: one alternative per action of `registry`.
pub fn step_schema(registry: &Registry) -> Value {
    let alternatives: Vec<Value> = registry
        .actions()
        .iter()
        .map(|a| action_schema(a.plugin(), a.action(), a.doc()))
        .collect();
    json!({
        "description": "A pipeline step {name, plugin, action, parameters, output, timeout_ms}; \
                        the parameters are those of the action (GET /api/plugins)",
        "oneOf": alternatives
    })
}
