//! Training: records to features, the seeded split, the learner, the
//! held-out scores and the artifact.

use crate::artifact::{Artifact, Body, Native};
use crate::cluster::{Centroids, MAX_K};
use crate::features::{self, FeatureSpec, Matrix, Missing, Scaling};
use crate::forest;
use crate::hyper;
use crate::linear::Linear;
use crate::mlp::{MAX_LAYERS, MAX_UNITS, Mlp, MlpParams};
use crate::predict::{self, Outputs};
use crate::target::{self, Target};
use crate::tree::{Data, Tree, TreeParams};
use crate::{MlError, Progress, Record, Trained};
use mimir_core::{ModelType, PerformanceMetrics, TrainingConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};

/// Trees in a forest by default, and at most.
pub const DEFAULT_TREES: u64 = 100;
pub const MAX_TREES: u64 = 10_000;
/// Clusters by default.
pub const DEFAULT_K: u64 = 3;
/// Network defaults.
pub const DEFAULT_EPOCHS: u32 = 50;
pub const DEFAULT_BATCH: u32 = 64;
pub const DEFAULT_LEARNING_RATE: f64 = 0.01;
/// Iterations of k-means by default.
pub const DEFAULT_KMEANS_ITERATIONS: u32 = 100;

fn check_cancel(cancel: &AtomicBool) -> Result<(), MlError> {
    if cancel.load(Ordering::Relaxed) {
        Err(MlError::Cancelled)
    } else {
        Ok(())
    }
}

/// The row indices in the training and held-out splits: a seeded shuffle,
/// the first `split` share for training.
pub fn split(n: usize, share: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rows: Vec<usize> = (0..n).collect();
    rows.shuffle(&mut StdRng::seed_from_u64(seed));
    let n_train = ((n as f64 * share).round() as usize).clamp(1, n - 1);
    let test = rows.split_off(n_train);
    (rows, test)
}

/// Column-major copy of `x`, as trees read it.
fn columns(x: &Matrix) -> Vec<Vec<f64>> {
    let mut cols = vec![Vec::with_capacity(x.rows); x.width];
    for i in 0..x.rows {
        for (col, v) in cols.iter_mut().zip(x.row(i)) {
            col.push(*v);
        }
    }
    cols
}

fn one_step(progress: &mut dyn FnMut(Progress), done: u64) {
    progress(Progress {
        done,
        total: 1,
        unit: "steps",
    });
}

/// See [`crate::train`].
pub fn train(
    model_type: ModelType,
    config: &TrainingConfig,
    records: &[Record],
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Trained, MlError> {
    if !model_type.trainable() {
        return Err(MlError::Config(format!(
            "a {model_type} model cannot be trained here: import it"
        )));
    }
    config.check(model_type).map_err(MlError::Config)?;
    let hp = &config.hyperparameters;
    if records.is_empty() {
        return Err(MlError::Data(
            "the dataset is empty: no records to train on".into(),
        ));
    }
    if records.len() < 2 {
        return Err(MlError::Data(
            "the dataset has 1 record: training needs at least 2 (one to hold out)".into(),
        ));
    }
    let missing = Missing::parse(hp.get("missing_values"))?;
    let label_column = if model_type.supervised() {
        config.label_column.clone()
    } else {
        String::new()
    };
    let labels = if model_type.supervised() {
        Some(target::fit(
            model_type,
            hp.get("task"),
            records,
            &label_column,
        )?)
    } else {
        None
    };
    let names = features::choose_columns(records, &config.feature_columns, &label_column);
    if names.is_empty() {
        return Err(MlError::Data(
            "the records have no feature columns (every attribute is the label or id)".into(),
        ));
    }
    let (train_rows, test_rows) = split(records.len(), config.split(), config.seed());
    let mut spec = FeatureSpec::fit(records, &names, &train_rows, missing)?;
    if spec.width() == 0 {
        return Err(MlError::Data(
            "the feature columns encode to no values".into(),
        ));
    }
    let mut x_train = spec.encode(records, Some(&train_rows))?;
    // Gradient-based learners need features on one scale.
    if matches!(
        model_type,
        ModelType::LogisticRegression | ModelType::NeuralNetwork
    ) {
        let scaling = Scaling::fit(&x_train.values, x_train.width);
        scaling.apply(&mut x_train.values);
        spec.scaling = Some(scaling);
    }
    let x_test = spec.encode(records, Some(&test_rows))?;
    let (target, y_train, y_test) = match labels {
        Some(labels) => {
            let y_train: Vec<f64> = train_rows.iter().map(|&i| labels.y[i]).collect();
            let y_test: Vec<f64> = test_rows.iter().map(|&i| labels.y[i]).collect();
            (labels.target, y_train, y_test)
        }
        None => (Target::Clusters, Vec::new(), Vec::new()),
    };
    let n_classes = match &target {
        Target::Classes(c) => {
            let mut seen = vec![false; c.len()];
            for &v in &y_train {
                seen[v as usize] = true;
            }
            if seen.iter().filter(|s| **s).count() < 2 {
                return Err(MlError::Data(format!(
                    "label column {label_column:?}: the training split holds a single class; \
                     add records or change train_test_split"
                )));
            }
            c.len()
        }
        _ => 0,
    };
    check_cancel(cancel)?;

    let seed = config.seed();
    let mut importance: Vec<f64> = Vec::new();
    let model = match model_type {
        ModelType::DecisionTree | ModelType::RandomForest => {
            let max_depth =
                hyper::uint(hp, "max_depth", None, 1, 1_000)?.map_or(usize::MAX, |d| d as usize);
            let min_samples_split =
                hyper::uint(hp, "min_samples_split", Some(2), 2, 1_000_000)?.unwrap_or(2) as usize;
            let min_samples_leaf =
                hyper::uint(hp, "min_samples_leaf", Some(1), 1, 1_000_000)?.unwrap_or(1) as usize;
            let cols = columns(&x_train);
            let data = Data {
                columns: &cols,
                y: &y_train,
            };
            let width = x_train.width;
            if model_type == ModelType::DecisionTree {
                let params = TreeParams {
                    n_classes,
                    max_depth,
                    min_samples_split,
                    min_samples_leaf,
                    mtry: width,
                };
                progress(Progress {
                    done: 0,
                    total: 1,
                    unit: "trees",
                });
                let mut imp = vec![0.0; width];
                let samples: Vec<u32> = (0..x_train.rows as u32).collect();
                let tree = Tree::fit(
                    &data,
                    samples,
                    &params,
                    &mut StdRng::seed_from_u64(seed),
                    &mut imp,
                );
                progress(Progress {
                    done: 1,
                    total: 1,
                    unit: "trees",
                });
                importance = imp;
                Native::Tree(tree)
            } else {
                let n_trees =
                    hyper::uint(hp, "n_trees", Some(DEFAULT_TREES), 1, MAX_TREES)?.unwrap_or(1);
                // As scikit-learn: √features per split for classes, all
                // features for numbers; `max_features` overrides.
                let default_mtry = if n_classes > 0 {
                    ((width as f64).sqrt().round() as u64).max(1)
                } else {
                    width as u64
                };
                let mtry = hyper::uint(hp, "max_features", Some(default_mtry), 1, 1_000_000)?
                    .unwrap_or(default_mtry) as usize;
                let params = TreeParams {
                    n_classes,
                    max_depth,
                    min_samples_split,
                    min_samples_leaf,
                    mtry,
                };
                let (trees, imp) = forest::fit(
                    &data,
                    x_train.rows,
                    &params,
                    n_trees as usize,
                    seed,
                    progress,
                    cancel,
                )?;
                importance = imp;
                Native::Forest(trees)
            }
        }
        ModelType::LinearRegression => {
            one_step(progress, 0);
            let model = Linear::fit_regression(&x_train, &y_train)?;
            one_step(progress, 1);
            Native::Linear(model)
        }
        ModelType::LogisticRegression => {
            let alpha = hyper::float(hp, "alpha", 1.0, 0.0, 1e6)?;
            one_step(progress, 0);
            let model = Linear::fit_logistic(&x_train, &y_train, alpha)?;
            one_step(progress, 1);
            Native::Linear(model)
        }
        ModelType::Kmeans => {
            let k = hyper::uint(hp, "k", Some(DEFAULT_K), 2, MAX_K as u64)?.unwrap_or(DEFAULT_K);
            let iterations = config.max_iterations.unwrap_or(DEFAULT_KMEANS_ITERATIONS);
            one_step(progress, 0);
            let model = Centroids::fit(&x_train, k as usize, iterations as usize, seed)?;
            one_step(progress, 1);
            Native::Kmeans(model)
        }
        ModelType::NeuralNetwork => {
            let params = MlpParams {
                hidden: hyper::layers(hp, "hidden_layers", &[32], MAX_LAYERS, MAX_UNITS)?,
                n_classes,
                epochs: config.max_iterations.unwrap_or(DEFAULT_EPOCHS) as usize,
                batch_size: config.batch_size.unwrap_or(DEFAULT_BATCH) as usize,
                learning_rate: config.learning_rate.unwrap_or(DEFAULT_LEARNING_RATE),
                early_stopping_rounds: config.early_stopping_rounds.map(|r| r as usize),
                sgd: hyper::choice(hp, "optimizer", &["adam", "sgd"])? == "sgd",
                seed,
            };
            Native::Mlp(Mlp::fit(&x_train, &y_train, &params, progress, cancel)?)
        }
        ModelType::Onnx => unreachable!("refused above"),
    };
    check_cancel(cancel)?;

    let outputs = predict::native(&model, &target, &x_test)?;
    let mut metrics = score(&target, &outputs, &y_test, &model, &x_test);
    metrics.feature_importance = importance_by_column(&spec, &importance);
    metrics.train_rows = Some(train_rows.len() as u64);
    metrics.test_rows = Some(test_rows.len() as u64);

    let feature_columns = spec.names();
    let artifact = Artifact {
        model_type: model_type.as_str().to_owned(),
        body: Body::Native {
            spec,
            label_column: label_column.clone(),
            target,
            model,
        },
    }
    .to_bytes()?;
    Ok(Trained {
        artifact,
        metrics,
        feature_columns,
        label_column,
    })
}

/// Scores predictions against the truth.
pub fn score(
    target: &Target,
    outputs: &Outputs,
    truth: &[f64],
    model: &Native,
    x: &Matrix,
) -> PerformanceMetrics {
    match (target, outputs) {
        (Target::Classes(classes), Outputs::Classes(predicted, _)) => {
            crate::scores::classification(
                truth,
                predicted,
                classes.iter().map(|c| c.label()).collect(),
            )
        }
        (Target::Regression, Outputs::Numbers(predicted)) => {
            crate::scores::regression(truth, predicted)
        }
        _ => {
            let mut m = PerformanceMetrics::default();
            if let Native::Kmeans(centroids) = model {
                m.extra
                    .insert("inertia".into(), Value::from(centroids.inertia(x)));
                m.extra.insert("clusters".into(), Value::from(centroids.k));
            }
            m
        }
    }
}

/// Importances of encoded features summed per input column, normalised.
fn importance_by_column(spec: &FeatureSpec, importance: &[f64]) -> Map<String, Value> {
    let mut out = Map::new();
    let total: f64 = importance.iter().sum();
    if importance.is_empty() || total <= 0.0 {
        return out;
    }
    let mut per_column = vec![0.0; spec.columns.len()];
    for (owner, v) in spec.owners().into_iter().zip(importance) {
        per_column[owner] += v;
    }
    for (column, v) in spec.columns.iter().zip(per_column) {
        out.insert(column.name.clone(), Value::from(v / total));
    }
    out
}
