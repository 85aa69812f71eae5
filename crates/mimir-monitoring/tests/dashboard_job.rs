//! Every shipped Grafana dashboard names its Prometheus job through a
//! variable, as the well-known mixins do: a Prometheus whose scrape job is
//! named otherwise picks it in the dashboard's `job` menu instead of getting
//! empty panels.

use serde_json::Value;
use std::path::PathBuf;

/// The variables a query may name its job with.
const JOB_MATCHERS: [&str; 2] = [r#"job=~"$job""#, r#"job=~"$worker_job""#];

fn dashboards() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/monitoring/grafana/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the dashboards directory") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("readable");
            let json = serde_json::from_str(&text).expect("valid JSON");
            out.push((path.display().to_string(), json));
        }
    }
    assert!(out.len() >= 4, "dashboards found in {}", dir.display());
    out
}

/// Every PromQL text of a dashboard: panel targets and variable queries.
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", Value::String(text)) => out.push(text.clone()),
                    ("query", Value::String(text)) if text.contains('(') || text.contains('{') => {
                        out.push(text.clone())
                    }
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[test]
fn every_dashboard_has_a_job_variable_defaulting_to_the_orchestrator() {
    for (file, dashboard) in dashboards() {
        let variables = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let job = variables
            .iter()
            .find(|v| v["name"] == "job")
            .unwrap_or_else(|| panic!("{file} has no job variable"));
        assert_eq!(job["current"]["value"], "mimir-orchestrator", "{file}");
        assert_eq!(job["multi"], false, "{file}: one job at a time");
    }
}

#[test]
fn every_query_uses_the_job_variable_and_none_hard_codes_a_job() {
    let mut checked = 0;
    for (file, dashboard) in dashboards() {
        let mut found = Vec::new();
        queries(&dashboard, &mut found);
        for query in found
            .iter()
            .filter(|q| !q.starts_with("label_values(") || q.contains('{'))
        {
            assert!(
                JOB_MATCHERS.iter().any(|m| query.contains(m)),
                "{file}: a query without the job variable: {query}"
            );
            let hard_coded = query
                .match_indices("job=")
                .any(|(at, _)| !JOB_MATCHERS.iter().any(|m| query[at..].starts_with(m)))
                || query.contains("job!=");
            assert!(!hard_coded, "{file}: a query names its job: {query}");
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} queries found");
}
