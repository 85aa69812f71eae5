//! Log set-up: level and format from the configuration, `RUST_LOG` for
//! per-module filters (it wins when set).

use mimir_server::config::{LogFormat, LogLevel};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; logs go to stderr.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_str()));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // A second call (tests) finds a subscriber already set; that one stays.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
