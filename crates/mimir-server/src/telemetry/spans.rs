//! Trace spans of the orchestrator's part of a task's path: HTTP submit →
//! store commit → queue wait → lease. The worker continues the trace from the
//! task's stored `traceparent` (execution, steps, outgoing HTTP calls).
//!
//! Everything here returns at once when tracing is off.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use mimir_core::WorkTask;
use mimir_telemetry::{otel, propagation};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use std::time::SystemTime;
use tracing::Span;

/// The caller's `traceparent` header, when valid.
pub fn incoming(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(propagation::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| propagation::is_valid(v))
}

/// The server span of a submission, continuing the caller's trace if any.
pub fn submit(headers: &HeaderMap, route: &'static str, tasks: usize) -> Span {
    if !otel::enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "submit",
        otel.kind = "server",
        http.route = route,
        http.request.method = "POST",
        worktasks = tasks
    );
    if let Some(parent) = incoming(headers) {
        propagation::set_parent(&span, parent);
    }
    span
}

/// The span of the durable commit of a submission (a child of `submit`).
pub fn store_commit(parent: &Span, backend: &'static str) -> Span {
    if !otel::enabled() {
        return Span::none();
    }
    tracing::info_span!(parent: parent, "store commit", db.system = backend)
}

/// The `traceparent` to store with submitted tasks: the submit span's, or
/// (tracing off) the caller's as given, or none.
pub fn task_traceparent(submit: &Span, headers: &HeaderMap) -> String {
    propagation::traceparent_of(submit)
        .or_else(|| incoming(headers).map(str::to_string))
        .unwrap_or_default()
}

/// Records the queue wait (submission to lease, first attempt) and the lease
/// of each leased task, as children of its submission.
pub fn leased(tasks: &[WorkTask], worker_id: &str, at: DateTime<Utc>) {
    if !otel::enabled() {
        return;
    }
    let tracer = opentelemetry::global::tracer("mimir-aip");
    let now = SystemTime::from(at);
    for task in tasks {
        if !propagation::is_valid(&task.traceparent) {
            continue;
        }
        let parent = propagation::context_of(&task.traceparent);
        let attributes = vec![
            KeyValue::new("worktask.id", task.worktask_id.to_string()),
            KeyValue::new("worktask.type", task.task_type.as_str()),
            KeyValue::new("worktask.attempt", i64::from(task.attempt)),
            KeyValue::new("worker.id", worker_id.to_string()),
        ];
        if task.attempt == 1 {
            let mut wait = tracer
                .span_builder("queue wait")
                .with_kind(SpanKind::Internal)
                .with_start_time(SystemTime::from(task.submitted_at))
                .with_attributes(attributes.clone())
                .start_with_context(&tracer, &parent);
            wait.end_with_timestamp(now);
        }
        let mut lease = tracer
            .span_builder("lease")
            .with_kind(SpanKind::Internal)
            .with_start_time(now)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        lease.end_with_timestamp(SystemTime::now().max(now));
    }
}
