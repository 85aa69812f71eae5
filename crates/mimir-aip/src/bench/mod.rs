//! `mimir-aip bench`: a load generator that reports throughput and latency
//! percentiles. It targets a running orchestrator (`--orchestrator`) or starts
//! its own on a fresh data directory (`--spawn`), so figures can be reproduced
//! with one command.

mod dashboard;
mod fair;
mod metrics;
mod ml;
mod queries;
mod report;
mod run;
mod schedules;
mod soak;
mod spawn;
mod storage;
mod store;
mod submit;

use clap::{Args, Subcommand};
use mimir_client::DEFAULT_ORCHESTRATOR_URL;
use std::process::ExitCode;

/// `bench` and its scenarios.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

/// Where the load goes.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// Orchestrator URL.
    #[arg(long, global = true, env = "MIMIR_ORCHESTRATOR_URL", default_value = DEFAULT_ORCHESTRATOR_URL)]
    orchestrator: String,
    /// Start a fresh orchestrator (this binary, temporary data directory, no
    /// local workers) for the run and report its memory.
    #[arg(long, global = true)]
    spawn: bool,
    /// With --spawn: keep the spawned orchestrator's store in this
    /// PostgreSQL database (a fresh schema, dropped after the run) instead
    /// of SQLite.
    #[arg(
        long,
        global = true,
        env = "MIMIR_BENCH_STORE_URL",
        hide_env_values = true
    )]
    store_url: Option<String>,
    /// The schema spawned orchestrators share (replicas); set by `bench store`.
    #[arg(skip)]
    store_schema: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Submit tasks as fast as the orchestrator takes them.
    Submit(submit::SubmitArgs),
    /// Fill the queue to a size, then time the queue queries.
    Queries(queries::QueriesArgs),
    /// Run tasks end to end with local workers: throughput and enqueue-to-start latency.
    Run(run::RunArgs),
    /// A mixed load of no-op and slow tasks on default settings: how long
    /// tasks waited while a worker sat idle.
    Fair(fair::FairArgs),
    /// Time `GET /metrics` with many pipelines and workers registered.
    Metrics(metrics::MetricsArgs),
    /// Store many tasks, then time the dashboard's first paint and filtered task lists.
    Dashboard(dashboard::DashboardArgs),
    /// The metadata store, SQLite and PostgreSQL side by side: submits,
    /// end to end, queue queries, two replicas and failover.
    Store(store::StoreArgs),
    /// Schedules: fire lag and idle CPU with thousands firing each
    /// minute; every slot exactly once with per-second schedules through a
    /// kill -9 (and with replicas on PostgreSQL, a leader kill).
    Schedules(schedules::SchedulesArgs),
    /// A mixed load for minutes, a worker killed each minute: memory, fds,
    /// latencies and task accounting per minute.
    Soak(soak::SoakArgs),
    /// A storage connector beside the database's own bulk loader and raw
    /// driver: batch store, indexed retrieve latency, overhead.
    Storage(storage::StorageArgs),
    /// mimir-ml beside scikit-learn and onnxruntime on the same rows:
    /// training time, held-out accuracy, prediction rows/s, ONNX agreement.
    Ml(ml::MlArgs),
}

/// Creates the one-step pipeline (a debug log line) the load generator's
/// tasks run: every task names an existing pipeline. Answers its id.
async fn noop_pipeline(client: &mimir_client::Client) -> anyhow::Result<String> {
    use anyhow::Context;
    let steps = serde_json::json!([{"name": "noop", "plugin": "core", "action": "log", "parameters": {"message": "noop", "level": "debug"}}]);
    let body = serde_json::json!({"project_id": "bench", "name": "noop", "type": "processing", "steps": steps});
    let pipeline: serde_json::Value = client
        .call(reqwest::Method::POST, "/api/pipelines", Some(&body))
        .await?;
    Ok(pipeline["id"]
        .as_str()
        .context("no pipeline id in the answer")?
        .to_string())
}

/// Waits until `n` workers have registered.
async fn wait_for_workers(client: &mimir_client::Client, n: u32) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let workers: serde_json::Value = client
            .call(reqwest::Method::GET, "/api/workers", None)
            .await?;
        if workers["workers"].as_array().map_or(0, Vec::len) >= n as usize {
            return Ok(());
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            anyhow::bail!("the workers did not register within 30s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until `n` workers have registered with any of the replicas
/// behind `clients`.
async fn wait_for_workers_across(clients: &[mimir_client::Client], n: u32) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let mut registered = 0;
        for client in clients {
            let workers: serde_json::Value = client
                .call(reqwest::Method::GET, "/api/workers", None)
                .await?;
            registered += workers["workers"].as_array().map_or(0, Vec::len);
        }
        if registered >= n as usize {
            return Ok(());
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            anyhow::bail!("the workers did not register within 30s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs a scenario.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.scenario {
        Scenario::Submit(args) => submit::run(args).await?,
        Scenario::Queries(args) => queries::run(args).await?,
        Scenario::Run(args) => run::run(args).await?,
        Scenario::Fair(args) => fair::run(args).await?,
        Scenario::Metrics(args) => metrics::run(args).await?,
        Scenario::Dashboard(args) => dashboard::run(args).await?,
        Scenario::Store(args) => store::run(args).await?,
        Scenario::Storage(args) => storage::run(args).await?,
        Scenario::Schedules(args) => schedules::run(args).await?,
        Scenario::Ml(args) => ml::run(args).await?,
        Scenario::Soak(args) => return soak::run(args).await,
    }
    Ok(ExitCode::SUCCESS)
}
