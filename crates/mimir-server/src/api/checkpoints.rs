//! `/api/pipelines/{id}/checkpoints`: a pipeline's durable state between
//! runs (the last id or timestamp an incremental load reached).
//!
//! Runs read them with `checkpoint.load`; `checkpoint.save` stages a value
//! that the orchestrator merges in only when the run completes
//! ([`apply_from_result`]), so a failed run never moves a checkpoint.

use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::AppState;
use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use mimir_store::Checkpoints;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Most bytes of a pipeline's checkpoints, as compact JSON.
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;

/// Longest checkpoint key.
pub const MAX_KEY_LEN: usize = 128;

/// A pipeline's checkpoints as answered.
#[derive(Serialize, ToSchema)]
pub struct CheckpointsView {
    /// The pipeline.
    pipeline_id: String,
    /// Key → value.
    #[schema(value_type = Object)]
    checkpoints: Map<String, Value>,
    /// When they last changed; null when never saved.
    updated_at: Option<DateTime<Utc>>,
}

impl From<Checkpoints> for CheckpointsView {
    fn from(c: Checkpoints) -> CheckpointsView {
        CheckpointsView {
            pipeline_id: c.pipeline_id,
            checkpoints: c.values,
            updated_at: c.updated_at,
        }
    }
}

/// Body of `PUT /api/pipelines/{id}/checkpoints`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsBody {
    /// Required: every checkpoint (replacing the stored ones); `{}` clears
    /// them.
    #[schema(value_type = Object, required = true)]
    checkpoints: Option<Map<String, Value>>,
}

/// Refuses keys and sizes out of bounds, naming the field.
fn check(values: &Map<String, Value>, at: &str) -> Result<(), ApiError> {
    for key in values.keys() {
        if key.is_empty() || key.chars().count() > MAX_KEY_LEN || key.chars().any(char::is_control)
        {
            return Err(ApiError::bad_field(
                "invalid_checkpoint",
                format!("{at}.{key}"),
                format!(
                    "checkpoint keys are 1 to {MAX_KEY_LEN} characters without control characters"
                ),
            ));
        }
    }
    let size = serde_json::to_vec(values)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_CHECKPOINT_BYTES {
        return Err(ApiError::bad_field(
            "checkpoints_too_large",
            at,
            format!(
                "a pipeline's checkpoints hold at most {MAX_CHECKPOINT_BYTES} bytes of JSON, got {size}"
            ),
        ));
    }
    Ok(())
}

/// `GET /api/pipelines/{id}/checkpoints`: for users and for the workers
/// running the pipeline.
#[utoipa::path(
    get,
    path = "/api/pipelines/{id}/checkpoints",
    operation_id = "get_pipeline_checkpoints",
    tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id")),
    responses(
        (status = 200, description = "Its checkpoints", body = CheckpointsView),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CheckpointsView>, ApiError> {
    mimir_core::check_label("id", &id).map_err(ApiError::from)?;
    let checkpoints = state
        .store
        .get_checkpoints(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("pipeline {id} not found")))?;
    Ok(Json(checkpoints.into()))
}

/// `PUT /api/pipelines/{id}/checkpoints`: sets them all (to start an
/// incremental load over, or from a given point).
#[utoipa::path(
    put,
    path = "/api/pipelines/{id}/checkpoints",
    operation_id = "put_pipeline_checkpoints",
    tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id")),
    request_body = CheckpointsBody,
    responses(
        (status = 200, description = "Stored", body = CheckpointsView),
        (status = 400, description = "A key or the size refused, naming the field", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CheckpointsBody>,
) -> Result<Json<CheckpointsView>, ApiError> {
    mimir_core::check_label("id", &id).map_err(ApiError::from)?;
    let values = body.checkpoints.ok_or_else(|| {
        ApiError::bad_field(
            "missing_field",
            "checkpoints",
            "checkpoints is required: an object of key → value ({} clears them)",
        )
    })?;
    check(&values, "checkpoints")?;
    let stored = state
        .store
        .put_checkpoints(&id, values, true, Utc::now())
        .await
        .map_err(|e| match e {
            mimir_store::StoreError::Missing { .. } => {
                ApiError::not_found(format!("pipeline {id} not found"))
            }
            other => other.into(),
        })?;
    tracing::info!(pipeline_id = %id, keys = stored.values.len(), "checkpoints set");
    Ok(Json(stored.into()))
}

/// Merges the checkpoints a completed run saved (`result.checkpoints`) into
/// its pipeline's. A value out of bounds, or a pipeline gone meanwhile, is
/// logged and dropped: the run itself completed.
pub async fn apply_from_result(state: &AppState, worktask_id: uuid::Uuid, result: &Value) {
    let Some(saved) = result.get("checkpoints").and_then(Value::as_object) else {
        return;
    };
    if saved.is_empty() {
        return;
    }
    let task = match state.store.get(worktask_id).await {
        Ok(Some(task)) => task,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%worktask_id, %error, "cannot read the task whose run saved checkpoints; they are not stored");
            return;
        }
    };
    let pipeline_id = task.task_spec.pipeline_id;
    if let Err(error) = check(saved, "result.checkpoints") {
        tracing::warn!(%worktask_id, %pipeline_id, error = %error.body(), "a run saved checkpoints out of bounds; they are not stored");
        return;
    }
    match state
        .store
        .put_checkpoints(&pipeline_id, saved.clone(), false, Utc::now())
        .await
    {
        Ok(_) => {
            tracing::info!(%worktask_id, %pipeline_id, keys = saved.len(), "checkpoints saved by a completed run")
        }
        Err(error) => {
            tracing::error!(%worktask_id, %pipeline_id, %error, "cannot store the checkpoints a completed run saved")
        }
    }
}
