//! Liveness, readiness and the JSON summary.

use crate::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

/// `GET /health`: the process answers.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "healthy" }))
}

/// `GET /ready`: 200 when the store answers a query, else 503 with the reason.
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            let body = json!({ "status": "not_ready", "reason": format!("store: {error}") });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// `GET /api/metrics`: queue length and task counts (the seed system's shape).
pub async fn summary(State(state): State<AppState>) -> Json<serde_json::Value> {
    let counts = state.store.counts();
    Json(json!({
        "queue": { "length": state.store.queue_length() },
        "tasks_by_status": counts.by_status(),
        "tasks_by_type": counts.by_type(),
        "timestamp": Utc::now(),
    }))
}
