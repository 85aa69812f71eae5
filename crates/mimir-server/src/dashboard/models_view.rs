//! The Models page's figures, read from the metric families `/metrics`
//! serves: per model the items predicted (in all and per worker, so an
//! uneven spread shows), batch and per-item latency percentiles, inference
//! requests by outcome; per model type the training durations.

use super::exposition_text::{bucket_bound, quantile, sample};
use serde::Serialize;
use std::collections::BTreeMap;

/// Latency percentiles of one histogram since start, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Observations.
    pub count: f64,
    /// Their sum, in seconds.
    pub sum: f64,
    /// Median, interpolated as `histogram_quantile` does.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// One model's inference figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InferenceFigures {
    /// The model's name (the metrics' `model` label).
    pub model: String,
    /// Items predicted, in all.
    pub items: f64,
    /// Items predicted by each worker.
    pub workers: BTreeMap<String, f64>,
    /// Inference tasks ended, by outcome.
    pub requests: BTreeMap<String, f64>,
    /// Seconds per batch.
    pub batch: Latency,
    /// Seconds per item (each batch's time over its size).
    pub item: Latency,
}

/// One model type's training durations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainingFigures {
    /// `random_forest`, `neural_network`, …
    pub model_type: String,
    /// Completed trainings and their durations.
    pub duration: Latency,
}

/// Everything the metric families say about models.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelFigures {
    /// By model name.
    pub inference: Vec<InferenceFigures>,
    /// By model type.
    pub training: Vec<TrainingFigures>,
}

/// Cumulative buckets, count and sum of one histogram.
#[derive(Default)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
}

impl Histogram {
    fn latency(mut self) -> Latency {
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Latency {
            count: self.count,
            sum: self.sum,
            p50: quantile(0.5, &self.buckets),
            p95: quantile(0.95, &self.buckets),
            p99: quantile(0.99, &self.buckets),
        }
    }
}

/// Reads the inference and training families out of exposition text.
pub fn read(text: &str) -> ModelFigures {
    let mut models: BTreeMap<String, InferenceFigures> = BTreeMap::new();
    let mut latency: BTreeMap<(String, String), Histogram> = BTreeMap::new();
    let mut training: BTreeMap<String, Histogram> = BTreeMap::new();
    for line in text.lines() {
        if !(line.starts_with("mimir_inference_") || line.starts_with("mimir_model_training_")) {
            continue;
        }
        let Some(s) = sample(line) else { continue };
        let model = s.label("model").to_string();
        let entry = |models: &mut BTreeMap<String, InferenceFigures>| {
            models
                .entry(model.clone())
                .or_insert_with(|| InferenceFigures {
                    model: model.clone(),
                    ..InferenceFigures::default()
                });
        };
        match s.name {
            "mimir_inference_items_total" => {
                entry(&mut models);
                let f = models.get_mut(&model).expect("just inserted");
                f.items += s.value;
                *f.workers.entry(s.label("worker").to_string()).or_default() += s.value;
            }
            "mimir_inference_requests_total" => {
                entry(&mut models);
                let f = models.get_mut(&model).expect("just inserted");
                *f.requests
                    .entry(s.label("outcome").to_string())
                    .or_default() += s.value;
            }
            "mimir_inference_duration_seconds_bucket"
            | "mimir_inference_duration_seconds_count"
            | "mimir_inference_duration_seconds_sum" => {
                entry(&mut models);
                let h = latency
                    .entry((model.clone(), s.label("scope").to_string()))
                    .or_default();
                add(h, s.name, &s);
            }
            "mimir_model_training_duration_seconds_bucket"
            | "mimir_model_training_duration_seconds_count"
            | "mimir_model_training_duration_seconds_sum" => {
                let h = training
                    .entry(s.label("model_type").to_string())
                    .or_default();
                add(h, s.name, &s);
            }
            _ => {}
        }
    }
    for ((model, scope), histogram) in latency {
        if let Some(f) = models.get_mut(&model) {
            match scope.as_str() {
                "batch" => f.batch = histogram.latency(),
                "item" => f.item = histogram.latency(),
                _ => {}
            }
        }
    }
    ModelFigures {
        inference: models.into_values().collect(),
        training: training
            .into_iter()
            .filter(|(_, h)| h.count > 0.0)
            .map(|(model_type, h)| TrainingFigures {
                model_type,
                duration: h.latency(),
            })
            .collect(),
    }
}

/// Adds one histogram sample (bucket, count or sum) to `h`.
fn add(h: &mut Histogram, name: &str, s: &super::exposition_text::Sample<'_>) {
    if name.ends_with("_bucket") {
        if let Some(bound) = bucket_bound(s) {
            h.buckets.push((bound, s.value));
        }
    } else if name.ends_with("_count") {
        h.count += s.value;
    } else {
        h.sum += s.value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_items_per_worker_latency_and_training() {
        let text = "\
# TYPE mimir_inference_items_total counter
mimir_inference_items_total{model=\"churn\",worker=\"local-1\"} 300
mimir_inference_items_total{model=\"churn\",worker=\"local-2\"} 100
mimir_inference_requests_total{model=\"churn\",outcome=\"completed\"} 4
mimir_inference_requests_total{model=\"churn\",outcome=\"failed\"} 1
mimir_inference_duration_seconds_bucket{model=\"churn\",scope=\"batch\",le=\"0.1\"} 2
mimir_inference_duration_seconds_bucket{model=\"churn\",scope=\"batch\",le=\"1.0\"} 4
mimir_inference_duration_seconds_bucket{model=\"churn\",scope=\"batch\",le=\"+Inf\"} 4
mimir_inference_duration_seconds_count{model=\"churn\",scope=\"batch\"} 4
mimir_inference_duration_seconds_sum{model=\"churn\",scope=\"batch\"} 1.5
mimir_model_training_duration_seconds_bucket{model_type=\"random_forest\",le=\"10.0\"} 1
mimir_model_training_duration_seconds_bucket{model_type=\"random_forest\",le=\"+Inf\"} 1
mimir_model_training_duration_seconds_count{model_type=\"random_forest\"} 1
mimir_model_training_duration_seconds_sum{model_type=\"random_forest\"} 3.5
";
        let figures = read(text);
        let churn = &figures.inference[0];
        assert_eq!(churn.model, "churn");
        assert_eq!(churn.items, 400.0);
        assert_eq!(churn.workers["local-1"], 300.0);
        assert_eq!(churn.workers["local-2"], 100.0);
        assert_eq!(churn.requests["failed"], 1.0);
        assert_eq!(churn.batch.count, 4.0);
        assert_eq!(churn.batch.p50, Some(0.1));
        assert_eq!(churn.item.count, 0.0);
        assert_eq!(figures.training[0].model_type, "random_forest");
        assert_eq!(figures.training[0].duration.sum, 3.5);
    }
}
