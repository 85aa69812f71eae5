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

/// `GET /ready`: 200 when the store answers a query (it opens only with its
/// migrations applied), can write (after writes failed on a full disk) and
/// the autoscaler polls, else 503 with the reason.
pub async fn ready(State(state): State<AppState>) -> Response {
    let autoscaler = match &state.pool {
        None => "off",
        Some(pool) if pool.is_running() => "running",
        Some(_) => "stalled",
    };
    // The ping also checks the schema is at this build's last migration.
    let store = state.store.ping().await;
    let checks = json!({
        "store": match &store {
            Ok(()) => "ok",
            Err(error) if error.is_storage_full() => "full",
            Err(_) => "failing",
        },
        "migrations": match &store {
            Ok(()) => "applied",
            Err(error) if error.is_storage_full() => "applied",
            Err(_) => "unknown",
        },
        "autoscaler": autoscaler,
    });
    let problem = match store {
        Err(error) => Some(format!("store: {error}")),
        Ok(()) if autoscaler == "stalled" => {
            Some("autoscaler: it has not polled the queue recently".to_string())
        }
        Ok(()) => None,
    };
    match problem {
        None => Json(json!({ "status": "ready", "checks": checks })).into_response(),
        Some(reason) => {
            tracing::warn!(%reason, "readiness check failed");
            let body = json!({ "status": "not_ready", "reason": reason, "checks": checks });
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
