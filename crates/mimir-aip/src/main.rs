//! `mimir-aip`: the orchestrator, its CLI and its load generator in one binary.
//! This file only parses arguments and hands over to a command.

mod bench;
mod commands;
mod logging;
mod output;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// The orchestrator allocates many small, short-lived buffers per request;
// mimalloc serves them markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An observable orchestrator for data and ML work tasks.
#[derive(Parser)]
#[command(name = "mimir-aip", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the orchestrator (HTTP API, store, queue).
    Serve(commands::serve::ServeArgs),
    /// Lease and run tasks from an orchestrator.
    Worker(Box<commands::worker::WorkerArgs>),
    /// Submit, inspect, cancel and wait for work tasks.
    Task(commands::task::TaskArgs),
    /// Define, list, change, delete and run pipelines.
    Pipeline(commands::pipeline::PipelineArgs),
    /// Fire pipelines on a clock: cron, time zones, catch-up and overlap rules.
    Schedule(commands::schedule::ScheduleArgs),
    /// Register, list and delete projects.
    Project(commands::project::ProjectArgs),
    /// The plugins and actions pipeline steps can use.
    Plugin(commands::plugin::PluginArgs),
    /// Inspect the queue.
    Queue(commands::queue::QueueArgs),
    /// Storage configs and their records (filesystem, PostgreSQL, MySQL, Redis, S3).
    Storage(commands::storage::StorageArgs),
    /// ML models: register, train, run on storage data, import ONNX, check quality.
    Model(commands::model::ModelArgs),
    /// Install and run the monitoring stack (Prometheus, Grafana, Loki, Tempo).
    Metrics(commands::metrics::MetricsArgs),
    /// Copy the store of a data directory, live or not, to a file.
    Backup(commands::backup::BackupArgs),
    /// Load generator: throughput and latency percentiles of a running orchestrator.
    Bench(bench::BenchArgs),
    /// The sandboxed process a worker runs pipeline attempts in.
    #[command(hide = true)]
    Executor(commands::executor::ExecutorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Executor(args) = cli.command {
        // Not async at heart: it runs its own runtime between reads of stdin.
        return report(commands::executor::main(args));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Worker(args) => commands::worker::run(*args).await,
            Command::Task(args) => commands::task::run(args).await,
            Command::Pipeline(args) => commands::pipeline::run(args).await,
            Command::Schedule(args) => commands::schedule::run(args).await,
            Command::Project(args) => commands::project::run(args).await,
            Command::Plugin(args) => commands::plugin::run(args).await,
            Command::Queue(args) => commands::queue::run(args).await,
            Command::Storage(args) => commands::storage::run(args).await,
            Command::Model(args) => commands::model::run(args).await,
            Command::Metrics(args) => commands::metrics::run(args).await,
            Command::Backup(args) => commands::backup::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Executor(_) => unreachable!("handled before the runtime starts"),
        }
    });
    report(result)
}

/// The exit code of a command, printing its error.
fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
