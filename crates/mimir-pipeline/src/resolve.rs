//! Resolving references in a step's parameters and applying its `output`
//! mapping.

use crate::StepError;
use crate::reference::{PARAMS_ROOT, Reference};
use serde_json::{Map, Value};

/// What references can read while a step's parameters are resolved: the
/// execution's parameters, and entries by name, the innermost level first
/// (inside a loop: the item and the item's earlier inner steps, then the
/// steps before the loop).
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// The execution's parameters (`$.params...`).
    pub params: &'a Map<String, Value>,
    /// Entries of this level: steps that completed, and a loop's item.
    pub entries: &'a Map<String, Value>,
    /// The enclosing level, inside a loop.
    pub outer: Option<&'a Scope<'a>>,
}

impl<'a> Scope<'a> {
    /// The top level: `params` and the entries of completed steps.
    pub(crate) fn top(params: &'a Map<String, Value>, entries: &'a Map<String, Value>) -> Self {
        Scope {
            params,
            entries,
            outer: None,
        }
    }

    /// A level inside this one, with its own `entries`.
    pub(crate) fn inner(&'a self, entries: &'a Map<String, Value>) -> Scope<'a> {
        Scope {
            params: self.params,
            entries,
            outer: Some(self),
        }
    }

    /// The entry named `name`, innermost first.
    pub(crate) fn entry(&self, name: &str) -> Option<&'a Value> {
        match self.entries.get(name) {
            Some(value) => Some(value),
            None => self.outer.and_then(|outer| outer.entry(name)),
        }
    }

    /// Everything readable as one object, what a `when` program reads:
    /// `{"params": ..., "<name>": entry, ...}`.
    pub(crate) fn readable(&self) -> Value {
        let mut object = Map::new();
        object.insert(PARAMS_ROOT.to_string(), Value::Object(self.params.clone()));
        self.copy_entries(&mut object);
        Value::Object(object)
    }

    fn copy_entries(&self, into: &mut Map<String, Value>) {
        if let Some(outer) = self.outer {
            outer.copy_entries(into);
        }
        for (name, entry) in self.entries {
            into.insert(name.clone(), entry.clone());
        }
    }
}

/// Resolves every reference in `parameters`, however deeply nested.
pub(crate) fn resolve_parameters(
    parameters: &Map<String, Value>,
    scope: &Scope<'_>,
) -> Result<Map<String, Value>, StepError> {
    let mut resolved = Map::new();
    for (key, value) in parameters {
        let value = resolve(value, &format!("parameters.{key}"), scope)?;
        resolved.insert(key.clone(), value);
    }
    Ok(resolved)
}

/// Resolves `value` (a reference, or a value with references inside)
/// found at `at`.
pub(crate) fn resolve(value: &Value, at: &str, scope: &Scope<'_>) -> Result<Value, StepError> {
    match value {
        Value::String(text) => {
            let failed = |reason: String| StepError::Reference {
                field: at.to_string(),
                reference: text.clone(),
                reason,
            };
            let Some(reference) = Reference::parse(text).map_err(failed)? else {
                return Ok(value.clone());
            };
            if reference.root == PARAMS_ROOT {
                return reference.lookup_in_map(scope.params).map_err(failed);
            }
            let Some(entry) = scope.entry(reference.root) else {
                return Err(failed(format!(
                    "no earlier step named \"{}\" has completed",
                    reference.root
                )));
            };
            reference.lookup(entry).cloned().map_err(failed)
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(resolve(item, &format!("{at}[{i}]"), scope)?);
            }
            Ok(Value::Array(out))
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                out.insert(key.clone(), resolve(item, &format!("{at}.{key}"), scope)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// The context entry for a step whose action returned `result`: `result`
/// itself without a mapping, else one key per mapping entry.
pub(crate) fn apply_output(
    output: Option<&Map<String, Value>>,
    result: Value,
) -> Result<Value, StepError> {
    let Some(output) = output else {
        return Ok(result);
    };
    let mut entry = Map::new();
    for (key, spec) in output {
        let field = format!("output.{key}");
        let failed = |reference: &str, reason: String| StepError::Output {
            field: field.clone(),
            reference: reference.to_string(),
            reason,
        };
        // Validation already refused anything else; this guards unvalidated pipelines.
        let Value::String(text) = spec else {
            return Err(failed(
                &spec.to_string(),
                "an output value must be \"$.result\" or \"$.result.path\"".to_string(),
            ));
        };
        let reference = match Reference::parse(text) {
            Ok(Some(reference)) if reference.root == crate::reference::RESULT_ROOT => reference,
            Ok(_) => {
                return Err(failed(
                    text,
                    "an output value must be \"$.result\" or \"$.result.path\"".to_string(),
                ));
            }
            Err(reason) => return Err(failed(text, reason)),
        };
        let value = reference
            .lookup(&result)
            .map_err(|reason| failed(text, reason))?;
        entry.insert(key.clone(), value.clone());
    }
    Ok(Value::Object(entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test input is an object"),
        }
    }

    #[test]
    fn resolves_whole_string_references_at_any_depth() {
        let params = map(json!({"n": 3, "deep": {"k": "v"}}));
        let context = map(json!({"load": {"data": [10, 20]}}));
        let scope = Scope::top(&params, &context);
        let parameters = map(json!({
            "all": "$.params",
            "n": "$.params.n",
            "k": "$.params.deep.k",
            "entry": "$.load",
            "list": ["$.load.data.1", {"x": "$.params.n"}, "keep $.params.n"],
        }));
        let resolved = resolve_parameters(&parameters, &scope).unwrap();
        assert_eq!(
            Value::Object(resolved),
            json!({
                "all": {"n": 3, "deep": {"k": "v"}},
                "n": 3,
                "k": "v",
                "entry": {"data": [10, 20]},
                "list": [20, {"x": 3}, "keep $.params.n"],
            })
        );
    }

    #[test]
    fn a_missing_key_fails_with_the_field_and_reference() {
        let params = Map::new();
        let context = map(json!({"load": {"data": 1}}));
        let scope = Scope::top(&params, &context);
        let err = resolve_parameters(&map(json!({"x": ["$.load.rows"]})), &scope).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameters.x[0]: cannot resolve \"$.load.rows\": \"$.load\" has no key \"rows\""
        );
        let err = resolve_parameters(&map(json!({"x": "$.params.p"})), &scope).unwrap_err();
        assert!(
            err.to_string().contains("\"$.params\" has no key \"p\""),
            "{err}"
        );
        let err = resolve_parameters(&map(json!({"x": "$.later"})), &scope).unwrap_err();
        assert!(
            err.to_string().contains("no earlier step named \"later\""),
            "{err}"
        );
    }

    #[test]
    fn inner_levels_read_their_own_entries_first_then_the_outer_ones() {
        let params = map(json!({"n": 1}));
        let outer = map(json!({"load": [1, 2], "x": "outer"}));
        let inner = map(json!({"item": {"id": 7}, "x": "inner"}));
        let top = Scope::top(&params, &outer);
        let scope = top.inner(&inner);
        let parameters =
            map(json!({"id": "$.item.id", "x": "$.x", "all": "$.load", "n": "$.params.n"}));
        assert_eq!(
            Value::Object(resolve_parameters(&parameters, &scope).unwrap()),
            json!({"id": 7, "x": "inner", "all": [1, 2], "n": 1})
        );
        assert_eq!(
            scope.readable(),
            json!({"params": {"n": 1}, "load": [1, 2], "x": "inner", "item": {"id": 7}})
        );
    }

    #[test]
    fn output_maps_the_result_or_parts_of_it() {
        let result = json!({"data": [1], "n": 1});
        assert_eq!(apply_output(None, result.clone()).unwrap(), result);
        let output = map(json!({"all": "$.result", "rows": "$.result.data"}));
        assert_eq!(
            apply_output(Some(&output), result.clone()).unwrap(),
            json!({"all": {"data": [1], "n": 1}, "rows": [1]})
        );
        let output = map(json!({"x": "$.result.missing"}));
        let err = apply_output(Some(&output), result).unwrap_err();
        assert!(
            err.to_string().starts_with("output.x: cannot resolve"),
            "{err}"
        );
    }
}
