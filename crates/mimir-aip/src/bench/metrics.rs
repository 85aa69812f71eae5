//! `bench metrics`: time `GET /metrics` with many pipelines and workers.
//!
//! Creates `--pipelines` three-step pipelines, registers `--workers` workers
//! through the worker API, runs one execution of every pipeline through those
//! workers (this load generator plays them, reporting step timings as real
//! workers do), so every pipeline and step has its series; then times scrapes.

use super::Target;
use super::report::{self, histogram, latency_line};
use super::spawn::Orchestrator;
use anyhow::{Context, bail};
use clap::Args;
use mimir_client::Client;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Instant;

/// Options of `bench metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    target: Target,
    /// Pipelines to create and run once each.
    #[arg(long, default_value_t = 1000)]
    pipelines: usize,
    /// Workers to register.
    #[arg(long, default_value_t = 50)]
    workers: usize,
    /// Timed scrapes.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
}

/// Runs the scenario and prints its figures.
pub async fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let orchestrator = Orchestrator::start(&args.target).await?;
    let client = Client::new(&orchestrator.url);
    let steps = json!([
        {"name": "extract", "plugin": "core", "action": "log", "parameters": {"message": "e"}},
        {"name": "transform", "plugin": "core", "action": "log", "parameters": {"message": "t"}},
        {"name": "load", "plugin": "core", "action": "log", "parameters": {"message": "l"}}
    ]);
    let mut executions = Vec::with_capacity(args.pipelines);
    for i in 0..args.pipelines {
        let body = json!({"project_id": "bench-metrics", "name": format!("pipeline-{i}"), "type": "processing", "steps": steps});
        let pipeline: Value = client
            .call(Method::POST, "/api/pipelines", Some(&body))
            .await?;
        let id = pipeline["id"].as_str().context("no pipeline id")?;
        executions.push(json!({"type": "pipeline_execution", "project_id": "bench-metrics", "task_spec": {"pipeline_id": id}}));
    }
    for chunk in executions.chunks(1000) {
        client.submit_batch(chunk).await?;
    }
    let mut workers = Vec::with_capacity(args.workers);
    for i in 0..args.workers {
        let registered: Value = client
            .call(
                Method::POST,
                "/api/workers/register",
                Some(&json!({"worker_id": format!("bench-worker-{i}"), "hostname": "bench", "concurrency": 1})),
            )
            .await?;
        workers.push(
            registered["worker_id"]
                .as_str()
                .context("no worker id")?
                .to_string(),
        );
    }
    // Each worker in turn leases a share and reports it done with step timings.
    let mut done = 0;
    let share = args.pipelines.div_ceil(args.workers.max(1)).max(1);
    while done < args.pipelines {
        let before = done;
        for worker in &workers {
            let leased: Value = client
                .call(
                    Method::POST,
                    &format!("/api/workers/{worker}/lease"),
                    Some(&json!({"max": share, "wait_ms": 0})),
                )
                .await?;
            let tasks = leased["worktasks"].as_array().cloned().unwrap_or_default();
            if tasks.is_empty() {
                continue;
            }
            let results: Vec<Value> = tasks
                .iter()
                .map(|task| {
                    let steps: Vec<Value> = ["extract", "transform", "load"]
                        .iter()
                        .map(|name| json!({"name": name, "plugin": "core", "action": "log", "status": "completed", "duration_ms": 0.2, "error": ""}))
                        .collect();
                    json!({
                        "worktask_id": task["worktask_id"],
                        "status": "completed",
                        "attempt": task["attempt"],
                        "started_at": chrono::Utc::now(),
                        "result": {"steps": steps, "context": {}}
                    })
                })
                .collect();
            let _: Value = client
                .call(
                    Method::POST,
                    &format!("/api/workers/{worker}/results"),
                    Some(&json!({ "results": results })),
                )
                .await?;
            done += tasks.len();
        }
        if done == before {
            bail!("no task could be leased; {done} of {} ran", args.pipelines);
        }
    }
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", orchestrator.url);
    // Let the event recorder catch up, then check every pipeline has series.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let text = http.get(&url).send().await?.text().await?;
    let executions = text
        .lines()
        .filter(|l| l.starts_with("mimir_pipeline_executions_total{"))
        .count();
    println!(
        "/metrics with {} pipelines run ({executions} execution series), {} workers: {} lines, {} KiB",
        args.pipelines,
        args.workers,
        text.lines().count(),
        text.len() / 1024
    );
    for (name, accept) in [
        ("GET /metrics (Prometheus text)", "text/plain"),
        ("GET /metrics (OpenMetrics)", "application/openmetrics-text"),
    ] {
        let mut h = histogram();
        for _ in 0..args.iterations {
            let sent = Instant::now();
            let response = http.get(&url).header("accept", accept).send().await?;
            if !response.status().is_success() {
                bail!("/metrics answered {}", response.status());
            }
            response.bytes().await?;
            report::record(&mut h, sent.elapsed());
        }
        println!("{}", latency_line(name, &h));
    }
    Ok(())
}
