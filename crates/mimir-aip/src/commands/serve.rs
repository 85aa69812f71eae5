//! `mimir-aip serve`: run the orchestrator.

use crate::logging;
use anyhow::Context;
use clap::Args;
use mimir_server::config::{Config, LogFormat, LogLevel, Overrides};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `serve`; each also has a `MIMIR_*` variable and a config-file key.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (YAML or JSON), keys as in the Helm values.
    #[arg(long, env = "MIMIR_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "MIMIR_LISTEN")]
    listen: Option<String>,
    /// Data directory [default: ./mimir-data].
    #[arg(long, env = "MIMIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log level [default: info].
    #[arg(long, env = "MIMIR_LOG_LEVEL", value_parser = str::parse::<LogLevel>)]
    log_level: Option<LogLevel>,
    /// Log format [default: pretty].
    #[arg(long, env = "MIMIR_LOG_FORMAT", value_parser = str::parse::<LogFormat>)]
    log_format: Option<LogFormat>,
    /// Workers kept running even when idle [default: 1].
    #[arg(long, env = "MIMIR_MIN_WORKERS")]
    min_workers: Option<u32>,
    /// Most local workers; 0 runs none (external workers only) [default: CPU count].
    #[arg(long, env = "MIMIR_MAX_WORKERS")]
    max_workers: Option<u32>,
    /// Queued tasks per worker before another is spawned [default: 5].
    #[arg(long, env = "MIMIR_QUEUE_THRESHOLD")]
    queue_threshold: Option<u32>,
    /// Token users and the dashboard must present (`Authorization: Bearer`) [default: none].
    #[arg(long, env = "MIMIR_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// PostgreSQL connection string for the metadata store; several
    /// orchestrators on one database share its queue [default: SQLite in the
    /// data directory].
    #[arg(long, env = "MIMIR_STORE_URL", hide_env_values = true)]
    store_url: Option<String>,
    /// PostgreSQL schema of the store's tables, created if missing
    /// [default: the connection's search path].
    #[arg(long, env = "MIMIR_STORE_SCHEMA")]
    store_schema: Option<String>,
}

/// Loads the configuration and serves until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply(Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        log_level: args.log_level,
        log_format: args.log_format,
        min_workers: args.min_workers,
        max_workers: args.max_workers,
        queue_threshold: args.queue_threshold,
        api_token: args.api_token,
        store_url: args.store_url,
        store_schema: args.store_schema,
    });
    let traces = mimir_telemetry::TraceSettings {
        endpoint: Some(config.tracing.endpoint.clone()),
        service_name: config.tracing.service_name.clone(),
        instance_id: format!("{}:{}", mimir_telemetry::hostname(), config.listen),
        environment: config.tracing.environment.clone(),
    };
    // Checked before logging starts, so a bad key fails before any sink runs.
    config.validate()?;
    let loki = config.logging.loki.settings(&config.tracing.service_name);
    let _telemetry = logging::init(
        config.log_level,
        config.log_format,
        config.logging.rate_limit,
        traces,
        loki,
    )?;
    let worker_args = vec![
        "--log-level".to_string(),
        config.log_level.as_str().to_string(),
        "--log-format".to_string(),
        match config.log_format {
            LogFormat::Json => "json".to_string(),
            LogFormat::Pretty => "pretty".to_string(),
        },
    ];
    mimir_server::serve::run(config, |_| {}, shutdown_signal(), worker_args)
        .await
        .context("the orchestrator stopped")?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn shutdown_signal() {
    stop_signal().await;
    tracing::info!("shutdown requested; finishing in-flight requests");
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
