//! Imported ONNX models against onnxruntime: real scikit-learn models on the
//! breast-cancer set, converted by skl2onnx, imported with
//! `mimir_ml::import_onnx` and run through `Model::load`/`predict`, must
//! answer what onnxruntime answers for the same float32 rows.
//!
//! `tests/onnx_models.py` builds the models; it runs under the Python of
//! `scripts/install-ml-python` (`MIMIR_ML_PYTHON`, which `scripts/test`
//! sets). Without it these tests fail, saying how to get it.

use mimir_ml::{MlError, Model, Record, import_onnx};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Probabilities and numbers agree with onnxruntime's to this, relative to
/// the value once it exceeds 1 (float32 holds about 7 digits, so a value in
/// the hundreds cannot agree to 1e-5 absolute in any runtime).
const TOLERANCE: f64 = 1e-5;

/// The built models: the temp dir (kept while the tests run) and the
/// parsed `models.json`.
struct Built {
    dir: tempfile::TempDir,
    models: Vec<Value>,
}

fn python() -> String {
    if let Ok(path) = std::env::var("MIMIR_ML_PYTHON") {
        return path;
    }
    let installed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/ml-venv/bin/python"
    );
    if Path::new(installed).exists() {
        return installed.to_string();
    }
    panic!(
        "scikit-learn, skl2onnx and onnxruntime are needed for the ONNX tests: run scripts/install-ml-python and set MIMIR_ML_PYTHON to the path it prints"
    );
}

/// Runs the model builder once per test binary.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onnx_models.py");
        let python = python();
        let output = Command::new(&python)
            .arg(script)
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {python} {script}: {e}"));
        assert!(
            output.status.success(),
            "{python} {script} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("models.json"))
            .unwrap_or_else(|e| panic!("models.json: {e}"));
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("models.json: {e}"));
        let models = json["models"].as_array().cloned().unwrap_or_default();
        Built { dir, models }
    })
}

fn file(name: &str) -> PathBuf {
    built().dir.path().join(name)
}

fn spec(name: &str) -> &'static Value {
    built()
        .models
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no model {name} in models.json"))
}

fn columns(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("f{i}")).collect()
}

/// The spec's rows as records `{"f0": .., "f1": .., ...}`.
fn records(spec: &Value) -> Vec<Record> {
    let names = columns(spec["n_features"].as_u64().unwrap_or(0) as usize);
    let rows = spec["rows"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|row| {
            let values = row.as_array().cloned().unwrap_or_default();
            names.iter().cloned().zip(values).collect()
        })
        .collect()
}

/// Imports the named model and loads its artifact back.
fn import(name: &str) -> Model {
    let spec = spec(name);
    let bytes = std::fs::read(spec["file"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let n = spec["n_features"].as_u64().unwrap_or(0) as usize;
    let artifact = import_onnx(&bytes, &columns(n)).unwrap_or_else(|e| panic!("{name}: {e}"));
    Model::load(&artifact).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= TOLERANCE * want.abs().max(1.0)
}

/// Labels equal onnxruntime's exactly, and the confidence is the largest of
/// its probabilities.
fn check_classifier(name: &str) {
    let spec = spec(name);
    let predictions = import(name)
        .predict(&records(spec))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let labels = spec["labels"].as_array().cloned().unwrap_or_default();
    let probabilities = spec["probabilities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        predictions.len(),
        labels.len(),
        "{name}: one prediction per row"
    );
    assert!(!labels.is_empty());
    let mut worst = 0.0f64;
    for (row, (p, (label, probs))) in predictions
        .iter()
        .zip(labels.iter().zip(&probabilities))
        .enumerate()
    {
        assert_eq!(&p.prediction, label, "{name} row {row}: label");
        let best = probs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .fold(f64::NEG_INFINITY, f64::max);
        let confidence = p
            .confidence
            .unwrap_or_else(|| panic!("{name} row {row}: no confidence"));
        assert!(
            close(confidence, best),
            "{name} row {row}: confidence {confidence}, onnxruntime {best}"
        );
        worst = worst.max((confidence - best).abs());
    }
    eprintln!(
        "{name}: {} rows, max |confidence - onnxruntime| = {worst:e}",
        labels.len()
    );
}

/// Numbers equal onnxruntime's, with no confidence.
fn check_values(name: &str) {
    let spec = spec(name);
    let predictions = import(name)
        .predict(&records(spec))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let values = spec["values"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        predictions.len(),
        values.len(),
        "{name}: one prediction per row"
    );
    assert!(!values.is_empty());
    let mut worst = 0.0f64;
    for (row, (p, want)) in predictions.iter().zip(&values).enumerate() {
        let got = p
            .prediction
            .as_f64()
            .unwrap_or_else(|| panic!("{name} row {row}: not a number"));
        let want = want.as_f64().unwrap_or(f64::NAN);
        assert!(
            close(got, want),
            "{name} row {row}: {got}, onnxruntime {want}"
        );
        assert_eq!(
            p.confidence, None,
            "{name} row {row}: a number has no confidence"
        );
        worst = worst.max((got - want).abs());
    }
    eprintln!(
        "{name}: {} rows, max |value - onnxruntime| = {worst:e}",
        values.len()
    );
}

fn expect_model_error(result: Result<Vec<u8>, MlError>, needle: &str) {
    match result {
        Err(MlError::Model(message)) => assert!(
            message.contains(needle),
            "the message {message:?} does not say {needle:?}"
        ),
        other => panic!("expected a model error saying {needle:?}, got {other:?}"),
    }
}

#[test]
fn logistic_regression_matches_onnxruntime() {
    check_classifier("logistic");
}

#[test]
fn logistic_regression_with_string_labels_matches_onnxruntime() {
    check_classifier("logistic_named");
    let first = &spec("logistic_named")["labels"][0];
    assert!(
        first.is_string(),
        "the named model's labels are strings: {first}"
    );
}

#[test]
fn random_forest_matches_onnxruntime() {
    check_classifier("forest");
}

#[test]
fn linear_regression_matches_onnxruntime() {
    check_values("linear");
}

#[test]
fn tiny_network_matches_onnxruntime() {
    check_values("tiny");
}

#[test]
fn any_batch_size_gives_the_same_predictions() {
    let spec = spec("forest");
    let model = import("forest");
    let rows = records(spec);
    let all = model.predict(&rows).unwrap_or_else(|e| panic!("{e}"));
    for size in [1, 7, 50] {
        let mut batched = Vec::new();
        for chunk in rows[..50].chunks(size) {
            batched.extend(model.predict(chunk).unwrap_or_else(|e| panic!("{e}")));
        }
        assert_eq!(batched, all[..50], "batches of {size}");
    }
    // A batch bigger than any the model saw at conversion.
    let many: Vec<Record> = rows.iter().cycle().take(5_000).cloned().collect();
    let predicted = model.predict(&many).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(predicted.len(), 5_000);
    assert_eq!(predicted[rows.len()], all[0]);
    assert!(
        model
            .predict(&[])
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
}

#[test]
fn garbage_bytes_are_refused() {
    let columns = columns(30);
    expect_model_error(import_onnx(b"this is not an onnx model", &columns), "ONNX");
    expect_model_error(import_onnx(&[0xff; 64], &columns), "ONNX");
    // A real model cut short.
    let bytes = std::fs::read(file("forest.onnx")).unwrap_or_else(|e| panic!("{e}"));
    expect_model_error(import_onnx(&bytes[..bytes.len() / 2], &columns), "ONNX");
}

#[test]
fn empty_bytes_are_refused() {
    // An empty protobuf parses as a model with no graph.
    expect_model_error(import_onnx(&[], &columns(30)), "ONNX");
}

#[test]
fn wrong_feature_count_is_refused() {
    let bytes = std::fs::read(file("logistic.onnx")).unwrap_or_else(|e| panic!("{e}"));
    expect_model_error(
        import_onnx(&bytes, &columns(29)),
        "30 features per row, but 29",
    );
    expect_model_error(
        import_onnx(&bytes, &columns(31)),
        "30 features per row, but 31",
    );
}

#[test]
fn a_model_taking_no_input_is_refused() {
    let bytes = std::fs::read(file("no_inputs.onnx")).unwrap_or_else(|e| panic!("{e}"));
    expect_model_error(import_onnx(&bytes, &columns(30)), "takes no input");
}

#[test]
fn zipmap_probabilities_are_refused_by_name() {
    let bytes = std::fs::read(file("zipmap.onnx")).unwrap_or_else(|e| panic!("{e}"));
    let result = import_onnx(&bytes, &columns(30));
    match result {
        Err(MlError::Model(message)) => assert!(
            message.contains("zipmap") || message.contains("ONNX"),
            "the message {message:?} does not explain the refusal"
        ),
        other => panic!("a zipmap model was not refused: {other:?}"),
    }
}

#[test]
fn feature_columns_are_checked() {
    let bytes = std::fs::read(file("logistic.onnx")).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(import_onnx(&bytes, &[]), Err(MlError::Config(_))));
    let mut twice = columns(30);
    twice[29] = "f0".into();
    match import_onnx(&bytes, &twice) {
        Err(MlError::Config(message)) => assert!(message.contains("f0"), "{message}"),
        other => panic!("duplicate columns were not refused: {other:?}"),
    }
}

#[test]
fn a_record_missing_a_feature_is_refused_by_name() {
    let spec = spec("logistic");
    let model = import("logistic");
    let mut rows = records(spec);
    rows[3].remove("f12");
    match model.predict(&rows) {
        Err(MlError::Data(message)) => assert!(message.contains("f12"), "{message}"),
        other => panic!("a missing feature was not refused: {other:?}"),
    }
}
