//! Datasets built deterministically from known rules, so a test knows
//! what a model should learn.

#![allow(dead_code)]

use mimir_core::{ModelType, TrainingConfig};
use mimir_ml::{Progress, Record, Trained};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::sync::atomic::AtomicBool;

pub const COLORS: [&str; 3] = ["blue", "green", "red"];

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("records are objects"),
    }
}

/// `n` records with numeric `x1..x4`, a categorical `color`, a boolean
/// `flag`, an `id`, and `label` = "pos" when x1 + 0.5·x2 > 0, else "neg"
/// (linearly separable).
pub fn binary(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let x1: f64 = rng.random_range(-1.0..1.0);
            let x2: f64 = rng.random_range(-1.0..1.0);
            let label = if x1 + 0.5 * x2 > 0.0 { "pos" } else { "neg" };
            record(json!({
                "id": format!("r{i}"),
                "x1": x1,
                "x2": x2,
                "x3": rng.random_range(-1.0..1.0),
                "x4": rng.random_range(0..100),
                "color": COLORS[rng.random_range(0..3)],
                "flag": rng.random_bool(0.5),
                "label": label,
            }))
        })
        .collect()
}

/// Three classes coded 0, 1, 2 by the band x1 falls in.
pub fn bands(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let x1: f64 = rng.random_range(-1.0..1.0);
            let class = if x1 < -0.33 {
                0
            } else if x1 < 0.33 {
                1
            } else {
                2
            };
            record(json!({
                "x1": x1,
                "x2": rng.random_range(-1.0..1.0),
                "class": class,
            }))
        })
        .collect()
}

/// `y` = 3·x1 − 2·x2 + 0.5 + (1 when color is red): a float label.
pub fn linear(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let x1: f64 = rng.random_range(-1.0..1.0);
            let x2: f64 = rng.random_range(-1.0..1.0);
            let color = COLORS[rng.random_range(0..3)];
            let y = 3.0 * x1 - 2.0 * x2 + 0.5 + if color == "red" { 1.0 } else { 0.0 };
            record(json!({"x1": x1, "x2": x2, "color": color, "y": y + 0.001}))
        })
        .collect()
}

/// Three well-separated blobs; `blob` says which (not a feature).
pub fn blobs(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres = [(0.0, 0.0), (10.0, 10.0), (-10.0, 10.0)];
    (0..n)
        .map(|i| {
            let blob = i % 3;
            let (cx, cy) = centres[blob];
            record(json!({
                "a": cx + rng.random_range(-1.0..1.0),
                "b": cy + rng.random_range(-1.0..1.0),
                "blob": blob,
            }))
        })
        .collect()
}

pub fn config(label: &str) -> TrainingConfig {
    TrainingConfig {
        label_column: label.into(),
        ..Default::default()
    }
}

/// Trains without watching progress or cancelling.
pub fn train(
    model_type: ModelType,
    config: &TrainingConfig,
    records: &[Record],
) -> Result<Trained, mimir_ml::MlError> {
    mimir_ml::train(
        model_type,
        config,
        records,
        &mut |_: Progress| {},
        &AtomicBool::new(false),
    )
}
