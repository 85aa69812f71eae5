//! `POST /api/ml-models/{id}/infer`: an `ml_inference` task over records
//! from a storage config or sent inline, with predictions written to a
//! storage config's entity or kept in the task's result. The version is
//! fixed when the task is submitted, so a training that ends meanwhile does
//! not change what the task runs.

use super::input::{self, CheckedInput, ModelInput};
use super::train::{ml_task, priority};
use super::{load_model, pick_version, project_storage};
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::worktasks::submit_one;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mimir_core::{ModelStatus, WorkTask, WorkTaskType};
use serde::Deserialize;
use serde_json::{Map, json};
use utoipa::ToSchema;
use uuid::Uuid;

/// Defaults to 1000: records predicted per batch.
pub const DEFAULT_BATCH_SIZE: u64 = 1000;
/// The largest batch.
pub const MAX_BATCH_SIZE: u64 = 10_000;

/// Where predictions go: records `{input_id, prediction, confidence,
/// model_id, version}` of `entity_type` in a storage config.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferOutput {
    /// Required: a storage config of the model's project.
    #[schema(value_type = String, required = true)]
    storage_id: Option<String>,
    /// Required: the entity the predictions are stored as.
    #[schema(value_type = String, required = true)]
    entity_type: Option<String>,
}

/// Body of `POST /api/ml-models/{id}/infer`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferBody {
    /// The version to run; defaults to the latest.
    #[schema(minimum = 1)]
    version: Option<u32>,
    /// Required: `{"storage_id", "query"}` or `{"records": [...]}`.
    #[schema(required = true)]
    input: Option<ModelInput>,
    /// Where predictions are stored; without it they are in the task's
    /// result (inline input only).
    output: Option<InferOutput>,
    /// Records per batch, 1 to 10,000; defaults to 1000.
    #[schema(minimum = 1, maximum = 10_000)]
    batch_size: Option<u64>,
    /// 1..10; defaults to 1.
    #[schema(minimum = 1, maximum = 10)]
    priority: Option<i64>,
}

/// `POST /api/ml-models/{id}/infer`.
#[utoipa::path(
    post,
    path = "/api/ml-models/{id}/infer",
    operation_id = "infer_ml_model",
    tag = "ml models",
    params(("id" = String, Path, description = "The model's id")),
    request_body = InferBody,
    responses(
        (status = 201, description = "The ml_inference task, stored", body = WorkTask,
         headers(("location" = String, description = "The task's URL"))),
        (status = 400, description = "A value refused (input, output, a record without a feature), naming the field; nothing is stored", body = ErrorBody),
        (status = 404, description = "No such model, or no such version", body = ErrorBody),
        (status = 409, description = "The model has no version yet (`model_not_trained`), or is archived", body = ErrorBody),
    )
)]
pub async fn infer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<InferBody>,
) -> Result<Response, ApiError> {
    let model = load_model(&state, &id).await?;
    if model.status == ModelStatus::Archived {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "model_conflict",
            format!("model {id} is archived: it serves no inference"),
        ));
    }
    let version = pick_version(&model, body.version)?;
    let input = input::check(&state, &model, body.input, "input").await?;
    if let CheckedInput::Records(records) = &input {
        // A record without a feature would fail the task anyway: say which
        // one now, and store nothing.
        for (i, record) in records.iter().enumerate() {
            if let Some(missing) = version
                .feature_columns
                .iter()
                .find(|c| !record.contains_key(c.as_str()))
            {
                return Err(ApiError::bad_field(
                    "missing_feature",
                    format!("input.records[{i}]"),
                    format!(
                        "record {i} has no feature {missing:?}, which version {} of model {id} needs",
                        version.version
                    ),
                ));
            }
        }
    }
    let output = match body.output {
        None if matches!(input, CheckedInput::Storage { .. }) => {
            return Err(ApiError::bad_field(
                "missing_field",
                "output",
                "records read from a storage config need an output {storage_id, entity_type} for their predictions",
            ));
        }
        None => None,
        Some(output) => {
            let config = project_storage(
                &state,
                &model.project_id,
                output.storage_id.as_deref().unwrap_or_default(),
                "output.storage_id",
            )
            .await?;
            let entity = output.entity_type.unwrap_or_default();
            mimir_storage::Name::new(&entity, "output.entity_type").map_err(|e| {
                ApiError::bad_field("invalid_output", "output.entity_type", e.message)
            })?;
            Some(json!({"storage_id": config.id, "entity_type": entity}))
        }
    };
    let batch_size = body.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
        return Err(ApiError::bad_field(
            "invalid_value",
            "batch_size",
            format!("batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}"),
        ));
    }
    let priority = priority(body.priority)?;

    let mut parameters = Map::new();
    parameters.insert("version".into(), json!(version.version));
    parameters.insert("input".into(), input.to_parameter());
    if let Some(output) = output {
        parameters.insert("output".into(), output);
    }
    parameters.insert("batch_size".into(), json!(batch_size));
    let input_datasets = match &input {
        CheckedInput::Storage { config, .. } => vec![config.id.clone()],
        CheckedInput::Records(_) => Vec::new(),
    };
    let task_id = Uuid::now_v7();
    let task = ml_task(
        task_id,
        WorkTaskType::MlInference,
        &model,
        priority,
        parameters,
        input_datasets,
    );
    let task = submit_one(&state, &headers, "/api/ml-models/{id}/infer", task).await?;
    tracing::info!(model_id = %id, version = version.version, worktask_id = %task_id, "inference submitted");
    let location = format!("/api/worktasks/{task_id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(task),
    )
        .into_response())
}
