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

mod artifact;
mod cluster;
mod error;
mod features;
mod forest;
mod hyper;
mod linear;
mod mlp;
mod onnx;
mod parallel;
mod predict;
mod scores;
mod target;
mod training;
mod tree;

pub use error::MlError;
pub use features::MAX_CATEGORIES;
#[doc(hidden)]
pub use onnx::raw_predictor as onnx_raw_predictor;
pub use target::MAX_INTEGER_CLASSES;

use artifact::{Artifact, Body, Native};
use features::{Column, ColumnKind, FeatureSpec};
use mimir_core::{ModelType, PerformanceMetrics, TrainingConfig};
use serde_json::{Map, Value};
use std::sync::atomic::AtomicBool;
use target::Target;

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
///
/// Hyperparameters (`config.hyperparameters`), each checked by name:
/// - every type: `missing_values` = `refuse` (default) | `mean` | `zero`;
///   `task` = `classification` | `regression` (trees and networks; see
///   the label rule below).
/// - `decision_tree`, `random_forest`: `max_depth` (unbounded by default),
///   `min_samples_split` (2), `min_samples_leaf` (1); forests also
///   `n_trees` (100) and `max_features` (√features for classes, all for
///   numbers).
/// - `logistic_regression`: `alpha`, the L2 penalty (1.0, scikit-learn's
///   `C = 1`); `max_iterations` of L-BFGS (100).
/// - `neural_network`: `hidden_layers` (`[32]`), `optimizer` = `adam`
///   (default) | `sgd`; `max_iterations` = epochs (50), `batch_size` (64),
///   `learning_rate` (0.01), `early_stopping_rounds` (none).
/// - `kmeans`: `k` (3); `max_iterations` (100).
///
/// The label: linear regression regresses, logistic regression
/// classifies; trees and networks classify strings, booleans and whole
/// numbers with at most [`MAX_INTEGER_CLASSES`] distinct values, and regress
/// other numbers. Classes are answered as the label's original JSON values.
pub fn train(
    model_type: ModelType,
    config: &TrainingConfig,
    records: &[Record],
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Trained, MlError> {
    training::train(model_type, config, records, progress, cancel)
}

/// Wraps an ONNX model taking `feature_columns` (as one float tensor of
/// shape `[batch, features]`) into an artifact, after checking it loads and
/// runs.
pub fn import_onnx(onnx: &[u8], feature_columns: &[String]) -> Result<Vec<u8>, MlError> {
    check_onnx_columns(feature_columns)?;
    let model = onnx::OnnxModel::load(onnx, feature_columns.len())?;
    // Loading checks the graph; one row of zeros proves it also runs.
    model.predict(&vec![0.0; feature_columns.len()], 1)?;
    Ok(artifact::onnx_artifact(onnx, feature_columns))
}

/// Feature columns of an import: 1 to 10,000 distinct names of 1 to 128
/// characters.
fn check_onnx_columns(feature_columns: &[String]) -> Result<(), MlError> {
    if feature_columns.is_empty() || feature_columns.len() > 10_000 {
        return Err(MlError::Config(
            "feature_columns must name 1 to 10000 columns".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for column in feature_columns {
        if column.is_empty() || column.len() > 128 {
            return Err(MlError::Config(
                "feature_columns: names are 1 to 128 characters".into(),
            ));
        }
        if !seen.insert(column) {
            return Err(MlError::Config(format!(
                "feature_columns names {column:?} twice"
            )));
        }
    }
    Ok(())
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
    inner: Inner,
}

// Workers share a loaded model between threads.
const _: fn() = || {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Model>();
};

enum Inner {
    Native {
        spec: FeatureSpec,
        target: Target,
        model: Native,
    },
    Onnx {
        model: onnx::OnnxModel,
        /// Every column numeric, none filled: what ONNX inputs are built
        /// with.
        spec: FeatureSpec,
    },
}

impl Model {
    /// Reads an artifact made by [`train`] or [`import_onnx`].
    pub fn load(bytes: &[u8]) -> Result<Model, MlError> {
        let artifact = Artifact::from_bytes(bytes)?;
        let model_type = ModelType::parse(&artifact.model_type).ok_or_else(|| {
            MlError::Model(format!(
                "the artifact's model type {:?} is unknown",
                artifact.model_type
            ))
        })?;
        match artifact.body {
            Body::Native {
                spec,
                label_column,
                target,
                model,
            } => {
                check_native(model_type, &spec, &target, &model)
                    .map_err(|e| MlError::Model(format!("the model artifact is corrupt: {e}")))?;
                Ok(Model {
                    model_type,
                    feature_columns: spec.names(),
                    label_column,
                    inner: Inner::Native {
                        spec,
                        target,
                        model,
                    },
                })
            }
            Body::Onnx {
                onnx,
                feature_columns,
            } => {
                check_onnx_columns(&feature_columns)
                    .map_err(|e| MlError::Model(format!("the model artifact is corrupt: {e}")))?;
                let model = onnx::OnnxModel::load(&onnx, feature_columns.len())?;
                let spec = FeatureSpec {
                    columns: feature_columns
                        .iter()
                        .map(|name| Column {
                            name: name.clone(),
                            kind: ColumnKind::Numeric,
                            fill: None,
                        })
                        .collect(),
                    scaling: None,
                };
                Ok(Model {
                    model_type: ModelType::Onnx,
                    feature_columns,
                    label_column: String::new(),
                    inner: Inner::Onnx { model, spec },
                })
            }
        }
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
        if records.is_empty() {
            return Ok(Vec::new());
        }
        match &self.inner {
            Inner::Native {
                spec,
                target,
                model,
            } => {
                let x = spec.encode(records)?;
                let outputs = predict::native(model, target, &x)?;
                Ok(predict::to_predictions(outputs, target))
            }
            Inner::Onnx { model, spec } => {
                let x = spec.encode(records)?;
                let rows: Vec<f32> = x.values.iter().map(|&v| v as f32).collect();
                model.predict(&rows, x.rows)
            }
        }
    }

    /// Scores the model on labelled `records` (the label column it was
    /// trained with).
    pub fn evaluate(&self, records: &[Record]) -> Result<PerformanceMetrics, MlError> {
        let Inner::Native {
            spec,
            target,
            model,
        } = &self.inner
        else {
            return Err(MlError::Model(
                "an imported ONNX model has no label to be scored against".into(),
            ));
        };
        if records.is_empty() {
            return Err(MlError::Data("no records to evaluate on".into()));
        }
        let truth = target.encode(records, &self.label_column)?;
        let x = spec.encode(records)?;
        let outputs = predict::native(model, target, &x)?;
        let mut metrics = training::score(target, &outputs, &truth, model, &x);
        metrics.test_rows = Some(records.len() as u64);
        Ok(metrics)
    }
}

/// Checks that a loaded native model fits its feature spec and target, so
/// a corrupt artifact cannot index out of bounds when predicting.
fn check_native(
    model_type: ModelType,
    spec: &FeatureSpec,
    target: &Target,
    model: &Native,
) -> Result<(), String> {
    let width = spec.width();
    if let Some(scaling) = &spec.scaling
        && (scaling.mean.len() != width || scaling.std.len() != width)
    {
        return Err("its scaling does not match its features".into());
    }
    let n_classes = match target {
        Target::Classes(c) => c.len(),
        _ => 0,
    };
    let leaves_ok = |trees: &[tree::Tree]| {
        n_classes == 0
            || trees.iter().all(|t| {
                t.nodes
                    .iter()
                    .all(|n| n.left != 0 || (n.value >= 0.0 && (n.value as usize) < n_classes))
            })
    };
    match (model_type, model) {
        (ModelType::DecisionTree, Native::Tree(tree)) => {
            tree.check(width)?;
            if !leaves_ok(std::slice::from_ref(tree)) {
                return Err("a leaf names an unknown class".into());
            }
        }
        (ModelType::RandomForest, Native::Forest(trees)) => {
            if trees.is_empty() {
                return Err("the forest has no trees".into());
            }
            for tree in trees {
                tree.check(width)?;
            }
            if !leaves_ok(trees) {
                return Err("a leaf names an unknown class".into());
            }
        }
        (ModelType::LinearRegression, Native::Linear(linear)) => {
            linear.check(width)?;
            if linear.outputs() != 1 {
                return Err("a linear regression has one output".into());
            }
        }
        (ModelType::LogisticRegression, Native::Linear(linear)) => {
            linear.check(width)?;
            let expected = if n_classes == 2 { 1 } else { n_classes };
            if n_classes < 2 || linear.outputs() != expected {
                return Err("the logistic model does not match its classes".into());
            }
        }
        (ModelType::NeuralNetwork, Native::Mlp(mlp)) => {
            mlp.check(width, n_classes.max(1))?;
        }
        (ModelType::Kmeans, Native::Kmeans(centroids)) => centroids.check(width)?,
        _ => return Err("the model does not match its type".into()),
    }
    Ok(())
}
