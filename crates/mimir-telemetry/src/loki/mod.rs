//! A log sink that pushes to Grafana Loki's push API
//! (`POST {url}/loki/api/v1/push`), so logs reach Loki without an agent.
//!
//! Streams are labelled `service` and `level` (plus configured static labels)
//! only, which keeps Loki's index small; the correlation fields of a line
//! (`worktask_id`, `pipeline_id`, `worker_id`, `trace_id`, `span_id`) travel
//! as structured metadata, queried as `{service="mimir-aip"} | worktask_id="..."`.
//! The line itself is the event as one JSON object.
//!
//! The [`LokiLayer`] never blocks the code that logs: it hands each line to a
//! bounded queue, and a background thread batches lines (by count, size and
//! time) and pushes them, protobuf with snappy (as Promtail does) or JSON.
//! Lines that find the queue full, or whose push fails after retries, are
//! dropped and counted in `mimir_loki_lines_dropped_total{reason}`. Dropping
//! the [`LokiGuard`] flushes what is queued.

mod encode;
mod layer;
mod sink;

pub use encode::{Encoding, Entry};
pub use layer::LokiLayer;
pub use sink::LokiGuard;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Defaults to 1000 lines per push.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// Defaults to 1 s: the longest a line waits for its batch to fill.
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_secs(1);
/// Defaults to 10,000 lines waiting to be pushed; more are dropped.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Defaults to 5 s per push request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// A batch is pushed once its lines add up to this many bytes, whatever its count.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// The fields of a line that go to structured metadata rather than the line.
pub const METADATA_FIELDS: [&str; 5] = [
    "worktask_id",
    "pipeline_id",
    "worker_id",
    "trace_id",
    "span_id",
];

/// How to reach Loki and how to batch.
#[derive(Debug, Clone)]
pub struct LokiSettings {
    /// Loki's base URL (`http://127.0.0.1:3100`); a URL that already ends in
    /// `/loki/api/v1/push` is used as it is.
    pub url: String,
    /// `X-Scope-OrgID`, for a multi-tenant Loki; empty sends none.
    pub tenant: String,
    /// Credentials, if Loki sits behind authentication.
    pub auth: Option<Auth>,
    /// The `service` label, e.g. `mimir-aip` or `mimir-aip-worker`.
    pub service: String,
    /// Further static labels of every stream (keep them few and fixed).
    pub labels: Vec<(String, String)>,
    /// Wire format.
    pub encoding: Encoding,
    /// Most lines per push. Defaults to [`DEFAULT_BATCH_SIZE`].
    pub batch_size: usize,
    /// Longest a line waits before its batch is pushed. Defaults to [`DEFAULT_BATCH_WAIT`].
    pub batch_wait: Duration,
    /// Lines that may wait to be pushed. Defaults to [`DEFAULT_QUEUE_CAPACITY`].
    pub queue_capacity: usize,
    /// Timeout of one push. Defaults to [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
}

impl LokiSettings {
    /// Settings with the defaults for `url` and `service`.
    pub fn new(url: impl Into<String>, service: impl Into<String>) -> LokiSettings {
        LokiSettings {
            url: url.into(),
            tenant: String::new(),
            auth: None,
            service: service.into(),
            labels: Vec::new(),
            encoding: Encoding::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            batch_wait: DEFAULT_BATCH_WAIT,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The push endpoint.
    pub fn push_url(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/loki/api/v1/push") {
            base.to_string()
        } else {
            format!("{base}/loki/api/v1/push")
        }
    }
}

/// Credentials sent with every push.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(..)"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ..)"),
        }
    }
}

/// Starts the sink: the layer to add to the subscriber, and the guard that
/// flushes on drop.
pub fn start(settings: LokiSettings) -> std::io::Result<(LokiLayer, LokiGuard)> {
    let (sender, guard) = sink::spawn(&settings)?;
    let layer = LokiLayer::new(sender);
    let _ = FORWARDER.set(layer.clone());
    Ok((layer, guard))
}

/// The running sink, for lines of other processes.
static FORWARDER: std::sync::OnceLock<LokiLayer> = std::sync::OnceLock::new();

/// Whether this process pushes logs to Loki.
pub fn enabled() -> bool {
    FORWARDER.get().is_some()
}

/// Pushes a JSON log line written by another process in our format (a
/// worker's executor), with this process's labels; a no-op without a sink.
pub fn forward(json_line: &str) {
    if let Some(layer) = FORWARDER.get() {
        layer.forward(json_line);
    }
}

static SENT: AtomicU64 = AtomicU64::new(0);
static DROPPED_QUEUE_FULL: AtomicU64 = AtomicU64::new(0);
static DROPPED_PUSH_FAILED: AtomicU64 = AtomicU64::new(0);

/// Lines this process pushed to Loki.
pub fn sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// Lines dropped so far: `(queue_full, push_failed)`.
pub fn dropped() -> (u64, u64) {
    (
        DROPPED_QUEUE_FULL.load(Ordering::Relaxed),
        DROPPED_PUSH_FAILED.load(Ordering::Relaxed),
    )
}
