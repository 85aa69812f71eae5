//! OpenTelemetry traces over OTLP/HTTP (protobuf).
//!
//! Off unless an endpoint is configured, and then free: no exporter, no
//! tracer, and the code that makes spans checks [`enabled`] first.
//!
//! Environment variables read (they win over configuration keys):
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full traces URL;
//! - `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL (`/v1/traces` is added);
//! - `OTEL_SERVICE_NAME`: `service.name`;
//! - `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`: the sampler (default
//!   `parentbased_always_on`), read by the OpenTelemetry SDK;
//! - `OTEL_RESOURCE_ATTRIBUTES`: extra resource attributes.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported; span-making code does nothing when not.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// How traces are exported.
#[derive(Debug, Clone, Default)]
pub struct TraceSettings {
    /// Collector base URL (`http://host:4318`); the env vars win.
    pub endpoint: Option<String>,
    /// `service.name` unless `OTEL_SERVICE_NAME` is set.
    pub service_name: String,
    /// `service.instance.id`: this process (worker id, or host and port).
    pub instance_id: String,
    /// `deployment.environment`, e.g. `production`; empty leaves it out.
    pub environment: String,
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {message}")]
pub struct TraceSetupError {
    /// The traces URL.
    pub endpoint: String,
    /// Why.
    pub message: String,
}

/// The traces URL the settings and environment name, if any.
fn traces_endpoint(settings: &TraceSettings) -> Option<String> {
    let env = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
    if let Some(full) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(full);
    }
    let base = env("OTEL_EXPORTER_OTLP_ENDPOINT")
        .or_else(|| settings.endpoint.clone().filter(|e| !e.trim().is_empty()))?;
    Some(format!("{}/v1/traces", base.trim_end_matches('/')))
}

/// Exports traces while alive; flushes what is buffered when dropped.
#[derive(Debug)]
pub struct TraceGuard {
    provider: SdkTracerProvider,
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(error) = self.provider.shutdown() {
            eprintln!("traces not flushed: {error}");
        }
    }
}

/// Starts the exporter when an endpoint is configured; `None` when tracing is off.
pub fn start(settings: &TraceSettings) -> Result<Option<(SdkTracer, TraceGuard)>, TraceSetupError> {
    let Some(endpoint) = traces_endpoint(settings) else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| TraceSetupError {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?;
    let service_name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| settings.service_name.clone());
    let mut attributes = vec![
        KeyValue::new("service.version", crate::VERSION),
        KeyValue::new("service.instance.id", settings.instance_id.clone()),
        KeyValue::new("host.name", crate::hostname()),
    ];
    if !settings.environment.is_empty() {
        attributes.push(KeyValue::new(
            "deployment.environment",
            settings.environment.clone(),
        ));
    }
    let resource = Resource::builder()
        .with_service_name(service_name)
        .with_attributes(attributes)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("mimir-aip");
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some((tracer, TraceGuard { provider })))
}
