//! Log and trace set-up of the binary's commands: level and format from the
//! configuration, `RUST_LOG` for per-module filters (it wins when set), traces
//! when an OTLP endpoint is configured.

use mimir_server::config::{LogFormat, LogLevel};
use mimir_telemetry::{LogSettings, TelemetryGuard, TraceSettings};

/// Installs the global subscriber; logs go to stderr. Keep the guard alive
/// until the process ends: dropping it flushes buffered spans.
pub fn init(
    level: LogLevel,
    format: LogFormat,
    rate_limit: u32,
    traces: TraceSettings,
) -> anyhow::Result<TelemetryGuard> {
    let settings = LogSettings {
        filter: level.as_str().to_string(),
        json: format == LogFormat::Json,
        rate_limit,
        traces,
    };
    Ok(mimir_telemetry::logging::init(&settings)?)
}
