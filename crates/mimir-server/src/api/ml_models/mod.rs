//! `/api/ml-models`: the model registry (CRUD), training and inference as
//! tasks, ONNX import, quality checks on the orchestrator, artifact download,
//! and the worker protocol's version upload. Every handler checks all it can
//! before it stores anything, so a refused request leaves nothing behind.

pub(super) mod artifacts;
pub(super) mod evaluate;
pub(super) mod import;
pub(super) mod infer;
mod input;
pub(super) mod models;
pub(super) mod train;
pub(super) mod versions;

use crate::AppState;
use crate::api::error::ApiError;
use axum::http::StatusCode;
use mimir_core::{MlModel, StorageConfig};
use mimir_store::StoreError;

/// Store errors of the model routes: a missing model is 404, a refused
/// change 409 `model_conflict`.
pub(super) fn model_store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Missing { kind, id } => ApiError::not_found(format!("{kind} {id} not found")),
        StoreError::AlreadyExists { kind, id } => ApiError::new(
            StatusCode::CONFLICT,
            "already_exists",
            format!("{kind} {id} already exists"),
        ),
        other => ApiError::from(other),
    }
}

/// The model `id`, or 404.
pub(super) async fn load_model(state: &AppState, id: &str) -> Result<MlModel, ApiError> {
    mimir_core::check_label("id", id)?;
    state
        .store
        .get_model(id)
        .await
        .map_err(model_store_error)?
        .ok_or_else(|| ApiError::not_found(format!("model {id} not found")))
}

/// The storage config `id` of `project_id`, for a model's input or output:
/// 400 naming `field` when it does not exist or belongs to another project
/// (the request is what is wrong, not a missing resource of the path).
pub(super) async fn project_storage(
    state: &AppState,
    project_id: &str,
    id: &str,
    field: &str,
) -> Result<StorageConfig, ApiError> {
    if id.is_empty() {
        return Err(ApiError::bad_field(
            "missing_field",
            field,
            format!("{field} is required: the id of a storage config"),
        ));
    }
    mimir_core::check_label(field, id)?;
    let config = state
        .store
        .get_storage_config(id)
        .await
        .map_err(ApiError::from)?;
    match config {
        None => Err(ApiError::bad_field(
            "unknown_storage",
            field,
            format!("storage config {id} does not exist"),
        )),
        Some(config) if config.project_id != project_id => Err(ApiError::bad_field(
            "wrong_project",
            field,
            format!(
                "storage config {id} belongs to another project than the model's ({project_id})"
            ),
        )),
        Some(config) if !config.active => Err(ApiError::bad_field(
            "storage_inactive",
            field,
            format!("storage config {id} is inactive"),
        )),
        Some(config) => Ok(config),
    }
}

/// 409 `model_not_trained`: inference or a check needs a version.
pub(super) fn not_trained(model: &MlModel) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "model_not_trained",
        format!(
            "model {} has no version yet: train it (POST /api/ml-models/train) or import one",
            model.id
        ),
    )
}

/// The version `number` of `model` (the latest when `None`): 409 when it has
/// none, 404 when the number is unknown.
pub(super) fn pick_version(
    model: &MlModel,
    number: Option<u32>,
) -> Result<&mimir_core::ModelVersion, ApiError> {
    if model.versions.is_empty() {
        return Err(not_trained(model));
    }
    model.version(number).ok_or_else(|| {
        ApiError::not_found(format!(
            "model {} has no version {}",
            model.id,
            number.unwrap_or_default()
        ))
        .with_field("version")
    })
}

/// 400 `invalid_model`: bytes that are not a model this build can load.
pub(super) fn invalid_model(field: &str, error: &mimir_ml::MlError) -> ApiError {
    ApiError::bad_field(
        "invalid_model",
        field,
        format!("{field} is not a usable model: {error}"),
    )
}

/// Decodes standard base64 of at most `max` decoded bytes, naming `field`.
pub(super) fn decode_artifact(text: &str, field: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    if text.is_empty() {
        return Err(ApiError::bad_field(
            "missing_field",
            field,
            format!("{field} is required: the artifact, base64-encoded"),
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "artifact_too_large",
            format!("{field} holds more than {max} bytes (ml.maxArtifactBytes)"),
        )
        .with_field(field)
    };
    // Refused before decoding when even the shortest reading is too long.
    if text.len() / 4 * 3 > max.saturating_add(3) {
        return Err(too_large());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| {
            ApiError::bad_field(
                "invalid_base64",
                field,
                format!("{field} is not standard base64: {e}"),
            )
        })?;
    if bytes.len() > max {
        return Err(too_large());
    }
    Ok(bytes)
}
