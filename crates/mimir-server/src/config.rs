//! Orchestrator configuration.
//!
//! Precedence: defaults < config file (`--config`, YAML or JSON; keys follow the
//! Helm values, e.g. `orchestrator.minWorkers`) < `MIMIR_*` environment < flags.
//! The binary merges the last two into [`Overrides`]. Everything is validated
//! once, at load, and every error names the key at fault.

pub use crate::store_choice::StoreConfig;
use mimir_core::retry::RetryConfig;
use mimir_core::{Aging, RetryPolicy};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Defaults to `127.0.0.1:8080`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Defaults to `./mimir-data`.
pub const DEFAULT_DATA_DIR: &str = "./mimir-data";
/// Defaults to 1 MiB: the largest request body accepted.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Defaults to 5: queued tasks per worker before another is spawned.
pub const DEFAULT_QUEUE_THRESHOLD: u32 = 5;

/// Log verbosity, as the seed defines the levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Detailed execution traces, queue operations.
    Debug,
    /// Normal operations: task start and completion, configuration.
    #[default]
    Info,
    /// Recoverable errors, retries.
    Warn,
    /// Failures.
    Error,
}

impl LogLevel {
    /// The `tracing` filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            _ => Err(format!(
                "{s:?} is not a log level; use debug, info, warn or error"
            )),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines.
    #[default]
    Pretty,
}

impl LogFormat {
    /// The name `--log-format` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err(format!("{s:?} is not a log format; use json or pretty")),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Address the HTTP API listens on. Defaults to [`DEFAULT_LISTEN`].
    pub listen: String,
    /// Directory holding `mimir.db`. Defaults to [`DEFAULT_DATA_DIR`].
    pub data_dir: PathBuf,
    /// Log verbosity. Defaults to `info`.
    pub log_level: LogLevel,
    /// Log format. Defaults to `pretty`.
    pub log_format: LogFormat,
    /// Worker pool and Kubernetes settings.
    pub orchestrator: OrchestratorConfig,
    /// HTTP API limits.
    pub api: ApiConfig,
    /// Queue order settings.
    pub queue: QueueConfig,
    /// Retry backoff.
    pub retry: RetryConfig,
    /// Metadata store settings.
    pub store: StoreConfig,
    /// Log options beyond level and format.
    pub logging: LoggingConfig,
    /// `/metrics` options.
    pub metrics: MetricsConfig,
    /// OpenTelemetry trace export.
    pub tracing: TracingConfig,
    /// What pipeline steps may reach.
    pub pipelines: PipelinesConfig,
    /// Connection limits of the API port.
    pub server: crate::listener::ServerConfig,
    /// HTTPS for the API port. Defaults to off.
    pub tls: crate::listener::TlsConfig,
    /// The built-in dashboard.
    pub dashboard: DashboardConfig,
    /// ML model limits.
    pub ml: MlConfig,
}

/// `ml.*`: ML model limits.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MlConfig {
    /// Largest model artifact (an upload from a worker, an ONNX import), in
    /// bytes. Defaults to 512 MiB; the upload and import routes take bodies
    /// this large (plus base64's third), every other route keeps
    /// `api.maxBodyBytes`.
    pub max_artifact_bytes: usize,
}

impl Default for MlConfig {
    fn default() -> Self {
        MlConfig {
            max_artifact_bytes: crate::ml::DEFAULT_MAX_ARTIFACT_BYTES,
        }
    }
}

/// `dashboard.*`: the built-in dashboard.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct DashboardConfig {
    /// Seconds of second-by-second history the Overview keeps in memory; the
    /// orchestrator's memory grows until the history is full. Defaults to
    /// 3600; 60 to 86400.
    pub history_seconds: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            history_seconds: crate::dashboard::timeline::DEFAULT_HISTORY_SECONDS,
        }
    }
}

/// The folder under the data directory that is the file root unless
/// `pipelines.fileRoots` names others: `files`.
pub const DEFAULT_FILE_ROOT: &str = "files";

/// `pipelines.*`: what pipeline steps may reach. Local workers get these
/// settings; external workers take them as `worker` flags.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelinesConfig {
    /// Directories `file.read` and `file.write` work in (created at start);
    /// a relative step path is taken from the first, and a path that leads
    /// outside all of them fails the step. Defaults to `files/` under
    /// `dataDir`.
    pub file_roots: Vec<PathBuf>,
    /// Hosts `http.request` may call.
    pub http: PipelinesHttpConfig,
}

/// `pipelines.http.*`: host names (`api.example.com`, `*.example.com`), IP
/// addresses and CIDR blocks (`10.0.0.0/8`), checked after DNS resolution and
/// at every redirect. `deny` wins over `allow`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelinesHttpConfig {
    /// When not empty, the only hosts requests may go to. Defaults to empty:
    /// any host not denied.
    pub allow: Vec<String>,
    /// Hosts requests never go to. Defaults to link-local and cloud metadata
    /// addresses: `[169.254.0.0/16, fe80::/10, fd00:ec2::254]`. A list set
    /// here replaces the default, so keep those entries in it.
    pub deny: Vec<String>,
}

impl Default for PipelinesHttpConfig {
    fn default() -> Self {
        let policy = mimir_pipeline::HttpPolicy::default();
        PipelinesHttpConfig {
            allow: policy.allow,
            deny: policy.deny,
        }
    }
}

/// `logging.*`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LoggingConfig {
    /// Most warn/error lines one call site writes per second; the rest are
    /// dropped and counted. Defaults to 50; 0 turns the limit off.
    pub rate_limit: u32,
    /// Push logs to Grafana Loki. Defaults to off.
    pub loki: LokiConfig,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            rate_limit: mimir_telemetry::rate_limit::DEFAULT_BURST,
            loki: LokiConfig::default(),
        }
    }
}

/// `logging.loki.*`: push logs to Loki's push API, labelled `service` and
/// `level`, with task, pipeline, worker and trace ids as structured metadata.
/// Local workers push with the same settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LokiConfig {
    /// Loki's base URL, e.g. `http://127.0.0.1:3100`. Defaults to empty: off.
    pub url: String,
    /// `X-Scope-OrgID` for a multi-tenant Loki. Defaults to empty (none sent).
    pub tenant: String,
    /// Bearer token for a Loki behind authentication. Defaults to empty.
    pub bearer_token: String,
    /// With `password`: HTTP basic auth (e.g. Grafana Cloud). Defaults to empty.
    pub username: String,
    /// The basic-auth password.
    pub password: String,
    /// Further static stream labels, e.g. `{env: prod}`. Keep them few and
    /// fixed: every distinct set is a stream. Defaults to none.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `protobuf` (snappy-compressed, Loki's native format) or `json`.
    /// Defaults to `protobuf`.
    pub encoding: String,
    /// Most lines per push. Defaults to 1000.
    pub batch_size: usize,
    /// Longest a line waits for its batch, in milliseconds. Defaults to 1000.
    pub batch_wait_ms: u64,
    /// Lines that may wait to be pushed; more are dropped and counted in
    /// `mimir_loki_lines_dropped_total`. Defaults to 10000.
    pub queue_capacity: usize,
}

impl Default for LokiConfig {
    fn default() -> Self {
        use mimir_telemetry::loki;
        LokiConfig {
            url: String::new(),
            tenant: String::new(),
            bearer_token: String::new(),
            username: String::new(),
            password: String::new(),
            labels: Default::default(),
            encoding: "protobuf".into(),
            batch_size: loki::DEFAULT_BATCH_SIZE,
            batch_wait_ms: loki::DEFAULT_BATCH_WAIT.as_millis() as u64,
            queue_capacity: loki::DEFAULT_QUEUE_CAPACITY,
        }
    }
}

impl LokiConfig {
    /// The sink's settings for `service`, or `None` when no URL is set.
    pub fn settings(&self, service: &str) -> Option<mimir_telemetry::loki::LokiSettings> {
        use mimir_telemetry::loki::{Auth, LokiSettings};
        if self.url.is_empty() {
            return None;
        }
        let mut settings = LokiSettings::new(&self.url, service);
        settings.tenant = self.tenant.clone();
        settings.auth = if !self.bearer_token.is_empty() {
            Some(Auth::Bearer(self.bearer_token.clone()))
        } else if !self.username.is_empty() {
            Some(Auth::Basic {
                username: self.username.clone(),
                password: self.password.clone(),
            })
        } else {
            None
        };
        settings.labels = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        settings.encoding = self.encoding.parse().unwrap_or_default();
        settings.batch_size = self.batch_size;
        settings.batch_wait = Duration::from_millis(self.batch_wait_ms);
        settings.queue_capacity = self.queue_capacity;
        Some(settings)
    }

    /// Checks the keys; errors name them.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.url.is_empty() {
            return Ok(());
        }
        if !self.url.starts_with("http://") && !self.url.starts_with("https://") {
            return Err(ConfigError(format!(
                "logging.loki.url: {:?} is not an http(s) URL such as http://127.0.0.1:3100",
                self.url
            )));
        }
        if let Err(e) = self.encoding.parse::<mimir_telemetry::loki::Encoding>() {
            return Err(ConfigError(format!("logging.loki.encoding: {e}")));
        }
        if self.username.is_empty() != self.password.is_empty() {
            return Err(ConfigError(
                "logging.loki.username and logging.loki.password must be set together".into(),
            ));
        }
        for name in self.labels.keys() {
            let valid = name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if !valid || name.is_empty() {
                return Err(ConfigError(format!(
                    "logging.loki.labels.{name}: a label name is letters, digits and _, not starting with a digit"
                )));
            }
            if name == "service" || name == "level" {
                return Err(ConfigError(format!(
                    "logging.loki.labels.{name}: set by Mimir AIP itself"
                )));
            }
        }
        if self.batch_size == 0 || self.queue_capacity == 0 {
            return Err(ConfigError(
                "logging.loki.batchSize and logging.loki.queueCapacity must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// `metrics.*`: recording, and who may scrape `/metrics` (defaults to anyone).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsConfig {
    /// Record task, store and HTTP metrics. Defaults to true; false leaves
    /// `/metrics` with process and build metrics only (for measuring the cost).
    pub enabled: bool,
    /// Scrapers must send `Authorization: Bearer <token>`. Defaults to empty (off).
    pub bearer_token: String,
    /// With `password`: scrapers must use HTTP basic auth. Defaults to empty (off).
    pub username: String,
    /// The basic-auth password.
    pub password: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            bearer_token: String::new(),
            username: String::new(),
            password: String::new(),
        }
    }
}

/// `tracing.*`: where spans go. `OTEL_*` environment variables win.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingConfig {
    /// OTLP/HTTP collector base URL, e.g. `http://127.0.0.1:4318`. Defaults to
    /// empty: no traces, unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub endpoint: String,
    /// `service.name`. Defaults to `mimir-aip`.
    pub service_name: String,
    /// `deployment.environment`. Defaults to empty (left out).
    pub environment: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            endpoint: String::new(),
            service_name: "mimir-aip".into(),
            environment: String::new(),
        }
    }
}

/// `orchestrator.*`: the worker pool, as in the seed's Helm values.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct OrchestratorConfig {
    /// Workers kept running even when idle. Defaults to 1.
    pub min_workers: u32,
    /// Most workers at once; 0 means no local workers. Defaults to the CPU count.
    pub max_workers: u32,
    /// Queued tasks per worker before another is spawned. Defaults to 5.
    pub queue_threshold: u32,
    /// What starts workers: `local` child processes (the default) or
    /// `kubernetes` Jobs.
    pub worker_backend: WorkerBackendKind,
    /// The primary cluster's kubeconfig; empty: the in-cluster config, else
    /// `$KUBECONFIG`.
    pub kubeconfig: String,
    /// Kubernetes namespace for worker Jobs. Defaults to `mimir-aip`.
    pub worker_namespace: String,
    /// Service account of worker Jobs. Defaults to `mimir-worker`.
    pub worker_service_account: String,
    /// Image of worker Jobs. Defaults to `mimir-aip:latest`.
    pub worker_image: String,
    /// Requests and limits of worker Jobs per task type; a task's own
    /// `resource_requirements` win. Defaults to the seed's values.
    pub resources: std::collections::BTreeMap<String, crate::kubernetes::config::ResourceSpec>,
    /// Further Kubernetes clusters that take the overflow, in order.
    pub additional_clusters: Vec<crate::kubernetes::config::AdditionalCluster>,
    /// The Kubernetes backend's own settings.
    pub kubernetes: crate::kubernetes::config::KubernetesSettings,
    /// Bearer token workers must present; empty means none.
    pub worker_auth_token: String,
    /// A lease not renewed for this many milliseconds is lost. Defaults to 15000.
    pub lease_ttl_ms: u64,
    /// An idle worker above `minWorkers` stops after this many milliseconds. Defaults to 30000.
    pub idle_timeout_ms: u64,
    /// Most tasks of a type running at once, e.g. `{ml_training: 2}`. Defaults to none.
    pub type_concurrency: std::collections::BTreeMap<String, usize>,
    /// Most tasks each local worker runs at once. Defaults to 4 per CPU. A
    /// worker starts at one per CPU and runs more only while tasks wait for a
    /// slot and the machine has CPU and memory to spare; 1 runs one at a time.
    pub worker_concurrency: u32,
    /// Most tasks each local worker leases ahead of those it runs, so the next
    /// starts without a round trip. Defaults to 256. A worker leases ahead
    /// only enough to stay busy for 25 ms, only while its tasks are short
    /// (under 50 ms, counting how long the running ones have run so far), and
    /// gives back what it has not started while another worker is idle.
    pub worker_prefetch: u32,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            min_workers: 1,
            max_workers: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            queue_threshold: DEFAULT_QUEUE_THRESHOLD,
            worker_backend: WorkerBackendKind::Local,
            kubeconfig: String::new(),
            worker_namespace: "mimir-aip".into(),
            worker_service_account: "mimir-worker".into(),
            worker_image: "mimir-aip:latest".into(),
            resources: std::collections::BTreeMap::new(),
            additional_clusters: Vec::new(),
            kubernetes: Default::default(),
            worker_auth_token: String::new(),
            lease_ttl_ms: 15_000,
            idle_timeout_ms: 30_000,
            type_concurrency: Default::default(),
            worker_concurrency: mimir_core::sizing::default_max_concurrency() as u32,
            worker_prefetch: mimir_core::sizing::DEFAULT_MAX_PREFETCH as u32,
        }
    }
}

/// `orchestrator.workerBackend`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WorkerBackendKind {
    /// `mimir-aip worker` child processes on this machine.
    #[default]
    Local,
    /// One Kubernetes Job per task attempt, across the configured clusters.
    Kubernetes,
}

/// `api.*`: HTTP limits and access.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiConfig {
    /// Largest request body in bytes. Defaults to 1 MiB.
    pub max_body_bytes: usize,
    /// Bearer token every user API call (and the dashboard) must present.
    /// Defaults to empty: the API is open, as on a single machine.
    pub token: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            token: String::new(),
        }
    }
}

/// `queue.*`: ordering options.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct QueueConfig {
    /// Aging: a waiting task gains one priority level per this many milliseconds.
    /// Defaults to 0, which turns aging off.
    pub aging_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.into(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            log_level: LogLevel::default(),
            log_format: LogFormat::default(),
            orchestrator: OrchestratorConfig::default(),
            api: ApiConfig::default(),
            queue: QueueConfig::default(),
            retry: RetryConfig::default(),
            store: StoreConfig::default(),
            logging: LoggingConfig::default(),
            metrics: MetricsConfig::default(),
            tracing: TracingConfig::default(),
            pipelines: PipelinesConfig::default(),
            server: Default::default(),
            tls: Default::default(),
            dashboard: DashboardConfig::default(),
            ml: MlConfig::default(),
        }
    }
}

/// Values from the environment and flags, which win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` / `MIMIR_LISTEN`.
    pub listen: Option<String>,
    /// `--data-dir` / `MIMIR_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--log-level` / `MIMIR_LOG_LEVEL`.
    pub log_level: Option<LogLevel>,
    /// `--log-format` / `MIMIR_LOG_FORMAT`.
    pub log_format: Option<LogFormat>,
    /// `--min-workers` / `MIMIR_MIN_WORKERS`.
    pub min_workers: Option<u32>,
    /// `--max-workers` / `MIMIR_MAX_WORKERS`.
    pub max_workers: Option<u32>,
    /// `--queue-threshold` / `MIMIR_QUEUE_THRESHOLD`.
    pub queue_threshold: Option<u32>,
    /// `--api-token` / `MIMIR_API_TOKEN`.
    pub api_token: Option<String>,
    /// `--store-url` / `MIMIR_STORE_URL`.
    pub store_url: Option<String>,
    /// `--store-schema` / `MIMIR_STORE_SCHEMA`.
    pub store_schema: Option<String>,
}

/// A configuration that cannot be used; the message names the key or file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl From<mimir_pipeline::ConfinementError> for ConfigError {
    fn from(error: mimir_pipeline::ConfinementError) -> ConfigError {
        ConfigError(format!("pipelines: {error}"))
    }
}

impl ConfigError {
    pub(crate) fn new(message: String) -> ConfigError {
        ConfigError(message)
    }
}

impl Config {
    /// Reads a YAML or JSON file (JSON is YAML too).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        Config::from_yaml(&text)
            .map_err(|e| ConfigError(format!("config file {}: {}", path.display(), e.0)))
    }

    /// Parses configuration text; errors name the key.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                ConfigError(inner.to_string())
            } else {
                ConfigError(format!("{path}: {inner}"))
            }
        })
    }

    /// Applies environment and flag values.
    pub fn apply(&mut self, overrides: Overrides) {
        let Overrides {
            listen,
            data_dir,
            log_level,
            log_format,
            min_workers,
            max_workers,
            queue_threshold,
            api_token,
            store_url,
            store_schema,
        } = overrides;
        if let Some(v) = store_url {
            self.store.url = v;
        }
        if let Some(v) = store_schema {
            self.store.schema = v;
        }
        if let Some(v) = listen {
            self.listen = v;
        }
        if let Some(v) = data_dir {
            self.data_dir = v;
        }
        if let Some(v) = log_level {
            self.log_level = v;
        }
        if let Some(v) = log_format {
            self.log_format = v;
        }
        if let Some(v) = min_workers {
            self.orchestrator.min_workers = v;
        }
        if let Some(v) = max_workers {
            self.orchestrator.max_workers = v;
        }
        if let Some(v) = queue_threshold {
            self.orchestrator.queue_threshold = v;
        }
        if let Some(v) = api_token {
            self.api.token = v;
        }
    }

    /// Checks every value; the first problem is returned, naming its key.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| {
            ConfigError(format!(
                "listen: {:?} is not an address such as 127.0.0.1:8080 ({e})",
                self.listen
            ))
        })?;
        let o = &self.orchestrator;
        if o.queue_threshold == 0 {
            return Err(ConfigError(
                "orchestrator.queueThreshold must be at least 1".into(),
            ));
        }
        if o.max_workers > 0 && o.min_workers > o.max_workers {
            return Err(ConfigError(format!(
                "orchestrator.minWorkers ({}) must not exceed orchestrator.maxWorkers ({})",
                o.min_workers, o.max_workers
            )));
        }
        for (key, token) in [
            ("api.token", &self.api.token),
            ("orchestrator.workerAuthToken", &o.worker_auth_token),
        ] {
            if token.trim() != token.as_str() {
                return Err(ConfigError(format!(
                    "{key} must not begin or end with white space (it is compared exactly)"
                )));
            }
        }
        let m = &self.metrics;
        if m.username.is_empty() != m.password.is_empty() {
            return Err(ConfigError(
                "metrics.username and metrics.password must be set together".into(),
            ));
        }
        if !self.tracing.endpoint.is_empty()
            && !self.tracing.endpoint.starts_with("http://")
            && !self.tracing.endpoint.starts_with("https://")
        {
            return Err(ConfigError(format!(
                "tracing.endpoint: {:?} is not an http(s) URL such as http://127.0.0.1:4318",
                self.tracing.endpoint
            )));
        }
        self.logging.loki.validate()?;
        let limits = self.server.limits()?;
        let tls = self.tls.validate()?;
        if self.ml.max_artifact_bytes < 1024 || self.ml.max_artifact_bytes > 4 << 30 {
            return Err(ConfigError::new(format!(
                "ml.maxArtifactBytes: {} is out of range: 1024 to 4 GiB",
                self.ml.max_artifact_bytes
            )));
        }
        if self.api.max_body_bytes < 1024 {
            return Err(ConfigError("api.maxBodyBytes must be at least 1024".into()));
        }
        if !(60..=86_400).contains(&self.dashboard.history_seconds) {
            return Err(ConfigError(format!(
                "dashboard.historySeconds must be from 60 to 86400, got {}",
                self.dashboard.history_seconds
            )));
        }
        if o.lease_ttl_ms < 300 {
            return Err(ConfigError(
                "orchestrator.leaseTtlMs must be at least 300".into(),
            ));
        }
        let mut type_limits = std::collections::HashMap::new();
        for (name, limit) in &o.type_concurrency {
            let t = name
                .parse::<mimir_core::WorkTaskType>()
                .map_err(|e| ConfigError(format!("orchestrator.typeConcurrency.{name}: {e}")))?;
            type_limits.insert(t, *limit);
        }
        let confinement = self.confinement()?;
        let retry = self.retry.policy().map_err(ConfigError)?;
        let aging = (self.queue.aging_interval_ms > 0).then(|| Aging {
            interval: Duration::from_millis(self.queue.aging_interval_ms),
        });
        let lease_ttl = Duration::from_millis(o.lease_ttl_ms);
        let kubernetes = match o.worker_backend {
            WorkerBackendKind::Local => None,
            WorkerBackendKind::Kubernetes => Some(
                crate::kubernetes::KubernetesConfig::check(crate::kubernetes::config::Keys {
                    kubeconfig: &o.kubeconfig,
                    namespace: &o.worker_namespace,
                    service_account: &o.worker_service_account,
                    image: &o.worker_image,
                    max_workers: o.max_workers,
                    resources: &o.resources,
                    additional: &o.additional_clusters,
                    settings: &o.kubernetes,
                    has_token: !o.worker_auth_token.is_empty(),
                    lease_ttl,
                    min_workers: o.min_workers,
                    queue_threshold: o.queue_threshold,
                    idle_timeout: Duration::from_millis(o.idle_timeout_ms),
                })
                .map_err(ConfigError)?,
            ),
        };
        Ok(ValidConfig {
            listen,
            retry,
            aging,
            type_limits,
            lease_ttl,
            idle_timeout: Duration::from_millis(o.idle_timeout_ms),
            confinement,
            limits,
            tls,
            kubernetes,
            store: self.store.validate()?,
        })
    }

    /// What pipeline steps may reach, with the file roots absolute (the
    /// default one under `dataDir`); errors name the key.
    fn confinement(&self) -> Result<mimir_pipeline::Confinement, ConfigError> {
        use mimir_pipeline::ConfinementError;
        let p = &self.pipelines;
        let roots = if p.file_roots.is_empty() {
            vec![self.data_dir.join(DEFAULT_FILE_ROOT)]
        } else {
            p.file_roots.clone()
        };
        let data_dir = std::path::absolute(&self.data_dir)
            .map_err(|e| ConfigError(format!("dataDir: {e}")))?;
        let mut file_roots = Vec::with_capacity(roots.len());
        for (index, root) in roots.iter().enumerate() {
            let key = format!("pipelines.fileRoots[{index}]");
            if root.as_os_str().is_empty() {
                return Err(ConfigError(format!("{key}: a root must not be empty")));
            }
            // Local workers get the roots as one comma-separated variable.
            if root.to_string_lossy().contains(',') {
                return Err(ConfigError(format!(
                    "{key}: {:?} contains a comma, which cannot be passed to workers",
                    root.display()
                )));
            }
            let absolute =
                std::path::absolute(root).map_err(|e| ConfigError(format!("{key}: {e}")))?;
            // The store holds webhook secrets and, with storage connectors,
            // credentials: no step may read it.
            if data_dir.starts_with(&absolute) {
                return Err(ConfigError(format!(
                    "{key}: {} holds the data directory {}, which steps must not reach; use a folder of its own, such as {}",
                    absolute.display(),
                    data_dir.display(),
                    data_dir.join(DEFAULT_FILE_ROOT).display()
                )));
            }
            file_roots.push(absolute);
        }
        let confinement = mimir_pipeline::Confinement {
            file_roots,
            http: mimir_pipeline::HttpPolicy {
                allow: p.http.allow.clone(),
                deny: p.http.deny.clone(),
            },
        };
        confinement.validate().map_err(|e| match e {
            ConfinementError::HttpRule {
                list,
                index,
                reason,
            } => ConfigError(format!("pipelines.http.{list}[{index}]: {reason}")),
            other => ConfigError(format!("pipelines: {other}")),
        })?;
        Ok(confinement)
    }
}

/// Values derived from a validated [`Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig {
    /// The listen address.
    pub listen: SocketAddr,
    /// Retry backoff.
    pub retry: RetryPolicy,
    /// Queue aging, if on.
    pub aging: Option<Aging>,
    /// Per-type concurrency limits.
    pub type_limits: std::collections::HashMap<mimir_core::WorkTaskType, usize>,
    /// Lease lifetime.
    pub lease_ttl: Duration,
    /// Idle time before a surplus worker stops.
    pub idle_timeout: Duration,
    /// What pipeline steps may reach, file roots absolute.
    pub confinement: mimir_pipeline::Confinement,
    /// Connection limits of the API port.
    pub limits: mimir_http::Limits,
    /// HTTPS, when on.
    pub tls: Option<crate::listener::ValidTls>,
    /// The Kubernetes backend, when `orchestrator.workerBackend` is `kubernetes`.
    pub kubernetes: Option<crate::kubernetes::KubernetesConfig>,
    /// The metadata store.
    pub store: crate::store_choice::StoreChoice,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_style_keys_are_read() {
        let config = Config::from_yaml(
            "orchestrator:\n  minWorkers: 2\n  maxWorkers: 10\n  queueThreshold: 5\nlogLevel: debug\n",
        )
        .expect("valid");
        assert_eq!(config.orchestrator.min_workers, 2);
        assert_eq!(config.orchestrator.max_workers, 10);
        assert_eq!(config.log_level, LogLevel::Debug);
        assert_eq!(config.listen, DEFAULT_LISTEN);
    }

    #[test]
    fn the_dashboard_history_is_bounded() {
        let config = Config::from_yaml("dashboard:\n  historySeconds: 300\n").expect("valid");
        assert_eq!(config.dashboard.history_seconds, 300);
        config.validate().expect("300 s is within bounds");
        for bad in [0, 59, 86_401] {
            let mut config = Config::default();
            config.dashboard.history_seconds = bad;
            let error = config.validate().expect_err("out of bounds");
            assert!(
                error.to_string().contains("dashboard.historySeconds"),
                "{error}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = Config::from_yaml("orchestrator:\n  minWorker: 2\n").expect_err("typo");
        let message = error.to_string();
        assert!(message.contains("orchestrator.minWorker"), "{message}");
    }

    #[test]
    fn bad_values_are_named() {
        let error =
            Config::from_yaml("orchestrator:\n  maxWorkers: many\n").expect_err("not a number");
        assert!(
            error.to_string().contains("orchestrator.maxWorkers"),
            "{error}"
        );
        let mut config = Config::default();
        config.orchestrator.queue_threshold = 0;
        assert!(
            config
                .validate()
                .expect_err("zero")
                .to_string()
                .contains("queueThreshold")
        );
        config = Config {
            listen: "nowhere".into(),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .expect_err("bad address")
                .to_string()
                .starts_with("listen:")
        );
    }

    #[test]
    fn loki_keys_are_read_and_checked() {
        let config = Config::from_yaml(
            "logging:\n  loki:\n    url: http://127.0.0.1:3100\n    tenant: team-a\n    labels: {env: prod}\n    encoding: json\n    batchWaitMs: 200\n",
        )
        .expect("valid");
        config.validate().expect("valid loki settings");
        let settings = config
            .logging
            .loki
            .settings("mimir-aip")
            .expect("a URL turns the sink on");
        assert_eq!(settings.tenant, "team-a");
        assert_eq!(
            settings.labels,
            vec![("env".to_string(), "prod".to_string())]
        );
        assert_eq!(settings.encoding, mimir_telemetry::loki::Encoding::Json);
        assert_eq!(settings.batch_wait, Duration::from_millis(200));
        assert!(Config::default().logging.loki.settings("x").is_none());
        for (yaml, key) in [
            (
                "logging:\n  loki:\n    url: localhost:3100\n",
                "logging.loki.url",
            ),
            (
                "logging:\n  loki:\n    url: http://l\n    encoding: xml\n",
                "logging.loki.encoding",
            ),
            (
                "logging:\n  loki:\n    url: http://l\n    labels: {level: x}\n",
                "logging.loki.labels.level",
            ),
            (
                "logging:\n  loki:\n    url: http://l\n    labels: {9a: x}\n",
                "logging.loki.labels.9a",
            ),
        ] {
            let error = Config::from_yaml(yaml)
                .expect("parses")
                .validate()
                .expect_err(yaml);
            assert!(error.to_string().contains(key), "{error}");
        }
    }

    #[test]
    fn tokens_with_surrounding_white_space_are_refused() {
        for (yaml, key) in [
            ("api:\n  token: \" s3cret\"\n", "api.token"),
            (
                "orchestrator:\n  workerAuthToken: \"w \"\n",
                "orchestrator.workerAuthToken",
            ),
        ] {
            let error = Config::from_yaml(yaml)
                .expect("parses")
                .validate()
                .expect_err(yaml);
            assert!(error.to_string().contains(key), "{error}");
        }
        let config = Config::from_yaml("api:\n  token: s3cret\n").expect("parses");
        config.validate().expect("a plain token is fine");
    }

    #[test]
    fn pipeline_confinement_defaults_to_files_under_the_data_dir() {
        let config = Config::from_yaml("dataDir: /srv/mimir\n").expect("valid");
        let valid = config.validate().expect("valid");
        assert_eq!(
            valid.confinement.file_roots,
            [PathBuf::from("/srv/mimir/files")]
        );
        assert_eq!(
            valid.confinement.http,
            mimir_pipeline::HttpPolicy::default()
        );
        let config = Config::from_yaml(
            "pipelines:\n  fileRoots: [/a, b]\n  http:\n    allow: ['*.example.com']\n    deny: []\n",
        )
        .expect("valid");
        let valid = config.validate().expect("valid");
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(
            valid.confinement.file_roots,
            [PathBuf::from("/a"), cwd.join("b")]
        );
        assert_eq!(valid.confinement.http.allow, ["*.example.com"]);
        assert!(valid.confinement.http.deny.is_empty());
    }

    #[test]
    fn bad_pipeline_confinement_keys_are_named() {
        for (yaml, key) in [
            (
                "pipelines:\n  http:\n    deny: [10.0.0.0/8, 'not a host']\n",
                "pipelines.http.deny[1]",
            ),
            (
                "pipelines:\n  http:\n    allow: [1.2.3.4/99]\n",
                "pipelines.http.allow[0]",
            ),
            (
                "pipelines:\n  fileRoots: [/ok, '/a,b']\n",
                "pipelines.fileRoots[1]",
            ),
            ("pipelines:\n  fileRoots: ['']\n", "pipelines.fileRoots[0]"),
            (
                "dataDir: /srv/mimir/data\npipelines:\n  fileRoots: [/srv/other, /srv/mimir]\n",
                "pipelines.fileRoots[1]",
            ),
            ("pipelines:\n  fileRoots: [/]\n", "pipelines.fileRoots[0]"),
        ] {
            let error = Config::from_yaml(yaml)
                .expect("parses")
                .validate()
                .expect_err(yaml);
            assert!(error.to_string().starts_with(key), "{error}");
        }
        let error = Config::from_yaml("pipelines:\n  fileRoot: [/a]\n").expect_err("typo");
        assert!(error.to_string().contains("pipelines.fileRoot"), "{error}");
    }

    #[test]
    fn flags_win_over_the_file() {
        let mut config = Config::from_yaml("orchestrator:\n  maxWorkers: 3\n").expect("valid");
        config.apply(Overrides {
            max_workers: Some(0),
            ..Overrides::default()
        });
        assert_eq!(config.orchestrator.max_workers, 0);
        config
            .validate()
            .expect("0 workers is valid: external workers only");
    }
}
