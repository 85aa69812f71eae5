//! `/api/storage/{store,retrieve,update,delete,schema,health,metadata}`:
//! operations through a config's connector ([`mimir_storage::Storage`],
//! which checks names and queries, bounds time and retries transient
//! failures). Each is logged once with its storage id, backend, records and
//! duration, never a credential.

use super::configs::load;
use super::errors::storage_error;
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mimir_core::{PluginType, StorageConfig};
use mimir_storage::{EntitySchema, QueryRequest, Record, Storage, StorageError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::{IntoParams, ToSchema};

/// The longest a health check waits, whatever the config's `timeout_ms`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of a store, update, delete or schema creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageResult {
    /// True: failures are error answers instead.
    success: bool,
    /// Records stored, updated or deleted; entity types created.
    affected_items: u64,
    /// Always null here (errors are answered with an error status and body).
    error: Option<String>,
}

impl StorageResult {
    fn done(affected_items: u64) -> StorageResult {
        StorageResult {
            success: true,
            affected_items,
            error: None,
        }
    }
}

/// The config named by a request, checked to be usable: it exists, belongs
/// to `project_id` when one is given, and is active.
async fn usable(
    state: &AppState,
    project_id: Option<&str>,
    storage_id: Option<&str>,
    field: &str,
) -> Result<StorageConfig, ApiError> {
    let Some(storage_id) = storage_id.filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_field(
            "missing_field",
            field,
            format!("{field} is required: the id of a storage config"),
        ));
    };
    let config = load(state, storage_id, field).await?;
    if let Some(project_id) = project_id.filter(|p| !p.is_empty())
        && project_id != config.project_id
    {
        return Err(ApiError::bad_field(
            "wrong_project",
            "project_id",
            format!("storage config {storage_id} does not belong to project {project_id}"),
        ));
    }
    if !config.active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "storage_inactive",
            format!(
                "storage config {storage_id} ({}) is inactive: activate it with PUT /api/storage/configs/{storage_id} and {{\"active\": true}}",
                config.plugin_type
            ),
        ));
    }
    Ok(config)
}

/// The open connector of `config`.
async fn open(state: &AppState, config: &StorageConfig) -> Result<Arc<Storage>, ApiError> {
    state
        .storage
        .get(config)
        .await
        .map_err(|e| storage_error(e, "storage_id"))
}

/// Logs one operation and turns its error into an answer.
fn finish<T>(
    operation: &'static str,
    config: &StorageConfig,
    started: Instant,
    result: Result<T, StorageError>,
    records: impl Fn(&T) -> u64,
    field: &str,
) -> Result<T, ApiError> {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(value) => tracing::info!(
            storage_id = %config.id,
            backend = %config.plugin_type,
            operation,
            records = records(value),
            duration_ms,
            "storage operation"
        ),
        Err(error) => tracing::warn!(
            storage_id = %config.id,
            backend = %config.plugin_type,
            operation,
            records = 0,
            duration_ms,
            error.kind = error.kind.as_str(),
            error = %error,
            "storage operation failed"
        ),
    }
    result.map_err(|e| {
        let field = if field == "query" && e.message.contains("updates") {
            "updates"
        } else {
            field
        };
        storage_error(e, field)
    })
}

/// Body of `POST /api/storage/store`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreBody {
    /// The project; when given it must be the config's.
    project_id: Option<String>,
    /// Required: the storage config.
    #[schema(value_type = String, required = true)]
    storage_id: Option<String>,
    /// Required: a CIR document `{version: "1.0", source: {parameters:
    /// {entity_type}}, data}`; an array `data` stores one record per element,
    /// all or none.
    #[schema(value_type = Object, required = true)]
    cir_data: Option<Value>,
}

/// `POST /api/storage/store`: stores a CIR document's records.
#[utoipa::path(
    post,
    path = "/api/storage/store",
    operation_id = "storage_store",
    tag = "storage",
    request_body = StoreBody,
    responses(
        (status = 200, description = "Stored; affected_items is the number of records", body = StorageResult),
        (status = 400, description = "A value refused (a name, a record), naming the field; nothing is stored", body = ErrorBody),
        (status = 404, description = "No such storage config", body = ErrorBody),
        (status = 409, description = "The config is inactive", body = ErrorBody),
        (status = 502, description = "The backend refused the operation", body = ErrorBody),
        (status = 503, description = "The backend cannot be reached (or the orchestrator is shutting down)", body = ErrorBody),
        (status = 504, description = "The backend did not answer within the config's timeout", body = ErrorBody),
    )
)]
pub async fn store(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StoreBody>,
) -> Result<Json<StorageResult>, ApiError> {
    let config = usable(
        &state,
        body.project_id.as_deref(),
        body.storage_id.as_deref(),
        "storage_id",
    )
    .await?;
    let Some(document) = body.cir_data else {
        return Err(ApiError::bad_field(
            "missing_field",
            "cir_data",
            "cir_data is required: a CIR document",
        ));
    };
    let storage = open(&state, &config).await?;
    let started = Instant::now();
    let result = storage.store_document(document).await;
    let stored = finish("store", &config, started, result, |n| *n, "cir_data")?;
    Ok(Json(StorageResult::done(stored)))
}

/// Body of `POST /api/storage/retrieve`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrieveBody {
    /// The project; when given it must be the config's.
    project_id: Option<String>,
    /// Required: the storage config.
    #[schema(value_type = String, required = true)]
    storage_id: Option<String>,
    /// A CIRQuery `{entity_type, filters: [{attribute, operator, value}],
    /// order_by: [{attribute, direction}], limit, offset}`; operators `eq
    /// neq gt gte lt lte in like`; `limit` defaults to 1000, at most 10,000.
    #[serde(default)]
    #[schema(value_type = Object)]
    query: QueryRequest,
}

/// `POST /api/storage/retrieve`: one page of records, one CIR document each.
#[utoipa::path(
    post,
    path = "/api/storage/retrieve",
    operation_id = "storage_retrieve",
    tag = "storage",
    request_body = RetrieveBody,
    responses(
        (status = 200, description = "The records, one CIR document each (`data` the record), at most the query's limit", body = [Object]),
        (status = 400, description = "The query refused, naming the field", body = ErrorBody),
        (status = 404, description = "No such storage config", body = ErrorBody),
        (status = 409, description = "The config is inactive", body = ErrorBody),
        (status = 502, description = "The backend refused the operation", body = ErrorBody),
        (status = 503, description = "The backend cannot be reached (or the orchestrator is shutting down)", body = ErrorBody),
        (status = 504, description = "The backend did not answer within the config's timeout", body = ErrorBody),
    )
)]
pub async fn retrieve(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RetrieveBody>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let config = usable(
        &state,
        body.project_id.as_deref(),
        body.storage_id.as_deref(),
        "storage_id",
    )
    .await?;
    let storage = open(&state, &config).await?;
    let started = Instant::now();
    let result = storage.retrieve_documents(&body.query).await;
    let documents = finish(
        "retrieve",
        &config,
        started,
        result,
        |d| d.len() as u64,
        "query",
    )?;
    Ok(Json(documents))
}

/// Body of `POST /api/storage/update`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// The project; when given it must be the config's.
    project_id: Option<String>,
    /// Required: the storage config.
    #[schema(value_type = String, required = true)]
    storage_id: Option<String>,
    /// Which records: `{entity_type, filters}` (no order, limit or offset).
    #[serde(default)]
    #[schema(value_type = Object)]
    query: QueryRequest,
    /// Required: attribute to value (null clears).
    #[schema(value_type = Object, required = true)]
    updates: Option<Record>,
    /// Must be true to update every record when `query` has no filters.
    #[serde(default)]
    all: bool,
}

/// `POST /api/storage/update`: sets attributes on the records a query
/// chooses; no filter is refused unless `all` is true.
#[utoipa::path(
    post,
    path = "/api/storage/update",
    operation_id = "storage_update",
    tag = "storage",
    request_body = UpdateBody,
    responses(
        (status = 200, description = "Updated; affected_items is the number of records changed", body = StorageResult),
        (status = 400, description = "A value refused (or no filters without \"all\": true), naming the field", body = ErrorBody),
        (status = 404, description = "No such storage config", body = ErrorBody),
        (status = 409, description = "The config is inactive", body = ErrorBody),
        (status = 502, description = "The backend refused the operation", body = ErrorBody),
        (status = 503, description = "The backend cannot be reached (or the orchestrator is shutting down)", body = ErrorBody),
        (status = 504, description = "The backend did not answer within the config's timeout", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<StorageResult>, ApiError> {
    let config = usable(
        &state,
        body.project_id.as_deref(),
        body.storage_id.as_deref(),
        "storage_id",
    )
    .await?;
    let Some(updates) = body.updates else {
        return Err(ApiError::bad_field(
            "missing_field",
            "updates",
            "updates is required: the attributes to set",
        ));
    };
    let storage = open(&state, &config).await?;
    let started = Instant::now();
    let result = storage.update(&body.query, &updates, body.all).await;
    let updated = finish("update", &config, started, result, |n| *n, "query")?;
    Ok(Json(StorageResult::done(updated)))
}

/// Body of `POST /api/storage/delete`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// The project; when given it must be the config's.
    project_id: Option<String>,
    /// Required: the storage config.
    #[schema(value_type = String, required = true)]
    storage_id: Option<String>,
    /// Which records: `{entity_type, filters}` (no order, limit or offset).
    #[serde(default)]
    #[schema(value_type = Object)]
    query: QueryRequest,
    /// Must be true to delete every record when `query` has no filters.
    #[serde(default)]
    all: bool,
}

/// `POST /api/storage/delete`: deletes the records a query chooses; no
/// filter is refused unless `all` is true.
#[utoipa::path(
    post,
    path = "/api/storage/delete",
    operation_id = "storage_delete",
    tag = "storage",
    request_body = DeleteBody,
    responses(
        (status = 200, description = "Deleted; affected_items is the number of records removed", body = StorageResult),
        (status = 400, description = "A value refused (or no filters without \"all\": true), naming the field", body = ErrorBody),
        (status = 404, description = "No such storage config", body = ErrorBody),
        (status = 409, description = "The config is inactive", body = ErrorBody),
        (status = 502, description = "The backend refused the operation", body = ErrorBody),
        (status = 503, description = "The backend cannot be reached (or the orchestrator is shutting down)", body = ErrorBody),
        (status = 504, description = "The backend did not answer within the config's timeout", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> Result<Json<StorageResult>, ApiError> {
    let config = usable(
        &state,
        body.project_id.as_deref(),
        body.storage_id.as_deref(),
        "storage_id",
    )
    .await?;
    let storage = open(&state, &config).await?;
    let started = Instant::now();
    let result = storage.delete(&body.query, body.all).await;
    let deleted = finish("delete", &config, started, result, |n| *n, "query")?;
    Ok(Json(StorageResult::done(deleted)))
}

/// Most entity definitions one schema request may create.
pub const MAX_ENTITIES: usize = 100;

/// Body of `POST /api/storage/schema`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaBody {
    /// The project; when given it must be the config's.
    project_id: Option<String>,
    /// Required: the storage config.
    #[schema(value_type = String, required = true)]
    storage_id: Option<String>,
    /// Required: entity definitions `{name, attributes: [{name, type:
    /// string|integer|number|boolean|timestamp|json, indexed, required}]}`.
    #[schema(value_type = Vec<Object>, required = true)]
    entities: Option<Vec<EntitySchema>>,
}

/// `POST /api/storage/schema`: creates entity types from their definitions
/// (typed tables and indexes on SQL backends), in order.
#[utoipa::path(
    post,
    path = "/api/storage/schema",
    operation_id = "storage_schema",
    tag = "storage",
    request_body = SchemaBody,
    responses(
        (status = 200, description = "Created; affected_items is the number of entity types", body = StorageResult),
        (status = 400, description = "A definition refused, naming the field", body = ErrorBody),
        (status = 404, description = "No such storage config", body = ErrorBody),
        (status = 409, description = "The config is inactive", body = ErrorBody),
        (status = 502, description = "The backend refused the operation", body = ErrorBody),
        (status = 503, description = "The backend cannot be reached (or the orchestrator is shutting down)", body = ErrorBody),
        (status = 504, description = "The backend did not answer within the config's timeout", body = ErrorBody),
    )
)]
pub async fn schema(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SchemaBody>,
) -> Result<Json<StorageResult>, ApiError> {
    let config = usable(
        &state,
        body.project_id.as_deref(),
        body.storage_id.as_deref(),
        "storage_id",
    )
    .await?;
    let entities = body.entities.unwrap_or_default();
    if entities.is_empty() || entities.len() > MAX_ENTITIES {
        return Err(ApiError::bad_field(
            "invalid_value",
            "entities",
            format!("entities must list 1 to {MAX_ENTITIES} definitions"),
        ));
    }
    let storage = open(&state, &config).await?;
    let started = Instant::now();
    let mut created = 0;
    for (i, entity) in entities.iter().enumerate() {
        let result = storage.create_schema(entity).await;
        finish(
            "create_schema",
            &config,
            started,
            result,
            |_| 1,
            &format!("entities[{i}]"),
        )?;
        created += 1;
    }
    Ok(Json(StorageResult::done(created)))
}

/// Query of `GET /api/storage/health` and `GET /api/storage/metadata`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConfigIdQuery {
    /// Required: the storage config.
    #[param(value_type = String, required = true)]
    config_id: Option<String>,
}

/// The answer of `GET /api/storage/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthAnswer {
    /// Whether the backend answered within its timeout.
    healthy: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Whether `config`'s backend answers now, within [`HEALTH_TIMEOUT`] at
/// most: `Err` says why not (an inactive config is not checked).
pub async fn check_health(
    connectors: &mimir_storage::Connectors,
    config: &StorageConfig,
) -> Result<(), String> {
    if !config.active {
        return Err(format!("storage config {} is inactive", config.id));
    }
    let checked = async {
        let storage = connectors.get(config).await?;
        storage.health().await
    };
    match tokio::time::timeout(HEALTH_TIMEOUT, checked).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.message),
        Err(_) => Err(format!(
            "storage {} ({}): no answer within {} s",
            config.id,
            config.plugin_type,
            HEALTH_TIMEOUT.as_secs()
        )),
    }
}

/// `GET /api/storage/health?config_id=`: 200 whether healthy or not.
#[utoipa::path(
    get,
    path = "/api/storage/health",
    operation_id = "storage_health",
    tag = "storage",
    params(ConfigIdQuery),
    responses(
        (status = 200, description = "Whether the backend answers; error says why not", body = HealthAnswer),
        (status = 400, description = "A parameter refused", body = ErrorBody),
        (status = 404, description = "No such storage config", body = ErrorBody),
    )
)]
pub async fn health(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigIdQuery>,
) -> Result<Json<HealthAnswer>, ApiError> {
    let id = q.config_id.unwrap_or_default();
    let config = load(&state, &id, "config_id").await?;
    let answer = match check_health(&state.storage, &config).await {
        Ok(()) => HealthAnswer {
            healthy: true,
            error: None,
        },
        Err(error) => HealthAnswer {
            healthy: false,
            error: Some(error),
        },
    };
    crate::telemetry::storage_up::set(&state.metrics, &config, answer.healthy);
    Ok(Json(answer))
}

/// The answer of `GET /api/storage/metadata`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetadataAnswer {
    /// The plugin type.
    storage_type: PluginType,
    /// The backend's version (the server's, where it says).
    version: String,
    /// Of `store`, `retrieve`, `update`, `delete`, `schema_creation`.
    capabilities: Vec<String>,
}

/// `GET /api/storage/metadata?config_id=`: the backend's type, version and
/// capabilities.
#[utoipa::path(
    get,
    path = "/api/storage/metadata",
    operation_id = "storage_metadata",
    tag = "storage",
    params(ConfigIdQuery),
    responses(
        (status = 200, description = "The backend's type, version and capabilities", body = MetadataAnswer),
        (status = 400, description = "A parameter refused, or the config is wrong", body = ErrorBody),
        (status = 404, description = "No such storage config", body = ErrorBody),
        (status = 409, description = "The config is inactive", body = ErrorBody),
        (status = 502, description = "The backend refused the operation", body = ErrorBody),
        (status = 503, description = "The backend cannot be reached (or the orchestrator is shutting down)", body = ErrorBody),
        (status = 504, description = "The backend did not answer within the config's timeout", body = ErrorBody),
    )
)]
pub async fn metadata(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigIdQuery>,
) -> Result<Json<MetadataAnswer>, ApiError> {
    let config = usable(&state, None, q.config_id.as_deref(), "config_id").await?;
    let storage = open(&state, &config).await?;
    let metadata = storage
        .metadata()
        .await
        .map_err(|e| storage_error(e, "config_id"))?;
    Ok(Json(MetadataAnswer {
        storage_type: metadata.storage_type,
        version: metadata.version,
        capabilities: metadata.capabilities,
    }))
}
