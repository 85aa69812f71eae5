//! Log and trace set-up for every `mimir-aip` process.
//!
//! One `tracing` subscriber: a formatter ([`JsonLines`] or compact text, on
//! stderr through [`crate::log_writer`]) filtered by level or `RUST_LOG` and by the per-call-site
//! [`RateLimit`], plus the OpenTelemetry layer when traces are exported and
//! the Loki sink when logs are pushed to Loki (same filter as the formatter).

use crate::json_lines::JsonLines;
use crate::log_writer::LogWriter;
use crate::loki::{self, LokiGuard, LokiSettings};
use crate::otel::{self, TraceGuard, TraceSettings, TraceSetupError};
use crate::rate_limit::RateLimit;
use std::io::IsTerminal;
use std::time::Duration;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How a process logs.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A level (`info`) or `RUST_LOG`-style directives; `RUST_LOG` wins when set.
    pub filter: String,
    /// JSON lines rather than compact text.
    pub json: bool,
    /// Most warn/error lines per call site per second; 0 turns the limit off.
    pub rate_limit: u32,
    /// Trace export.
    pub traces: TraceSettings,
    /// Log push to Loki, if configured.
    pub loki: Option<LokiSettings>,
}

/// Keeps telemetry running; drop it last (it flushes buffered spans and
/// log lines queued for Loki).
#[derive(Debug)]
pub struct TelemetryGuard {
    _traces: Option<TraceGuard>,
    _loki: Option<LokiGuard>,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The trace exporter.
    #[error(transparent)]
    Traces(#[from] TraceSetupError),
    /// The Loki sink's thread.
    #[error("cannot start the Loki log sink: {0}")]
    Loki(#[from] std::io::Error),
}

/// `RUST_LOG` when set, else the configured level or directives.
fn env_filter(settings: &LogSettings) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. A second call (tests) keeps the first.
pub fn init(settings: &LogSettings) -> Result<TelemetryGuard, SetupError> {
    let filter = env_filter(settings);
    let limit = RateLimit::new(settings.rate_limit, Duration::from_secs(1));
    if settings.rate_limit > 0 {
        limit.spawn_reporter();
    }
    let fmt = if settings.json {
        JsonLines::new(LogWriter).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(LogWriter)
            .with_ansi(std::io::stderr().is_terminal())
            .compact()
            .boxed()
    };
    let traces = otel::start(&settings.traces)?;
    let (otel_layer, guard) = match traces {
        Some((tracer, guard)) => (
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(LevelFilter::INFO),
            ),
            Some(guard),
        ),
        None => (None, None),
    };
    let (loki_layer, loki_guard) = match &settings.loki {
        Some(loki) => {
            let (layer, guard) = loki::start(loki.clone())?;
            (Some(layer.with_filter(env_filter(settings))), Some(guard))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel_layer)
        .with(loki_layer)
        .with(limit)
        .try_init();
    Ok(TelemetryGuard {
        _traces: guard,
        _loki: loki_guard,
    })
}
