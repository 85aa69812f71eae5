//! Bearer tokens: the worker token guards the worker protocol, the API token
//! everything a user reads or changes (the dashboard's data included). Either
//! is off when not configured. Liveness, readiness, `/metrics` (which has its
//! own credentials) and the dashboard's static files stay open, so probes and
//! scrapers work and the dashboard can ask for the token.

use super::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether `headers` carry `Authorization: Bearer <token>`.
pub(crate) fn presents(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|p| super::constant_time_eq(p.trim().as_bytes(), token.as_bytes()))
}

fn refuse(message: &'static str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Refuses worker calls without the configured worker token.
pub async fn require_worker_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match &state.worker_token {
        Some(token) if !presents(request.headers(), token) => {
            refuse("worker endpoints need the worker token (Authorization: Bearer ...)")
        }
        _ => next.run(request).await,
    }
}

/// Refuses user calls without the configured API token.
pub async fn require_api_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match &state.api_token {
        Some(token) if !presents(request.headers(), token) => refuse(
            "this endpoint needs the API token (Authorization: Bearer ...; the CLI's --token or MIMIR_TOKEN)",
        ),
        _ => next.run(request).await,
    }
}
