//! `POST /api/ml-models/train`: an `ml_training` task for a model. Every
//! check runs before anything is stored; then the model's status moves to
//! `training` (refused if another training won the race) and the task is
//! submitted the way `POST /api/worktasks` submits one, so its metrics,
//! events and trace are those of any task.

use super::input::check_query;
use super::models::config_error;
use super::{load_model, model_store_error, project_storage};
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::worktasks::submit_one;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mimir_core::submission::NewTask;
use mimir_core::{
    DataAccess, MlModel, ModelChange, ModelStatus, Priority, TaskSpec, TrainingConfig, WorkTask,
    WorkTaskType,
};
use mimir_storage::QueryRequest;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

/// Defaults to 1,000,000: records one training reads at most.
pub const DEFAULT_MAX_RECORDS: u64 = 1_000_000;
/// The most `max_records` may ask for.
pub const MAX_RECORDS_LIMIT: u64 = 100_000_000;
/// Most storage configs one training reads.
pub const MAX_INPUT_DATASETS: usize = 16;

/// Body of `POST /api/ml-models/train`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainBody {
    /// Required: the model to train.
    #[schema(value_type = String, required = true)]
    model_id: Option<String>,
    /// Required: 1 to 16 storage configs of the model's project to read the
    /// dataset from.
    #[serde(default)]
    input_datasets: Vec<String>,
    /// A CIRQuery `{entity_type, filters, order_by}` choosing the records
    /// (no limit: see `max_records`).
    #[schema(value_type = Object)]
    query: Option<QueryRequest>,
    /// Overrides of the model's training config for this run.
    training_config: Option<TrainingConfig>,
    /// 1..10; defaults to 1.
    #[schema(minimum = 1, maximum = 10)]
    priority: Option<i64>,
    /// Most records read; defaults to 1,000,000.
    #[schema(minimum = 1, maximum = 100_000_000)]
    max_records: Option<u64>,
}

/// Refuses a training the model's status does not allow, before anything
/// is stored (the store decides again, atomically, when it starts).
pub(super) fn check_trainable(model: &MlModel) -> Result<(), ApiError> {
    let refused = |reason: String| ApiError::new(StatusCode::CONFLICT, "model_conflict", reason);
    if !model.model_type.trainable() {
        return Err(refused(format!(
            "model {} is an imported {} model: it cannot be trained here",
            model.id, model.model_type
        )));
    }
    match model.status {
        ModelStatus::Training => Err(refused(format!(
            "model {} is already training (task {})",
            model.id,
            model
                .training_task_id
                .map(|t| t.to_string())
                .unwrap_or_default()
        ))),
        ModelStatus::Archived => Err(refused(format!(
            "model {} is archived: it cannot be trained",
            model.id
        ))),
        _ => Ok(()),
    }
}

/// A priority as tasks take it.
pub(super) fn priority(value: Option<i64>) -> Result<Priority, ApiError> {
    match value {
        None => Ok(Priority::default()),
        Some(v) => Priority::new(v).ok_or_else(|| {
            ApiError::bad_field(
                "invalid_priority",
                "priority",
                format!("priority must be between 1 and 10, got {v}"),
            )
        }),
    }
}

/// The task of an ML request: the type's resources and retries, no
/// pipeline.
pub(super) fn ml_task(
    id: Uuid,
    task_type: WorkTaskType,
    model: &MlModel,
    priority: Priority,
    parameters: Map<String, Value>,
    input_datasets: Vec<String>,
) -> WorkTask {
    let new = NewTask {
        task_type,
        priority,
        project_id: model.project_id.clone(),
        task_spec: TaskSpec {
            model_id: model.id.clone(),
            project_id: model.project_id.clone(),
            parameters,
            ..TaskSpec::default()
        },
        resource_requirements: task_type.default_resources(),
        data_access: DataAccess {
            input_datasets,
            ..DataAccess::default()
        },
        max_retries: task_type.default_max_retries(),
    };
    WorkTask::new(id, Utc::now(), new)
}

/// `POST /api/ml-models/train`.
#[utoipa::path(
    post,
    path = "/api/ml-models/train",
    operation_id = "train_ml_model",
    tag = "ml models",
    request_body = TrainBody,
    responses(
        (status = 201, description = "The ml_training task, stored; the model is now `training`", body = WorkTask,
         headers(("location" = String, description = "The task's URL"))),
        (status = 400, description = "A value refused (a storage config, the query, the effective training config), naming the field; nothing is stored", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "The model is training, archived or imported; nothing is stored", body = ErrorBody),
    )
)]
pub async fn train(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TrainBody>,
) -> Result<Response, ApiError> {
    let model_id = body.model_id.unwrap_or_default();
    if model_id.is_empty() {
        return Err(ApiError::bad_field(
            "missing_field",
            "model_id",
            "model_id is required: the model to train",
        ));
    }
    mimir_core::check_label("model_id", &model_id)?;
    let model = load_model(&state, &model_id).await?;
    check_trainable(&model)?;
    if body.input_datasets.is_empty() || body.input_datasets.len() > MAX_INPUT_DATASETS {
        return Err(ApiError::bad_field(
            "invalid_input_datasets",
            "input_datasets",
            format!(
                "input_datasets names 1 to {MAX_INPUT_DATASETS} storage configs of project {}",
                model.project_id
            ),
        ));
    }
    for id in &body.input_datasets {
        project_storage(&state, &model.project_id, id, "input_datasets").await?;
    }
    if let Some(query) = &body.query {
        check_query(query, "query")?;
    }
    let overrides = body.training_config.unwrap_or_default();
    let effective = model.training_config.merged(&overrides);
    effective
        .check(model.model_type)
        .map_err(|message| config_error(&message))?;
    let priority = priority(body.priority)?;
    let max_records = body.max_records.unwrap_or(DEFAULT_MAX_RECORDS);
    if !(1..=MAX_RECORDS_LIMIT).contains(&max_records) {
        return Err(ApiError::bad_field(
            "invalid_value",
            "max_records",
            format!("max_records must be between 1 and {MAX_RECORDS_LIMIT}, got {max_records}"),
        ));
    }

    let mut parameters = Map::new();
    parameters.insert("training_config".into(), json!(effective));
    if let Some(query) = &body.query {
        parameters.insert("query".into(), json!(query));
    }
    parameters.insert("max_records".into(), json!(max_records));
    let task_id = Uuid::now_v7();
    let task = ml_task(
        task_id,
        WorkTaskType::MlTraining,
        &model,
        priority,
        parameters,
        body.input_datasets,
    );
    let previous = model.status;
    state
        .store
        .change_model(&model.id, ModelChange::StartTraining { task_id })
        .await
        .map_err(model_store_error)?;
    let task = match submit_one(&state, &headers, "/api/ml-models/train", task).await {
        Ok(task) => task,
        Err(error) => {
            // Back to where it was, so the model is not left training a
            // task that does not exist.
            if let Err(undo) = state
                .store
                .change_model(
                    &model.id,
                    ModelChange::AbandonTraining { task_id, previous },
                )
                .await
            {
                tracing::error!(model_id = %model.id, worktask_id = %task_id, error = %undo, "cannot undo a training start whose task was not stored");
            }
            return Err(error);
        }
    };
    tracing::info!(model_id = %model.id, worktask_id = %task_id, model_type = %model.model_type, "training submitted");
    let location = format!("/api/worktasks/{task_id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(task),
    )
        .into_response())
}
