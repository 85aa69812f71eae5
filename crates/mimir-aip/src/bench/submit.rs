//! `bench submit`: concurrent clients submitting tasks, singly or in batches.

use super::Target;
use super::report::{self, histogram, latency_line};
use super::spawn::Orchestrator;
use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Options of `bench submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub(super) target: Target,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 8)]
    pub(super) clients: usize,
    /// Tasks to submit in all.
    #[arg(long, default_value_t = 100_000)]
    pub(super) tasks: u64,
    /// Tasks per request: 1 uses `POST /api/worktasks`, more the batch endpoint.
    #[arg(long, default_value_t = 1)]
    pub(super) batch: usize,
}

/// A request body with `n` tasks of random type and priority, running `pipeline_id`.
pub fn body(n: usize, pipeline_id: &str) -> Vec<u8> {
    let mut rng = rand::rng();
    let types = ["pipeline_execution", "ml_training", "ml_inference"];
    let task = |rng: &mut rand::rngs::ThreadRng| {
        json!({
            "type": types[rng.random_range(0..types.len())],
            "project_id": "bench",
            "priority": rng.random_range(1..=10),
            "task_spec": {"pipeline_id": pipeline_id, "parameters": {"n": rng.random_range(0..1000)}},
        })
    };
    let value = if n == 1 {
        task(&mut rng)
    } else {
        json!({ "worktasks": (0..n).map(|_| task(&mut rng)).collect::<Vec<_>>() })
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Runs the scenario and prints its figures.
pub async fn run(args: SubmitArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.batch == 0 || args.tasks == 0 {
        bail!("--clients, --batch and --tasks must be at least 1");
    }
    let orchestrator = Orchestrator::start(&args.target).await?;
    let path = if args.batch == 1 {
        "/api/worktasks"
    } else {
        "/api/worktasks/batch"
    };
    let url = format!("{}{path}", orchestrator.url);
    let requests = args.tasks.div_ceil(args.batch as u64);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.clients)
        .build()?;
    // A few distinct bodies per client keep priorities mixed without costing CPU per request.
    let pipeline_id = super::noop_pipeline(&mimir_client::Client::new(&orchestrator.url)).await?;
    let bodies: Arc<Vec<Vec<u8>>> =
        Arc::new((0..16).map(|_| body(args.batch, &pipeline_id)).collect());

    let bar = ProgressBar::new(requests * args.batch as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tasks  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..args.clients {
        let (http, url, next, done, bodies, bar) = (
            http.clone(),
            url.clone(),
            next.clone(),
            done.clone(),
            bodies.clone(),
            bar.clone(),
        );
        let batch = args.batch as u64;
        clients.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut errors = 0u64;
            let mut i = client;
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let body = bodies[i % bodies.len()].clone();
                i += 1;
                let sent = Instant::now();
                let ok = match http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let ok = response.status() == reqwest::StatusCode::CREATED;
                        // Read the whole answer: the task is acknowledged only then.
                        ok & response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                report::record(&mut latencies, sent.elapsed());
                if ok {
                    done.fetch_add(batch, Ordering::Relaxed);
                    bar.inc(batch);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = histogram();
    let mut errors = 0;
    for client in clients {
        let (h, e) = client.await?;
        latencies.add(&h)?;
        errors += e;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let tasks = done.load(Ordering::Relaxed);
    println!(
        "submitted {tasks} tasks in {:.2}s with {} clients, {} per request: {:.0} tasks/s, {:.0} requests/s, {errors} failed requests",
        elapsed.as_secs_f64(),
        args.clients,
        args.batch,
        tasks as f64 / elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
    );
    println!("{}", latency_line("request latency", &latencies));
    if let Some((rss, peak)) = orchestrator.memory() {
        println!(
            "orchestrator memory: rss {} peak {}",
            report::mib(rss),
            report::mib(peak)
        );
    }
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}
