//! `mimir-aip bench`: a load generator that reports throughput and latency
//! percentiles. It targets a running orchestrator (`--orchestrator`) or starts
//! its own on a fresh data directory (`--spawn`), so figures can be reproduced
//! with one command.

mod dashboard;
mod metrics;
mod queries;
mod report;
mod run;
mod spawn;
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
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Submit tasks as fast as the orchestrator takes them.
    Submit(submit::SubmitArgs),
    /// Fill the queue to a size, then time the queue queries.
    Queries(queries::QueriesArgs),
    /// Run tasks end to end with local workers: throughput and enqueue-to-start latency.
    Run(run::RunArgs),
    /// Time `GET /metrics` with many pipelines and workers registered.
    Metrics(metrics::MetricsArgs),
    /// Store many tasks, then time the dashboard's first paint and filtered task lists.
    Dashboard(dashboard::DashboardArgs),
}

/// Runs a scenario.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.scenario {
        Scenario::Submit(args) => submit::run(args).await?,
        Scenario::Queries(args) => queries::run(args).await?,
        Scenario::Run(args) => run::run(args).await?,
        Scenario::Metrics(args) => metrics::run(args).await?,
        Scenario::Dashboard(args) => dashboard::run(args).await?,
    }
    Ok(ExitCode::SUCCESS)
}
