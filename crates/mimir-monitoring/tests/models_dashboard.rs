//! The Models dashboard shows what the ML metrics are for: inference
//! throughput per worker and whether it is evenly spread, latency per batch
//! and per item, outcomes, training time, quality and degraded models; and it
//! is installed with the others.

use serde_json::Value;

fn dashboard() -> Value {
    let (_, text) = mimir_monitoring::assets::STATIC
        .iter()
        .find(|(path, _)| *path == "grafana/dashboards/mimir-models.json")
        .expect("the Models dashboard is installed");
    serde_json::from_str(text).expect("valid JSON")
}

/// (panel title, its expressions).
fn panels(dashboard: &Value) -> Vec<(String, Vec<String>)> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .map(|p| {
            let exprs = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str().map(str::to_string))
                .collect();
            (p["title"].as_str().expect("title").to_string(), exprs)
        })
        .collect()
}

fn exprs_of<'a>(panels: &'a [(String, Vec<String>)], title: &str) -> &'a [String] {
    &panels
        .iter()
        .find(|(t, _)| t == title)
        .unwrap_or_else(|| panic!("no panel {title:?}"))
        .1
}

#[test]
fn the_models_dashboard_has_the_panels_of_the_ml_metrics() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "mimir-models");
    let panels = panels(&dashboard);

    let stacked = exprs_of(&panels, "Inference items/s by worker");
    assert!(stacked[0].contains("sum by (worker) (rate(mimir_inference_items_total"));
    let spread = exprs_of(&panels, "Spread across workers");
    for aggregate in ["max(", "avg(", "min("] {
        assert!(
            spread.iter().any(|e| e.starts_with(aggregate)),
            "{spread:?}"
        );
    }
    let share = exprs_of(&panels, "Share of inference items by worker");
    assert!(share[0].contains("/ scalar(sum(rate(mimir_inference_items_total"));

    for (title, scope) in [
        ("Batch latency by model (p50, p95, p99)", "batch"),
        ("Per-item latency by model (p50, p95, p99)", "item"),
    ] {
        let exprs = exprs_of(&panels, title);
        for q in ["0.5", "0.95", "0.99"] {
            assert!(
                exprs.iter().any(|e| e
                    .starts_with(&format!("histogram_quantile({q}, sum by (model, le)"))
                    && e.contains(&format!("scope=\"{scope}\""))),
                "{title}: {exprs:?}"
            );
        }
    }
    assert!(exprs_of(&panels, "Inference requests by outcome")[0].contains("sum by (outcome)"));
    assert!(
        exprs_of(&panels, "Inference error ratio by model")[0]
            .contains("outcome=~\"failed|timeout\"")
    );
    let training = exprs_of(&panels, "Training duration by model type (p50, p95)");
    assert_eq!(training.len(), 2);
    assert!(training.iter().all(|e| e.contains("by (model_type, le)")));
    assert!(
        exprs_of(&panels, "Model quality by model and metric")[0]
            .contains("max by (model, metric) (mimir_model_quality")
    );
    assert!(exprs_of(&panels, "Degraded models")[0].contains("mimir_model_degraded"));
    assert!(exprs_of(&panels, "Degraded models")[0].contains("== 1"));
    assert!(
        exprs_of(&panels, "Degraded by model")[0].contains("max by (model) (mimir_model_degraded")
    );
}

#[test]
fn the_models_dashboard_never_labels_by_task() {
    let dashboard = dashboard();
    for (title, exprs) in panels(&dashboard) {
        for expr in exprs {
            assert!(
                !expr.contains("worktask") && !expr.contains("task_id"),
                "{title}: {expr}"
            );
        }
    }
}
