//! The same seed and data train the same model, byte for byte; progress
//! is reported per unit; cancelling stops training.

mod common;

use common::{binary, blobs, config, linear, train};
use mimir_core::ModelType;
use mimir_ml::{MlError, Model, Progress, checksum};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};

fn cases() -> Vec<(ModelType, &'static str, Vec<mimir_ml::Record>)> {
    vec![
        (ModelType::DecisionTree, "label", binary(500, 11)),
        (ModelType::RandomForest, "label", binary(500, 11)),
        (ModelType::RandomForest, "y", linear(500, 12)),
        (ModelType::LinearRegression, "y", linear(500, 12)),
        (ModelType::LogisticRegression, "label", binary(500, 11)),
        (ModelType::NeuralNetwork, "label", binary(500, 11)),
        (ModelType::NeuralNetwork, "y", linear(500, 12)),
        (ModelType::Kmeans, "", blobs(300, 13)),
    ]
}

#[test]
fn the_same_seed_and_data_give_a_byte_identical_artifact_for_every_model_type() {
    for (model_type, label, records) in cases() {
        let mut cfg = config(label);
        cfg.random_seed = Some(7);
        cfg.hyperparameters.insert("n_trees".into(), json!(20));
        cfg.max_iterations = Some(10);
        cfg.early_stopping_rounds = Some(3);
        let a = train(model_type, &cfg, &records).unwrap();
        let b = train(model_type, &cfg, &records).unwrap();
        assert_eq!(checksum(&a.artifact), checksum(&b.artifact), "{model_type}");
        assert!(a.artifact == b.artifact, "{model_type}");
        assert_eq!(a.metrics, b.metrics, "{model_type}");
        // And it loads and predicts the same as the first.
        let model = Model::load(&a.artifact).unwrap();
        assert_eq!(model.model_type(), model_type);
        assert_eq!(model.feature_columns(), a.feature_columns.as_slice());
    }
}

#[test]
fn a_different_seed_gives_the_forest_a_different_split_and_model() {
    let records = binary(500, 11);
    let mut cfg = config("label");
    cfg.hyperparameters.insert("n_trees".into(), json!(20));
    cfg.random_seed = Some(1);
    let a = train(ModelType::RandomForest, &cfg, &records).unwrap();
    cfg.random_seed = Some(2);
    let b = train(ModelType::RandomForest, &cfg, &records).unwrap();
    assert_ne!(checksum(&a.artifact), checksum(&b.artifact));
    // A different held-out split: the confusion matrices differ (same size,
    // other records).
    assert_eq!(a.metrics.test_rows, b.metrics.test_rows);
    assert_ne!(a.metrics.confusion_matrix, b.metrics.confusion_matrix);
}

#[test]
fn a_forest_reports_each_tree() {
    let mut cfg = config("label");
    cfg.hyperparameters.insert("n_trees".into(), json!(12));
    let mut seen = Vec::new();
    mimir_ml::train(
        ModelType::RandomForest,
        &cfg,
        &binary(300, 1),
        &mut |p: Progress| seen.push(p),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(seen.len(), 13, "0 then each of 12 trees: {seen:?}");
    for (i, p) in seen.iter().enumerate() {
        assert_eq!((p.done, p.total, p.unit), (i as u64, 12, "trees"));
    }
}

#[test]
fn a_network_reports_each_epoch() {
    let mut cfg = config("label");
    cfg.max_iterations = Some(7);
    let mut seen = Vec::new();
    mimir_ml::train(
        ModelType::NeuralNetwork,
        &cfg,
        &binary(300, 1),
        &mut |p: Progress| seen.push(p),
        &AtomicBool::new(false),
    )
    .unwrap();
    let done: Vec<u64> = seen.iter().map(|p| p.done).collect();
    assert_eq!(done, [1, 2, 3, 4, 5, 6, 7]);
    assert!(seen.iter().all(|p| p.total == 7 && p.unit == "epochs"));
}

#[test]
fn one_step_learners_report_start_and_end() {
    for model_type in [ModelType::LinearRegression, ModelType::Kmeans] {
        let mut seen = Vec::new();
        let (label, records) = if model_type == ModelType::Kmeans {
            ("", blobs(90, 1))
        } else {
            ("y", linear(100, 1))
        };
        mimir_ml::train(
            model_type,
            &config(label),
            &records,
            &mut |p: Progress| seen.push((p.done, p.total)),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(seen, [(0, 1), (1, 1)], "{model_type}");
    }
}

fn cancelled_after_first_unit(model_type: ModelType) {
    let mut cfg = config("label");
    cfg.hyperparameters.insert("n_trees".into(), json!(200));
    cfg.max_iterations = Some(500);
    let cancel = AtomicBool::new(false);
    let mut last = None;
    let result = mimir_ml::train(
        model_type,
        &cfg,
        &binary(2000, 1),
        &mut |p: Progress| {
            if p.done >= 1 {
                cancel.store(true, Ordering::Relaxed);
            }
            last = Some(p);
        },
        &cancel,
    );
    assert!(matches!(result, Err(MlError::Cancelled)), "{model_type}");
    let last = last.unwrap();
    assert!(
        last.done < last.total / 2,
        "{model_type} went on to {}/{}",
        last.done,
        last.total
    );
}

#[test]
fn cancelling_stops_a_forest_between_trees() {
    cancelled_after_first_unit(ModelType::RandomForest);
}

#[test]
fn cancelling_stops_a_network_between_epochs() {
    cancelled_after_first_unit(ModelType::NeuralNetwork);
}

#[test]
fn cancelling_before_training_trains_nothing() {
    let cancel = AtomicBool::new(true);
    let result = mimir_ml::train(
        ModelType::LogisticRegression,
        &config("label"),
        &binary(100, 1),
        &mut |_| {},
        &cancel,
    );
    assert!(matches!(result, Err(MlError::Cancelled)));
}
