//! `POST /api/ml-models/import`: registers a model trained elsewhere, sent
//! as ONNX. The file is checked by loading and running it
//! ([`mimir_ml::import_onnx`]) before anything is stored; the model is
//! `trained` at once, with the import as version 1.

use super::{decode_artifact, invalid_model, model_store_error};
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SubsecRound, Utc};
use mimir_core::{
    MlModel, ModelChange, ModelStatus, ModelType, ModelVersion, PerformanceMetrics, TrainingConfig,
    check_model_name,
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Body of `POST /api/ml-models/import`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// Required: the project it belongs to.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256)]
    project_id: Option<String>,
    /// Required: 1 to 128 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
    name: Option<String>,
    /// Required: `onnx`.
    #[schema(value_type = String, required = true)]
    format: Option<String>,
    /// Required: the input attributes, in the order the model's input
    /// tensor takes them.
    #[serde(default)]
    feature_columns: Vec<String>,
    /// Required: the ONNX file, standard base64.
    #[schema(value_type = String, required = true)]
    artifact_base64: Option<String>,
}

fn check_features(columns: &[String]) -> Result<(), ApiError> {
    if columns.is_empty() {
        return Err(ApiError::bad_field(
            "missing_field",
            "feature_columns",
            "feature_columns is required: the input attributes, in the model's order",
        ));
    }
    let config = TrainingConfig {
        feature_columns: columns.to_vec(),
        ..TrainingConfig::default()
    };
    config.check(ModelType::Onnx).map_err(|message| {
        ApiError::bad_field(
            "invalid_feature_columns",
            "feature_columns",
            message.replace("training_config.feature_columns", "feature_columns"),
        )
    })
}

/// `POST /api/ml-models/import`.
#[utoipa::path(
    post,
    path = "/api/ml-models/import",
    operation_id = "import_ml_model",
    tag = "ml models",
    request_body = ImportBody,
    responses(
        (status = 201, description = "Registered as `trained`, the import its version 1; Location names it", body = MlModel,
         headers(("location" = String, description = "The model's URL"))),
        (status = 400, description = "A value refused (format, features, an artifact that is not valid base64 or ONNX: `invalid_model`), naming the field; nothing is stored", body = ErrorBody),
        (status = 413, description = "The artifact is larger than ml.maxArtifactBytes", body = ErrorBody),
    )
)]
pub async fn import(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<Response, ApiError> {
    let project_id = body.project_id.unwrap_or_default();
    mimir_core::check_label("project_id", &project_id)?;
    let name = body.name.unwrap_or_default();
    check_model_name(&name).map_err(|m| ApiError::bad_field("invalid_name", "name", m))?;
    match body.format.as_deref() {
        Some("onnx") => {}
        other => {
            return Err(ApiError::bad_field(
                "invalid_format",
                "format",
                format!(
                    "format {:?} is not one this build imports: onnx",
                    other.unwrap_or_default()
                ),
            ));
        }
    }
    check_features(&body.feature_columns)?;
    let onnx = decode_artifact(
        body.artifact_base64.as_deref().unwrap_or_default(),
        "artifact_base64",
        state.max_artifact_bytes,
    )?;
    let features = body.feature_columns.clone();
    let artifact = tokio::task::spawn_blocking(move || mimir_ml::import_onnx(&onnx, &features))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| invalid_model("artifact_base64", &e))?;

    let now = Utc::now().trunc_subsecs(6);
    let id = Uuid::now_v7().to_string();
    let size_bytes = artifact.len() as u64;
    let checksum = state
        .artifacts
        .write(&id, artifact)
        .await
        .map_err(ApiError::internal)?;
    let model = MlModel {
        id: id.clone(),
        project_id,
        name,
        model_type: ModelType::Onnx,
        status: ModelStatus::Draft,
        status_reason: String::new(),
        training_config: TrainingConfig::default(),
        performance_metrics: PerformanceMetrics::default(),
        versions: Vec::new(),
        training_task_id: None,
        created_at: now,
        updated_at: now,
    };
    let version = ModelVersion {
        version: 1,
        checksum,
        size_bytes,
        artifact_store: "data".into(),
        feature_columns: body.feature_columns,
        label_column: String::new(),
        performance_metrics: PerformanceMetrics::default(),
        training_config: TrainingConfig::default(),
        training_task_id: None,
        training_duration_ms: None,
        created_at: now,
    };
    let stored = async {
        state.store.put_model(model, true).await?;
        state
            .store
            .change_model(
                &id,
                ModelChange::AddVersion {
                    version: Box::new(version),
                },
            )
            .await
    }
    .await;
    let model = match stored {
        Ok(model) => model,
        Err(error) => {
            // Nothing half-written: no draft without its version, no file
            // without a model.
            let _ = state.store.delete_model(&id).await;
            let _ = state.artifacts.remove_model(&id).await;
            return Err(model_store_error(error));
        }
    };
    tracing::info!(model_id = %id, project_id = %model.project_id, size_bytes, "ONNX model imported");
    let location = format!("/api/ml-models/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(model),
    )
        .into_response())
}
