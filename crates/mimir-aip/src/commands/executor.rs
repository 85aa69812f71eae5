//! `mimir-aip executor` (hidden): the sandboxed process a worker runs its
//! pipeline attempts in, one at a time, reading jobs on stdin and reporting
//! on stdout. Workers start it; people never need to.

use crate::logging;
use anyhow::Context;
use clap::Args;
use mimir_server::config::{LogFormat, LogLevel};
use std::process::ExitCode;
use std::sync::Arc;

/// Flags of `executor`, set by the worker that starts it.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// Pipeline context cap in bytes.
    #[arg(long, default_value_t = mimir_pipeline::DEFAULT_CONTEXT_CAP_BYTES)]
    context_cap: usize,
    /// Log level.
    #[arg(long, default_value = "info", value_parser = str::parse::<LogLevel>)]
    log_level: LogLevel,
    /// Log format.
    #[arg(long, default_value = "pretty", value_parser = str::parse::<LogFormat>)]
    log_format: LogFormat,
    /// Most warn/error lines one call site writes per second; 0 for no limit.
    #[arg(long, default_value_t = mimir_telemetry::rate_limit::DEFAULT_BURST)]
    log_rate_limit: u32,
    /// What steps may reach (`mimir_pipeline::Confinement` as JSON), as the
    /// worker's flags say.
    #[arg(long)]
    confinement: String,
    /// Where `filesystem` storage configs keep their folders (the worker's
    /// `--storage-root`).
    #[arg(long)]
    storage_root: std::path::PathBuf,
}

/// Runs jobs until the worker closes stdin.
pub fn main(args: ExecutorArgs) -> anyhow::Result<ExitCode> {
    // One thread runs the runtime's timers and background work (the trace
    // exporter) while the main thread waits for jobs and drives each one, so
    // a job starts without a hand-over between threads, and a worker's many
    // executors do not each start a thread per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the executor's runtime")?;
    let _context = runtime.enter();
    let traces = mimir_telemetry::TraceSettings {
        endpoint: None,
        service_name: "mimir-aip-worker".into(),
        instance_id: format!(
            "executor-{}@{}",
            std::process::id(),
            mimir_telemetry::hostname()
        ),
        environment: std::env::var("MIMIR_DEPLOYMENT_ENVIRONMENT").unwrap_or_default(),
    };
    let _telemetry = logging::init(
        args.log_level,
        args.log_format,
        args.log_rate_limit,
        traces,
        None,
    )?;
    // An interrupt at a terminal reaches the whole process group: the worker
    // decides what becomes of a running attempt, so the executor ignores it.
    runtime.spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
    let confinement: mimir_pipeline::Confinement = serde_json::from_str(&args.confinement)
        .context("--confinement is not a confinement policy")?;
    let registry = mimir_pipeline::Registry::confined(&confinement)
        .context("--confinement names roots or hosts that cannot be used")?
        .with_storage();
    let engine = mimir_pipeline::Engine::new(Arc::new(registry)).with_context_cap(args.context_cap);
    let storage = mimir_worker::sandbox::child::StorageAccess::new(args.storage_root);
    mimir_worker::sandbox::child::serve(&runtime, &engine, &storage)?;
    Ok(ExitCode::SUCCESS)
}
