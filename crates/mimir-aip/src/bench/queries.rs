//! `bench queries`: fill the queue to a size, then time the queue queries.

use super::Target;
use super::report::{self, histogram, latency_line};
use super::spawn::Orchestrator;
use super::submit::body;
use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// Options of `bench queries`.
#[derive(Debug, Args)]
pub struct QueriesArgs {
    #[command(flatten)]
    pub(super) target: Target,
    /// Queue length to reach before timing (tasks are added in batches of 1,000).
    #[arg(long, default_value_t = 1_000_000)]
    pub(super) queued: u64,
    /// Timed calls per query.
    #[arg(long, default_value_t = 200)]
    pub(super) iterations: usize,
}

/// Runs the scenario and prints its figures.
pub async fn run(args: QueriesArgs) -> anyhow::Result<()> {
    let orchestrator = Orchestrator::start(&args.target).await?;
    let http = reqwest::Client::new();
    let base = orchestrator.url.clone();
    let length = |http: reqwest::Client, base: String| async move {
        let value: serde_json::Value = http
            .get(format!("{base}/api/worktasks/queue/length"))
            .send()
            .await?
            .json()
            .await?;
        value["queue_length"]
            .as_u64()
            .context("no queue_length in the answer")
    };
    let mut queued = length(http.clone(), base.clone()).await?;
    if queued < args.queued {
        let bar = ProgressBar::new(args.queued);
        bar.set_style(
            ProgressStyle::with_template("filling {bar:40} {pos}/{len} {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(queued);
        let pipeline_id =
            super::noop_pipeline(&mimir_client::Client::new(&orchestrator.url)).await?;
        let chunk = body(1000, &pipeline_id);
        // Two requests in flight keep the orchestrator busy without a crowd.
        while queued < args.queued {
            let send = || {
                http.post(format!("{base}/api/worktasks/batch"))
                    .header("content-type", "application/json")
                    .body(chunk.clone())
                    .send()
            };
            let (a, b) = tokio::join!(send(), send());
            for response in [a?, b?] {
                if response.status() != reqwest::StatusCode::CREATED {
                    bail!(
                        "filling the queue failed: {}",
                        response.text().await.unwrap_or_default()
                    );
                }
                queued += 1000;
            }
            bar.set_position(queued);
        }
        bar.finish_and_clear();
    }
    let queued = length(http.clone(), base.clone()).await?;
    println!("queue length {queued}");
    let queries = [
        ("queue length", "/api/worktasks/queue/length"),
        (
            "high-priority (>=5, 100)",
            "/api/worktasks/high-priority?min_priority=5",
        ),
        (
            "high-priority (>=9, 10)",
            "/api/worktasks/high-priority?min_priority=9&limit=10",
        ),
        ("list queued (50)", "/api/worktasks?status=queued&limit=50"),
        ("summary /api/metrics", "/api/metrics"),
    ];
    for (name, path) in queries {
        let mut h = histogram();
        for _ in 0..args.iterations {
            let sent = Instant::now();
            let response = http.get(format!("{base}{path}")).send().await?;
            if !response.status().is_success() {
                bail!("{path} answered {}", response.status());
            }
            response.bytes().await?;
            report::record(&mut h, sent.elapsed());
        }
        println!("{}", latency_line(name, &h));
    }
    if let Some((rss, peak)) = orchestrator.memory() {
        println!(
            "orchestrator memory with {queued} queued: rss {} peak {}",
            report::mib(rss),
            report::mib(peak)
        );
    }
    Ok(())
}
