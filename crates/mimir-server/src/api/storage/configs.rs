//! `/api/storage/configs`: a project's storage configs. Every answer is
//! [`StorageConfig::redacted`]; a config is checked by its backend
//! ([`mimir_storage::backends::check`]) before it is stored, so mistakes are
//! refused at once rather than at the first operation.

use super::errors::config_field;
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SubsecRound, Utc};
use mimir_core::{ConnectionSettings, PluginType, StorageConfig};
use mimir_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Store errors of the config routes.
pub(super) fn config_store_error(error: StoreError) -> ApiError {
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

/// The stored config `id` (credentials included: never answer it as is);
/// `field` names where the id came from, for the errors.
pub(super) async fn load(
    state: &AppState,
    id: &str,
    field: &str,
) -> Result<StorageConfig, ApiError> {
    mimir_core::check_label(field, id)?;
    let config = state
        .store
        .get_storage_config(id)
        .await
        .map_err(config_store_error)?;
    config.ok_or_else(|| {
        ApiError::not_found(format!("storage config {id} not found")).with_field(field)
    })
}

/// A plugin type by name, refused naming the ones there are.
fn plugin_type(name: Option<&str>) -> Result<PluginType, ApiError> {
    let name = name.unwrap_or_default();
    PluginType::parse(name).ok_or_else(|| {
        let known: Vec<&str> = PluginType::ALL.iter().map(|p| p.as_str()).collect();
        ApiError::bad_field(
            if name.is_empty() {
                "missing_field"
            } else {
                "invalid_plugin_type"
            },
            "plugin_type",
            format!("plugin_type {name:?} is not one of {}", known.join(", ")),
        )
    })
}

/// Checks settings by their backend, without connecting.
fn check_settings(plugin: PluginType, settings: &ConnectionSettings) -> Result<(), ApiError> {
    for (name, value) in &settings.credentials {
        if !matches!(value, Value::String(_) | Value::Null) {
            return Err(ApiError::bad_field(
                "invalid_storage_config",
                format!("config.credentials.{name}"),
                format!(
                    "credentials.{name} must be a string (or a ${{env:NAME}} / ${{file:PATH}} reference)"
                ),
            ));
        }
    }
    mimir_storage::backends::check(plugin, settings).map_err(|e| {
        ApiError::bad_field(
            "invalid_storage_config",
            config_field(&e.message),
            format!("{plugin} config refused: {}", e.message),
        )
    })
}

/// Body of `POST /api/storage/configs`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConfigBody {
    /// Required: the project it belongs to (registered, or used by a task,
    /// pipeline or storage config).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256, pattern = r"^[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    project_id: Option<String>,
    /// Required: the backend.
    #[schema(value_type = PluginType, required = true)]
    plugin_type: Option<String>,
    /// How to reach it: `options.base_path` for `filesystem`, a
    /// `connection_string` URL for `postgresql`, `mysql` and `redis`,
    /// `options.bucket` and `credentials` for `s3`.
    #[serde(default)]
    config: ConnectionSettings,
    /// Whether operations may use it; defaults to true.
    #[serde(default)]
    active: Option<bool>,
}

/// `POST /api/storage/configs`: checked by its backend, then stored.
#[utoipa::path(
    post,
    path = "/api/storage/configs",
    operation_id = "create_storage_config",
    tag = "storage",
    request_body = CreateConfigBody,
    responses(
        (status = 201, description = "Created (credentials redacted); Location names it", body = StorageConfig,
         headers(("location" = String, description = "The config's URL"))),
        (status = 400, description = "A value refused (plugin type, option), naming the field", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateConfigBody>,
) -> Result<Response, ApiError> {
    let project_id = body.project_id.unwrap_or_default();
    mimir_core::check_label("project_id", &project_id)?;
    let plugin = plugin_type(body.plugin_type.as_deref())?;
    check_settings(plugin, &body.config)?;
    // A project id need not be registered, as for tasks and pipelines: the
    // config is what makes the project appear in GET /api/projects.
    let now = Utc::now().trunc_subsecs(6);
    let config = StorageConfig {
        id: Uuid::now_v7().to_string(),
        project_id,
        plugin_type: plugin,
        config: body.config,
        active: body.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    let config = state
        .store
        .put_storage_config(config, true)
        .await
        .map_err(config_store_error)?;
    tracing::info!(storage_id = %config.id, project_id = %config.project_id, backend = %config.plugin_type, "storage config created");
    let location = format!("/api/storage/configs/{}", config.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(config.redacted()),
    )
        .into_response())
}

/// Query of `GET /api/storage/configs`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConfigQuery {
    /// Only the configs of this project; absent or empty for all.
    project_id: Option<String>,
}

/// The answer of `GET /api/storage/configs` (and of the worker protocol's
/// `storage-configs`, unredacted there).
#[derive(Serialize, ToSchema)]
pub struct ConfigList {
    /// Oldest first.
    pub(super) configs: Vec<StorageConfig>,
}

/// `GET /api/storage/configs?project_id=`: credentials redacted.
#[utoipa::path(
    get,
    path = "/api/storage/configs",
    operation_id = "list_storage_configs",
    tag = "storage",
    params(ConfigQuery),
    responses(
        (status = 200, description = "The configs, oldest first, credentials redacted", body = ConfigList),
        (status = 400, description = "A parameter refused", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> Result<Json<ConfigList>, ApiError> {
    let project = q.project_id.filter(|p| !p.is_empty());
    if let Some(project) = &project {
        mimir_core::check_label("project_id", project)?;
    }
    let configs = state
        .store
        .list_storage_configs(project)
        .await
        .map_err(config_store_error)?;
    Ok(Json(ConfigList {
        configs: configs.iter().map(StorageConfig::redacted).collect(),
    }))
}

/// `GET /api/storage/configs/{id}`: credentials redacted.
#[utoipa::path(
    get,
    path = "/api/storage/configs/{id}",
    operation_id = "get_storage_config",
    tag = "storage",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 200, description = "The config, credentials redacted", body = StorageConfig),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such config", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StorageConfig>, ApiError> {
    Ok(Json(load(&state, &id, "id").await?.redacted()))
}

/// Body of `PUT /api/storage/configs/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfigBody {
    /// The new settings. A credential left out or sent back as
    /// `[redacted]` keeps its stored value (so a config read with `GET`
    /// can be changed and sent back); one set to null is removed. Absent:
    /// the settings are kept.
    #[serde(default)]
    config: Option<ConnectionSettings>,
    /// Whether operations may use it; absent: unchanged.
    #[serde(default)]
    active: Option<bool>,
}

/// `PUT /api/storage/configs/{id}`: changes the settings or the active flag;
/// connectors open for the old settings close after their operations.
#[utoipa::path(
    put,
    path = "/api/storage/configs/{id}",
    operation_id = "update_storage_config",
    tag = "storage",
    params(("id" = String, Path, description = "Its id")),
    request_body = UpdateConfigBody,
    responses(
        (status = 200, description = "Changed (credentials redacted)", body = StorageConfig),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
        (status = 404, description = "No such config", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateConfigBody>,
) -> Result<Json<StorageConfig>, ApiError> {
    let stored = load(&state, &id, "id").await?;
    let mut changed = stored.clone();
    if let Some(settings) = body.config {
        changed.config = stored.keep_secrets(settings);
        check_settings(changed.plugin_type, &changed.config)?;
    }
    if let Some(active) = body.active {
        changed.active = active;
    }
    // Strictly later, so connectors opened for the old version are replaced.
    let now = Utc::now().trunc_subsecs(6);
    changed.updated_at = now.max(stored.updated_at + chrono::Duration::microseconds(1));
    let changed = state
        .store
        .put_storage_config(changed, false)
        .await
        .map_err(config_store_error)?;
    state.storage.forget(&id);
    if !changed.active {
        crate::telemetry::storage_up::forget(&state.metrics, &changed);
    }
    tracing::info!(storage_id = %id, backend = %changed.plugin_type, active = changed.active, "storage config updated");
    Ok(Json(changed.redacted()))
}

/// The pipelines of `config`'s project whose steps name it as their
/// `storage_id`, by name.
async fn users_of(state: &AppState, config: &StorageConfig) -> Result<Vec<String>, ApiError> {
    let pipelines = state
        .store
        .list_pipelines(Some(config.project_id.clone()))
        .await
        .map_err(config_store_error)?;
    Ok(pipelines
        .into_iter()
        .filter(|p| p.steps.iter().any(|step| names_storage(step, &config.id)))
        .map(|p| format!("{} ({})", p.name, p.id))
        .collect())
}

/// Whether `value` holds a `storage_id` equal to `id` anywhere inside it
/// (parameters, nested step lists, lists of inputs).
fn names_storage(value: &Value, id: &str) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "storage_id" && value.as_str() == Some(id)) || names_storage(value, id)
        }),
        Value::Array(items) => items.iter().any(|v| names_storage(v, id)),
        _ => false,
    }
}

/// `DELETE /api/storage/configs/{id}`: refused while a pipeline of its
/// project uses it. The data in the backend stays.
#[utoipa::path(
    delete,
    path = "/api/storage/configs/{id}",
    operation_id = "delete_storage_config",
    tag = "storage",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such config", body = ErrorBody),
        (status = 409, description = "A pipeline uses it; the message names the pipeline", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let config = load(&state, &id, "id").await?;
    let users = users_of(&state, &config).await?;
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "storage_in_use",
            format!(
                "storage config {id} is used by pipeline {}: change or delete {} first",
                users.join(", "),
                if users.len() == 1 { "it" } else { "them" }
            ),
        ));
    }
    state
        .store
        .delete_storage_config(&id)
        .await
        .map_err(config_store_error)?;
    state.storage.forget(&id);
    crate::telemetry::storage_up::forget(&state.metrics, &config);
    tracing::info!(storage_id = %id, backend = %config.plugin_type, "storage config deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_storage_id_is_found_at_any_depth() {
        let step = json!({"name": "s", "plugin": "storage", "action": "store",
            "parameters": {"storage_id": "abc", "cir_data": "$.load"}});
        assert!(names_storage(&step, "abc"));
        assert!(!names_storage(&step, "abd"));
        let nested = json!({"name": "each", "parameters": {"steps": [
            {"name": "inner", "parameters": {"input": {"storage_id": "abc"}}}
        ]}});
        assert!(names_storage(&nested, "abc"));
        let other_key = json!({"parameters": {"message": "abc", "id": "abc"}});
        assert!(!names_storage(&other_key, "abc"));
    }
}
