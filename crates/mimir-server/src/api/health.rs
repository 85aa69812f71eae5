//! Liveness, readiness and the JSON summary.

use crate::AppState;
use crate::api::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use mimir_core::{WorkTaskStatus, WorkTaskType};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The answer of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `healthy`.
    #[schema(value_type = String, example = "healthy")]
    pub status: &'static str,
}

/// `GET /health`: the process answers.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses((status = 200, description = "The process answers", body = Health))
)]
pub async fn health() -> Json<Health> {
    Json(Health { status: "healthy" })
}

/// Longest `/ready` waits for the store: under the 5 s probes usually allow.
const READY_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The answer of `GET /ready`, ready or not.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
    /// Why it is not ready; absent when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each check's state.
    pub checks: ReadyChecks,
}

/// The checks behind readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// `ok`, `full` (writes fail on a full disk) or `failing`.
    #[schema(value_type = String)]
    pub store: &'static str,
    /// `applied` or `unknown`.
    #[schema(value_type = String)]
    pub migrations: &'static str,
    /// `off` (no local pool), `running` or `stalled`.
    #[schema(value_type = String)]
    pub autoscaler: &'static str,
    /// Whether this orchestrator leads the replicas sharing its store (runs
    /// the lease reaper, the autoscaler and Kubernetes dispatch). Not a
    /// readiness condition: followers serve the API and workers as well.
    pub leader: bool,
}

/// `GET /ready`: 200 when the store answers a query (it opens only with its
/// migrations applied), can write (after writes failed on a full disk) and
/// the autoscaler polls, else 503 with the reason.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Not ready, with the reason", body = Readiness),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    let autoscaler = match &state.backend {
        None => "off",
        Some(backend) if backend.is_running() => "running",
        Some(_) => "stalled",
    };
    // The ping also checks the schema is at this build's last migration. A
    // database out of reach answers within the probe's usual timeout.
    let store = match tokio::time::timeout(READY_PING_TIMEOUT, state.store.ping()).await {
        Ok(answer) => answer,
        Err(_) => Err(mimir_store::StoreError::Unavailable(format!(
            "no answer within {} ms",
            READY_PING_TIMEOUT.as_millis()
        ))),
    };
    let checks = ReadyChecks {
        store: match &store {
            Ok(()) => "ok",
            Err(error) if error.is_storage_full() => "full",
            Err(_) => "failing",
        },
        migrations: match &store {
            Ok(()) => "applied",
            Err(error) if error.is_storage_full() => "applied",
            Err(_) => "unknown",
        },
        autoscaler,
        leader: state.leadership.leads(),
    };
    let problem = match store {
        Err(error) => Some(format!("store: {error}")),
        Ok(()) if autoscaler == "stalled" => {
            Some("autoscaler: it has not polled the queue recently".to_string())
        }
        Ok(()) => None,
    };
    match problem {
        None => Json(Readiness {
            status: "ready",
            reason: None,
            checks,
        })
        .into_response(),
        Some(reason) => {
            tracing::warn!(%reason, "readiness check failed");
            let body = Readiness {
                status: "not_ready",
                reason: Some(reason),
                checks,
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// The answer of `GET /api/metrics` (the seed system's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    /// The queue.
    pub queue: QueueSummary,
    /// Tasks per status, every status present.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub tasks_by_status: BTreeMap<WorkTaskStatus, u64>,
    /// Tasks per type, every type present.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub tasks_by_type: BTreeMap<WorkTaskType, u64>,
    /// When the figures were read.
    pub timestamp: DateTime<Utc>,
}

/// The queue part of [`Summary`].
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueSummary {
    /// Tasks waiting to run.
    pub length: usize,
}

/// `GET /api/metrics`: queue length and task counts (the seed system's shape).
#[utoipa::path(
    get,
    path = "/api/metrics",
    tag = "health",
    responses((status = 200, description = "Queue length and task counts", body = Summary))
)]
pub async fn summary(State(state): State<AppState>) -> Result<Json<Summary>, ApiError> {
    let counts = state.store.counts().await?;
    Ok(Json(Summary {
        queue: QueueSummary {
            length: state.store.queue_length().await?,
        },
        tasks_by_status: counts.by_status(),
        tasks_by_type: counts.by_type(),
        timestamp: Utc::now(),
    }))
}
