//! Each model type learns a set built from a known rule, and what it
//! learnt survives the artifact round trip.

mod common;

use common::{bands, binary, blobs, config, linear, train};
use mimir_core::ModelType;
use mimir_ml::Model;
use serde_json::{Value, json};

fn accuracy(model_type: ModelType) -> f64 {
    let records = binary(800, 1);
    let trained = train(model_type, &config("label"), &records).unwrap();
    let m = &trained.metrics;
    assert_eq!(m.classes, ["neg", "pos"]);
    assert_eq!(m.confusion_matrix.len(), 2);
    assert_eq!(m.train_rows, Some(640));
    assert_eq!(m.test_rows, Some(160));
    assert_eq!(
        trained.feature_columns,
        ["color", "flag", "x1", "x2", "x3", "x4"],
        "every attribute but the label and id, sorted"
    );
    // The artifact answers the original class values.
    let model = Model::load(&trained.artifact).unwrap();
    let fresh = binary(200, 99);
    let predictions = model.predict(&fresh).unwrap();
    assert_eq!(predictions.len(), 200);
    let right = predictions
        .iter()
        .zip(&fresh)
        .filter(|(p, r)| p.prediction == r["label"])
        .count();
    assert!(
        right as f64 / 200.0 > 0.85,
        "{model_type}: {right}/200 on fresh data"
    );
    for p in &predictions {
        let c = p.confidence.expect("classifiers give a confidence");
        assert!((0.0..=1.0).contains(&c));
    }
    m.accuracy.unwrap()
}

#[test]
fn a_decision_tree_learns_a_separable_set() {
    let a = accuracy(ModelType::DecisionTree);
    assert!(a > 0.9, "accuracy {a}");
}

#[test]
fn a_random_forest_learns_a_separable_set_and_ranks_the_deciding_features_first() {
    let records = binary(800, 1);
    let mut cfg = config("label");
    cfg.hyperparameters.insert("n_trees".into(), json!(30));
    let trained = train(ModelType::RandomForest, &cfg, &records).unwrap();
    assert!(
        trained.metrics.accuracy.unwrap() > 0.9,
        "{:?}",
        trained.metrics
    );
    let imp = &trained.metrics.feature_importance;
    let sum: f64 = imp.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-9);
    let x1 = imp["x1"].as_f64().unwrap();
    for other in ["x3", "x4", "color", "flag"] {
        assert!(
            x1 > imp[other].as_f64().unwrap(),
            "x1 {x1} vs {other} {}",
            imp[other]
        );
    }
    assert!(accuracy(ModelType::RandomForest) > 0.9);
}

#[test]
fn logistic_regression_learns_a_separable_set() {
    let a = accuracy(ModelType::LogisticRegression);
    assert!(a > 0.9, "accuracy {a}");
}

#[test]
fn a_neural_network_learns_a_separable_set() {
    let a = accuracy(ModelType::NeuralNetwork);
    assert!(a > 0.9, "accuracy {a}");
}

#[test]
fn whole_number_labels_are_classes_and_come_back_as_numbers() {
    let records = bands(600, 2);
    for model_type in [
        ModelType::DecisionTree,
        ModelType::RandomForest,
        ModelType::LogisticRegression,
        ModelType::NeuralNetwork,
    ] {
        let mut cfg = config("class");
        cfg.hyperparameters.insert("n_trees".into(), json!(20));
        cfg.max_iterations = Some(100);
        let trained = train(model_type, &cfg, &records).unwrap();
        assert_eq!(trained.metrics.classes, ["0", "1", "2"], "{model_type}");
        assert!(
            trained.metrics.accuracy.unwrap() > 0.9,
            "{model_type}: {:?}",
            trained.metrics
        );
        let model = Model::load(&trained.artifact).unwrap();
        let p = model
            .predict(&[json!({"x1": 0.9, "x2": 0.0}).as_object().unwrap().clone()])
            .unwrap();
        assert_eq!(p[0].prediction, json!(2), "{model_type}");
    }
}

fn r2(model_type: ModelType) -> f64 {
    let records = linear(1000, 3);
    let mut cfg = config("y");
    cfg.hyperparameters.insert("n_trees".into(), json!(30));
    cfg.max_iterations = Some(100);
    let trained = train(model_type, &cfg, &records).unwrap();
    let m = &trained.metrics;
    assert!(m.accuracy.is_none() && m.confusion_matrix.is_empty());
    assert!(m.rmse.unwrap() >= 0.0 && m.mae.unwrap() >= 0.0);
    let model = Model::load(&trained.artifact).unwrap();
    let p = model
        .predict(&[json!({"x1": 0.5, "x2": -0.5, "color": "red"})
            .as_object()
            .unwrap()
            .clone()])
        .unwrap();
    let want = 3.0 * 0.5 + 1.0 + 0.5 + 1.0;
    let got = p[0].prediction.as_f64().unwrap();
    assert!((got - want).abs() < 0.6, "{model_type}: {got} vs {want}");
    assert_eq!(p[0].confidence, None);
    m.r2_score.unwrap()
}

#[test]
fn linear_regression_fits_a_linear_rule() {
    let r = r2(ModelType::LinearRegression);
    assert!(r > 0.999, "r2 {r}");
}

#[test]
fn trees_regress_a_float_label() {
    for t in [ModelType::DecisionTree, ModelType::RandomForest] {
        let r = r2(t);
        assert!(r > 0.9, "{t}: r2 {r}");
    }
}

#[test]
fn a_neural_network_regresses_a_float_label() {
    let r = r2(ModelType::NeuralNetwork);
    assert!(r > 0.9, "r2 {r}");
}

#[test]
fn kmeans_finds_the_blobs() {
    let records = blobs(300, 4);
    let mut cfg = config("");
    cfg.feature_columns = vec!["a".into(), "b".into()];
    let trained = train(ModelType::Kmeans, &cfg, &records).unwrap();
    assert_eq!(trained.label_column, "");
    let inertia = trained.metrics.extra["inertia"].as_f64().unwrap();
    // Points lie within ±1 of their centre on each axis: at most 2 each.
    assert!(inertia < 2.0 * 60.0, "inertia {inertia}");
    let model = Model::load(&trained.artifact).unwrap();
    let predictions = model.predict(&records).unwrap();
    // Each blob is one cluster, and no two blobs share one.
    let mut cluster_of_blob = [None; 3];
    for (p, r) in predictions.iter().zip(&records) {
        let blob = r["blob"].as_u64().unwrap() as usize;
        let cluster = p.prediction.as_u64().unwrap();
        assert_eq!(*cluster_of_blob[blob].get_or_insert(cluster), cluster);
        assert_eq!(p.confidence, None);
    }
    let mut clusters: Vec<_> = cluster_of_blob.iter().map(|c| c.unwrap()).collect();
    clusters.sort();
    clusters.dedup();
    assert_eq!(clusters.len(), 3);
}

#[test]
fn evaluate_rescores_on_fresh_labelled_records() {
    let trained = train(ModelType::DecisionTree, &config("label"), &binary(600, 5)).unwrap();
    let model = Model::load(&trained.artifact).unwrap();
    assert_eq!(model.label_column(), "label");
    assert_eq!(model.model_type(), ModelType::DecisionTree);
    let m = model.evaluate(&binary(300, 6)).unwrap();
    assert!(m.accuracy.unwrap() > 0.9);
    assert_eq!(m.test_rows, Some(300));
    // Labels flipped: the same model now scores badly.
    let mut flipped = binary(300, 6);
    for r in &mut flipped {
        let l = if r["label"] == "pos" { "neg" } else { "pos" };
        r.insert("label".into(), Value::from(l));
    }
    assert!(model.evaluate(&flipped).unwrap().accuracy.unwrap() < 0.1);
}

#[test]
fn string_and_boolean_labels_come_back_as_they_were() {
    let mut records = binary(400, 7);
    for r in &mut records {
        let b = r["label"] == "pos";
        r.insert("label".into(), Value::Bool(b));
    }
    let trained = train(ModelType::LogisticRegression, &config("label"), &records).unwrap();
    assert_eq!(trained.metrics.classes, ["false", "true"]);
    let model = Model::load(&trained.artifact).unwrap();
    let p = model.predict(&records[..50]).unwrap();
    let right = p
        .iter()
        .zip(&records)
        .filter(|(p, r)| p.prediction == r["label"])
        .count();
    assert!(right >= 45, "{right}/50");
}
