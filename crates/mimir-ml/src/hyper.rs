//! Reading `training_config.hyperparameters`: each value checked against
//! its range, errors naming the field.

use crate::MlError;
use serde_json::{Map, Value};

fn field(name: &str) -> String {
    format!("training_config.hyperparameters.{name}")
}

/// A whole number in `min..=max`, or `default` when unset or null.
pub fn uint(
    hp: &Map<String, Value>,
    name: &str,
    default: Option<u64>,
    min: u64,
    max: u64,
) -> Result<Option<u64>, MlError> {
    match hp.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(MlError::Config(format!(
                "{} must be a whole number from {min} to {max}, not {n}",
                field(name)
            ))),
        },
        Some(other) => Err(MlError::Config(format!(
            "{} must be a whole number from {min} to {max}, not {other}",
            field(name)
        ))),
    }
}

/// A finite number in `[min, max]`, or `default`.
pub fn float(
    hp: &Map<String, Value>,
    name: &str,
    default: f64,
    min: f64,
    max: f64,
) -> Result<f64, MlError> {
    match hp.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v >= min && v <= max => Ok(v),
            _ => Err(MlError::Config(format!(
                "{} must be a number from {min} to {max}, not {n}",
                field(name)
            ))),
        },
        Some(other) => Err(MlError::Config(format!(
            "{} must be a number from {min} to {max}, not {other}",
            field(name)
        ))),
    }
}

/// A list of layer sizes.
pub fn layers(
    hp: &Map<String, Value>,
    name: &str,
    default: &[usize],
    max_layers: usize,
    max_units: usize,
) -> Result<Vec<usize>, MlError> {
    let bad = || {
        MlError::Config(format!(
            "{} must be a list of at most {max_layers} layer sizes from 1 to {max_units}",
            field(name)
        ))
    };
    match hp.get(name) {
        None | Some(Value::Null) => Ok(default.to_vec()),
        Some(Value::Array(items)) if items.len() <= max_layers => items
            .iter()
            .map(|v| match v.as_u64() {
                Some(n) if n >= 1 && n <= max_units as u64 => Ok(n as usize),
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// One of `choices`, or the first.
pub fn choice<'a>(
    hp: &Map<String, Value>,
    name: &str,
    choices: &[&'a str],
) -> Result<&'a str, MlError> {
    match hp.get(name) {
        None | Some(Value::Null) => Ok(choices[0]),
        Some(Value::String(s)) => choices.iter().find(|c| **c == s).copied().ok_or_else(|| {
            MlError::Config(format!(
                "{} must be one of {choices:?}, not {s:?}",
                field(name)
            ))
        }),
        Some(other) => Err(MlError::Config(format!(
            "{} must be one of {choices:?}, not {other}",
            field(name)
        ))),
    }
}
