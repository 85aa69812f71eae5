//! `GET /api/workers/{worker_id}/storage-configs?project_id=`: a project's
//! storage configs with their credentials, for workers.
//!
//! This is how credentials reach the process that runs a connector by a
//! channel steps cannot read: a pipeline step names only a `storage_id`, so
//! the task JSON, the pipeline context and the step's parameters and
//! results never carry a secret; the worker fetches the config here, under
//! the worker token, and keeps it to itself. Only a currently registered
//! worker gets an answer.

use super::configs::{ConfigList, config_store_error};
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiQuery;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;

/// Query of the worker's `storage-configs`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkerConfigQuery {
    /// Required: the project whose configs the worker's task uses.
    #[param(value_type = String, required = true)]
    project_id: Option<String>,
}

/// `GET /api/workers/{worker_id}/storage-configs?project_id=`: the
/// project's configs, credentials included (inactive ones too, so the
/// worker can say why it refuses them).
#[utoipa::path(
    get,
    path = "/api/workers/{worker_id}/storage-configs",
    operation_id = "worker_storage_configs",
    tag = "worker protocol",
    params(
        ("worker_id" = String, Path, description = "The id the worker registered under"),
        WorkerConfigQuery,
    ),
    responses(
        (status = 200, description = "The project's configs, oldest first, credentials included", body = ConfigList),
        (status = 400, description = "A parameter refused", body = ErrorBody),
        (status = 404, description = "The worker is not registered", body = ErrorBody),
    )
)]
pub async fn configs(
    State(state): State<AppState>,
    Path(worker_id): Path<String>,
    ApiQuery(q): ApiQuery<WorkerConfigQuery>,
) -> Result<Json<ConfigList>, ApiError> {
    crate::api::workers::known(&state, &worker_id, true)?;
    let project_id = q.project_id.unwrap_or_default();
    mimir_core::check_label("project_id", &project_id)?;
    let configs = state
        .store
        .list_storage_configs(Some(project_id.clone()))
        .await
        .map_err(config_store_error)?;
    tracing::info!(worker_id = %worker_id, project_id = %project_id, configs = configs.len(), "storage configs sent to a worker");
    Ok(Json(ConfigList { configs }))
}
