//! Observability of Mimir AIP: the metric catalog ([`Metrics`]), exposition in
//! OpenMetrics or Prometheus text, process metrics, log set-up with a
//! per-call-site rate limit, a Loki push sink, OpenTelemetry traces over OTLP
//! and W3C trace context propagation.

pub mod exposition;
pub mod inference;
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
pub use inference::InferenceSummary;
pub use logging::{LogSettings, TelemetryGuard};
pub use metrics::Metrics;
pub use otel::TraceSettings;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit this binary was built from, or `unknown`.
pub const COMMIT: &str = env!("MIMIR_BUILD_COMMIT");

/// This machine's host name, the one lookup every part uses (worker
/// registration, instance ids, trace resources), so they all name a host
/// alike: the kernel's (`/proc/sys/kernel/hostname`, what `hostname` prints
/// and what a container runtime sets), else `HOSTNAME`, else
/// `/etc/hostname`, else `localhost`.
pub fn hostname() -> String {
    let named = |h: String| Some(h.trim().to_string()).filter(|h| !h.is_empty());
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(named)
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(named))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .and_then(named)
        })
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_name_is_the_kernels_where_it_has_one() {
        let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
            return;
        };
        if kernel.trim().is_empty() {
            return;
        }
        assert_eq!(super::hostname(), kernel.trim());
    }
}
