//! `GET /api/ml-models/{id}/versions/{version}/artifact`: a version's
//! artifact bytes, verified against the recorded checksum before any is
//! sent. Workers fetch the model they run here.

use super::{load_model, pick_version};
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::ml::ArtifactError;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The header carrying the artifact's `sha256:<hex>`.
pub const CHECKSUM_HEADER: &str = "x-mimir-checksum";

/// `GET /api/ml-models/{id}/versions/{version}/artifact`.
#[utoipa::path(
    get,
    path = "/api/ml-models/{id}/versions/{version}/artifact",
    operation_id = "get_ml_model_artifact",
    tag = "ml models",
    params(
        ("id" = String, Path, description = "The model's id"),
        ("version" = u32, Path, description = "The version number"),
    ),
    responses(
        (status = 200, description = "The artifact bytes; X-Mimir-Checksum is their sha256", content_type = "application/octet-stream", body = Vec<u8>,
         headers(("x-mimir-checksum" = String, description = "sha256:<hex> of the body"))),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such model or version", body = ErrorBody),
        (status = 409, description = "The model has no version yet", body = ErrorBody),
    )
)]
pub async fn download(
    State(state): State<AppState>,
    Path((id, number)): Path<(String, u32)>,
) -> Result<Response, ApiError> {
    let model = load_model(&state, &id).await?;
    let version = pick_version(&model, Some(number))?;
    let bytes = read_verified(&state, &model.id, &version.checksum).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::HeaderName::from_static(CHECKSUM_HEADER),
                version.checksum.clone(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The artifact with `checksum` of model `id`, verified; a missing or
/// damaged file is a 500 naming the version (the registry and the files
/// disagree, which is the orchestrator's fault, not the caller's).
pub(super) async fn read_verified(
    state: &AppState,
    id: &str,
    checksum: &str,
) -> Result<Vec<u8>, ApiError> {
    state.artifacts.read(id, checksum).await.map_err(|e| {
        tracing::error!(model_id = %id, checksum, error = %e, "cannot serve a model artifact");
        let code = match e {
            ArtifactError::Damaged { .. } => "artifact_damaged",
            ArtifactError::Missing(_) => "artifact_missing",
            _ => "artifact_unreadable",
        };
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            format!(
                "the artifact {checksum} of model {id} cannot be served ({code}); see the orchestrator log"
            ),
        )
    })
}
