//! `bench fair`: a mixed load of no-op tasks and slow (2 s) tasks on the
//! default worker settings, watched for the one thing a job system must not
//! do: keep a task waiting while a worker that could run it sits idle.
//!
//! No-op tasks arrive steadily, so workers learn that tasks are short and
//! lease ahead; slow tasks arrive in bursts among them. Every 50 ms the run
//! looks at the queue (`queue_length`: queued and leased-unstarted) and at the
//! workers (one whose lease call waits for work with free slots is idle), and
//! adds up the time both were true.

use super::Target;
use super::report::{self, histogram, latency_line};
use super::spawn::{Orchestrator, Telemetry};
use anyhow::{Context, bail};
use clap::Args;
use mimir_client::{Client, ListFilter};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PROJECT: &str = "bench-fair";
/// How often the queue and the workers are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// Options of `bench fair`.
#[derive(Debug, Args)]
pub struct FairArgs {
    #[command(flatten)]
    target: Target,
    /// Local workers (with --spawn).
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// No-op tasks submitted per second.
    #[arg(long, default_value_t = 2000)]
    fast_rate: u64,
    /// Slow tasks submitted at once, every --burst-every seconds.
    #[arg(long, default_value_t = 5)]
    burst: usize,
    /// Seconds between bursts of slow tasks.
    #[arg(long, default_value_t = 4)]
    burst_every: u64,
    /// How long a slow task sleeps, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    slow_ms: u64,
}

/// What the looks found.
#[derive(Debug, Default)]
struct IdleWhileWaiting {
    looks: u64,
    /// Looks that found tasks waiting and a worker idle.
    bad_looks: u64,
    /// Longest run of such looks.
    longest: Duration,
    current: Option<Instant>,
}

impl IdleWhileWaiting {
    fn look(&mut self, waiting: u64, idle_workers: usize) {
        self.looks += 1;
        if waiting > 0 && idle_workers > 0 {
            self.bad_looks += 1;
            let since = *self.current.get_or_insert_with(Instant::now);
            self.longest = self.longest.max(since.elapsed() + LOOK_EVERY);
        } else {
            self.current = None;
        }
    }
}

/// Runs the scenario and prints its figures.
pub async fn run(args: FairArgs) -> anyhow::Result<()> {
    let config = format!(
        "orchestrator:\n  minWorkers: {w}\n  maxWorkers: {w}\n",
        w = args.workers
    );
    let orchestrator =
        Orchestrator::start_with(&args.target, &config, Telemetry::Quiet, false).await?;
    let client = Client::new(&orchestrator.url);
    let fast_pipeline = super::noop_pipeline(&client).await?;
    let slow_pipeline = sleep_pipeline(&client, args.slow_ms).await?;
    super::wait_for_workers(&client, args.workers).await?;

    let fast = json!({"type": "pipeline_execution", "project_id": PROJECT, "task_spec": {"pipeline_id": fast_pipeline}});
    let slow = json!({"type": "pipeline_execution", "project_id": PROJECT, "priority": 5, "task_spec": {"pipeline_id": slow_pipeline}});
    let load = async {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let (mut fast_sent, mut slow_sent, mut next_burst) = (0u64, 0usize, Duration::ZERO);
        while started.elapsed() < Duration::from_secs(args.seconds) {
            tick.tick().await;
            let due = (started.elapsed().as_secs_f64() * args.fast_rate as f64) as u64;
            if due > fast_sent {
                let n = (due - fast_sent).min(1000) as usize;
                client.submit_batch(&vec![fast.clone(); n]).await?;
                fast_sent += n as u64;
            }
            if started.elapsed() >= next_burst {
                client.submit_batch(&vec![slow.clone(); args.burst]).await?;
                slow_sent += args.burst;
                next_burst += Duration::from_secs(args.burst_every);
            }
        }
        anyhow::Ok((fast_sent, slow_sent))
    };
    let mut found = IdleWhileWaiting::default();
    let watch = async {
        let mut tick = tokio::time::interval(LOOK_EVERY);
        loop {
            tick.tick().await;
            let (waiting, idle) = look(&client).await?;
            found.look(waiting, idle);
        }
        #[allow(unreachable_code)]
        anyhow::Ok(())
    };
    let (fast_sent, slow_sent) = tokio::select! {
        sent = load => sent?,
        watched = watch => { watched?; unreachable!("the watch runs until the load ends") }
    };
    // Keep looking until everything ran.
    let total = fast_sent + slow_sent as u64;
    let drain_started = Instant::now();
    loop {
        let (waiting, idle) = look(&client).await?;
        found.look(waiting, idle);
        if finished(&client).await? >= total {
            break;
        }
        if drain_started.elapsed() > Duration::from_secs(120) {
            bail!("tasks were still unfinished two minutes after the load ended");
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
    let (fast_waits, slow_waits) = waits(&client, &slow_pipeline).await?;
    println!(
        "mixed load, {} workers on default settings, {}s: {fast_sent} no-op tasks ({}/s) and {slow_sent} tasks of {} ms (bursts of {} every {}s)",
        args.workers, args.seconds, args.fast_rate, args.slow_ms, args.burst, args.burst_every
    );
    println!(
        "tasks waiting while a worker sat idle: {} of {} looks ({:.1}%), {:.2}s in all, longest {:.2}s",
        found.bad_looks,
        found.looks,
        found.bad_looks as f64 * 100.0 / found.looks.max(1) as f64,
        found.bad_looks as f64 * LOOK_EVERY.as_secs_f64(),
        found.longest.as_secs_f64()
    );
    println!("{}", latency_line("wait, no-op tasks", &fast_waits));
    println!("{}", latency_line("wait, slow tasks", &slow_waits));
    Ok(())
}

/// Tasks waiting, and workers waiting for work with free slots.
async fn look(client: &Client) -> anyhow::Result<(u64, usize)> {
    let waiting = client.queue_length().await?;
    let workers: Value = client.call(Method::GET, "/api/workers", None).await?;
    let idle = workers["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["waiting_slots"].as_u64().is_some_and(|n| n > 0))
        .count();
    Ok((waiting, idle))
}

async fn finished(client: &Client) -> anyhow::Result<u64> {
    let summary: Value = client.call(Method::GET, "/api/metrics", None).await?;
    let by_status = &summary["tasks_by_status"];
    Ok(["completed", "failed", "cancelled", "timeout"]
        .iter()
        .map(|s| by_status[s].as_u64().unwrap_or(0))
        .sum())
}

/// Each task's wait, submission to start: no-op and slow apart.
async fn waits(
    client: &Client,
    slow_pipeline: &str,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>)> {
    let (mut fast, mut slow) = (histogram(), histogram());
    let mut filter = ListFilter {
        project_id: Some(PROJECT.into()),
        limit: Some(1000),
        ..ListFilter::default()
    };
    loop {
        let page = client.list(&filter).await?;
        for task in &page.worktasks {
            let Some(started) = task.started_at else {
                continue;
            };
            let wait = (started - task.submitted_at).to_std().unwrap_or_default();
            if task.task_spec.pipeline_id == slow_pipeline {
                report::record(&mut slow, wait);
            } else {
                report::record(&mut fast, wait);
            }
        }
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    Ok((fast, slow))
}

async fn sleep_pipeline(client: &Client, ms: u64) -> anyhow::Result<String> {
    let steps =
        json!([{"name": "work", "plugin": "core", "action": "sleep", "parameters": {"ms": ms}}]);
    let body = json!({"project_id": PROJECT, "name": "slow", "type": "processing", "steps": steps});
    let pipeline: Value = client
        .call(Method::POST, "/api/pipelines", Some(&body))
        .await?;
    Ok(pipeline["id"]
        .as_str()
        .context("no pipeline id in the answer")?
        .to_string())
}
