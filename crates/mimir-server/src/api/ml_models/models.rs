//! `/api/ml-models` and `/api/ml-models/{id}`: register, list, read, change
//! and delete models. A model is created as a `draft`; its status changes
//! only through training, import and quality checks ([`MlModel::apply`]).

use super::{load_model, model_store_error};
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SubsecRound, Utc};
use mimir_core::{
    MlModel, ModelStatus, ModelType, PerformanceMetrics, TrainingConfig, check_model_name,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A model type by name, refused naming the trainable ones.
fn model_type(name: Option<&str>) -> Result<ModelType, ApiError> {
    let name = name.unwrap_or_default();
    let trainable: Vec<&str> = ModelType::ALL
        .iter()
        .filter(|t| t.trainable())
        .map(|t| t.as_str())
        .collect();
    match ModelType::parse(name) {
        Some(ModelType::Onnx) => Err(ApiError::bad_field(
            "invalid_model_type",
            "type",
            "an onnx model is registered by importing it: POST /api/ml-models/import",
        )),
        Some(t) => Ok(t),
        None => Err(ApiError::bad_field(
            if name.is_empty() {
                "missing_field"
            } else {
                "invalid_model_type"
            },
            "type",
            format!("type {name:?} is not one of {}", trainable.join(", ")),
        )),
    }
}

/// Checks a model's stored training config: every field but the label,
/// which a training request may still bring.
pub(super) fn check_stored_config(config: &TrainingConfig) -> Result<(), ApiError> {
    // Checked as for a type without a label: the label's presence is
    // checked on the effective config when training starts.
    config
        .check(ModelType::Kmeans)
        .map_err(|message| config_error(&message))
}

/// 400 naming the `training_config.…` field a config check names.
pub(super) fn config_error(message: &str) -> ApiError {
    let field: String = message
        .split_whitespace()
        .next()
        .unwrap_or("training_config")
        .trim_end_matches(':')
        .to_string();
    let field = if field.starts_with("training_config") {
        field
    } else {
        "training_config".into()
    };
    ApiError::bad_field("invalid_training_config", field, message)
}

fn name(name: Option<String>) -> Result<String, ApiError> {
    let name = name.unwrap_or_default();
    check_model_name(&name).map_err(|message| {
        ApiError::bad_field(
            if name.is_empty() {
                "missing_field"
            } else {
                "invalid_name"
            },
            "name",
            message,
        )
    })?;
    Ok(name)
}

/// Body of `POST /api/ml-models`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModelBody {
    /// Required: the project it belongs to.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256, pattern = r"^[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    project_id: Option<String>,
    /// Required: 1 to 128 characters, no control characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128)]
    name: Option<String>,
    /// Required: a trainable type (`onnx` models are imported).
    #[serde(rename = "type")]
    #[schema(value_type = ModelType, required = true)]
    model_type: Option<String>,
    /// How to train it; a training request may override any field.
    #[serde(default)]
    training_config: TrainingConfig,
}

/// `POST /api/ml-models`: a `draft` model.
#[utoipa::path(
    post,
    path = "/api/ml-models",
    operation_id = "create_ml_model",
    tag = "ml models",
    request_body = CreateModelBody,
    responses(
        (status = 201, description = "Created as a draft; Location names it", body = MlModel,
         headers(("location" = String, description = "The model's URL"))),
        (status = 400, description = "A value refused (type, name, training config), naming the field", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateModelBody>,
) -> Result<Response, ApiError> {
    let project_id = body.project_id.unwrap_or_default();
    mimir_core::check_label("project_id", &project_id)?;
    let name = name(body.name)?;
    let model_type = model_type(body.model_type.as_deref())?;
    check_stored_config(&body.training_config)?;
    let now = Utc::now().trunc_subsecs(6);
    let model = MlModel {
        id: Uuid::now_v7().to_string(),
        project_id,
        name,
        model_type,
        status: ModelStatus::Draft,
        status_reason: String::new(),
        training_config: body.training_config,
        performance_metrics: PerformanceMetrics::default(),
        versions: Vec::new(),
        training_task_id: None,
        created_at: now,
        updated_at: now,
    };
    let model = state
        .store
        .put_model(model, true)
        .await
        .map_err(model_store_error)?;
    tracing::info!(model_id = %model.id, project_id = %model.project_id, model_type = %model.model_type, "model created");
    let location = format!("/api/ml-models/{}", model.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(model),
    )
        .into_response())
}

/// Query of `GET /api/ml-models`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ModelQuery {
    /// Only the models of this project; absent or empty for all.
    project_id: Option<String>,
}

/// The answer of `GET /api/ml-models`.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    /// Oldest first, each with its versions.
    models: Vec<MlModel>,
}

/// `GET /api/ml-models?project_id=`.
#[utoipa::path(
    get,
    path = "/api/ml-models",
    operation_id = "list_ml_models",
    tag = "ml models",
    params(ModelQuery),
    responses(
        (status = 200, description = "The models, oldest first", body = ModelList),
        (status = 400, description = "A parameter refused", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ModelQuery>,
) -> Result<Json<ModelList>, ApiError> {
    let project = q.project_id.filter(|p| !p.is_empty());
    if let Some(project) = &project {
        mimir_core::check_label("project_id", project)?;
    }
    let models = state
        .store
        .list_models(project)
        .await
        .map_err(model_store_error)?;
    Ok(Json(ModelList { models }))
}

/// `GET /api/ml-models/{id}`.
#[utoipa::path(
    get,
    path = "/api/ml-models/{id}",
    operation_id = "get_ml_model",
    tag = "ml models",
    params(("id" = String, Path, description = "The model's id")),
    responses(
        (status = 200, description = "The model with its versions", body = MlModel),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MlModel>, ApiError> {
    Ok(Json(load_model(&state, &id).await?))
}

/// Body of `PUT /api/ml-models/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateModelBody {
    /// A new name; absent: unchanged.
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
    /// A new training config (replacing the old one whole); absent: unchanged.
    training_config: Option<TrainingConfig>,
}

fn training(model: &MlModel, doing: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "model_conflict",
        format!(
            "model {} is training (task {}): {doing} once it ends, or cancel the task",
            model.id,
            model
                .training_task_id
                .map(|t| t.to_string())
                .unwrap_or_default()
        ),
    )
}

/// `PUT /api/ml-models/{id}`: changes the name or the training config.
#[utoipa::path(
    put,
    path = "/api/ml-models/{id}",
    operation_id = "update_ml_model",
    tag = "ml models",
    params(("id" = String, Path, description = "The model's id")),
    request_body = UpdateModelBody,
    responses(
        (status = 200, description = "Changed", body = MlModel),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "The model is training", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateModelBody>,
) -> Result<Json<MlModel>, ApiError> {
    let stored = load_model(&state, &id).await?;
    let mut changed = stored.clone();
    if let Some(new_name) = body.name {
        changed.name = name(Some(new_name))?;
    }
    if let Some(config) = body.training_config {
        check_stored_config(&config)?;
        changed.training_config = config;
    }
    if stored.status == ModelStatus::Training {
        return Err(training(&stored, "change it"));
    }
    changed.updated_at = Utc::now()
        .trunc_subsecs(6)
        .max(stored.updated_at + chrono::Duration::microseconds(1));
    let changed = state
        .store
        .put_model(changed, false)
        .await
        .map_err(model_store_error)?;
    tracing::info!(model_id = %id, "model updated");
    Ok(Json(changed))
}

/// `DELETE /api/ml-models/{id}`: the model, its versions and their
/// artifacts; refused while it trains.
#[utoipa::path(
    delete,
    path = "/api/ml-models/{id}",
    operation_id = "delete_ml_model",
    tag = "ml models",
    params(("id" = String, Path, description = "The model's id")),
    responses(
        (status = 204, description = "Deleted, artifacts included"),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "The model is training", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let model = load_model(&state, &id).await?;
    if model.status == ModelStatus::Training {
        return Err(training(&model, "delete it"));
    }
    state
        .store
        .delete_model(&id)
        .await
        .map_err(model_store_error)?;
    // After the record: a failure here leaves files no version names, which
    // the next delete of the id (or an operator) removes, never a version
    // whose artifact is gone.
    if let Err(error) = state.artifacts.remove_model(&id).await {
        tracing::error!(model_id = %id, %error, "model deleted but its artifacts were not removed");
    }
    tracing::info!(model_id = %id, "model deleted");
    Ok(StatusCode::NO_CONTENT)
}
