//! Request count and latency by route template, method and status, and the
//! latency again in each response's `Server-Timing` header.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use mimir_telemetry::Metrics;
use mimir_telemetry::metrics::{HttpLabels, RouteLabels};
use std::sync::Arc;
use std::time::Instant;

/// `Server-Timing`: how long the orchestrator took for a request.
const SERVER_TIMING: axum::http::HeaderName = axum::http::HeaderName::from_static("server-timing");

/// Middleware for matched routes (so the route label is a template, never an id).
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_string();
    let mut response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    // The same figure for the caller (browser dev tools, the load generator).
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={:.3}", seconds * 1000.0)) {
        response.headers_mut().insert(SERVER_TIMING, value);
    }
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route: route.clone(),
            method: method.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .http_request_duration
        .get_or_create(&RouteLabels { route, method })
        .observe(seconds);
    response
}
