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
            },
            "when": when()
        }
    })
}

/// A step's condition.
fn when() -> Value {
    json!({
        "type": ["string", "null"], "minLength": 1,
        "description": "A jq expression over the context ({params, <step>: entry, ...}); the step is skipped unless its first output is truthy"
    })
}

/// The alternative of a step that runs other steps per item of a list.
fn for_each_schema() -> Value {
    json!({
        "title": "for_each",
        "description": "Runs its steps once per item of a list; its entry is the list of each item's step entries, in item order",
        "type": "object",
        "required": ["name", "for_each"],
        "additionalProperties": false,
        "properties": {
            "name": {
                "type": "string", "minLength": 1, "maxLength": mimir_core::LABEL_MAX_LEN,
                "pattern": mimir_core::LABEL_PATTERN,
                "description": "Unique within the pipeline"
            },
            "for_each": {
                "type": "object",
                "required": ["items", "steps"],
                "additionalProperties": false,
                "properties": {
                    "items": reference(),
                    "as": {"type": "string", "minLength": 1, "maxLength": mimir_core::LABEL_MAX_LEN, "pattern": mimir_core::LABEL_PATTERN, "description": "The item's name in the context; defaults to item"},
                    "concurrency": {"type": "integer", "minimum": 1, "maximum": 32, "description": "Items run at once; defaults to 1"},
                    "continue_on_error": {"type": "boolean", "description": "Keep going past a failed item, recording its error"},
                    "steps": {"type": "array", "minItems": 1, "items": {"$ref": format!("#/components/schemas/{STEP_SCHEMA}")}}
                }
            },
            "parameters": {"type": "object", "maxProperties": 0, "description": "Always empty: the loop's steps have the parameters"},
            "output": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "string"},
                "description": "How to keep the result R: each value is $.result or $.result.path"
            },
            "timeout_ms": {"type": ["integer", "null"], "minimum": 1},
            "when": when()
        }
    })
}

/// The step schema: one alternative per action of `registry`.
pub fn step_schema(registry: &Registry) -> Value {
    let mut alternatives: Vec<Value> = registry
        .actions()
        .iter()
        .map(|a| action_schema(a.plugin(), a.action(), a.doc()))
        .collect();
    alternatives.push(for_each_schema());
    json!({
        "description": "A pipeline step {name, plugin, action, parameters, output, timeout_ms}; \
                        the parameters are those of the action (GET /api/plugins)",
        "oneOf": alternatives
    })
}
