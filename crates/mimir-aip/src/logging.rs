//! Log and trace set-up of the binary's commands: level and format from the
//! configuration, `RUST_LOG` for per-module filters (it wins when set), traces
//! when an OTLP endpoint is configured, logs pushed to Loki when a URL is.

use mimir_server::config::{LogFormat, LogLevel};
use mimir_telemetry::loki::LokiSettings;
use mimir_telemetry::{LogSettings, TelemetryGuard, TraceSettings};

/// Installs the global subscriber; logs go to stderr (and to Loki when
/// `loki` is set). Keep the guard alive until the process ends: dropping it
/// flushes buffered spans and log lines.
pub fn init(
    level: LogLevel,
    format: LogFormat,
    rate_limit: u32,
    traces: TraceSettings,
    loki: Option<LokiSettings>,
) -> anyhow::Result<TelemetryGuard> {
    let settings = LogSettings {
        filter: level.as_str().to_string(),
        json: format == LogFormat::Json,
        rate_limit,
        traces,
        loki,
    };
    Ok(mimir_telemetry::logging::init(&settings)?)
}
