//! Log and trace set-up for every `mimir-aip` process.
//!
//! One `tracing` subscriber: a formatter ([`JsonLines`] or compact text, on
//! stderr through [`crate::log_writer`]) filtered by level or `RUST_LOG` and by the per-call-site
//! [`RateLimit`], plus the OpenTelemetry layer when traces are exported and
//! the Loki sink when logs are pushed to Loki (same filter as the formatter).

use crate::json_lines::JsonLines;
use crate::log_writer::LogWriter;
use crate::loki::{self, LokiGuard, LokiLayer, LokiSettings};
use crate::otel::{self, TraceGuard, TraceSettings, TraceSetupError};
use crate::rate_limit::RateLimit;
use opentelemetry_sdk::trace::SdkTracer;
use std::io::IsTerminal;
use std::time::Duration;
use tracing::Subscriber;
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
    let traces = otel::start(&settings.traces)?;
    let (tracer, guard) = traces.unzip();
    let (loki_layer, loki_guard) = match &settings.loki {
        Some(loki) => {
            let (layer, guard) = loki::start(loki.clone())?;
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let _ = subscriber(settings, tracer, loki_layer).try_init();
    Ok(TelemetryGuard {
        _traces: guard,
        _loki: loki_guard,
    })
}

/// The subscriber [`init`] installs: the formatter and the Loki layer when
/// given, behind the configured filter, the trace layer when given, and over
/// all the rate limit, which vetoes excess warnings for every layer.
fn subscriber(
    settings: &LogSettings,
    tracer: Option<SdkTracer>,
    loki_layer: Option<LokiLayer>,
) -> Box<dyn Subscriber + Send + Sync + 'static> {
    let limit = RateLimit::new(settings.rate_limit, Duration::from_secs(1));
    if settings.rate_limit > 0 {
        limit.spawn_reporter();
    }
    let registry = tracing_subscriber::registry();
    let Some(tracer) = tracer else {
        // Without traces every layer wants the same events, so the filter is
        // global. Each call site is then simply on or off: the macros skip a
        // disabled one at once and dispatch an enabled one without asking the
        // filters again, where per-layer filters that disagree (the rate
        // limit's and the formatter's) would have every line run them all.
        return Box::new(
            registry
                .with(env_filter(settings))
                .with(formatter(settings))
                .with(loki_layer)
                .with(limit),
        );
    };
    // Spans go to the trace exporter at info whatever the log level, so each
    // layer has its own filter.
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO);
    let loki_layer = loki_layer.map(|layer| layer.with_filter(env_filter(settings)));
    Box::new(
        registry
            .with(formatter(settings).with_filter(env_filter(settings)))
            .with(otel_layer)
            .with(loki_layer)
            // Behind its own level filter: it only ever vetoes warnings and
            // errors, and as an unfiltered layer it would make every call
            // site "sometimes" interesting, so that even disabled debug
            // events were dispatched, to be dropped by each layer's filter
            // in turn.
            .with(limit.with_filter(LevelFilter::WARN)),
    )
}

/// JSON lines or compact text, on stderr.
fn formatter<S>(settings: &LogSettings) -> Box<dyn Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if settings.json {
        JsonLines::new(LogWriter).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(LogWriter)
            .with_ansi(std::io::stderr().is_terminal())
            .compact()
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(filter: &str) -> LogSettings {
        LogSettings {
            filter: filter.into(),
            json: true,
            rate_limit: 0,
            traces: TraceSettings::default(),
            loki: None,
        }
    }

    /// `tracing`'s macros skip an event above the subscribers' most verbose
    /// level before doing anything else; that needs every layer to say how
    /// verbose it is.
    #[test]
    fn the_stack_says_how_verbose_it_is() {
        if std::env::var_os("RUST_LOG").is_some() {
            return; // RUST_LOG wins over the configured filter.
        }
        for (filter, level) in [
            ("warn", LevelFilter::WARN),
            ("info", LevelFilter::INFO),
            ("warn,mimir::task=debug", LevelFilter::DEBUG),
            ("error", LevelFilter::ERROR),
        ] {
            assert_eq!(
                subscriber(&settings(filter), None, None).max_level_hint(),
                Some(level),
                "{filter}"
            );
        }
    }

    /// Without traces, an enabled call site is always dispatched, so no
    /// filter runs again per line, and a disabled one never is.
    #[test]
    fn each_call_site_is_on_or_off() {
        if std::env::var_os("RUST_LOG").is_some() {
            return;
        }
        use tracing::metadata::Kind;
        use tracing::{Callsite, Level};
        let info =
            tracing::callsite!(name: "info", kind: Kind::EVENT, level: Level::INFO, fields: []);
        let warn =
            tracing::callsite!(name: "warn", kind: Kind::EVENT, level: Level::WARN, fields: []);
        let debug =
            tracing::callsite!(name: "debug", kind: Kind::EVENT, level: Level::DEBUG, fields: []);
        let stack = subscriber(&settings("info"), None, None);
        assert!(stack.register_callsite(info.metadata()).is_always());
        assert!(stack.register_callsite(warn.metadata()).is_always());
        assert!(stack.register_callsite(debug.metadata()).is_never());
    }
}
