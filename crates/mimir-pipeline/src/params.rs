//! Reading an action's parameters, with errors that name the parameter.
//!
//! Plugins use these both in [`crate::Action::run`] (resolved values) and in
//! [`crate::Action::check`], where [`literals`] first drops the values that are
//! still unresolved references.

use crate::ActionError;
use crate::reference::{is_reference, kind};
use serde_json::{Map, Value};

/// Refuses any parameter not in `known`, so a typo (`timeout` for
/// `timeout_ms`) is reported instead of silently ignored.
/// `known` is a list of names or an action's [`crate::ParamDoc`] table.
pub fn reject_unknown<K: AsRef<str>>(
    params: &Map<String, Value>,
    known: &[K],
) -> Result<(), ActionError> {
    for name in params.keys() {
        if !known.iter().any(|k| k.as_ref() == name) {
            let names: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
            return Err(ActionError::parameter(
                name,
                format!("is not known; known: {}", names.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Refuses a missing parameter (reference or not).
pub fn require(params: &Map<String, Value>, name: &str) -> Result<(), ActionError> {
    if params.contains_key(name) {
        Ok(())
    } else {
        Err(ActionError::parameter(name, "is required"))
    }
}

/// The parameters whose values are not references: what can be checked before
/// the run. References nested deeper stay; they are strings, which checks of
/// nested values must accept.
pub fn literals(params: &Map<String, Value>) -> Map<String, Value> {
    params
        .iter()
        .filter(|(_, value)| !is_reference(value))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// An optional string parameter.
pub fn string<'a>(
    params: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ActionError> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(name, "a string", other)),
    }
}

/// A required string parameter.
pub fn required_string<'a>(
    params: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, ActionError> {
    string(params, name)?.ok_or_else(|| ActionError::parameter(name, "is required"))
}

/// An optional boolean parameter.
pub fn boolean(params: &Map<String, Value>, name: &str) -> Result<Option<bool>, ActionError> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(name, "true or false", other)),
    }
}

/// An optional whole number of 0 or more (`100` or `100.0`).
pub fn count(params: &Map<String, Value>, name: &str) -> Result<Option<u64>, ActionError> {
    let Some(value) = params.get(name) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(wrong_type(name, "a whole number", value));
    };
    if let Some(n) = number.as_u64() {
        return Ok(Some(n));
    }
    // Integral floats such as 100.0 come from tools that only have doubles.
    match number.as_f64() {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(ActionError::parameter(
            name,
            format!("must be a whole number of 0 or more, got {number}"),
        )),
    }
}

/// The error for a value of the wrong JSON type.
pub fn wrong_type(name: &str, expected: &str, got: &Value) -> ActionError {
    ActionError::parameter(name, format!("must be {expected}, got {}", kind(got)))
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
    fn reads_typed_values_and_names_the_parameter_on_error() {
        let p = map(json!({"s": "x", "n": 5, "f": 5.0, "neg": -1, "frac": 1.5, "b": true}));
        assert_eq!(string(&p, "s").unwrap(), Some("x"));
        assert_eq!(string(&p, "absent").unwrap(), None);
        assert_eq!(
            string(&p, "b").unwrap_err().to_string(),
            "parameter \"b\" must be a string, got a boolean"
        );
        assert_eq!(
            required_string(&p, "absent").unwrap_err().to_string(),
            "parameter \"absent\" is required"
        );
        assert_eq!(count(&p, "n").unwrap(), Some(5));
        assert_eq!(count(&p, "f").unwrap(), Some(5));
        assert!(count(&p, "neg").unwrap_err().to_string().contains("got -1"));
        assert!(count(&p, "frac").is_err());
        assert!(count(&p, "s").is_err());
    }

    #[test]
    fn unknown_parameters_are_refused_with_the_known_list() {
        let p = map(json!({"timeout": 5}));
        let err = reject_unknown(&p, &["url", "timeout_ms"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter \"timeout\" is not known; known: url, timeout_ms"
        );
    }

    #[test]
    fn literals_drop_top_level_references_only() {
        let p = map(json!({"a": "$.x.y", "b": {"c": "$.z"}, "d": "plain"}));
        let lit = literals(&p);
        assert!(!lit.contains_key("a"));
        assert_eq!(lit["b"], json!({"c": "$.z"}));
        assert_eq!(lit["d"], json!("plain"));
    }
}
