//! Checking a pipeline's steps when it is created or updated.

use crate::reference::{PARAMS_ROOT, RESULT_ROOT, Reference, for_each_reference};
use crate::{ActionError, Registry, Step};
use serde_json::Value;
use std::collections::HashMap;

/// Why a pipeline was refused: which step, which field, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidPipeline {
    /// Stable snake_case code for programs, e.g. `unknown_action`.
    pub code: &'static str,
    /// The step at fault, when it has a name.
    pub step: Option<String>,
    /// JSON path of the offending field, e.g. `steps[2].action`.
    pub field: String,
    /// A sentence for people.
    pub message: String,
}

impl InvalidPipeline {
    fn new(
        code: &'static str,
        step: Option<&str>,
        field: String,
        message: impl Into<String>,
    ) -> InvalidPipeline {
        InvalidPipeline {
            code,
            step: step.map(str::to_string),
            field,
            message: message.into(),
        }
    }
}

/// Checks `steps` against `registry`; the first problem found, in step order,
/// is returned.
///
/// Refused: no steps; an empty step name, one containing `.` (it could not be
/// referenced), the reserved name `params`, or a repeated one; an unknown
/// plugin or action; a reference that is malformed or names an unknown, the
/// same or a later step; an `output` value that is not `$.result` or
/// `$.result.path`; a `timeout_ms` of 0 or over [`MAX_STEP_TIMEOUT_MS`];
/// and whatever the action's own [`crate::Action::check`] refuses.
pub fn validate(steps: &[Step], registry: &Registry) -> Result<(), InvalidPipeline> {
    if steps.is_empty() {
        return Err(InvalidPipeline::new(
            "no_steps",
            None,
            "steps".to_string(),
            "a pipeline needs at least one step",
        ));
    }
    // First position of each name, to tell "later step" from "unknown step".
    let mut positions: HashMap<&str, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        positions.entry(step.name.as_str()).or_insert(i);
    }
    for (i, step) in steps.iter().enumerate() {
        check_name(i, step, &positions)?;
        check_action(i, step, registry)?;
        check_references(i, step, steps, &positions)?;
        check_output(i, step)?;
        check_timeout(i, step)?;
    }
    Ok(())
}

/// Longest step timeout: 30 days, as for a task's.
pub const MAX_STEP_TIMEOUT_MS: u64 = 30 * 24 * 3600 * 1000;

fn check_timeout(i: usize, step: &Step) -> Result<(), InvalidPipeline> {
    match step.timeout_ms {
        Some(ms) if !(1..=MAX_STEP_TIMEOUT_MS).contains(&ms) => Err(InvalidPipeline::new(
            "invalid_timeout",
            Some(&step.name),
            format!("steps[{i}].timeout_ms"),
            format!("timeout_ms must be between 1 and {MAX_STEP_TIMEOUT_MS}, got {ms}"),
        )),
        _ => Ok(()),
    }
}

fn check_name(
    i: usize,
    step: &Step,
    positions: &HashMap<&str, usize>,
) -> Result<(), InvalidPipeline> {
    let field = format!("steps[{i}].name");
    let name = step.name.as_str();
    if name.trim().is_empty() {
        return Err(InvalidPipeline::new(
            "invalid_step_name",
            None,
            field,
            "a step name must not be empty",
        ));
    }
    let refuse = |message: String| {
        Err(InvalidPipeline::new(
            "invalid_step_name",
            Some(name),
            field.clone(),
            message,
        ))
    };
    if name.contains('.') {
        return refuse(format!(
            "step name \"{name}\" must not contain \".\": references use it to separate keys"
        ));
    }
    if name == PARAMS_ROOT {
        return refuse(format!(
            "step name \"{PARAMS_ROOT}\" is reserved: \"$.{PARAMS_ROOT}\" means the execution's parameters"
        ));
    }
    match positions.get(name) {
        Some(&first) if first != i => Err(InvalidPipeline::new(
            "duplicate_step_name",
            Some(name),
            field,
            format!("step name \"{name}\" is already used by steps[{first}]"),
        )),
        _ => Ok(()),
    }
}

fn check_action(i: usize, step: &Step, registry: &Registry) -> Result<(), InvalidPipeline> {
    let name = Some(step.name.as_str());
    let Some(action) = registry.get(&step.plugin, &step.action) else {
        let known = registry.actions_of(&step.plugin);
        if known.is_empty() {
            return Err(InvalidPipeline::new(
                "unknown_plugin",
                name,
                format!("steps[{i}].plugin"),
                format!(
                    "unknown plugin \"{}\"; known plugins: {}",
                    step.plugin,
                    registry.plugins().join(", ")
                ),
            ));
        }
        return Err(InvalidPipeline::new(
            "unknown_action",
            name,
            format!("steps[{i}].action"),
            format!(
                "unknown action \"{}\"; known actions: {}",
                step.qualified_action(),
                known.join(", ")
            ),
        ));
    };
    action.check(&step.parameters).map_err(|err| match err {
        ActionError::Parameter {
            name: parameter,
            message,
        } => InvalidPipeline::new(
            "invalid_parameter",
            name,
            format!("steps[{i}].parameters.{parameter}"),
            format!(
                "{}: parameter \"{parameter}\" {message}",
                step.qualified_action()
            ),
        ),
        other => InvalidPipeline::new(
            "invalid_parameter",
            name,
            format!("steps[{i}].parameters"),
            format!("{}: {other}", step.qualified_action()),
        ),
    })
}

fn check_references(
    i: usize,
    step: &Step,
    steps: &[Step],
    positions: &HashMap<&str, usize>,
) -> Result<(), InvalidPipeline> {
    let mut first_problem: Option<(String, String)> = None;
    let parameters = Value::Object(step.parameters.clone());
    for_each_reference(
        &parameters,
        &format!("steps[{i}].parameters"),
        &mut |at, text| {
            if first_problem.is_some() {
                return;
            }
            if let Err(message) = reference_problem(i, text, steps, positions) {
                first_problem = Some((at.to_string(), message));
            }
        },
    );
    match first_problem {
        None => Ok(()),
        Some((field, message)) => Err(InvalidPipeline::new(
            "invalid_reference",
            Some(&step.name),
            field,
            message,
        )),
    }
}

/// Why the reference `text` in step `i` cannot be resolved at run time.
fn reference_problem(
    i: usize,
    text: &str,
    steps: &[Step],
    positions: &HashMap<&str, usize>,
) -> Result<(), String> {
    let Some(reference) = Reference::parse(text)? else {
        return Ok(());
    };
    if reference.root == PARAMS_ROOT {
        return Ok(());
    }
    match positions.get(reference.root) {
        Some(&j) if j < i => Ok(()),
        Some(&j) if j == i => Err(format!(
            "\"{text}\" refers to this step itself; a step can only read earlier steps"
        )),
        Some(&j) => Err(format!(
            "\"{text}\" refers to step \"{}\", which runs later (steps[{j}]); a step can only read earlier steps",
            reference.root
        )),
        None => {
            let earlier: Vec<&str> = steps[..i].iter().map(|s| s.name.as_str()).collect();
            let hint = if reference.root == RESULT_ROOT {
                "; \"$.result\" is only meaningful in \"output\"".to_string()
            } else if earlier.is_empty() {
                "; there are no earlier steps".to_string()
            } else {
                format!("; earlier steps: {}", earlier.join(", "))
            };
            Err(format!(
                "\"{text}\" refers to unknown step \"{}\"{hint}",
                reference.root
            ))
        }
    }
}

fn check_output(i: usize, step: &Step) -> Result<(), InvalidPipeline> {
    let Some(output) = &step.output else {
        return Ok(());
    };
    for (key, value) in output {
        let field = format!("steps[{i}].output.{key}");
        let refuse = |message: String| {
            Err(InvalidPipeline::new(
                "invalid_output",
                Some(&step.name),
                field.clone(),
                message,
            ))
        };
        let Value::String(text) = value else {
            return refuse(format!(
                "an output value must be \"$.result\" or \"$.result.path\", got {}",
                crate::reference::kind(value)
            ));
        };
        match Reference::parse(text) {
            Ok(Some(reference)) if reference.root == RESULT_ROOT => {}
            Err(message) => return refuse(message),
            _ => {
                return refuse(format!(
                    "an output value must be \"$.result\" or \"$.result.path\", got \"{text}\""
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps(value: Value) -> Vec<Step> {
        serde_json::from_value(value).expect("valid steps JSON")
    }

    fn builtin() -> Registry {
        Registry::confined(&crate::Confinement::default()).unwrap_or_default()
    }

    fn refusal(value: Value) -> InvalidPipeline {
        validate(&steps(value), &builtin()).expect_err("should be refused")
    }

    #[test]
    fn accepts_a_pipeline_with_references_to_earlier_steps_and_params() {
        let ok = steps(json!([
            {"name": "load", "plugin": "file", "action": "read",
             "parameters": {"path": "$.params.input", "format": "csv"},
             "output": {"data": "$.result", "rows": "$.result.data"}},
            {"name": "shape", "plugin": "transform", "action": "jq",
             "parameters": {"program": "map(.a)", "input": "$.load.rows"}},
            {"name": "say", "plugin": "core", "action": "log",
             "parameters": {"message": {"nested": ["$.shape", "$.params"]}}}
        ]));
        validate(&ok, &builtin()).expect("valid");
    }

    #[test]
    fn refuses_no_steps() {
        let err = refusal(json!([]));
        assert_eq!((err.code, err.field.as_str()), ("no_steps", "steps"));
    }

    #[test]
    fn refuses_bad_and_duplicate_names() {
        let err = refusal(json!([{"name": " ", "plugin": "core", "action": "log"}]));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("invalid_step_name", "steps[0].name")
        );
        assert_eq!(err.step, None);

        let err = refusal(json!([
            {"name": "a", "plugin": "core", "action": "log"},
            {"name": "a", "plugin": "core", "action": "log"}
        ]));
        assert_eq!(err.code, "duplicate_step_name");
        assert_eq!(err.field, "steps[1].name");
        assert_eq!(err.step.as_deref(), Some("a"));
        assert!(err.message.contains("steps[0]"), "{}", err.message);

        let err = refusal(json!([{"name": "a.b", "plugin": "core", "action": "log"}]));
        assert_eq!(err.field, "steps[0].name");
        let err = refusal(json!([{"name": "params", "plugin": "core", "action": "log"}]));
        assert!(err.message.contains("reserved"), "{}", err.message);
    }

    #[test]
    fn refuses_unknown_plugins_and_actions_listing_the_known_ones() {
        let err = refusal(json!([{"name": "a", "plugin": "ftp", "action": "get"}]));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("unknown_plugin", "steps[0].plugin")
        );
        assert!(
            err.message.contains("core, file, http, transform"),
            "{}",
            err.message
        );

        let err = refusal(json!([{"name": "a", "plugin": "file", "action": "delete"}]));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("unknown_action", "steps[0].action")
        );
        assert!(
            err.message.contains("file.read, file.write"),
            "{}",
            err.message
        );
        assert_eq!(err.step.as_deref(), Some("a"));
    }

    #[test]
    fn refuses_references_to_unknown_same_or_later_steps_anywhere_in_parameters() {
        let err = refusal(json!([
            {"name": "a", "plugin": "core", "action": "log",
             "parameters": {"message": {"deep": [1, "$.nope.x"]}}}
        ]));
        assert_eq!(err.code, "invalid_reference");
        assert_eq!(err.field, "steps[0].parameters.message.deep[1]");
        assert!(
            err.message.contains("unknown step \"nope\""),
            "{}",
            err.message
        );

        let err = refusal(json!([
            {"name": "a", "plugin": "core", "action": "log", "parameters": {"message": "$.a"}}
        ]));
        assert!(err.message.contains("itself"), "{}", err.message);

        let err = refusal(json!([
            {"name": "a", "plugin": "core", "action": "log", "parameters": {"message": "$.b.x"}},
            {"name": "b", "plugin": "core", "action": "log"}
        ]));
        assert_eq!(err.field, "steps[0].parameters.message");
        assert!(
            err.message.contains("runs later (steps[1])"),
            "{}",
            err.message
        );

        let err = refusal(json!([
            {"name": "a", "plugin": "core", "action": "log", "parameters": {"message": "$.a..b"}}
        ]));
        assert!(err.message.contains("malformed"), "{}", err.message);
    }

    #[test]
    fn refuses_output_values_that_are_not_result_references() {
        for bad in [
            json!("$.params.x"),
            json!("result"),
            json!(3),
            json!("$.result..x"),
        ] {
            let err = refusal(json!([
                {"name": "a", "plugin": "core", "action": "log", "output": {"k": bad}}
            ]));
            assert_eq!(err.code, "invalid_output");
            assert_eq!(err.field, "steps[0].output.k");
        }
    }

    #[test]
    fn refuses_bad_parameters_naming_the_parameter() {
        let err = refusal(json!([
            {"name": "a", "plugin": "file", "action": "read",
             "parameters": {"path": "x", "format": "xml"}}
        ]));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("invalid_parameter", "steps[0].parameters.format")
        );
        assert!(
            err.message.contains("csv, json, ndjson, text"),
            "{}",
            err.message
        );

        let err = refusal(json!([
            {"name": "a", "plugin": "transform", "action": "jq",
             "parameters": {"program": ".[", "input": 1}}
        ]));
        assert_eq!(err.field, "steps[0].parameters.program");

        let err = refusal(json!([
            {"name": "a", "plugin": "core", "action": "sleep", "parameters": {"ms": "10"}}
        ]));
        assert_eq!(err.field, "steps[0].parameters.ms");

        // A reference in place of a typed value is checked at run time instead.
        let ok = steps(json!([
            {"name": "a", "plugin": "core", "action": "sleep", "parameters": {"ms": "$.params.ms"}}
        ]));
        validate(&ok, &builtin()).expect("references are not type-checked");
    }
}
