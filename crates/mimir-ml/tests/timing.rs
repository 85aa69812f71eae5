//! Training and prediction times on a 100,000 × 20 set (ignored by
//! default: run `cargo test --release -p mimir-ml --test timing --
//! --ignored --nocapture`). Figures are printed, not asserted: the
//! benchmark compares them with scikit-learn.

use mimir_core::{ModelType, TrainingConfig};
use mimir_ml::{Model, Record};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// 20 features in [-1, 1); the label is a noisy rule over six of them.
fn dataset(n: usize) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(2024);
    (0..n)
        .map(|_| {
            let x: Vec<f64> = (0..20).map(|_| rng.random_range(-1.0..1.0)).collect();
            let noise: f64 = rng.random_range(-0.5..0.5);
            let score = x[0] + 0.8 * x[1] - 0.6 * x[2]
                + 0.5 * x[3] * x[4]
                + 0.3 * (3.0 * x[5]).sin()
                + noise;
            let mut r = Map::new();
            for (j, v) in x.iter().enumerate() {
                r.insert(format!("f{j:02}"), json!(v));
            }
            r.insert("label".into(), Value::from(i64::from(score > 0.0)));
            r
        })
        .collect()
}

/// CPU seconds this process has used (user + system), from /proc: on a
/// shared machine wall time alone says little.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

/// Trains `reps` times and reports the fastest run (the machine is shared:
/// the fastest is the least disturbed).
fn time(model_type: ModelType, records: &[Record], reps: usize) {
    let config = TrainingConfig {
        label_column: "label".into(),
        ..Default::default()
    };
    let (mut seconds, mut train_cpu, mut trained) = (f64::INFINITY, f64::INFINITY, None);
    for _ in 0..reps {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let run = mimir_ml::train(
            model_type,
            &config,
            records,
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        seconds = seconds.min(start.elapsed().as_secs_f64());
        train_cpu = train_cpu.min(cpu_seconds() - cpu);
        trained = Some(run);
    }
    let trained = trained.unwrap();
    let model = Model::load(&trained.artifact).unwrap();
    let (mut predict, mut predict_cpu) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let predictions = model.predict(records).unwrap();
        predict = predict.min(start.elapsed().as_secs_f64());
        predict_cpu = predict_cpu.min(cpu_seconds() - cpu);
        assert_eq!(predictions.len(), records.len());
    }
    println!(
        "{model_type}: train {seconds:.2} s ({train_cpu:.2} CPU s), held-out accuracy {:.4}, \
         artifact {} bytes, predict {:.0} rows/s ({predict:.2} s, {predict_cpu:.2} CPU s)",
        trained.metrics.accuracy.unwrap(),
        trained.artifact.len(),
        records.len() as f64 / predict
    );
}

#[test]
#[ignore = "a timing run, not a test: minutes in debug builds"]
fn random_forest_and_logistic_regression_on_100000_by_20() {
    let records = dataset(100_000);
    time(ModelType::LogisticRegression, &records, 5);
    time(ModelType::RandomForest, &records, 1);
}
