//! `POST /api/ml-models/{id}/evaluate`: re-scores a version on fresh
//! labelled records, on the orchestrator, and compares its headline figure
//! (accuracy, or r²) with the one it was trained with. A drop beyond the
//! threshold marks the model `degraded` (which `mimir_model_degraded` shows
//! and an alert watches); a score back within it restores `trained`.

use super::artifacts::read_verified;
use super::input::{self, ModelInput};
use super::{load_model, model_store_error, pick_version};
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mimir_core::{ModelChange, PerformanceMetrics};
use mimir_ml::MlError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Defaults to 0.05: the drop of the headline figure that degrades a model.
pub const DEFAULT_THRESHOLD: f64 = 0.05;

/// Body of `POST /api/ml-models/{id}/evaluate`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateBody {
    /// The version to check; defaults to the latest.
    #[schema(minimum = 1)]
    version: Option<u32>,
    /// Required: labelled records, `{"storage_id", "query"}` (at most
    /// 100,000 records) or `{"records": [...]}`.
    #[schema(required = true)]
    input: Option<ModelInput>,
    /// The drop that degrades, 0 to 1; defaults to 0.05.
    #[schema(minimum = 0.0, maximum = 1.0)]
    threshold: Option<f64>,
}

/// What a quality check found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Evaluation {
    model_id: String,
    version: u32,
    /// The figure compared: `accuracy` or `r2_score`.
    metric: String,
    /// The figure when trained.
    baseline: f64,
    /// The figure now.
    current: f64,
    /// `baseline - current`.
    drop: f64,
    /// Whether the drop is beyond the threshold.
    degraded: bool,
    /// Every figure now.
    performance_metrics: PerformanceMetrics,
}

fn ml_error(error: MlError) -> ApiError {
    match error {
        MlError::Data(message) | MlError::Config(message) => {
            ApiError::bad_field("invalid_input", "input", message)
        }
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "evaluation_failed",
            format!("the model could not be scored: {other}"),
        ),
    }
}

/// `POST /api/ml-models/{id}/evaluate`.
#[utoipa::path(
    post,
    path = "/api/ml-models/{id}/evaluate",
    operation_id = "evaluate_ml_model",
    tag = "ml models",
    params(("id" = String, Path, description = "The model's id")),
    request_body = EvaluateBody,
    responses(
        (status = 200, description = "The scores; the model's status follows when the latest version was checked", body = Evaluation),
        (status = 400, description = "A value refused (input, threshold, records the model cannot score), naming the field", body = ErrorBody),
        (status = 404, description = "No such model or version", body = ErrorBody),
        (status = 409, description = "The model has no version yet, or its type has no headline figure (clustering)", body = ErrorBody),
    )
)]
pub async fn evaluate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EvaluateBody>,
) -> Result<Json<Evaluation>, ApiError> {
    let model = load_model(&state, &id).await?;
    let version = pick_version(&model, body.version)?.clone();
    let threshold = body.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
        return Err(ApiError::bad_field(
            "invalid_value",
            "threshold",
            format!("threshold must be between 0 and 1, got {threshold}"),
        ));
    }
    let Some((metric, baseline)) = version.performance_metrics.headline() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_quality_metric",
            format!(
                "version {} of model {id} has no accuracy or r² to compare",
                version.version
            ),
        ));
    };
    let checked = input::check(&state, &model, body.input, "input").await?;
    let records = input::read(&state, checked, "input").await?;
    let artifact = read_verified(&state, &model.id, &version.checksum).await?;
    let scored = tokio::task::spawn_blocking(move || {
        let loaded = mimir_ml::Model::load(&artifact)?;
        loaded.evaluate(&records)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ml_error)?;
    let current = match metric {
        "accuracy" => scored.accuracy,
        _ => scored.r2_score,
    };
    let Some(current) = current else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "evaluation_failed",
            format!("scoring gave no {metric} to compare"),
        ));
    };
    let drop = baseline - current;
    let degraded = drop > threshold;
    // The status is about the latest version: checking an older one changes
    // nothing.
    if model.versions.last().map(|v| v.version) == Some(version.version) {
        let change = if degraded {
            ModelChange::Degrade {
                reason: format!(
                    "{metric} of version {} fell from {baseline:.4} to {current:.4} (threshold {threshold})",
                    version.version
                ),
            }
        } else {
            ModelChange::Restore
        };
        match state.store.change_model(&id, change).await {
            Ok(_) => {}
            // A model training or failed meanwhile keeps that status.
            Err(mimir_store::StoreError::Refused { reason, .. }) => {
                tracing::info!(model_id = %id, reason, "quality check left the status as it was");
            }
            Err(error) => return Err(model_store_error(error)),
        }
    }
    if degraded {
        tracing::warn!(model_id = %id, version = version.version, metric, baseline, current, threshold, "model degraded");
    } else {
        tracing::info!(model_id = %id, version = version.version, metric, baseline, current, "model quality checked");
    }
    Ok(Json(Evaluation {
        model_id: id,
        version: version.version,
        metric: metric.to_string(),
        baseline,
        current,
        drop,
        degraded,
        performance_metrics: scored,
    }))
}
