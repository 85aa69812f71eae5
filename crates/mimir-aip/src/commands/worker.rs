//! `mimir-aip worker`: lease and run tasks from an orchestrator.
//!
//! With `WORKTASK_ID` (and `WORKTASK_TYPE`) in the environment the worker runs
//! exactly that task and exits: the Kubernetes Job mode, and the way to debug
//! one task locally.

use crate::logging;
use anyhow::Context;
use clap::Args;
use mimir_client::DEFAULT_ORCHESTRATOR_URL;
use mimir_server::config::{DEFAULT_DATA_DIR, DEFAULT_FILE_ROOT, LogFormat, LogLevel};
use mimir_storage::Secrets;
use mimir_worker::sandbox::{SandboxConfig, Sandboxes};
use mimir_worker::{MlExecutor, PipelineExecutor, ProjectStorages, TaskExecutor, WorkerConfig};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The log target of what a worker process says itself, as the runtime's
/// lines (`mimir_worker::...`) do: a local worker's lines reach the
/// orchestrator's log, and must not read as the orchestrator's own.
pub const WORKER_LOG_TARGET: &str = "mimir_worker";

/// Flags of `worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Orchestrator URL.
    #[arg(long, env = "MIMIR_ORCHESTRATOR_URL", default_value = DEFAULT_ORCHESTRATOR_URL)]
    orchestrator: String,
    /// Worker token (`orchestrator.workerAuthToken`), sent as `Authorization: Bearer`.
    #[arg(long, env = "MIMIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Task types to run, comma separated [default: all].
    #[arg(long, value_delimiter = ',', env = "MIMIR_WORKER_TYPES")]
    types: Vec<String>,
    /// Most tasks run at once. The worker starts at one per CPU and runs more
    /// while tasks wait for a slot and CPU and memory are free [default: 4 per CPU].
    #[arg(long, env = "MIMIR_WORKER_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Most tasks leased ahead of those running, so the next one starts
    /// without a round trip; only while tasks are short (under 50 ms).
    #[arg(long, default_value_t = mimir_core::sizing::DEFAULT_MAX_PREFETCH, env = "MIMIR_WORKER_PREFETCH")]
    prefetch: usize,
    /// A stable worker id [default: one the orchestrator makes up].
    #[arg(long, env = "MIMIR_WORKER_ID")]
    worker_id: Option<String>,
    /// Started by the orchestrator's local pool.
    #[arg(long, hide = true)]
    local: bool,
    /// Exit when the orchestrator stays unreachable this many seconds [default: never].
    #[arg(long)]
    give_up_after: Option<u64>,
    /// Pipeline context cap in bytes.
    #[arg(long, default_value_t = mimir_pipeline::DEFAULT_CONTEXT_CAP_BYTES, env = "MIMIR_PIPELINE_CONTEXT_CAP")]
    context_cap: usize,
    /// A directory `file.read` and `file.write` may use; repeat for more. A
    /// relative step path is taken from the first [default: mimir-data/files].
    #[arg(
        long = "file-root",
        env = "MIMIR_PIPELINE_FILE_ROOTS",
        value_delimiter = ','
    )]
    file_roots: Vec<PathBuf>,
    /// Where `filesystem` storage configs keep their folders (each config's
    /// `options.base_path` lies under it). Local workers get the
    /// orchestrator's `<data-dir>/storage`, so both see the same records
    /// [default: mimir-data/storage, the default data dir's, like --file-root].
    #[arg(long, env = "MIMIR_STORAGE_ROOT")]
    storage_root: Option<PathBuf>,
    /// Hosts `http.request` may only call, comma separated: names, `*.name`,
    /// IPs, CIDR blocks [default: any host not denied].
    #[arg(long, env = "MIMIR_PIPELINE_HTTP_ALLOW", value_delimiter = ',')]
    http_allow: Vec<String>,
    /// Hosts `http.request` never calls, comma separated; `""` for none
    /// [default: 169.254.0.0/16,fe80::/10,fd00:ec2::254].
    #[arg(long, env = "MIMIR_PIPELINE_HTTP_DENY", value_delimiter = ',')]
    http_deny: Option<Vec<String>>,
    /// Log level.
    #[arg(long, env = "MIMIR_LOG_LEVEL", default_value = "info", value_parser = str::parse::<LogLevel>)]
    log_level: LogLevel,
    /// Log format.
    #[arg(long, env = "MIMIR_LOG_FORMAT", default_value = "pretty", value_parser = str::parse::<LogFormat>)]
    log_format: LogFormat,
    /// Most warn/error lines one call site writes per second; 0 for no limit.
    #[arg(long, env = "MIMIR_LOG_RATE_LIMIT", default_value_t = mimir_telemetry::rate_limit::DEFAULT_BURST)]
    log_rate_limit: u32,
    /// Seconds a stopping worker lets running attempts finish before it stops
    /// them and hands them back to be retried.
    #[arg(long, env = "MIMIR_WORKER_SHUTDOWN_GRACE", default_value_t = mimir_worker::DEFAULT_SHUTDOWN_GRACE.as_secs())]
    shutdown_grace: u64,
    /// Memory each task's executor may use, overriding its
    /// `resource_requirements.memory` (set in Kubernetes Jobs to the
    /// container's memory).
    #[arg(long, env = "MIMIR_TASK_MEMORY", hide = true)]
    task_memory: Option<String>,
    /// Serve this worker's own metrics on `ADDR/metrics` (e.g. 127.0.0.1:9465).
    #[arg(long, env = "MIMIR_WORKER_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Serve --metrics-listen over HTTPS with this PEM certificate chain (re-read when it changes).
    #[arg(long, env = "MIMIR_WORKER_TLS_CERT", requires_all = ["tls_key", "metrics_listen"])]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "MIMIR_WORKER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    tls: super::TlsArgs,
    #[command(flatten)]
    loki: LokiArgs,
}

/// Where the worker pushes its logs, as `logging.loki.*` does for `serve`
/// (which passes its settings to local workers through these variables).
#[derive(Debug, Args)]
struct LokiArgs {
    /// Push logs to this Loki (base URL, e.g. http://127.0.0.1:3100).
    #[arg(long, env = "MIMIR_LOKI_URL")]
    loki_url: Option<String>,
    /// `X-Scope-OrgID` sent to Loki.
    #[arg(long, env = "MIMIR_LOKI_TENANT", default_value = "")]
    loki_tenant: String,
    /// Bearer token for Loki.
    #[arg(long, env = "MIMIR_LOKI_BEARER_TOKEN", hide_env_values = true)]
    loki_bearer_token: Option<String>,
    /// Basic-auth user for Loki (with MIMIR_LOKI_PASSWORD).
    #[arg(long, env = "MIMIR_LOKI_USERNAME")]
    loki_username: Option<String>,
    /// Basic-auth password for Loki.
    #[arg(long, env = "MIMIR_LOKI_PASSWORD", hide_env_values = true)]
    loki_password: Option<String>,
    /// Static stream labels, `name=value`, comma separated.
    #[arg(long, env = "MIMIR_LOKI_LABELS", value_delimiter = ',')]
    loki_labels: Vec<String>,
    /// `protobuf` or `json`.
    #[arg(long, env = "MIMIR_LOKI_ENCODING", default_value = "protobuf", value_parser = str::parse::<mimir_telemetry::loki::Encoding>)]
    loki_encoding: mimir_telemetry::loki::Encoding,
    /// Most lines per push.
    #[arg(long, env = "MIMIR_LOKI_BATCH_SIZE", default_value_t = mimir_telemetry::loki::DEFAULT_BATCH_SIZE)]
    loki_batch_size: usize,
    /// Longest a line waits for its batch, in milliseconds.
    #[arg(long, env = "MIMIR_LOKI_BATCH_WAIT_MS", default_value_t = 1000)]
    loki_batch_wait_ms: u64,
    /// Lines that may wait to be pushed; more are dropped and counted.
    #[arg(long, env = "MIMIR_LOKI_QUEUE_CAPACITY", default_value_t = mimir_telemetry::loki::DEFAULT_QUEUE_CAPACITY)]
    loki_queue_capacity: usize,
}

impl WorkerArgs {
    /// `--storage-root`, else `storage` under the default data dir.
    fn storage_root(&self) -> PathBuf {
        match &self.storage_root {
            Some(root) if !root.as_os_str().is_empty() => root.clone(),
            _ => Path::new(DEFAULT_DATA_DIR).join("storage"),
        }
    }

    /// What pipeline steps may reach, from `--file-root`, `--http-allow` and
    /// `--http-deny`; empty entries are dropped.
    fn confinement(&self) -> mimir_pipeline::Confinement {
        let mut file_roots: Vec<PathBuf> = self
            .file_roots
            .iter()
            .filter(|r| !r.as_os_str().is_empty())
            .cloned()
            .collect();
        if file_roots.is_empty() {
            file_roots.push(Path::new(DEFAULT_DATA_DIR).join(DEFAULT_FILE_ROOT));
        }
        let entries = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect()
        };
        let mut http = mimir_pipeline::HttpPolicy {
            allow: entries(&self.http_allow),
            ..mimir_pipeline::HttpPolicy::default()
        };
        if let Some(deny) = &self.http_deny {
            http.deny = entries(deny);
        }
        mimir_pipeline::Confinement { file_roots, http }
    }
}

impl LokiArgs {
    /// The sink's settings, or `None` without a URL.
    fn settings(&self) -> anyhow::Result<Option<mimir_telemetry::loki::LokiSettings>> {
        use mimir_telemetry::loki::{Auth, LokiSettings};
        let Some(url) = self.loki_url.as_ref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let mut settings = LokiSettings::new(url, "mimir-aip-worker");
        settings.tenant = self.loki_tenant.clone();
        settings.auth = match (&self.loki_bearer_token, &self.loki_username) {
            (Some(token), _) if !token.is_empty() => Some(Auth::Bearer(token.clone())),
            (_, Some(username)) if !username.is_empty() => Some(Auth::Basic {
                username: username.clone(),
                password: self.loki_password.clone().unwrap_or_default(),
            }),
            _ => None,
        };
        for label in &self.loki_labels {
            let (name, value) = label
                .split_once('=')
                .with_context(|| format!("--loki-labels: {label:?} is not name=value"))?;
            settings.labels.push((name.to_string(), value.to_string()));
        }
        settings.encoding = self.loki_encoding;
        settings.batch_size = self.loki_batch_size.max(1);
        settings.batch_wait = Duration::from_millis(self.loki_batch_wait_ms);
        settings.queue_capacity = self.loki_queue_capacity.max(1);
        Ok(Some(settings))
    }
}

/// Runs the worker until SIGINT/SIGTERM or the orchestrator asks it to stop.
pub async fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let instance = args.worker_id.clone().unwrap_or_else(|| {
        format!(
            "worker-{}@{}",
            std::process::id(),
            mimir_telemetry::hostname()
        )
    });
    let traces = mimir_telemetry::TraceSettings {
        // Only the standard OTEL_* variables (which local workers inherit).
        endpoint: None,
        service_name: "mimir-aip-worker".into(),
        instance_id: instance,
        environment: std::env::var("MIMIR_DEPLOYMENT_ENVIRONMENT").unwrap_or_default(),
    };
    let loki = args.loki.settings()?;
    let _telemetry = logging::init(
        args.log_level,
        args.log_format,
        args.log_rate_limit,
        traces,
        loki,
    )?;
    let confinement = args.confinement();
    // Checked here, so a bad flag stops the worker rather than each executor.
    mimir_pipeline::Registry::confined(&confinement)
        .context("--file-root, --http-allow or --http-deny")?;
    for root in &confinement.file_roots {
        // Local workers get roots the orchestrator made; an external worker
        // makes its own, or says why file steps will fail.
        if let Err(error) = std::fs::create_dir_all(root) {
            tracing::warn!(target: WORKER_LOG_TARGET, root = %root.display(), %error, "cannot create a pipeline file root; file steps there will fail");
        }
    }
    tracing::info!(
        target: WORKER_LOG_TARGET,
        file_roots = ?confinement.file_roots,
        http_allow = ?confinement.http.allow,
        http_deny = ?confinement.http.deny,
        "pipeline steps confined"
    );
    let storage_root = args.storage_root();
    // Absolute, so executors started elsewhere mean the same folder.
    let storage_root = std::path::absolute(&storage_root).unwrap_or(storage_root);
    tracing::info!(target: WORKER_LOG_TARGET, storage_root = %storage_root.display(), "filesystem storage configs under this root");
    let metrics = match args.metrics_listen {
        Some(addr) => {
            let tls = match (&args.tls_cert, &args.tls_key) {
                (Some(cert_file), Some(key_file)) => Some(
                    mimir_http::TlsServer::new(&mimir_http::TlsSettings {
                        cert_file: cert_file.clone(),
                        key_file: key_file.clone(),
                        client_ca_file: None,
                        client_auth: mimir_http::ClientAuth::default(),
                    })
                    .context("--tls-cert/--tls-key")?,
                ),
                _ => None,
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let metrics = Arc::new(mimir_telemetry::Metrics::new());
            let bound = mimir_worker::metrics::serve(addr, metrics.clone(), tls)
                .await
                .with_context(|| format!("cannot serve worker metrics on {addr}"))?;
            tracing::info!(target: WORKER_LOG_TARGET, %bound, scheme, "worker metrics on /metrics");
            Some(metrics)
        }
        None => None,
    };
    let task_memory = match args.task_memory.as_deref() {
        Some(text) => Some(mimir_core::memory_bytes(text).with_context(|| {
            format!("MIMIR_TASK_MEMORY {text:?} is not a memory quantity such as 1Gi")
        })?),
        None => None,
    };
    let only = match std::env::var("WORKTASK_ID") {
        Ok(id) if !id.is_empty() => Some(
            id.parse::<Uuid>()
                .with_context(|| format!("WORKTASK_ID {id:?} is not a work task id"))?,
        ),
        _ => None,
    };
    let mut types = args.types;
    if let Ok(t) = std::env::var("WORKTASK_TYPE")
        && !t.is_empty()
    {
        types = vec![t];
    }
    let config = WorkerConfig {
        orchestrator: args.orchestrator.clone(),
        token: args.token.clone(),
        worker_id: args
            .worker_id
            .or_else(|| only.map(|id| format!("task-{id}"))),
        types,
        concurrency: args
            .concurrency
            .unwrap_or_else(mimir_core::sizing::default_max_concurrency)
            .max(1),
        prefetch: args.prefetch,
        local: args.local,
        wait: mimir_worker::DEFAULT_WAIT,
        give_up_after: args.give_up_after.map(Duration::from_secs),
        only,
        metrics,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        tls: args.tls.options(),
    };
    let client =
        mimir_client::Client::with_tls(&args.orchestrator, &config.tls)?.with_token(args.token);
    let sandboxes = Arc::new(Sandboxes::new(SandboxConfig {
        program: std::env::current_exe().context("cannot find this program to start executors")?,
        args: vec![
            "executor".into(),
            format!("--context-cap={}", args.context_cap),
            format!("--log-level={}", args.log_level.as_str()),
            // The worker forwards JSON lines to its Loki sink.
            format!(
                "--log-format={}",
                if mimir_telemetry::loki::enabled() {
                    "json"
                } else {
                    args.log_format.as_str()
                }
            ),
            format!("--log-rate-limit={}", args.log_rate_limit),
            format!(
                "--confinement={}",
                serde_json::to_string(&confinement).context("cannot encode the confinement")?
            ),
            // Executors inherit almost no environment: the root comes as a flag.
            format!("--storage-root={}", storage_root.display()),
        ],
        env: SandboxConfig::inherited_env(),
        max_idle: config.concurrency,
    }));
    let storage = Arc::new(ProjectStorages::new(client.clone(), Secrets::from_env()));
    let executor = Arc::new(TaskExecutor::new(
        PipelineExecutor::new(client.clone(), sandboxes.clone(), storage.clone())
            .with_memory(task_memory),
        MlExecutor::new(client, storage, storage_root.clone()),
    ));
    let stop = async {
        super::serve::stop_signal().await;
        tracing::info!(
            target: WORKER_LOG_TARGET,
            "stop signal received; finishing running tasks"
        );
    };
    let result = mimir_worker::run(config, executor, stop).await;
    sandboxes.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    fn confinement(args: &[&str]) -> mimir_pipeline::Confinement {
        let cli = Cli::try_parse_from(std::iter::once("worker").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"));
        cli.worker.confinement()
    }

    #[test]
    fn confinement_flags_default_to_files_under_the_data_dir_and_the_metadata_deny_list() {
        let c = confinement(&[]);
        assert_eq!(c.file_roots, [PathBuf::from("./mimir-data/files")]);
        assert_eq!(c.http, mimir_pipeline::HttpPolicy::default());
        let c = confinement(&[
            "--file-root",
            "/a",
            "--file-root",
            "/b,/c",
            "--http-allow",
            "*.example.com,10.0.0.0/8",
            "--http-deny",
            "",
        ]);
        assert_eq!(
            c.file_roots,
            [
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/c")
            ]
        );
        assert_eq!(c.http.allow, ["*.example.com", "10.0.0.0/8"]);
        assert!(
            c.http.deny.is_empty(),
            "an empty --http-deny denies nothing"
        );
    }
}
