//! `/api/projects` and `/api/pipelines`: register projects, define pipelines,
//! execute them.

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use crate::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SubsecRound, Utc};
use mimir_core::{Pipeline, PipelineType, Project, Submission, TaskSpec, WorkTask};
use mimir_store::StoreError;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

fn catalog_error(error: StoreError) -> ApiError {
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

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_field(
            "missing_field",
            field,
            format!("{field} is required and must not be empty"),
        )
    })
}

/// Body of `POST /api/projects`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectBody {
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    description: String,
}

/// `POST /api/projects`.
pub async fn create_project(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ProjectBody>,
) -> Result<Response, ApiError> {
    let name = required(body.name, "name")?;
    let id = body
        .id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    let project = Project {
        id,
        name,
        description: body.description,
        created_at: Utc::now().trunc_subsecs(6),
    };
    let project = state
        .store
        .create_project(project)
        .await
        .map_err(catalog_error)?;
    Ok((StatusCode::CREATED, Json(project)).into_response())
}

/// `GET /api/projects`.
pub async fn list_projects(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let projects = state.store.list_projects().await.map_err(catalog_error)?;
    Ok(Json(json!({ "projects": projects })))
}

/// `GET /api/projects/{id}`.
pub async fn get_project(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Project>, ApiError> {
    let project = state.store.get_project(&id).await.map_err(catalog_error)?;
    project
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("project {id} not found")))
}

/// `DELETE /api/projects/{id}`.
pub async fn delete_project(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_project(&id)
        .await
        .map_err(catalog_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/pipelines` and `PUT /api/pipelines/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineBody {
    project_id: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    pipeline_type: Option<String>,
    #[serde(default)]
    description: String,
    steps: Option<Vec<Value>>,
    step_timeout_ms: Option<u64>,
}

impl PipelineBody {
    /// Checks the body; the steps must be a pipeline the engine can run.
    fn into_pipeline(
        self,
        state: &AppState,
        id: String,
        created_at: chrono::DateTime<Utc>,
    ) -> Result<Pipeline, ApiError> {
        let project_id = required(self.project_id, "project_id")?;
        let name = required(self.name, "name")?;
        let pipeline_type = match self.pipeline_type.as_deref() {
            None | Some("") => PipelineType::default(),
            Some(t) => t
                .parse()
                .map_err(|m| ApiError::bad_field("invalid_type", "type", m))?,
        };
        let steps = self
            .steps
            .ok_or_else(|| ApiError::bad_field("missing_field", "steps", "steps is required"))?;
        if let Some(ms) = self.step_timeout_ms
            && !(1..=mimir_pipeline::validate::MAX_STEP_TIMEOUT_MS).contains(&ms)
        {
            return Err(ApiError::bad_field(
                "invalid_timeout",
                "step_timeout_ms",
                format!(
                    "step_timeout_ms must be between 1 and {}, got {ms}",
                    mimir_pipeline::validate::MAX_STEP_TIMEOUT_MS
                ),
            ));
        }
        let parsed: Vec<mimir_pipeline::Step> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                serde_json::from_value(step.clone()).map_err(|e| {
                    ApiError::bad_field(
                        "invalid_step",
                        format!("steps[{i}]"),
                        format!("step {i}: {e}"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        mimir_pipeline::validate(&parsed, &state.plugins)
            .map_err(|e| ApiError::bad_field(e.code, e.field.clone(), e.message.clone()))?;
        let steps = parsed
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect();
        let now = Utc::now().trunc_subsecs(6);
        Ok(Pipeline {
            id,
            project_id,
            name,
            pipeline_type,
            description: self.description,
            steps,
            created_at,
            updated_at: now,
            step_timeout_ms: self.step_timeout_ms,
        })
    }
}

/// `POST /api/pipelines`.
pub async fn create_pipeline(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PipelineBody>,
) -> Result<Response, ApiError> {
    let pipeline = body.into_pipeline(
        &state,
        Uuid::now_v7().to_string(),
        Utc::now().trunc_subsecs(6),
    )?;
    let pipeline = state
        .store
        .put_pipeline(pipeline, true)
        .await
        .map_err(catalog_error)?;
    tracing::info!(pipeline_id = %pipeline.id, name = %pipeline.name, "pipeline created");
    let location = format!("/api/pipelines/{}", pipeline.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(pipeline),
    )
        .into_response())
}

/// Query of `GET /api/pipelines`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineQuery {
    project_id: Option<String>,
}

/// `GET /api/pipelines?project_id=`.
pub async fn list_pipelines(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PipelineQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = q.project_id.filter(|p| !p.is_empty());
    let pipelines = state
        .store
        .list_pipelines(project)
        .await
        .map_err(catalog_error)?;
    Ok(Json(json!({ "pipelines": pipelines })))
}

async fn load(state: &AppState, id: &str) -> Result<Pipeline, ApiError> {
    let pipeline = state.store.get_pipeline(id).await.map_err(catalog_error)?;
    pipeline.ok_or_else(|| ApiError::not_found(format!("pipeline {id} not found")))
}

/// `GET /api/pipelines/{id}`.
pub async fn get_pipeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Pipeline>, ApiError> {
    load(&state, &id).await.map(Json)
}

/// `PUT /api/pipelines/{id}`: replaces the definition; running executions keep
/// the version they started with.
pub async fn update_pipeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PipelineBody>,
) -> Result<Json<Pipeline>, ApiError> {
    let existing = load(&state, &id).await?;
    let pipeline = body.into_pipeline(&state, id, existing.created_at)?;
    let pipeline = state
        .store
        .put_pipeline(pipeline, false)
        .await
        .map_err(catalog_error)?;
    Ok(Json(pipeline))
}

/// `DELETE /api/pipelines/{id}`.
pub async fn delete_pipeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_pipeline(&id)
        .await
        .map_err(catalog_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/pipelines/{id}/execute`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    #[serde(default)]
    parameters: Map<String, Value>,
    priority: Option<i64>,
    max_retries: Option<i64>,
}

/// `POST /api/pipelines/{id}/execute`: queues a `pipeline_execution` task.
pub async fn execute(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: no parameters, default priority.
    let body: ExecuteBody = if body.iter().all(u8::is_ascii_whitespace) {
        ExecuteBody::default()
    } else {
        super::extract::parse_json(&body)?
    };
    let pipeline = load(&state, &id).await?;
    let submission = Submission {
        task_type: Some("pipeline_execution".into()),
        priority: body.priority,
        project_id: Some(pipeline.project_id.clone()),
        task_spec: Some(TaskSpec {
            pipeline_id: pipeline.id.clone(),
            parameters: body.parameters,
            ..TaskSpec::default()
        }),
        max_retries: body.max_retries,
        ..Submission::default()
    };
    let task = WorkTask::new(Uuid::now_v7(), Utc::now(), submission.validate()?);
    let route = "/api/pipelines/{id}/execute";
    let task = super::worktasks::submit_one(&state, &headers, route, task).await?;
    Ok((StatusCode::CREATED, Json(task)).into_response())
}
