//! Checking a pipeline's steps when it is created or updated.

use crate::reference::{PARAMS_ROOT, RESULT_ROOT, Reference, for_each_reference};
use crate::step::{ForEach, MAX_FOR_EACH_CONCURRENCY};
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
/// plugin or action, or a missing one on a step without `for_each`; a
/// reference that is malformed or names an unknown, the same or a later
/// step; an `output` value that is not `$.result` or `$.result.path`; a
/// `timeout_ms` of 0 or over [`MAX_STEP_TIMEOUT_MS`]; a `when` that does not
/// compile; and whatever the action's own [`crate::Action::check`] refuses.
///
/// A `for_each` step has no plugin, action or parameters; its `items` must be
/// a reference, its `as` a step-like name that no step of the pipeline uses,
/// its `concurrency` 1 to [`MAX_FOR_EACH_CONCURRENCY`], and its inner steps
/// are checked as above: their names unique within the loop and unlike any
/// name outside it, their references to `$.<as>`, earlier inner steps, and
/// the steps before the loop. Errors name nested fields in full, e.g.
/// `steps[2].for_each.steps[0].parameters.url`.
pub fn validate(steps: &[Step], registry: &Registry) -> Result<(), InvalidPipeline> {
    if steps.is_empty() {
        return Err(InvalidPipeline::new(
            "no_steps",
            None,
            "steps".to_string(),
            "a pipeline needs at least one step",
        ));
    }
    check_level("steps", steps, &Enclosing::default(), registry)
}

/// What the steps of a loop see of the levels around it.
#[derive(Debug, Clone, Default)]
struct Enclosing<'a> {
    /// Names they may read: earlier steps of enclosing levels and the items
    /// of enclosing loops.
    readable: Vec<&'a str>,
    /// Every name used around them, and where: inner names must differ.
    taken: HashMap<&'a str, String>,
}

/// Checks the steps of one level, `path` naming them (`steps` or
/// `steps[2].for_each.steps`).
fn check_level(
    path: &str,
    steps: &[Step],
    enclosing: &Enclosing<'_>,
    registry: &Registry,
) -> Result<(), InvalidPipeline> {
    // First position of each name, to tell "later step" from "unknown step".
    let mut positions: HashMap<&str, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        positions.entry(step.name.as_str()).or_insert(i);
    }
    let level = Level {
        path,
        steps,
        positions,
        enclosing,
    };
    for (i, step) in steps.iter().enumerate() {
        let at = format!("{path}[{i}]");
        check_name(&at, i, step, &level)?;
        match &step.for_each {
            Some(each) => check_for_each(&at, i, step, each, &level, registry)?,
            None => {
                check_action(&at, step, registry)?;
                check_references(&at, i, step, &level)?;
            }
        }
        check_when(&at, step)?;
        check_output(&at, step)?;
        check_timeout(&at, step)?;
    }
    Ok(())
}

/// One level of steps and what it sees.
struct Level<'a> {
    path: &'a str,
    steps: &'a [Step],
    positions: HashMap<&'a str, usize>,
    enclosing: &'a Enclosing<'a>,
}

/// Longest step timeout: 30 days, as for a task's.
pub const MAX_STEP_TIMEOUT_MS: u64 = 30 * 24 * 3600 * 1000;

fn check_timeout(at: &str, step: &Step) -> Result<(), InvalidPipeline> {
    match step.timeout_ms {
        Some(ms) if !(1..=MAX_STEP_TIMEOUT_MS).contains(&ms) => Err(InvalidPipeline::new(
            "invalid_timeout",
            Some(&step.name),
            format!("{at}.timeout_ms"),
            format!("timeout_ms must be between 1 and {MAX_STEP_TIMEOUT_MS}, got {ms}"),
        )),
        _ => Ok(()),
    }
}

fn check_when(at: &str, step: &Step) -> Result<(), InvalidPipeline> {
    let Some(program) = &step.when else {
        return Ok(());
    };
    crate::jq::compile(program).map(drop).map_err(|reason| {
        InvalidPipeline::new(
            "invalid_when",
            Some(&step.name),
            format!("{at}.when"),
            format!("when does not compile: {reason}"),
        )
    })
}

/// Why `name` cannot name a step or a loop's item, if it cannot.
fn name_problem(name: &str, what: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some(format!("a {what} must not be empty"));
    }
    if name.contains('.') {
        return Some(format!(
            "{what} \"{name}\" must not contain \".\": references use it to separate keys"
        ));
    }
    if name == PARAMS_ROOT {
        return Some(format!(
            "{what} \"{PARAMS_ROOT}\" is reserved: \"$.{PARAMS_ROOT}\" means the execution's parameters"
        ));
    }
    None
}

fn check_name(at: &str, i: usize, step: &Step, level: &Level<'_>) -> Result<(), InvalidPipeline> {
    let field = format!("{at}.name");
    let name = step.name.as_str();
    if let Some(message) = name_problem(name, "step name") {
        let step = (!name.trim().is_empty()).then_some(name);
        return Err(InvalidPipeline::new(
            "invalid_step_name",
            step,
            field,
            message,
        ));
    }
    let duplicate = |used_by: &str| {
        Err(InvalidPipeline::new(
            "duplicate_step_name",
            Some(name),
            field.clone(),
            format!("step name \"{name}\" is already used by {used_by}"),
        ))
    };
    match level.positions.get(name) {
        Some(&first) if first != i => return duplicate(&format!("{}[{first}]", level.path)),
        _ => {}
    }
    match level.enclosing.taken.get(name) {
        Some(used_by) => duplicate(used_by),
        None => Ok(()),
    }
}

fn check_for_each(
    at: &str,
    i: usize,
    step: &Step,
    each: &ForEach,
    level: &Level<'_>,
    registry: &Registry,
) -> Result<(), InvalidPipeline> {
    let name = Some(step.name.as_str());
    let refuse = |code: &'static str, field: &str, message: String| {
        Err(InvalidPipeline::new(
            code,
            name,
            format!("{at}.{field}"),
            message,
        ))
    };
    for (field, set) in [
        ("plugin", !step.plugin.is_empty()),
        ("action", !step.action.is_empty()),
        ("parameters", !step.parameters.is_empty()),
    ] {
        if set {
            return refuse(
                "invalid_for_each",
                field,
                format!("a for_each step runs its inner steps, so it has no {field}"),
            );
        }
    }
    match Reference::parse(&each.items) {
        Ok(Some(reference)) if reference.root != RESULT_ROOT => {
            if let Err(message) = reference_problem(i, &each.items, level) {
                return refuse("invalid_reference", "for_each.items", message);
            }
        }
        Err(message) => return refuse("invalid_reference", "for_each.items", message),
        _ => {
            return refuse(
                "invalid_for_each",
                "for_each.items",
                format!(
                    "items must be a reference to an array, such as \"$.load.rows\", got \"{}\"",
                    each.items
                ),
            );
        }
    }
    let item = each.item_name.as_str();
    if let Some(message) = name_problem(item, "loop item name (as)") {
        return refuse("invalid_for_each", "for_each.as", message);
    }
    if item == RESULT_ROOT {
        return refuse(
            "invalid_for_each",
            "for_each.as",
            format!(
                "\"{RESULT_ROOT}\" is reserved: \"$.{RESULT_ROOT}\" means an action's result in output"
            ),
        );
    }
    let used_by = match level.positions.get(item) {
        Some(&j) => Some(format!("{}[{j}]", level.path)),
        None => level.enclosing.taken.get(item).cloned(),
    };
    if let Some(used_by) = used_by {
        return refuse(
            "invalid_for_each",
            "for_each.as",
            format!("\"{item}\" is already the name of {used_by}; pick another name for the item"),
        );
    }
    if !(1..=MAX_FOR_EACH_CONCURRENCY).contains(&each.concurrency) {
        return refuse(
            "invalid_for_each",
            "for_each.concurrency",
            format!(
                "concurrency must be between 1 and {MAX_FOR_EACH_CONCURRENCY}, got {}",
                each.concurrency
            ),
        );
    }
    if each.steps.is_empty() {
        return refuse(
            "no_steps",
            "for_each.steps",
            "a for_each step needs at least one inner step".to_string(),
        );
    }
    let mut inner = level.enclosing.clone();
    for earlier in &level.steps[..i] {
        inner.readable.push(&earlier.name);
    }
    inner.readable.push(item);
    for (j, other) in level.steps.iter().enumerate() {
        inner
            .taken
            .entry(&other.name)
            .or_insert_with(|| format!("{}[{j}]", level.path));
    }
    inner.taken.insert(item, format!("{at}.for_each.as"));
    check_level(
        &format!("{at}.for_each.steps"),
        &each.steps,
        &inner,
        registry,
    )
}

fn check_action(at: &str, step: &Step, registry: &Registry) -> Result<(), InvalidPipeline> {
    let name = Some(step.name.as_str());
    for (field, value) in [("plugin", &step.plugin), ("action", &step.action)] {
        if value.is_empty() {
            return Err(InvalidPipeline::new(
                "missing_field",
                name,
                format!("{at}.{field}"),
                format!("a step needs a {field} (or a for_each)"),
            ));
        }
    }
    let Some(action) = registry.get(&step.plugin, &step.action) else {
        let known = registry.actions_of(&step.plugin);
        if known.is_empty() {
            return Err(InvalidPipeline::new(
                "unknown_plugin",
                name,
                format!("{at}.plugin"),
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
            format!("{at}.action"),
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
            format!("{at}.parameters.{parameter}"),
            format!(
                "{}: parameter \"{parameter}\" {message}",
                step.qualified_action()
            ),
        ),
        other => InvalidPipeline::new(
            "invalid_parameter",
            name,
            format!("{at}.parameters"),
            format!("{}: {other}", step.qualified_action()),
        ),
    })
}

fn check_references(
    at: &str,
    i: usize,
    step: &Step,
    level: &Level<'_>,
) -> Result<(), InvalidPipeline> {
    let mut first_problem: Option<(String, String)> = None;
    let parameters = Value::Object(step.parameters.clone());
    for_each_reference(&parameters, &format!("{at}.parameters"), &mut |at, text| {
        if first_problem.is_some() {
            return;
        }
        if let Err(message) = reference_problem(i, text, level) {
            first_problem = Some((at.to_string(), message));
        }
    });
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

/// Why the reference `text` in step `i` of `level` cannot be resolved at run
/// time.
fn reference_problem(i: usize, text: &str, level: &Level<'_>) -> Result<(), String> {
    let Some(reference) = Reference::parse(text)? else {
        return Ok(());
    };
    let root = reference.root;
    if root == PARAMS_ROOT {
        return Ok(());
    }
    match level.positions.get(root) {
        Some(&j) if j < i => return Ok(()),
        Some(&j) if j == i => {
            return Err(format!(
                "\"{text}\" refers to this step itself; a step can only read earlier steps"
            ));
        }
        Some(&j) => {
            return Err(format!(
                "\"{text}\" refers to step \"{root}\", which runs later ({}[{j}]); a step can only read earlier steps",
                level.path
            ));
        }
        None => {}
    }
    if level.enclosing.readable.contains(&root) {
        return Ok(());
    }
    if let Some(at) = level.enclosing.taken.get(root) {
        return Err(format!(
            "\"{text}\" refers to \"{root}\" ({at}), which has not completed while this loop runs; a step can only read earlier steps"
        ));
    }
    let mut earlier: Vec<&str> = level.enclosing.readable.clone();
    earlier.extend(level.steps[..i].iter().map(|s| s.name.as_str()));
    let hint = if root == RESULT_ROOT {
        "; \"$.result\" is only meaningful in \"output\"".to_string()
    } else if earlier.is_empty() {
        "; there are no earlier steps".to_string()
    } else {
        format!("; earlier steps: {}", earlier.join(", "))
    };
    Err(format!(
        "\"{text}\" refers to unknown step \"{root}\"{hint}"
    ))
}

fn check_output(at: &str, step: &Step) -> Result<(), InvalidPipeline> {
    let Some(output) = &step.output else {
        return Ok(());
    };
    for (key, value) in output {
        let field = format!("{at}.output.{key}");
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

    fn looped(inner: Value) -> Value {
        json!([
            {"name": "list", "plugin": "transform", "action": "jq",
             "parameters": {"program": "[1, 2]"}},
            {"name": "each", "for_each": {"items": "$.list", "as": "row", "concurrency": 4,
             "steps": inner}},
            {"name": "after", "plugin": "core", "action": "log"}
        ])
    }

    #[test]
    fn accepts_loops_reading_their_item_earlier_inner_and_outer_steps() {
        let ok = steps(looped(json!([
            {"name": "get", "plugin": "core", "action": "log",
             "parameters": {"message": ["$.row", "$.list", "$.params.x"]}},
            {"name": "use", "plugin": "core", "action": "log", "when": ".row > 1",
             "parameters": {"message": "$.get"}}
        ])));
        validate(&ok, &builtin()).expect("valid");
    }

    #[test]
    fn refuses_unknown_and_later_references_inside_loops_naming_the_nested_field() {
        let err = refusal(looped(json!([
            {"name": "get", "plugin": "core", "action": "log",
             "parameters": {"message": {"url": "$.nope.url"}}}
        ])));
        assert_eq!(err.code, "invalid_reference");
        assert_eq!(
            err.field,
            "steps[1].for_each.steps[0].parameters.message.url"
        );
        assert!(
            err.message.contains("unknown step \"nope\""),
            "{}",
            err.message
        );
        assert!(err.message.contains("list, row"), "{}", err.message);

        let err = refusal(looped(json!([
            {"name": "get", "plugin": "core", "action": "log", "parameters": {"message": "$.after"}}
        ])));
        assert_eq!(err.field, "steps[1].for_each.steps[0].parameters.message");
        assert!(err.message.contains("steps[2]"), "{}", err.message);

        let err = refusal(looped(json!([
            {"name": "get", "plugin": "core", "action": "log", "parameters": {"message": "$.each"}}
        ])));
        assert!(err.message.contains("has not completed"), "{}", err.message);

        let err = refusal(looped(json!([
            {"name": "a", "plugin": "core", "action": "log", "parameters": {"message": "$.b"}},
            {"name": "b", "plugin": "core", "action": "log"}
        ])));
        assert_eq!(err.field, "steps[1].for_each.steps[0].parameters.message");
        assert!(
            err.message
                .contains("runs later (steps[1].for_each.steps[1])"),
            "{}",
            err.message
        );
    }

    #[test]
    fn refuses_bad_loops_naming_the_field() {
        let refused = |each: Value| {
            refusal(json!([
                {"name": "list", "plugin": "core", "action": "log"},
                {"name": "each", "for_each": each}
            ]))
        };
        let inner = json!([{"name": "x", "plugin": "core", "action": "log"}]);
        let err = refused(json!({"items": "list", "steps": inner}));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("invalid_for_each", "steps[1].for_each.items")
        );
        let err = refused(json!({"items": "$.later", "steps": inner}));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("invalid_reference", "steps[1].for_each.items")
        );
        let err = refused(json!({"items": "$.list", "concurrency": 0, "steps": inner}));
        assert_eq!(err.field, "steps[1].for_each.concurrency");
        let err = refused(json!({"items": "$.list", "concurrency": 33, "steps": inner}));
        assert_eq!(err.field, "steps[1].for_each.concurrency");
        for bad in ["params", "list", "each", "a.b", "", "result"] {
            let err = refused(json!({"items": "$.list", "as": bad, "steps": inner}));
            assert_eq!(err.field, "steps[1].for_each.as", "{bad}: {}", err.message);
        }
        let err = refused(json!({"items": "$.list", "steps": []}));
        assert_eq!(err.field, "steps[1].for_each.steps");
        let err = refused(json!({"items": "$.list", "steps": [
            {"name": "x", "plugin": "core", "action": "log"},
            {"name": "x", "plugin": "core", "action": "log"}]}));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("duplicate_step_name", "steps[1].for_each.steps[1].name")
        );
        let err = refused(json!({"items": "$.list", "steps": [
            {"name": "list", "plugin": "core", "action": "log"}]}));
        assert_eq!(err.field, "steps[1].for_each.steps[0].name");
        assert!(err.message.contains("steps[0]"), "{}", err.message);
        let err = refused(json!({"items": "$.list", "steps": [
            {"name": "x", "plugin": "file", "action": "read", "parameters": {"path": "p", "format": "xml"}}]}));
        assert_eq!(err.field, "steps[1].for_each.steps[0].parameters.format");
        let err = refused(json!({"items": "$.list", "steps": [{"name": "x", "plugin": "core"}]}));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("missing_field", "steps[1].for_each.steps[0].action")
        );

        let err = refusal(json!([{"name": "e", "plugin": "core", "action": "log",
            "for_each": {"items": "$.params.x", "steps": inner}}]));
        assert_eq!(err.field, "steps[0].plugin");
        let err = refusal(json!([{"name": "e"}]));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("missing_field", "steps[0].plugin")
        );
    }

    #[test]
    fn refuses_a_when_that_does_not_compile_naming_the_field() {
        let err = refusal(looped(json!([
            {"name": "x", "plugin": "core", "action": "log", "when": ".row >"}
        ])));
        assert_eq!(
            (err.code, err.field.as_str()),
            ("invalid_when", "steps[1].for_each.steps[0].when")
        );
        let err =
            refusal(json!([{"name": "x", "plugin": "core", "action": "log", "when": "nosuch(1)"}]));
        assert_eq!(err.field, "steps[0].when");
    }

    #[test]
    fn checkpoint_keys_are_checked_when_literal() {
        let err = refusal(
            json!([{"name": "x", "plugin": "checkpoint", "action": "save",
            "parameters": {"key": "", "value": 1}}]),
        );
        assert_eq!(err.field, "steps[0].parameters.key");
        let ok = steps(
            json!([{"name": "x", "plugin": "checkpoint", "action": "load",
            "parameters": {"key": "$.params.k", "default": 0}}]),
        );
        validate(&ok, &builtin()).expect("valid");
    }
}
