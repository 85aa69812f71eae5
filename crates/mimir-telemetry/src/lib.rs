//! Observability of Mimir AIP: the metric catalog ([`Metrics`]), exposition in
//! OpenMetrics or Prometheus text, process metrics, log set-up with a
//! per-call-site rate limit, a Loki push sink, OpenTelemetry traces over OTLP
//! and W3C trace context propagation.

pub mod exposition;
pub mod json_lines;
pub mod log_writer;
pub mod logging;
pub mod loki;
pub mod metrics;
pub mod otel;
pub mod process;
pub mod propagation;
pub mod rate;
pub mod rate_limit;
pub mod series;

pub use exposition::{Format, render};
pub use logging::{LogSettings, TelemetryGuard};
pub use metrics::Metrics;
pub use otel::TraceSettings;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit this binary was built from, or `unknown`.
pub const COMMIT: &str = env!("MIMIR_BUILD_COMMIT");

/// This machine's host name (`HOSTNAME`, else `/etc/hostname`).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "localhost".into())
}
