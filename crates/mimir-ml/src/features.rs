//! Features from CIR records: which attributes a model reads, how each is
//! turned into numbers, and the rules that refuse data by column and row.
//!
//! A column's kind is decided over every training record: numbers (or
//! strings that parse as numbers) make a numeric column, booleans a 0/1
//! column, other strings a categorical column one-hot encoded over the
//! categories seen in the training split (sorted, so the same data gives
//! the same encoding). What is learnt is kept in a [`FeatureSpec`] that
//! inference applies unchanged: an unseen category encodes as all zeros.

use crate::{MlError, Record};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// The most categories one column may one-hot encode: beyond it the
/// column is an identifier, not a category, and would blow up the width.
pub const MAX_CATEGORIES: usize = 10_000;

/// What to do with a missing or null feature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Missing {
    /// Refuse the data, naming the column and row (the default).
    Refuse,
    /// Use the column's mean over the training split.
    Mean,
    /// Use zero.
    Zero,
}

impl Missing {
    /// Reads `hyperparameters.missing_values`.
    pub fn parse(value: Option<&Value>) -> Result<Missing, MlError> {
        match value {
            None => Ok(Missing::Refuse),
            Some(Value::String(s)) if s == "refuse" => Ok(Missing::Refuse),
            Some(Value::String(s)) if s == "mean" => Ok(Missing::Mean),
            Some(Value::String(s)) if s == "zero" => Ok(Missing::Zero),
            Some(other) => Err(MlError::Config(format!(
                "training_config.hyperparameters.missing_values must be \"refuse\", \"mean\" or \"zero\", not {other}"
            ))),
        }
    }
}

/// How one input attribute becomes feature values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnKind {
    /// One value, as a number.
    Numeric,
    /// One value, 1 for true and 0 for false.
    Boolean,
    /// One value per category, 1 for the record's category.
    Categorical(Vec<String>),
}

/// One input attribute and what was learnt about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    /// The value a missing one takes (mean or zero); `None` refuses it.
    pub fill: Option<f64>,
}

impl Column {
    /// How many feature values it makes.
    pub fn width(&self) -> usize {
        match &self.kind {
            ColumnKind::Categorical(categories) => categories.len(),
            _ => 1,
        }
    }
}

/// Per-feature standardisation, for learners that need features on one
/// scale (gradient-based ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Scaling {
    /// Learns mean and standard deviation of each of `width` features of
    /// the row-major `x`.
    pub fn fit(x: &[f64], width: usize) -> Scaling {
        let rows = if width == 0 { 0 } else { x.len() / width };
        let mut mean = vec![0.0; width];
        let mut std = vec![0.0; width];
        for row in x.chunks_exact(width.max(1)) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        for m in &mut mean {
            *m /= rows.max(1) as f64;
        }
        for row in x.chunks_exact(width.max(1)) {
            for ((s, m), v) in std.iter_mut().zip(&mean).zip(row) {
                *s += (v - m) * (v - m);
            }
        }
        for s in &mut std {
            *s = (*s / rows.max(1) as f64).sqrt();
            // A constant feature keeps its values rather than dividing by 0.
            if *s < 1e-12 {
                *s = 1.0;
            }
        }
        Scaling { mean, std }
    }

    /// Standardises the row-major `x` in place.
    pub fn apply(&self, x: &mut [f64]) {
        let width = self.mean.len();
        if width == 0 {
            return;
        }
        for row in x.chunks_exact_mut(width) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}

/// Everything needed to turn a record into the model's feature row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub columns: Vec<Column>,
    /// Set for models trained on standardised features.
    pub scaling: Option<Scaling>,
}

/// Features as one row-major matrix.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub values: Vec<f64>,
    pub rows: usize,
    pub width: usize,
}

impl Matrix {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.width..(i + 1) * self.width]
    }
}

/// What a value is, for deciding a column's kind.
enum Seen<'a> {
    Missing,
    Number(f64),
    Bool(bool),
    Text(&'a str),
}

fn classify<'a>(column: &str, row: usize, value: Option<&'a Value>) -> Result<Seen<'a>, MlError> {
    match value {
        None | Some(Value::Null) => Ok(Seen::Missing),
        Some(Value::Bool(b)) => Ok(Seen::Bool(*b)),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Ok(Seen::Number(v)),
            _ => Err(MlError::Data(format!(
                "column {column:?} row {row}: {n} is not a finite number"
            ))),
        },
        Some(Value::String(s)) => Ok(Seen::Text(s)),
        Some(Value::Array(_) | Value::Object(_)) => Err(MlError::Data(format!(
            "column {column:?} row {row}: a nested value cannot be a feature"
        ))),
    }
}

/// A string that reads as a number; NaN and infinities are refused by name.
fn numeric_text(column: &str, row: usize, text: &str) -> Result<Option<f64>, MlError> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        Ok(_) => Err(MlError::Data(format!(
            "column {column:?} row {row}: {text:?} is not a finite number"
        ))),
        Err(_) => Ok(None),
    }
}

/// The feature columns to use: the configured ones, or every attribute of
/// the records but the label and `id`, sorted.
pub fn choose_columns(records: &[Record], configured: &[String], label: &str) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let mut names = BTreeSet::new();
    for record in records {
        for key in record.keys() {
            if key != label && key != "id" {
                names.insert(key.as_str());
            }
        }
    }
    names.into_iter().map(str::to_owned).collect()
}

impl FeatureSpec {
    /// Learns the spec of `columns`: kinds from every record (so a bad
    /// value anywhere is refused by row), categories and means from the
    /// `train` rows only.
    pub fn fit(
        records: &[Record],
        columns: &[String],
        train: &[usize],
        missing: Missing,
    ) -> Result<FeatureSpec, MlError> {
        let mut out = Vec::with_capacity(columns.len());
        for name in columns {
            let (mut numbers, mut bools, mut texts, mut numeric_texts) =
                (0usize, 0usize, 0usize, 0usize);
            let mut first_text_row = None;
            let mut first_number_row = None;
            let mut present = false;
            for (row, record) in records.iter().enumerate() {
                match classify(name, row, record.get(name))? {
                    Seen::Missing => {}
                    Seen::Number(_) => {
                        numbers += 1;
                        first_number_row.get_or_insert(row);
                        present = true;
                    }
                    Seen::Bool(_) => {
                        bools += 1;
                        present = true;
                    }
                    Seen::Text(text) => {
                        present = true;
                        if numeric_text(name, row, text)?.is_some() {
                            numeric_texts += 1;
                        } else {
                            texts += 1;
                            first_text_row.get_or_insert(row);
                        }
                    }
                }
            }
            if !present {
                return Err(MlError::Data(format!(
                    "feature column {name:?} has no value in any record"
                )));
            }
            let kind = if texts > 0 {
                if numbers > 0 || bools > 0 {
                    let row = first_text_row.unwrap_or(0);
                    return Err(MlError::Data(format!(
                        "column {name:?} row {row}: {} is not a number, but the column holds numbers",
                        records[row]
                            .get(name)
                            .map(Value::to_string)
                            .unwrap_or_default()
                    )));
                }
                let mut categories = BTreeSet::new();
                for &row in train {
                    if let Some(Value::String(s)) = records[row].get(name) {
                        categories.insert(s.as_str());
                        if categories.len() > MAX_CATEGORIES {
                            return Err(MlError::Data(format!(
                                "column {name:?} has more than {MAX_CATEGORIES} categories: \
                                 leave it out of feature_columns"
                            )));
                        }
                    }
                }
                ColumnKind::Categorical(categories.into_iter().map(str::to_owned).collect())
            } else if bools > 0 && numbers == 0 && numeric_texts == 0 {
                ColumnKind::Boolean
            } else {
                ColumnKind::Numeric
            };
            let mut column = Column {
                name: name.clone(),
                kind,
                fill: None,
            };
            column.fill = match missing {
                Missing::Refuse => None,
                Missing::Zero => Some(0.0),
                Missing::Mean => Some(train_mean(records, &column, train)?),
            };
            out.push(column);
        }
        Ok(FeatureSpec {
            columns: out,
            scaling: None,
        })
    }

    /// The attribute names, in order.
    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// Feature values per row.
    pub fn width(&self) -> usize {
        self.columns.iter().map(Column::width).sum()
    }

    /// The source column of each feature value (for importances).
    pub fn owners(&self) -> Vec<usize> {
        let mut owners = Vec::with_capacity(self.width());
        for (i, column) in self.columns.iter().enumerate() {
            owners.extend(std::iter::repeat_n(i, column.width()));
        }
        owners
    }

    /// Encodes `records` (every one, or the `rows` given) into a matrix;
    /// errors name the column and the row's index in `records`.
    pub fn encode(&self, records: &[Record], rows: Option<&[usize]>) -> Result<Matrix, MlError> {
        let width = self.width();
        let n = rows.map_or(records.len(), <[usize]>::len);
        let mut values = vec![0.0; n * width];
        for i in 0..n {
            let row = rows.map_or(i, |r| r[i]);
            let out = &mut values[i * width..(i + 1) * width];
            encode_row(&self.columns, &records[row], row, out)?;
        }
        if let Some(scaling) = &self.scaling {
            scaling.apply(&mut values);
        }
        Ok(Matrix {
            values,
            rows: n,
            width,
        })
    }
}

/// The mean of a column's encoded value over the training rows (for a
/// categorical column, the fill is 0: no category).
fn train_mean(records: &[Record], column: &Column, train: &[usize]) -> Result<f64, MlError> {
    if matches!(column.kind, ColumnKind::Categorical(_)) {
        return Ok(0.0);
    }
    let (mut sum, mut count) = (0.0, 0usize);
    for &row in train {
        let value = match classify(&column.name, row, records[row].get(&column.name))? {
            Seen::Missing => continue,
            Seen::Number(v) => v,
            Seen::Bool(b) => f64::from(u8::from(b)),
            Seen::Text(t) => numeric_text(&column.name, row, t)?.unwrap_or(0.0),
        };
        sum += value;
        count += 1;
    }
    Ok(if count == 0 { 0.0 } else { sum / count as f64 })
}

fn encode_row(
    columns: &[Column],
    record: &Record,
    row: usize,
    out: &mut [f64],
) -> Result<(), MlError> {
    let mut at = 0;
    for column in columns {
        let name = &column.name;
        let value = record.get(name);
        let seen = classify(name, row, value)?;
        if let Seen::Missing = seen {
            match (column.fill, &column.kind) {
                (None, _) => {
                    return Err(MlError::Data(format!(
                        "column {name:?} row {row}: the value is missing \
                         (set hyperparameters.missing_values to \"mean\" or \"zero\" to fill it)"
                    )));
                }
                (Some(_), ColumnKind::Categorical(c)) => at += c.len(),
                (Some(fill), _) => {
                    out[at] = fill;
                    at += 1;
                }
            }
            continue;
        }
        match &column.kind {
            ColumnKind::Numeric => {
                out[at] = match seen {
                    Seen::Number(v) => v,
                    Seen::Bool(b) => f64::from(u8::from(b)),
                    Seen::Text(t) => numeric_text(name, row, t)?.ok_or_else(|| {
                        MlError::Data(format!("column {name:?} row {row}: {t:?} is not a number"))
                    })?,
                    Seen::Missing => unreachable!("handled above"),
                };
                at += 1;
            }
            ColumnKind::Boolean => {
                out[at] = match seen {
                    Seen::Bool(b) => f64::from(u8::from(b)),
                    _ => {
                        return Err(MlError::Data(format!(
                            "column {name:?} row {row}: {} is not a boolean",
                            value.map(Value::to_string).unwrap_or_default()
                        )));
                    }
                };
                at += 1;
            }
            ColumnKind::Categorical(categories) => {
                let text: std::borrow::Cow<'_, str> = match seen {
                    Seen::Text(t) => t.into(),
                    Seen::Number(_) | Seen::Bool(_) => {
                        value.map(Value::to_string).unwrap_or_default().into()
                    }
                    Seen::Missing => unreachable!("handled above"),
                };
                // An unseen category leaves every one-hot value at 0.
                if let Ok(k) = categories.binary_search_by(|c| c.as_str().cmp(&text)) {
                    out[at + k] = 1.0;
                }
                at += categories.len();
            }
        }
    }
    debug_assert_eq!(at, out.len());
    Ok(())
}
