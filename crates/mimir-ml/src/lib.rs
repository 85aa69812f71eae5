//! Machine learning for Mimir AIP: what an `ml_training` or `ml_inference`
//! task does once its records are in hand.
//!
//! - [`train`] turns CIR records into features (numeric, boolean,
//!   categorical one-hot; missing values handled or refused by name), splits
//!   them with the seed, trains, scores the held-out split and answers a
//!   self-describing artifact: the same seed and data give the same bytes.
//! - [`Model::load`] reads an artifact back (after [`checksum`] was
//!   verified), [`Model::predict`] predicts records in batches, and
//!   [`Model::evaluate`] re-scores it on fresh labelled records.
//! - [`import_onnx`] wraps an ONNX model, checked by loading it, into the same
//!   artifact form, so inference does not care where a model came from.
//!
//! Nothing here does I/O: the worker reads records through the storage
//! connectors and moves artifacts through the orchestrator.

mod error;
mod onnx;

pub use error::MlError;

use mimir_core::{ModelType, PerformanceMetrics, TrainingConfig};
use serde_json::{Map, Value};
use std::sync::atomic::AtomicBool;

/// A record: one JSON object, as the storage connectors answer them.
pub type Record = Map<String, Value>;

/// How far training is, for the task page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Units done (epochs, trees, iterations).
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// What a unit is: `"trees"`, `"epochs"`, `"iterations"`, `"steps"`.
    pub unit: &'static str,
}

/// What training answers.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The artifact bytes ([`Model::load`] reads them).
    pub artifact: Vec<u8>,
    /// Held-out scores.
    pub metrics: PerformanceMetrics,
    /// The feature columns the model takes, in order (before one-hot
    /// encoding: the input attributes an inference record needs).
    pub feature_columns: Vec<String>,
    /// The label it predicts ("" for clustering).
    pub label_column: String,
}

/// One prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The class (as its original JSON value), the number, or the cluster.
    pub prediction: Value,
    /// The predicted class's probability, when the model gives one.
    pub confidence: Option<f64>,
}

/// Trains a `model_type` on `records` as `config` says. `progress` is told
/// of each unit done; `cancel` set stops training with [`MlError::Cancelled`]
/// at the next unit. Errors about the data name the column or row.
pub fn train(
    model_type: ModelType,
    config: &TrainingConfig,
    records: &[Record],
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Trained, MlError> {
    let _ = (model_type, config, records, progress, cancel);
    Err(MlError::Model("training is not built yet".into()))
}

/// Wraps an ONNX model taking `feature_columns` (as one float tensor of
/// shape `[batch, features]`) into an artifact, after checking it loads and
/// runs.
pub fn import_onnx(onnx: &[u8], feature_columns: &[String]) -> Result<Vec<u8>, MlError> {
    let _ = (onnx, feature_columns);
    Err(MlError::Model("ONNX import is not built yet".into()))
}

/// `sha256:<hex>` of an artifact.
pub fn checksum(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in digest.as_ref() {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// A loaded model, ready to predict.
pub struct Model {
    model_type: ModelType,
    feature_columns: Vec<String>,
    label_column: String,
}

impl Model {
    /// Reads an artifact made by [`train`] or [`import_onnx`].
    pub fn load(bytes: &[u8]) -> Result<Model, MlError> {
        let _ = bytes;
        Err(MlError::Model("loading is not built yet".into()))
    }

    /// Its type.
    pub fn model_type(&self) -> ModelType {
        self.model_type
    }

    /// The attributes each input record needs.
    pub fn feature_columns(&self) -> &[String] {
        &self.feature_columns
    }

    /// The label it predicts ("" when none).
    pub fn label_column(&self) -> &str {
        &self.label_column
    }

    /// Checks that `record` has every feature: an error names the first one
    /// missing. Inference checks its first record before predicting any.
    pub fn check_input(&self, record: &Record) -> Result<(), MlError> {
        match self
            .feature_columns
            .iter()
            .find(|c| !record.contains_key(*c))
        {
            Some(missing) => Err(MlError::Data(format!(
                "the input has no feature {missing:?}, which the model needs"
            ))),
            None => Ok(()),
        }
    }

    /// Predicts every record, in order.
    pub fn predict(&self, records: &[Record]) -> Result<Vec<Prediction>, MlError> {
        let _ = records;
        Err(MlError::Model("prediction is not built yet".into()))
    }

    /// Scores the model on labelled `records` (the label column it was
    /// trained with).
    pub fn evaluate(&self, records: &[Record]) -> Result<PerformanceMetrics, MlError> {
        let _ = records;
        Err(MlError::Model("evaluation is not built yet".into()))
    }
}
