//! W3C trace context (`traceparent`) in and out of spans.
//!
//! A task stores the `traceparent` of its submission; the orchestrator and the
//! worker continue that trace, and outgoing HTTP calls carry it onward.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header name.
pub const TRACEPARENT: &str = "traceparent";

/// The trace id and parent span id of a valid `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`), for logs and exemplars.
pub fn ids(traceparent: &str) -> Option<(&str, &str)> {
    // Most tasks carry none; any version's is at least 55 characters.
    if traceparent.len() < 55 {
        return None;
    }
    let mut parts = traceparent.split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace_id, 32)
        && hex(span_id, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && span_id.bytes().any(|b| b != b'0');
    valid.then_some((trace_id, span_id))
}

/// Whether `traceparent` is well formed.
pub fn is_valid(traceparent: &str) -> bool {
    ids(traceparent).is_some()
}

/// Makes `span` a child of the remote span `traceparent` names (no-op when
/// tracing is off or the value is not valid).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if !crate::otel::enabled() || !is_valid(traceparent) {
        return;
    }
    let _ = span.set_parent(context_of(traceparent));
}

/// The OpenTelemetry context a `traceparent` names.
pub fn context_of(traceparent: &str) -> opentelemetry::Context {
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// The `traceparent` of `span`, when tracing is on and the span is recorded.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !crate::otel::enabled() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_of_valid_traceparents_only() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            ids(tp),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(ids(bad), None, "{bad}");
        }
    }
}
