//! `bench store`: the metadata store's figures, SQLite and PostgreSQL side
//! by side in one run (the machine's speed drifts between runs): batched
//! submits, no-op tasks end to end (on PostgreSQL with one replica and with
//! two), queue queries with a million queued, and how long the leadership
//! takes to move after the leader's `kill -9`.

use super::Target;
use super::report::{histogram, latency_line, record};
use super::run as end_to_end;
use super::spawn::{Orchestrator, Telemetry, drop_schema};
use super::{queries, submit};
use anyhow::{Context, bail};
use clap::Args;
use mimir_client::Client;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// Options of `bench store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(flatten)]
    target: Target,
    /// Tasks submitted in batches of 1,000 by 8 clients.
    #[arg(long, default_value_t = 200_000)]
    submit_tasks: u64,
    /// No-op tasks run end to end.
    #[arg(long, default_value_t = 20_000)]
    run_tasks: usize,
    /// Workers running them.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Tasks queued before the queue queries are timed.
    #[arg(long, default_value_t = 1_000_000)]
    queued: u64,
    /// Times the leader is killed to measure the failover.
    #[arg(long, default_value_t = 5)]
    failovers: usize,
}

/// Runs the scenario and prints its figures.
pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let Some(url) = args.target.store_url.clone() else {
        bail!(
            "bench store compares SQLite with PostgreSQL: give --store-url postgres://user@host/db"
        );
    };
    for (backend, store_url) in [("sqlite", None), ("postgres", Some(url.clone()))] {
        let target = Target {
            orchestrator: args.target.orchestrator.clone(),
            spawn: true,
            store_url,
            store_schema: None,
        };
        println!("== {backend}: batched submits");
        submit::run(submit::SubmitArgs {
            target: target.clone(),
            clients: 8,
            tasks: args.submit_tasks,
            batch: 1000,
        })
        .await?;
        println!("== {backend}: no-op tasks end to end, one orchestrator");
        end_to_end::run(run_args(&args, target.clone())).await?;
        println!("== {backend}: queue queries");
        queries::run(queries::QueriesArgs {
            target,
            queued: args.queued,
            iterations: 200,
        })
        .await?;
    }
    println!("== postgres: no-op tasks end to end, two replicas");
    two_replicas(&args, &url).await?;
    println!("== postgres: failover after kill -9 of the leader");
    failover(&args, &url).await?;
    Ok(())
}

fn run_args(args: &StoreArgs, target: Target) -> end_to_end::RunArgs {
    end_to_end::RunArgs {
        target,
        tasks: args.run_tasks,
        batch: 500,
        workers: args.workers,
        prefetch: None,
        concurrency: None,
        latency_tasks: 0,
        rate: 100,
        telemetry: Telemetry::Quiet,
        compare_telemetry: false,
        rounds: 1,
        count_instructions: false,
    }
}

/// `n` orchestrators (no local workers) on one fresh schema; the schema
/// name, to drop after.
async fn replicas(
    args: &StoreArgs,
    url: &str,
    n: usize,
) -> anyhow::Result<(Vec<Orchestrator>, String)> {
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let target = Target {
        orchestrator: args.target.orchestrator.clone(),
        spawn: true,
        store_url: Some(url.to_string()),
        store_schema: Some(schema.clone()),
    };
    let config = "orchestrator:\n  maxWorkers: 0\n  minWorkers: 0\n";
    let mut started = Vec::new();
    for _ in 0..n {
        started.push(Orchestrator::start_with(&target, config, Telemetry::Quiet, false).await?);
    }
    Ok((started, schema))
}

/// Worker processes, spread over the replicas.
fn workers(replicas: &[Orchestrator], n: u32) -> anyhow::Result<Vec<tokio::process::Child>> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    (0..n as usize)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "worker",
                    "--orchestrator",
                    &replicas[i % replicas.len()].url,
                ])
                .args(["--log-level", "warn"])
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a worker")
        })
        .collect()
}

/// Throughput with two replicas: workers and submissions split between them.
async fn two_replicas(args: &StoreArgs, url: &str) -> anyhow::Result<()> {
    let (replicas, schema) = replicas(args, url, 2).await?;
    let clients: Vec<Client> = replicas.iter().map(|r| Client::new(&r.url)).collect();
    let pipeline_id = super::noop_pipeline(&clients[0]).await?;
    let workers = workers(&replicas, args.workers)?;
    super::wait_for_workers_across(&clients, args.workers).await?;
    let task = json!({"type": "pipeline_execution", "project_id": "bench-replicas", "task_spec": {"pipeline_id": pipeline_id}});
    let started = Instant::now();
    let mut submitted = 0;
    let mut turn = 0;
    while submitted < args.run_tasks {
        let n = 500.min(args.run_tasks - submitted);
        clients[turn % clients.len()]
            .submit_batch(&vec![task.clone(); n])
            .await?;
        submitted += n;
        turn += 1;
    }
    loop {
        let summary: Value = clients[1].call(Method::GET, "/api/metrics", None).await?;
        let done = summary["tasks_by_status"]["completed"]
            .as_u64()
            .unwrap_or(0)
            + summary["tasks_by_status"]["failed"].as_u64().unwrap_or(0);
        if done >= args.run_tasks as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "end to end: {} one-step pipeline tasks with {} workers over 2 replicas in {:.2}s: {:.0} tasks/s",
        args.run_tasks,
        args.workers,
        elapsed.as_secs_f64(),
        args.run_tasks as f64 / elapsed.as_secs_f64()
    );
    // Workers first, so none is left calling a stopped replica.
    drop(workers);
    drop(replicas);
    drop_schema(url, &schema);
    Ok(())
}

/// Whether the orchestrator at `url` leads (`/ready`'s `checks.leader`).
async fn leads(http: &reqwest::Client, url: &str) -> bool {
    let Ok(answer) = http.get(format!("{url}/ready")).send().await else {
        return false;
    };
    let body: Value = answer.json().await.unwrap_or_default();
    body["checks"]["leader"] == true
}

/// Kills the leader of two replicas `--failovers` times and times until the
/// other leads.
async fn failover(args: &StoreArgs, url: &str) -> anyhow::Result<()> {
    let (mut replicas, schema) = replicas(args, url, 2).await?;
    let http = reqwest::Client::new();
    let mut times = histogram();
    for trial in 1..=args.failovers {
        let deadline = Instant::now() + Duration::from_secs(30);
        let leader = loop {
            let mut found = None;
            for (i, replica) in replicas.iter().enumerate() {
                if leads(&http, &replica.url).await {
                    found = Some(i);
                }
            }
            if let Some(i) = found {
                break i;
            }
            if Instant::now() > deadline {
                bail!("no replica leads");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut dead = replicas.remove(leader);
        dead.kill9();
        let killed = Instant::now();
        let survivor = &replicas[0];
        while !leads(&http, &survivor.url).await {
            if killed.elapsed() > Duration::from_secs(60) {
                bail!("no replica took over within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = killed.elapsed();
        println!("failover {trial}: the other replica leads {took:.2?} after kill -9");
        record(&mut times, took);
        drop(dead);
        let target = Target {
            orchestrator: args.target.orchestrator.clone(),
            spawn: true,
            store_url: Some(url.to_string()),
            store_schema: Some(schema.clone()),
        };
        let config = "orchestrator:\n  maxWorkers: 0\n  minWorkers: 0\n";
        replicas.push(Orchestrator::start_with(&target, config, Telemetry::Quiet, false).await?);
    }
    println!("{}", latency_line("failover after kill -9", &times));
    drop(replicas);
    drop_schema(url, &schema);
    Ok(())
}
