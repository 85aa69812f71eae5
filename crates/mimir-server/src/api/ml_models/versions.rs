//! `POST /api/workers/{worker_id}/ml-models/{id}/versions`: a worker hands
//! in what its training made. Accepted only from the worker holding the
//! lease of the training attempt, for the model that task trains, and only
//! an artifact that loads; the file is written (temp, fsync, rename) before
//! the version is recorded, so a recorded version always has its artifact.

use super::{decode_artifact, invalid_model, load_model, model_store_error};
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{SubsecRound, Utc};
use mimir_core::{ModelChange, ModelVersion, PerformanceMetrics, TrainingConfig, WorkTaskType};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Body of a version upload.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionUpload {
    /// The `ml_training` task whose attempt made it.
    worktask_id: Uuid,
    /// The attempt, whose lease the worker must hold.
    attempt: u32,
    /// The features the model takes, in order.
    feature_columns: Vec<String>,
    /// The label it predicts ("" for clustering).
    #[serde(default)]
    label_column: String,
    /// Held-out scores.
    #[serde(default)]
    performance_metrics: PerformanceMetrics,
    /// The effective config it was trained with.
    #[serde(default)]
    training_config: TrainingConfig,
    /// How long training took.
    training_duration_ms: Option<u64>,
    /// The artifact, standard base64.
    artifact_base64: String,
}

/// `POST /api/workers/{worker_id}/ml-models/{id}/versions`.
#[utoipa::path(
    post,
    path = "/api/workers/{worker_id}/ml-models/{id}/versions",
    operation_id = "upload_ml_model_version",
    tag = "worker protocol",
    params(
        ("worker_id" = String, Path, description = "The id the worker registered under"),
        ("id" = String, Path, description = "The model's id"),
    ),
    request_body = VersionUpload,
    responses(
        (status = 201, description = "The version, numbered by the registry; the model is `trained`", body = ModelVersion),
        (status = 400, description = "A value refused (an artifact that is not valid base64 or does not load: `invalid_model`), naming the field; nothing is stored", body = ErrorBody),
        (status = 404, description = "The worker is not registered, or no such model or task", body = ErrorBody),
        (status = 409, description = "The worker does not hold the attempt's lease, the task does not train this model, or the model takes no version; nothing is stored", body = ErrorBody),
        (status = 413, description = "The artifact is larger than ml.maxArtifactBytes", body = ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    Path((worker_id, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<VersionUpload>,
) -> Result<Response, ApiError> {
    crate::api::workers::known(&state, &worker_id, true)?;
    if !state
        .store
        .holds(&worker_id, body.worktask_id, body.attempt)
        .await?
    {
        return Err(ApiError::not_lease_holder(format!(
            "worker {worker_id} does not hold the lease of attempt {} of task {}",
            body.attempt, body.worktask_id
        )));
    }
    let task =
        state.store.get(body.worktask_id).await?.ok_or_else(|| {
            ApiError::not_found(format!("work task {} not found", body.worktask_id))
        })?;
    if task.task_type != WorkTaskType::MlTraining || task.task_spec.model_id != id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_task",
            format!(
                "task {} is not the ml_training task of model {id}",
                body.worktask_id
            ),
        ));
    }
    let model = load_model(&state, &id).await?;
    if body.feature_columns.is_empty() && model.model_type.supervised() {
        return Err(ApiError::bad_field(
            "missing_field",
            "feature_columns",
            "feature_columns is required: the features the model takes",
        ));
    }
    let bytes = decode_artifact(
        &body.artifact_base64,
        "artifact_base64",
        state.max_artifact_bytes,
    )?;
    let bytes = tokio::task::spawn_blocking(move || mimir_ml::Model::load(&bytes).map(|_| bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| invalid_model("artifact_base64", &e))?;
    let size_bytes = bytes.len() as u64;
    let checksum = state
        .artifacts
        .write(&id, bytes)
        .await
        .map_err(ApiError::internal)?;
    let version = ModelVersion {
        // Numbered by the registry.
        version: 0,
        checksum: checksum.clone(),
        size_bytes,
        artifact_store: "data".into(),
        feature_columns: body.feature_columns,
        label_column: body.label_column,
        performance_metrics: body.performance_metrics,
        training_config: body.training_config,
        training_task_id: Some(body.worktask_id),
        training_duration_ms: body.training_duration_ms,
        created_at: Utc::now().trunc_subsecs(6),
    };
    let changed = state
        .store
        .change_model(
            &id,
            ModelChange::AddVersion {
                version: Box::new(version),
            },
        )
        .await;
    let model = match changed {
        Ok(model) => model,
        Err(error) => {
            // The file goes unless an earlier version has the same bytes.
            if !model.versions.iter().any(|v| v.checksum == checksum)
                && let Ok(path) = state.artifacts.path(&id, &checksum)
            {
                let _ = tokio::fs::remove_file(path).await;
            }
            return Err(model_store_error(error));
        }
    };
    let Some(version) = model.versions.last().cloned() else {
        return Err(ApiError::internal(
            "a version was added but the model has none",
        ));
    };
    tracing::info!(model_id = %id, version = version.version, worktask_id = %body.worktask_id, worker_id, size_bytes, "model version stored");
    Ok((StatusCode::CREATED, Json(version)).into_response())
}
