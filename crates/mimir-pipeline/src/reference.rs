//! References: strings such as `$.params.key` or `$.load.data` that stand for a
//! value of the run.
//!
//! A string is a reference only when the whole string is one: it starts with
//! `$.` and continues with a root (`params`, a step name, or `result` in an
//! `output` mapping) and optional keys, all separated by dots. Any other string
//! is left as it is. A key that is a decimal number also indexes an array
//! (`$.load.data.0`).

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// What every reference starts with.
pub const PREFIX: &str = "$.";

/// The root that names the execution's parameters.
pub const PARAMS_ROOT: &str = "params";

/// The root that names an action's result, in `output` mappings only.
pub const RESULT_ROOT: &str = "result";

/// A parsed reference: its root and the keys below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference<'a> {
    /// The whole reference as written.
    pub text: &'a str,
    /// `params`, `result`, or a step name.
    pub root: &'a str,
    /// Keys below the root, outermost first; empty for the root itself.
    pub keys: Vec<&'a str>,
}

/// True when `value` is a string that is meant as a reference (it starts with
/// `$.`), well-formed or not.
pub fn is_reference(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.starts_with(PREFIX))
}

impl<'a> Reference<'a> {
    /// Parses `text`: `Ok(None)` when it is not a reference at all, `Err` with a
    /// reason when it starts with `$.` but is malformed (an empty key).
    pub fn parse(text: &'a str) -> Result<Option<Reference<'a>>, String> {
        let Some(rest) = text.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        let mut parts = rest.split('.');
        let root = parts.next().unwrap_or_default();
        let keys: Vec<&str> = parts.collect();
        if root.is_empty() || keys.iter().any(|k| k.is_empty()) {
            return Err(format!(
                "malformed reference \"{text}\": expected $.name or $.name.key... with no empty parts"
            ));
        }
        Ok(Some(Reference { text, root, keys }))
    }

    /// Reads the referenced value below `root_value` (the value the root names).
    ///
    /// A missing key is an error naming the part of the path that exists, so a
    /// typo is never silently read as `null`.
    pub fn lookup<'v>(&self, root_value: &'v Value) -> Result<&'v Value, String> {
        walk(root_value, &self.keys, format!("{PREFIX}{}", self.root))
    }

    /// Like [`Reference::lookup`] when the root names a map (the parameters or
    /// the context) rather than a value; avoids copying the whole map for
    /// references that read one key of it.
    pub fn lookup_in_map(&self, map: &Map<String, Value>) -> Result<Value, String> {
        let Some((first, rest)) = self.keys.split_first() else {
            return Ok(Value::Object(map.clone()));
        };
        let value = map
            .get(*first)
            .ok_or_else(|| format!("\"{PREFIX}{}\" has no key \"{first}\"", self.root))?;
        walk(value, rest, format!("{PREFIX}{}.{first}", self.root)).cloned()
    }
}

/// Follows `keys` below `value`; `walked` is the path that led to `value`.
fn walk<'v>(value: &'v Value, keys: &[&str], mut walked: String) -> Result<&'v Value, String> {
    let mut current = value;
    for key in keys {
        current = match current {
            Value::Object(map) => map
                .get(*key)
                .ok_or_else(|| format!("\"{walked}\" has no key \"{key}\""))?,
            Value::Array(items) => {
                let index: usize = key
                    .parse()
                    .map_err(|_| format!("\"{walked}\" is an array; \"{key}\" is not an index"))?;
                items.get(index).ok_or_else(|| {
                    format!(
                        "\"{walked}\" has no index {index} (it has {} items)",
                        items.len()
                    )
                })?
            }
            other => {
                return Err(format!(
                    "\"{walked}\" is {}, not an object, so it has no key \"{key}\"",
                    kind(other)
                ));
            }
        };
        walked.push('.');
        walked.push_str(key);
    }
    Ok(current)
}

/// "a string", "a number", ... for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Calls `visit(path, text)` for every string in `value` that starts with `$.`,
/// with `path` the JSON path below `at` (`at.key`, `at[2]`).
pub fn for_each_reference(value: &Value, at: &str, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(s) if s.starts_with(PREFIX) => visit(at, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                for_each_reference(item, &format!("{at}[{i}]"), visit);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                for_each_reference(item, &format!("{at}.{key}"), visit);
            }
        }
        _ => {}
    }
}

/// The execution parameters a run of `steps` cannot do without, sorted and
/// without repeats: `x` of every `$.params.x...` in the parameters of steps
/// that always run, inside loops too, and in loops' `items`. What the
/// orchestrator requires of a submission
/// (`mimir_pipeline::reference::required_params(&steps)`).
///
/// A step with a `when` may not run, so what it and its inner steps read is
/// not required: the pattern `when: ".params.since != null"` guarding a step
/// that reads `$.params.since` makes `since` optional. `when` programs
/// themselves read a missing parameter as null rather than failing. See
/// [`referenced_params`] for every parameter a pipeline mentions.
pub fn required_params(steps: &[crate::Step]) -> Vec<String> {
    let mut keys = BTreeSet::new();
    collect_params(steps, false, &mut keys);
    keys.into_iter().collect()
}

/// Every execution parameter `steps` mention: `x` of every `$.params.x...`
/// in any step's parameters or loop `items`, at any depth, whether or not
/// the step has a `when`, and every `.params.x` written in a `when` program
/// (found in its text, so `.params["x"]` and computed keys are missed). For
/// documentation and forms; [`required_params`] is what a submission must
/// pass.
pub fn referenced_params(steps: &[crate::Step]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    collect_params(steps, true, &mut keys);
    keys
}

fn collect_params(steps: &[crate::Step], conditional: bool, keys: &mut BTreeSet<String>) {
    for step in steps {
        if let Some(program) = &step.when {
            if !conditional {
                continue;
            }
            params_in_program(program, keys);
        }
        for value in step.parameters.values() {
            for_each_reference(value, "", &mut |_, text| add_param(text, keys));
        }
        if let Some(each) = &step.for_each {
            add_param(&each.items, keys);
            collect_params(&each.steps, conditional, keys);
        }
    }
}

/// Adds `x` when `text` is `$.params.x...`.
fn add_param(text: &str, keys: &mut BTreeSet<String>) {
    if let Ok(Some(reference)) = Reference::parse(text)
        && reference.root == PARAMS_ROOT
        && let Some(first) = reference.keys.first()
    {
        keys.insert((*first).to_string());
    }
}

/// The `x` of every `.params.x` in a jq program's text.
fn params_in_program(program: &str, keys: &mut BTreeSet<String>) {
    const NEEDLE: &str = ".params.";
    let mut rest = program;
    while let Some(found) = rest.find(NEEDLE) {
        rest = &rest[found + NEEDLE.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            keys.insert(rest[..end].to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn required_params_are_the_first_keys_under_params_anywhere() {
        let steps: Vec<crate::Step> = serde_json::from_value(json!([
            {"name": "a", "plugin": "http", "action": "request",
             "parameters": {"url": "$.params.url", "headers": {"x": ["$.params.token.value"]}}},
            {"name": "b", "plugin": "core", "action": "log",
             "parameters": {"message": "$.a.body", "all": "$.params", "level": "$.params.url"}}
        ]))
        .expect("steps");
        assert_eq!(required_params(&steps), ["token", "url"]);
    }

    #[test]
    fn required_params_cover_loops_but_not_steps_behind_a_when() {
        let steps: Vec<crate::Step> = serde_json::from_value(json!([
            {"name": "list", "plugin": "core", "action": "log",
             "parameters": {"message": "$.params.list_url"}},
            {"name": "each", "for_each": {"items": "$.params.ids", "steps": [
                {"name": "get", "plugin": "core", "action": "log",
                 "parameters": {"message": ["$.item", "$.params.token"]}},
                {"name": "maybe", "plugin": "core", "action": "log",
                 "when": ".params.verbose and .item.x", "parameters": {"message": "$.params.detail"}}
            ]}},
            {"name": "since", "plugin": "core", "action": "log",
             "when": ".params.since != null", "parameters": {"message": "$.params.since"}}
        ]))
        .expect("steps");
        assert_eq!(required_params(&steps), ["ids", "list_url", "token"]);
        let all: Vec<String> = referenced_params(&steps).into_iter().collect();
        assert_eq!(
            all,
            ["detail", "ids", "list_url", "since", "token", "verbose"]
        );
    }

    #[test]
    fn parses_only_whole_string_references() {
        assert_eq!(Reference::parse("plain").unwrap(), None);
        assert_eq!(Reference::parse("costs $.5").unwrap(), None);
        let r = Reference::parse("$.load.data.rows").unwrap().unwrap();
        assert_eq!(r.root, "load");
        assert_eq!(r.keys, ["data", "rows"]);
        let r = Reference::parse("$.params").unwrap().unwrap();
        assert!(r.keys.is_empty());
    }

    #[test]
    fn refuses_empty_parts() {
        for bad in ["$.", "$.a..b", "$.a.", "$..a"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lookup_walks_objects_and_arrays() {
        let v = json!({"data": [{"id": 7}], "n": null});
        let r = Reference::parse("$.s.data.0.id").unwrap().unwrap();
        assert_eq!(r.lookup(&v).unwrap(), &json!(7));
        let r = Reference::parse("$.s.n").unwrap().unwrap();
        assert_eq!(r.lookup(&v).unwrap(), &Value::Null);
    }

    #[test]
    fn lookup_names_the_missing_key_and_the_path_that_exists() {
        let v = json!({"data": {"a": 1}});
        let r = Reference::parse("$.s.data.b.c").unwrap().unwrap();
        assert_eq!(r.lookup(&v).unwrap_err(), "\"$.s.data\" has no key \"b\"");
        let r = Reference::parse("$.s.data.a.x").unwrap().unwrap();
        assert!(r.lookup(&v).unwrap_err().contains("is a number"));
        let r = Reference::parse("$.s.data.a").unwrap().unwrap();
        let list = json!({"data": {"a": [1]}});
        let r2 = Reference::parse("$.s.data.a.3").unwrap().unwrap();
        assert_eq!(r.lookup(&list).unwrap(), &json!([1]));
        assert!(r2.lookup(&list).unwrap_err().contains("no index 3"));
    }

    #[test]
    fn lookup_in_map_reads_one_key_or_the_whole_map() {
        let mut map = Map::new();
        map.insert("x".into(), json!({"y": 2}));
        let r = Reference::parse("$.params").unwrap().unwrap();
        assert_eq!(r.lookup_in_map(&map).unwrap(), json!({"x": {"y": 2}}));
        let r = Reference::parse("$.params.x.y").unwrap().unwrap();
        assert_eq!(r.lookup_in_map(&map).unwrap(), json!(2));
        let r = Reference::parse("$.params.x.z").unwrap().unwrap();
        assert_eq!(
            r.lookup_in_map(&map).unwrap_err(),
            "\"$.params.x\" has no key \"z\""
        );
        let r = Reference::parse("$.params.nope").unwrap().unwrap();
        assert_eq!(
            r.lookup_in_map(&map).unwrap_err(),
            "\"$.params\" has no key \"nope\""
        );
    }

    #[test]
    fn finds_references_in_nested_values_with_their_paths() {
        let v = json!({"a": "$.x", "b": ["lit", {"c": "$.y.z"}], "d": 1});
        let mut found = Vec::new();
        for_each_reference(&v, "parameters", &mut |at, text| {
            found.push((at.to_string(), text.to_string()));
        });
        assert_eq!(
            found,
            [
                ("parameters.a".to_string(), "$.x".to_string()),
                ("parameters.b[1].c".to_string(), "$.y.z".to_string()),
            ]
        );
    }
}
