//! `bench run`: tasks end to end — submit, lease, execute a one-step pipeline,
//! report — with the orchestrator's local workers.

use super::Target;
use super::report::{self, histogram, latency_line};
use super::spawn::{Orchestrator, Telemetry};
use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mimir_client::{Client, ListFilter};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Options of `bench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub(super) target: Target,
    /// Tasks for the throughput phase.
    #[arg(long, default_value_t = 10_000)]
    pub(super) tasks: usize,
    /// Tasks per submission.
    #[arg(long, default_value_t = 500)]
    pub(super) batch: usize,
    /// Local workers (with --spawn).
    #[arg(long, default_value_t = 2)]
    pub(super) workers: u32,
    /// Most tasks each worker leases ahead (with --spawn) [default: the
    /// orchestrator's, `orchestrator.workerPrefetch`].
    #[arg(long)]
    pub(super) prefetch: Option<u32>,
    /// Most tasks each worker runs at once (with --spawn) [default: the
    /// orchestrator's, `orchestrator.workerConcurrency`].
    #[arg(long)]
    pub(super) concurrency: Option<u32>,
    /// Tasks for the latency phase, submitted one by one at --rate.
    #[arg(long, default_value_t = 1000)]
    pub(super) latency_tasks: usize,
    /// Submissions per second in the latency phase.
    #[arg(long, default_value_t = 100)]
    pub(super) rate: u64,
    /// Telemetry of the spawned orchestrator.
    #[arg(long, value_enum, default_value_t = Telemetry::On)]
    pub(super) telemetry: Telemetry,
    /// Measure throughput with telemetry off and on, alternating, --rounds
    /// times each (with --spawn), and report what telemetry costs.
    #[arg(long)]
    pub(super) compare_telemetry: bool,
    /// Rounds of each mode with --compare-telemetry.
    #[arg(long, default_value_t = 3)]
    pub(super) rounds: usize,
    /// With --compare-telemetry: run the orchestrator and its workers under
    /// valgrind (cachegrind) and compare the instructions they run per task,
    /// which unlike throughput do not drift with the machine's load. About 50
    /// times slower; 20,000 tasks take a minute a run.
    #[arg(long, requires = "compare_telemetry")]
    pub(super) count_instructions: bool,
}

async fn completed(client: &Client) -> anyhow::Result<u64> {
    let summary: Value = client.call(Method::GET, "/api/metrics", None).await?;
    Ok(summary["tasks_by_status"]["completed"]
        .as_u64()
        .unwrap_or(0)
        + summary["tasks_by_status"]["failed"].as_u64().unwrap_or(0))
}

/// A spawned (or given) orchestrator with the benchmark's pipeline and workers.
async fn prepare(
    args: &RunArgs,
    telemetry: Telemetry,
) -> anyhow::Result<(Orchestrator, Client, String)> {
    // Only what was asked for: the rest are the defaults a user gets.
    let mut config = format!(
        "orchestrator:\n  minWorkers: {w}\n  maxWorkers: {w}\n",
        w = args.workers
    );
    if let Some(p) = args.prefetch {
        config.push_str(&format!("  workerPrefetch: {p}\n"));
    }
    if let Some(c) = args.concurrency {
        config.push_str(&format!("  workerConcurrency: {c}\n"));
    }
    let orchestrator =
        Orchestrator::start_with(&args.target, &config, telemetry, args.count_instructions).await?;
    let client = Client::new(&orchestrator.url);
    let pipeline_id = super::noop_pipeline(&client).await?;
    if args.target.spawn {
        super::wait_for_workers(&client, args.workers).await?;
    }
    Ok((orchestrator, client, pipeline_id))
}

/// Runs the scenario and prints its figures.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.compare_telemetry {
        if !args.target.spawn {
            bail!("--compare-telemetry starts its own orchestrators: add --spawn");
        }
        return compare(&args).await;
    }
    let (orchestrator, client, pipeline_id) = prepare(&args, args.telemetry).await?;
    let before = completed(&client).await?;
    throughput(&args, &client, &pipeline_id).await?;

    latency(&args, &client, &pipeline_id, before).await?;
    if let Some((rss, peak)) = orchestrator.memory() {
        println!(
            "orchestrator memory: rss {} peak {}",
            report::mib(rss),
            report::mib(peak)
        );
    }
    Ok(())
}

/// Throughput (or instructions) with telemetry off and on, alternating so
/// drift of the machine affects both alike; prints each round and the medians.
async fn compare(args: &RunArgs) -> anyhow::Result<()> {
    // Per mode: throughput, CPU time of the orchestrator and its workers per
    // 1,000 tasks, and (counting) their instructions per task.
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let mut instructions: [Vec<f64>; 3] = Default::default();
    let modes = [Telemetry::Off, Telemetry::Quiet, Telemetry::On];
    for round in 1..=args.rounds {
        // Each round starts with the next mode, so no mode always runs right
        // after a given other one.
        for i in (0..modes.len()).map(|k| (k + round - 1) % modes.len()) {
            let mode = modes[i];
            settle().await;
            let (orchestrator, client, pipeline_id) = prepare(args, mode).await?;
            let cpu_before = orchestrator.cpu_seconds();
            let per_second = throughput(args, &client, &pipeline_id).await?;
            let used = cpu_before
                .zip(orchestrator.cpu_seconds())
                .map(|(before, after)| (after - before) * 1000.0 / args.tasks as f64 * 1000.0);
            if args.count_instructions {
                let (total, processes) = orchestrator.instructions()?;
                // The orchestrator and each local worker write one count when
                // they exit; a missing one would make the figure too small.
                if processes < args.workers as usize + 1 {
                    bail!(
                        "only {processes} of {} processes reported their instructions: one did not exit in time",
                        args.workers + 1
                    );
                }
                let per_task = total as f64 / args.tasks as f64;
                println!(
                    "round {round} telemetry {mode:?}: {per_task:.0} instructions per task ({processes} processes, start-up and shutdown included)"
                );
                instructions[i].push(per_task);
                continue;
            }
            drop(orchestrator);
            println!(
                "round {round} telemetry {mode:?}: {per_second:.0} tasks/s, {} CPU ms per 1,000 tasks",
                used.map_or("?".to_string(), |ms| format!("{ms:.0}"))
            );
            rates[i].push(per_second);
            cpu[i].extend(used);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    if args.count_instructions {
        let [off, quiet, on] = instructions.map(|mut v| median(&mut v));
        println!(
            "median of {} rounds, instructions per task: telemetry off {off:.0}; metrics only {quiet:.0} (cost {:.1}%); metrics + info logs {on:.0} (cost {:.1}%)",
            args.rounds,
            (quiet / off - 1.0) * 100.0,
            (on / off - 1.0) * 100.0
        );
        return Ok(());
    }
    // The machine drifts over minutes; a round's modes run back to back, so
    // each round's own ratio is the steadier estimate of the cost.
    let paired = |mode: usize| {
        let mut costs: Vec<f64> = rates[mode]
            .iter()
            .zip(&rates[0])
            .map(|(with, without)| (1.0 - with / without) * 100.0)
            .collect();
        median(&mut costs)
    };
    let (paired_quiet, paired_on) = (paired(1), paired(2));
    let [off, quiet, on] = rates.map(|mut v| median(&mut v));
    let [cpu_off, cpu_quiet, cpu_on] = cpu.map(|mut v| median(&mut v));
    println!(
        "median of {} rounds: telemetry off {off:.0} tasks/s; metrics only {quiet:.0} tasks/s (cost {:.1}%); metrics + info logs {on:.0} tasks/s (cost {:.1}%)",
        args.rounds,
        (1.0 - quiet / off) * 100.0,
        (1.0 - on / off) * 100.0
    );
    println!(
        "CPU per 1,000 tasks (orchestrator and workers): off {cpu_off:.0} ms; metrics only {cpu_quiet:.0} ms ({:+.1}%); metrics + info logs {cpu_on:.0} ms ({:+.1}%)",
        (cpu_quiet / cpu_off - 1.0) * 100.0,
        (cpu_on / cpu_off - 1.0) * 100.0
    );
    println!(
        "median of each round's own cost: metrics only {paired_quiet:.1}%; metrics + info logs {paired_on:.1}%"
    );
    Ok(())
}

/// Lets the kernel write out what the previous run left dirty (its store, its
/// log) before the next run starts, so that write-back, which competes for
/// the same cores, is charged to neither.
async fn settle() {
    let _ = tokio::process::Command::new("sync").status().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Everything submitted in batches, timed until the last completes; tasks/s.
async fn throughput(args: &RunArgs, client: &Client, pipeline_id: &str) -> anyhow::Result<f64> {
    let task = json!({"type": "pipeline_execution", "project_id": "bench-throughput", "task_spec": {"pipeline_id": pipeline_id}});
    let before = completed(client).await?;
    let bar = ProgressBar::new(args.tasks as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} done  {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut submitted = 0;
    while submitted < args.tasks {
        let n = args.batch.min(args.tasks - submitted);
        client.submit_batch(&vec![task.clone(); n]).await?;
        submitted += n;
    }
    let submit_time = started.elapsed();
    // Each poll costs the orchestrator work too; when its instructions are
    // counted, poll seldom, so that a slower run is not charged more polls.
    let poll = Duration::from_millis(if args.count_instructions { 1000 } else { 5 });
    loop {
        let done = completed(client).await? - before;
        bar.set_position(done);
        if done >= args.tasks as u64 {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    println!(
        "end to end: {} one-step pipeline tasks with {} workers in {:.2}s: {:.0} tasks/s (submitting took {:.2}s)",
        args.tasks,
        args.workers,
        elapsed.as_secs_f64(),
        args.tasks as f64 / elapsed.as_secs_f64(),
        submit_time.as_secs_f64()
    );
    Ok(args.tasks as f64 / elapsed.as_secs_f64())
}

/// Enqueue-to-start latency at light load: one task at a time, an idle worker waiting.
async fn latency(
    args: &RunArgs,
    client: &Client,
    pipeline_id: &str,
    before: u64,
) -> anyhow::Result<()> {
    if args.latency_tasks > 0 {
        let single = json!({"type": "pipeline_execution", "project_id": "bench-latency", "task_spec": {"pipeline_id": pipeline_id}});
        let gap = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
        let mut next = tokio::time::Instant::now();
        for _ in 0..args.latency_tasks {
            client.submit(&single).await?;
            next += gap;
            tokio::time::sleep_until(next).await;
        }
        let target = before + args.tasks as u64 + args.latency_tasks as u64;
        while completed(client).await? < target {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut latencies = histogram();
        let mut filter = ListFilter {
            project_id: Some("bench-latency".into()),
            limit: Some(1000),
            ..ListFilter::default()
        };
        loop {
            let page = client.list(&filter).await?;
            for task in &page.worktasks {
                if let Some(started) = task.started_at {
                    let waited = (started - task.submitted_at).to_std().unwrap_or_default();
                    report::record(&mut latencies, waited);
                }
            }
            match page.next_cursor {
                Some(cursor) => filter.cursor = Some(cursor),
                None => break,
            }
        }
        println!(
            "{}",
            latency_line(&format!("enqueue-to-start at {}/s", args.rate), &latencies)
        );
    }
    Ok(())
}
