//! `bench dashboard`: the dashboard with a large store. Seeds tasks through
//! the API (most completed, some failed, some still queued, over many types,
//! projects and priorities), then times what the overview's first paint
//! fetches and the task list under each kind of filter. Times are the
//! orchestrator's own (`Server-Timing`), so the load generator's share of the
//! two cores does not count.

use super::Target;
use super::report::{histogram, latency_line};
use super::spawn::Orchestrator;
use anyhow::{Context, bail};
use clap::Args;
use mimir_client::Client;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Options of `bench dashboard`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    target: Target,
    /// Tasks to store before timing.
    #[arg(long, default_value_t = 1_000_000)]
    tasks: usize,
    /// Timed requests per measurement.
    #[arg(long, default_value_t = 50)]
    iterations: usize,
}

/// Tasks per seeding batch (and per lease).
const BATCH: usize = 1000;
/// Projects the tasks are spread over.
const PROJECTS: usize = 20;
const TYPES: [&str; 3] = ["pipeline_execution", "ml_training", "ml_inference"];

/// Runs the scenario and prints its figures.
pub async fn run(args: DashboardArgs) -> anyhow::Result<()> {
    let orchestrator = Orchestrator::start(&args.target).await?;
    let client = Client::new(&orchestrator.url);
    let window = seed(&client, args.tasks).await?;
    let http = reqwest::Client::new();
    let url = &orchestrator.url;

    println!(
        "\nfirst paint of the overview (server time per request, {} tasks stored):",
        args.tasks
    );
    let assets = [
        "/",
        "/dashboard/app.css",
        "/dashboard/app.js",
        "/dashboard/api.js",
        "/dashboard/dom.js",
        "/dashboard/format.js",
        "/dashboard/charts.js",
        "/dashboard/pages/overview.js",
        "/api/dashboard/overview",
    ];
    let mut critical = histogram();
    for _ in 0..args.iterations {
        let mut server = Duration::ZERO;
        for path in assets {
            server += timed(&http, &format!("{url}{path}")).await?.1;
        }
        super::report::record(&mut critical, server);
    }
    for path in assets {
        let mut h = histogram();
        for _ in 0..args.iterations {
            super::report::record(&mut h, timed(&http, &format!("{url}{path}")).await?.1);
        }
        println!("{}", latency_line(path, &h));
    }
    println!("{}", latency_line("all of the above, summed", &critical));

    println!("\ntask list, 50 per page, newest first (server time):");
    let (since, until) = window;
    let filters: Vec<(&str, String)> = vec![
        ("no filter", String::new()),
        ("status=failed (5%)", "status=failed".into()),
        ("status=queued (5%)", "status=queued".into()),
        (
            "waiting+project (group)",
            "status=waiting&project_id=project-3".into(),
        ),
        ("failed,queued (list)", "status=failed,queued".into()),
        ("type=ml_inference", "type=ml_inference".into()),
        ("project_id (1 of 20)", "project_id=project-7".into()),
        ("min_priority=10 (10%)", "min_priority=10".into()),
        ("priority 4 to 5", "min_priority=4&max_priority=5".into()),
        (
            "failed+type+project",
            "status=failed&type=ml_training&project_id=project-3".into(),
        ),
        ("failed+priority 10", "status=failed&min_priority=10".into()),
        (
            "submitted in a minute",
            format!("since={since}&until={until}"),
        ),
        ("unknown project", "project_id=nobody".into()),
    ];
    for (name, filter) in &filters {
        let mut h = histogram();
        let mut rows = 0;
        for _ in 0..args.iterations {
            let (body, server) =
                timed(&http, &format!("{url}/api/worktasks?limit=50&{filter}")).await?;
            rows = body["worktasks"].as_array().map_or(0, Vec::len);
            super::report::record(&mut h, server);
        }
        println!("{}  ({rows} rows)", latency_line(name, &h));
    }
    // Paging deep: the 20th page of completed tasks, cursor by cursor.
    let mut h = histogram();
    let mut cursor = String::new();
    for _ in 0..20 {
        let (body, server) = timed(
            &http,
            &format!("{url}/api/worktasks?limit=50&status=completed&cursor={cursor}"),
        )
        .await?;
        super::report::record(&mut h, server);
        cursor = body["next_cursor"].as_str().unwrap_or_default().to_string();
    }
    println!("{}", latency_line("20 pages of completed", &h));
    Ok(())
}

/// GETs `url`; answers its JSON (or null) and the orchestrator's own time.
async fn timed(http: &reqwest::Client, url: &str) -> anyhow::Result<(Value, Duration)> {
    let sent = Instant::now();
    let response = http.get(url).send().await?;
    let roundtrip = sent.elapsed();
    if !response.status().is_success() {
        bail!("GET {url} answered {}", response.status());
    }
    let server = response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("app;dur="))
        .and_then(|ms| ms.parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .unwrap_or(roundtrip);
    let json = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let body = if json {
        response.json().await?
    } else {
        Value::Null
    };
    Ok((body, server))
}

/// Stores `total` tasks: 90% completed, 5% failed, 5% queued. Answers a
/// one-minute submission window from the middle of the run (RFC 3339).
async fn seed(client: &Client, total: usize) -> anyhow::Result<(String, String)> {
    let registered: Value = client
        .call(
            Method::POST,
            "/api/workers/register",
            Some(&json!({"worker_id": "bench-dashboard", "hostname": "bench", "concurrency": 1})),
        )
        .await?;
    let worker = registered["worker_id"]
        .as_str()
        .context("no worker id")?
        .to_string();
    let pipeline_id = super::noop_pipeline(client).await?;
    let started = Instant::now();
    let mut middle = None;
    let mut stored = 0;
    while stored < total {
        let n = BATCH.min(total - stored);
        let batch: Vec<Value> = (stored..stored + n)
            .map(|i| {
                json!({
                    "type": TYPES[i % TYPES.len()],
                    "project_id": format!("project-{}", (i / 7) % PROJECTS),
                    "priority": 1 + (i * 7919) % 10,
                    "max_retries": 0,
                    "task_spec": {"pipeline_id": pipeline_id},
                })
            })
            .collect();
        let tasks = client.submit_batch(&batch).await?;
        if middle.is_none() && stored >= total / 2 {
            middle = tasks.first().map(|t| t.submitted_at);
        }
        // All but the last 5% run at once: every twentieth fails.
        if stored + n <= total - total / 20 {
            let leased: Value = client
                .call(
                    Method::POST,
                    &format!("/api/workers/{worker}/lease"),
                    Some(&json!({"max": n, "wait_ms": 0})),
                )
                .await?;
            let results: Vec<Value> = leased["worktasks"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(k, task)| {
                    let failed = (stored + k) % 20 == 0;
                    json!({
                        "worktask_id": task["worktask_id"],
                        "attempt": task["attempt"],
                        "status": if failed { "failed" } else { "completed" },
                        "error_message": if failed { "seeded failure" } else { "" },
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
        }
        stored += n;
        if stored % 100_000 == 0 {
            eprintln!(
                "stored {stored} tasks ({:.0}/s)",
                stored as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let _: Value = client
        .call(
            Method::DELETE,
            &format!("/api/workers/{worker}"),
            None::<&Value>,
        )
        .await
        .unwrap_or(Value::Null);
    let from = middle.unwrap_or_else(chrono::Utc::now);
    let to = from + chrono::Duration::seconds(60);
    Ok((
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ))
}
