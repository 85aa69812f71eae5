//! `POST /api/pipelines/{id}/webhook`: a signed request from another system
//! starts a run of the pipeline with the request's JSON body as
//! `$.params.body`.
//!
//! The caller signs the exact body bytes with the pipeline's webhook secret
//! (`X-Mimir-Signature: sha256=<hex HMAC-SHA256>`), checked in constant
//! time. The signature is the only credential (webhook senders hold no API
//! token), so the answers before it is checked say nothing about the
//! pipeline beyond whether it takes webhooks. A signed body is accepted
//! once within [`REPLAY_WINDOW`]: a captured request sent again is refused,
//! and senders make each event's body unique (an event id or a timestamp
//! in it).

use super::error::{ApiError, ErrorBody};
use crate::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mimir_core::{Submission, TaskSpec, WorkTask};
use mimir_store::WebhookDelivery;
use mimir_telemetry::metrics::WebhookOutcomeLabels;
use serde_json::{Map, Value};
use std::time::Duration;
use uuid::Uuid;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-mimir-signature";

/// How long a signature is remembered: the same signed body within it is a
/// replay.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// `POST /api/pipelines/{id}/webhook`.
#[utoipa::path(
    post,
    path = "/api/pipelines/{id}/webhook",
    operation_id = "pipeline_webhook",
    tag = "pipelines",
    params(
        ("id" = String, Path, description = "The pipeline's id"),
        ("X-Mimir-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body with the pipeline's webhook secret>"),
    ),
    request_body(content = Object, description = "Any JSON document; the run reads it as $.params.body"),
    responses(
        (status = 202, description = "The queued pipeline_execution task", body = WorkTask),
        (status = 400, description = "The body is not JSON, or the id is refused", body = ErrorBody),
        (status = 401, description = "The signature is missing or wrong", body = ErrorBody),
        (status = 403, description = "The pipeline's webhook is not enabled", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The same signed body arrived within the replay window", body = ErrorBody),
    )
)]
pub async fn webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    mimir_core::check_label("id", &id).map_err(ApiError::from)?;
    let pipeline = super::catalog::load(&state, &id).await?;
    let outcome = |outcome: &'static str| {
        state
            .metrics
            .webhook_requests
            .get_or_create(&WebhookOutcomeLabels {
                pipeline: id.clone(),
                outcome,
            })
            .inc();
    };
    let webhook = &pipeline.trigger_config.webhook;
    let Some(secret) = webhook.secret.as_deref().filter(|_| webhook.enabled) else {
        outcome("disabled");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "webhook_disabled",
            format!("pipeline {id} takes no webhook calls: enable trigger_config.webhook first"),
        ));
    };
    let Some(signature) = headers.get(SIGNATURE_HEADER) else {
        outcome("missing_signature");
        return Err(unauthorized(
            "missing_signature",
            "sign the body: X-Mimir-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook secret>",
        ));
    };
    let Some(digest) = signature
        .to_str()
        .ok()
        .and_then(|s| s.trim().strip_prefix("sha256="))
        .and_then(decode_hex)
    else {
        outcome("bad_signature");
        return Err(unauthorized(
            "bad_signature",
            "X-Mimir-Signature must be sha256= followed by 64 hex digits",
        ));
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    if ring::hmac::verify(&key, &body, &digest).is_err() {
        outcome("bad_signature");
        tracing::warn!(pipeline_id = %id, "webhook call with a wrong signature refused");
        return Err(unauthorized(
            "bad_signature",
            "the signature does not match the body and the pipeline's webhook secret",
        ));
    }
    let document: Value = match serde_json::from_slice(&body) {
        Ok(document) => document,
        Err(error) => {
            outcome("invalid");
            return Err(ApiError::bad_field(
                "invalid_json",
                "body",
                format!("the webhook body must be JSON: {error}"),
            ));
        }
    };
    let mut parameters = Map::new();
    parameters.insert("body".into(), document);
    let new = Submission {
        task_type: Some("pipeline_execution".into()),
        project_id: Some(pipeline.project_id.clone()),
        task_spec: Some(TaskSpec {
            pipeline_id: pipeline.id.clone(),
            parameters,
            ..TaskSpec::default()
        }),
        ..Submission::default()
    }
    .validate()?;
    let now = Utc::now();
    let task = WorkTask::new(Uuid::now_v7(), now, new);
    let delivery = WebhookDelivery {
        pipeline_id: pipeline.id.clone(),
        signature: digest.iter().map(|b| format!("{b:02x}")).collect(),
        at: now,
        window: REPLAY_WINDOW,
    };
    let Some(task) = state.store.submit_webhook(delivery, task).await? else {
        outcome("replayed");
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "replayed",
            format!(
                "this signed body reached pipeline {id} within the last {} s already; make each event's body unique (an event id or timestamp in it)",
                REPLAY_WINDOW.as_secs()
            ),
        ));
    };
    outcome("accepted");
    tracing::info!(pipeline_id = %id, worktask_id = %task.worktask_id, "webhook started a run");
    Ok((StatusCode::ACCEPTED, Json(task)).into_response())
}

fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// 32 bytes from 64 hex digits.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_only_64_hex_digits() {
        assert_eq!(decode_hex(&"ab".repeat(32)), Some(vec![0xab; 32]));
        assert_eq!(decode_hex(&"AB".repeat(32)), Some(vec![0xab; 32]));
        assert_eq!(decode_hex(&"ab".repeat(31)), None);
        assert_eq!(decode_hex(&"zz".repeat(32)), None);
        assert_eq!(decode_hex(&"é".repeat(32)), None);
    }
}
