//! The label a supervised model learns: classes (kept as their original
//! JSON values, so a prediction answers what the data said) or a number.
//!
//! The rule for trees and networks, unless `hyperparameters.task` says
//! `classification` or `regression`: a label of strings or booleans is a
//! class; a label of whole numbers with at most [`MAX_INTEGER_CLASSES`]
//! distinct values is a class too (codes such as 0/1 or 1..5); any other
//! numeric label is regressed. Linear regression always regresses and
//! logistic regression always classifies.

use crate::{MlError, Record};
use mimir_core::ModelType;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Whole-number labels with at most this many distinct values are classes.
pub const MAX_INTEGER_CLASSES: usize = 50;

/// The most classes a classifier may have.
pub const MAX_CLASSES: usize = 10_000;

/// What a supervised model predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Target {
    /// One of these classes (sorted; a class's index is its code).
    Classes(Vec<ClassValue>),
    /// A number.
    Regression,
    /// Nothing: clustering answers a cluster number.
    Clusters,
}

/// A class as its JSON text (JSON values are not serde-self-describing in
/// a compact binary format, so the artifact keeps their canonical text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassValue(pub String);

impl ClassValue {
    /// The original JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::String(self.0.clone()))
    }

    /// How it shows in metrics: a string as itself, anything else as JSON.
    pub fn label(&self) -> String {
        match self.value() {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

/// The labels of a training set, encoded.
pub struct Labels {
    pub target: Target,
    /// Class codes or numbers, one per record.
    pub y: Vec<f64>,
}

/// Whether a model type classifies, from the config and the label values.
fn wants_classes(
    model_type: ModelType,
    task: Option<&Value>,
    values: &[&Value],
) -> Result<bool, MlError> {
    let forced = match task {
        None => None,
        Some(Value::String(s)) if s == "classification" => Some(true),
        Some(Value::String(s)) if s == "regression" => Some(false),
        Some(other) => {
            return Err(MlError::Config(format!(
                "training_config.hyperparameters.task must be \"classification\" or \"regression\", not {other}"
            )));
        }
    };
    match (model_type, forced) {
        (ModelType::LinearRegression, Some(true)) => Err(MlError::Config(
            "training_config.hyperparameters.task: linear_regression only regresses".into(),
        )),
        (ModelType::LogisticRegression, Some(false)) => Err(MlError::Config(
            "training_config.hyperparameters.task: logistic_regression only classifies".into(),
        )),
        (ModelType::LinearRegression, _) => Ok(false),
        (ModelType::LogisticRegression, _) => Ok(true),
        (_, Some(forced)) => Ok(forced),
        _ => {
            let mut distinct = std::collections::BTreeSet::new();
            for value in values {
                match value {
                    Value::Number(n) => {
                        let v = n.as_f64().unwrap_or(f64::NAN);
                        if v.fract() != 0.0 {
                            return Ok(false);
                        }
                        distinct.insert(v.to_bits());
                    }
                    _ => return Ok(true),
                }
            }
            Ok(distinct.len() <= MAX_INTEGER_CLASSES)
        }
    }
}

/// The label value of `record` (row `row`), refused when missing.
fn label_of<'a>(record: &'a Record, label: &str, row: usize) -> Result<&'a Value, MlError> {
    match record.get(label) {
        None | Some(Value::Null) => Err(MlError::Data(format!(
            "label column {label:?} row {row}: the value is missing"
        ))),
        Some(Value::Array(_) | Value::Object(_)) => Err(MlError::Data(format!(
            "label column {label:?} row {row}: a nested value cannot be a label"
        ))),
        Some(v) => Ok(v),
    }
}

/// Orders classes: numbers by value, then booleans, then strings.
fn class_order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::Bool(_) => 1,
            _ => 2,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Encodes the label column of `records`.
pub fn fit(
    model_type: ModelType,
    task: Option<&Value>,
    records: &[Record],
    label: &str,
) -> Result<Labels, MlError> {
    if !records.iter().any(|r| r.contains_key(label)) {
        return Err(MlError::Data(format!(
            "label column {label:?} is in none of the records"
        )));
    }
    let mut values = Vec::with_capacity(records.len());
    for (row, record) in records.iter().enumerate() {
        values.push(label_of(record, label, row)?);
    }
    if wants_classes(model_type, task, &values)? {
        let mut codes: BTreeMap<String, &Value> = BTreeMap::new();
        for value in &values {
            let text = value.to_string();
            if !codes.contains_key(&text) {
                if codes.len() >= MAX_CLASSES {
                    return Err(MlError::Data(format!(
                        "label column {label:?} has more than {MAX_CLASSES} classes"
                    )));
                }
                codes.insert(text, value);
            }
        }
        let mut classes: Vec<&Value> = codes.into_values().collect();
        classes.sort_by(|a, b| class_order(a, b));
        if classes.len() < 2 {
            return Err(MlError::Data(format!(
                "label column {label:?} has a single class ({}): a classifier needs at least two",
                classes.first().map(|v| v.to_string()).unwrap_or_default()
            )));
        }
        let index: BTreeMap<String, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, v)| (v.to_string(), i))
            .collect();
        let y = values
            .iter()
            .map(|v| index[&v.to_string()] as f64)
            .collect();
        let target = Target::Classes(
            classes
                .into_iter()
                .map(|v| ClassValue(v.to_string()))
                .collect(),
        );
        Ok(Labels { target, y })
    } else {
        let mut y = Vec::with_capacity(values.len());
        for (row, value) in values.iter().enumerate() {
            y.push(number(label, row, value)?);
        }
        Ok(Labels {
            target: Target::Regression,
            y,
        })
    }
}

fn number(label: &str, row: usize, value: &Value) -> Result<f64, MlError> {
    let v = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    match v {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(MlError::Data(format!(
            "label column {label:?} row {row}: {value} is not a finite number"
        ))),
    }
}

impl Target {
    /// Encodes the labels of records already trained on (evaluation): an
    /// unknown class gets the code `classes.len()`, which no prediction
    /// matches.
    pub fn encode(&self, records: &[Record], label: &str) -> Result<Vec<f64>, MlError> {
        if !records.iter().any(|r| r.contains_key(label)) {
            return Err(MlError::Data(format!(
                "label column {label:?} is in none of the records"
            )));
        }
        let mut y = Vec::with_capacity(records.len());
        match self {
            Target::Classes(classes) => {
                let index: BTreeMap<&str, usize> = classes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.0.as_str(), i))
                    .collect();
                for (row, record) in records.iter().enumerate() {
                    let text = label_of(record, label, row)?.to_string();
                    y.push(*index.get(text.as_str()).unwrap_or(&classes.len()) as f64);
                }
            }
            Target::Regression => {
                for (row, record) in records.iter().enumerate() {
                    y.push(number(label, row, label_of(record, label, row)?)?);
                }
            }
            Target::Clusters => {}
        }
        Ok(y)
    }
}
