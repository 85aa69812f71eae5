//! `bench ml`: mimir-ml beside scikit-learn and onnxruntime, in one run, on
//! the same rows.
//!
//! `scripts/bench_ml.py` (run with `--python`, the interpreter
//! `scripts/install-ml-python` prints) makes a `--rows` × `--features`
//! synthetic set and takes scikit-learn's breast-cancer set, splits each
//! 75/25 with the seed, writes the splits as NDJSON, and times scikit-learn's
//! random forest (100 trees, `n_jobs` = cores) and logistic regression, plus
//! onnxruntime on the logistic regression exported to ONNX. This side then
//! trains the same two models with `mimir_ml::train` on the same training
//! rows, scores them on the same test rows, imports the same ONNX file and
//! compares `Model::predict` with onnxruntime: throughput and the largest
//! difference of the probabilities.
//!
//! `mimir_ml::train` holds out a share of what it is given (a share in
//! (0, 1)); it is given the training split with a share that leaves one row
//! out, and scored with `Model::evaluate`'s predictions on the test split.
//! Predictions are timed through `Model::predict` on JSON records, the path
//! inference takes, so mimir-ml's figures include encoding the records; the
//! ONNX model is also timed on the f32 rows alone, as onnxruntime is.

use anyhow::Context;
use clap::Args;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use mimir_core::{ModelType, TrainingConfig};
use mimir_ml::{Model, Record};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Timed repeats of each prediction; the best is reported (as the Python
/// side does).
const REPEATS: usize = 5;

/// Options of `bench ml`.
#[derive(Debug, Args)]
pub struct MlArgs {
    /// The Python with scikit-learn, skl2onnx and onnxruntime
    /// (`scripts/install-ml-python` installs it and prints its path).
    #[arg(long, env = "MIMIR_ML_PYTHON")]
    python: String,
    /// The scikit-learn side.
    #[arg(long, default_value = "scripts/bench_ml.py")]
    script: PathBuf,
    /// Rows of the synthetic set.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Features of the synthetic set.
    #[arg(long, default_value_t = 20)]
    features: usize,
    /// Seed of the data, the split and the models.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the data sets and models are written (kept); a temporary
    /// directory, removed afterwards, when not given.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// One model's figures on one side.
#[derive(Debug, Default)]
struct Figures {
    fit_seconds: f64,
    predict_seconds: f64,
    accuracy: f64,
    rows: usize,
}

impl Figures {
    fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.predict_seconds
    }

    fn from_python(json: &Value, rows: usize) -> Figures {
        Figures {
            fit_seconds: json["fit_seconds"].as_f64().unwrap_or(f64::NAN),
            predict_seconds: json["predict_seconds"].as_f64().unwrap_or(f64::NAN),
            accuracy: json["accuracy"].as_f64().unwrap_or(f64::NAN),
            rows,
        }
    }
}

/// Runs the scenario and prints its figures.
pub async fn run(args: MlArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(args)).await?
}

fn run_blocking(args: MlArgs) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "scikit-learn side: {} {} ({} rows x {} features, n_jobs={cores})",
        args.python,
        args.script.display(),
        args.rows,
        args.features
    );
    let python = run_python(&args, &dir, cores)?;
    println!(
        "python {}, scikit-learn {}, onnxruntime {}, {} cores",
        python["python"].as_str().unwrap_or("?"),
        python["sklearn"].as_str().unwrap_or("?"),
        python["onnxruntime"].as_str().unwrap_or("?"),
        python["cores"]
    );

    let mut training = Table::new();
    training.load_preset(UTF8_BORDERS_ONLY);
    training.set_header(vec![
        "data set",
        "model",
        "train s (mimir)",
        "train s (sklearn)",
        "ratio",
        "accuracy (mimir)",
        "accuracy (sklearn)",
        "predict rows/s (mimir)",
        "predict rows/s (sklearn)",
    ]);
    let mut onnx = Table::new();
    onnx.load_preset(UTF8_BORDERS_ONLY);
    onnx.set_header(vec![
        "data set",
        "rows",
        "rows/s (mimir Model::predict)",
        "rows/s (tract alone)",
        "rows/s (onnxruntime)",
        "ratio (tract / onnxruntime)",
        "max |probability diff|",
        "labels equal",
    ]);

    for name in ["synthetic", "breast_cancer"] {
        let set = &python["datasets"][name];
        let train = read_ndjson(Path::new(set["train"].as_str().unwrap_or_default()))?;
        let test = read_ndjson(Path::new(set["test"].as_str().unwrap_or_default()))?;
        let features = set["features"].as_u64().unwrap_or(0) as usize;
        let columns: Vec<String> = (0..features).map(|i| format!("f{i}")).collect();
        println!(
            "{name}: {} training rows, {} test rows, {features} features",
            train.len(),
            test.len()
        );

        for (key, model_type) in [
            ("random_forest", ModelType::RandomForest),
            ("logistic_regression", ModelType::LogisticRegression),
        ] {
            let theirs = Figures::from_python(&set["models"][key], test.len());
            let mut row = vec![name.to_string(), key.to_string()];
            match bench_native(model_type, &columns, &train, &test, args.seed) {
                Ok(ours) => row.extend([
                    format!("{:.3}", ours.fit_seconds),
                    format!("{:.3}", theirs.fit_seconds),
                    format!("{:.2}x", ours.fit_seconds / theirs.fit_seconds),
                    format!("{:.4}", ours.accuracy),
                    format!("{:.4}", theirs.accuracy),
                    format!("{:.0}", ours.rows_per_second()),
                    format!("{:.0}", theirs.rows_per_second()),
                ]),
                Err(e) => row.extend([
                    format!("error: {e}"),
                    format!("{:.3}", theirs.fit_seconds),
                    "-".into(),
                    "-".into(),
                    format!("{:.4}", theirs.accuracy),
                    "-".into(),
                    format!("{:.0}", theirs.rows_per_second()),
                ]),
            }
            training.add_row(row);
        }

        let runtime_seconds = set["onnx"]["predict_seconds"].as_f64().unwrap_or(f64::NAN);
        let runtime_rate = test.len() as f64 / runtime_seconds;
        let mut row = vec![name.to_string(), test.len().to_string()];
        match bench_onnx(&set["onnx"], &columns, &test) {
            Ok(ours) => row.extend([
                format!("{:.0}", ours.rows_per_second),
                format!("{:.0}", ours.raw_rows_per_second),
                format!("{runtime_rate:.0}"),
                format!("{:.2}", ours.raw_rows_per_second / runtime_rate),
                format!("{:.2e}", ours.max_difference),
                format!("{}/{}", ours.labels_equal, test.len()),
            ]),
            Err(e) => row.extend([
                format!("error: {e}"),
                "-".into(),
                format!("{runtime_rate:.0}"),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
        }
        onnx.add_row(row);
    }
    println!(
        "\nTraining and batch prediction (held-out accuracy on the same test rows)\n{training}"
    );
    println!("\nImported ONNX logistic regression (one batch of the test rows)\n{onnx}");
    Ok(())
}

/// Runs `bench_ml.py` and answers the JSON it prints.
fn run_python(args: &MlArgs, dir: &Path, cores: usize) -> anyhow::Result<Value> {
    let output = Command::new(&args.python)
        .arg(&args.script)
        .arg(dir)
        .args(["--rows", &args.rows.to_string()])
        .args(["--features", &args.features.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--jobs", &cores.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} {}", args.python, args.script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} {} failed ({})",
        args.python,
        args.script.display(),
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("the scikit-learn side printed {last:?}"))
}

fn read_ndjson(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        records.push(
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}", path.display(), i + 1))?,
        );
    }
    Ok(records)
}

/// Trains on `train` (all but one row: see the module doc), predicts `test`.
fn bench_native(
    model_type: ModelType,
    columns: &[String],
    train: &[Record],
    test: &[Record],
    seed: u64,
) -> anyhow::Result<Figures> {
    let mut config = TrainingConfig {
        train_test_split: Some((train.len() as f64 - 1.0) / train.len() as f64),
        random_seed: Some(seed),
        label_column: "label".into(),
        feature_columns: columns.to_vec(),
        ..TrainingConfig::default()
    };
    if model_type == ModelType::RandomForest {
        config.hyperparameters.insert("n_trees".into(), json!(100));
    }
    let cancel = AtomicBool::new(false);
    let started = Instant::now();
    let trained = mimir_ml::train(model_type, &config, train, &mut |_| {}, &cancel)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let model = Model::load(&trained.artifact)?;
    let (predict_seconds, predictions) = best_of(|| model.predict(test))?;
    let correct = predictions
        .iter()
        .zip(test)
        .filter(|(p, record)| same_label(&p.prediction, &record["label"]))
        .count();
    Ok(Figures {
        fit_seconds,
        predict_seconds,
        accuracy: correct as f64 / test.len() as f64,
        rows: test.len(),
    })
}

/// What the imported ONNX model did beside onnxruntime.
struct OnnxFigures {
    rows_per_second: f64,
    raw_rows_per_second: f64,
    max_difference: f64,
    labels_equal: usize,
}

/// Imports the ONNX file the Python side wrote, predicts `test` and
/// compares with onnxruntime's predictions of it.
fn bench_onnx(onnx: &Value, columns: &[String], test: &[Record]) -> anyhow::Result<OnnxFigures> {
    let file = onnx["file"].as_str().unwrap_or_default();
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    let artifact = mimir_ml::import_onnx(&bytes, columns)?;
    let model = Model::load(&artifact)?;
    let (seconds, predictions) = best_of(|| model.predict(test))?;
    // The same rows as f32, as onnxruntime was given them.
    let mut rows = Vec::with_capacity(test.len() * columns.len());
    for record in test {
        for column in columns {
            rows.push(record[column].as_f64().unwrap_or(f64::NAN) as f32);
        }
    }
    let raw = mimir_ml::onnx_raw_predictor(&bytes, columns.len())?;
    let (raw_seconds, raw_predictions) = best_of(|| raw(&rows, test.len()))?;
    anyhow::ensure!(
        raw_predictions == predictions,
        "tract alone and Model::predict disagree"
    );
    let expected_path = onnx["expected"].as_str().unwrap_or_default();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(expected_path)
            .with_context(|| format!("reading {expected_path}"))?,
    )?;
    let labels = expected["labels"]
        .as_array()
        .context("no labels from onnxruntime")?;
    let probabilities = expected["probabilities"]
        .as_array()
        .context("no probabilities from onnxruntime")?;
    anyhow::ensure!(
        labels.len() == predictions.len() && probabilities.len() == predictions.len(),
        "onnxruntime answered {} rows, mimir-ml {}",
        labels.len(),
        predictions.len()
    );
    let mut max_difference = 0.0f64;
    let mut labels_equal = 0;
    for ((p, label), probs) in predictions.iter().zip(labels).zip(probabilities) {
        if same_label(&p.prediction, label) {
            labels_equal += 1;
        }
        let best = probs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .fold(f64::NEG_INFINITY, f64::max);
        let confidence = p.confidence.unwrap_or(f64::NAN);
        max_difference = max_difference.max((confidence - best).abs());
    }
    Ok(OnnxFigures {
        rows_per_second: test.len() as f64 / seconds,
        raw_rows_per_second: test.len() as f64 / raw_seconds,
        max_difference,
        labels_equal,
    })
}

/// Labels compare as numbers when both are numbers (`1` and `1.0` are one
/// class), else as JSON.
fn same_label(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The best of [`REPEATS`] timed runs, and the last run's answer.
fn best_of<T>(mut f: impl FnMut() -> Result<T, mimir_ml::MlError>) -> anyhow::Result<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..REPEATS {
        let started = Instant::now();
        let answer = f()?;
        best = best.min(started.elapsed().as_secs_f64());
        last = Some(answer);
    }
    Ok((best, last.context("no timed run")?))
}
