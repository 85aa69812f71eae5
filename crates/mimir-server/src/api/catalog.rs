//! `/api/projects` and `/api/pipelines`: register projects, define pipelines,
//! execute them.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use crate::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SubsecRound, Utc};
use mimir_core::{Pipeline, PipelineType, Project, ProjectListing, Submission, TaskSpec, WorkTask};
use mimir_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
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

/// A required id or name: present, bounded, printable.
fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    let value = value.unwrap_or_default();
    label(field, &value)?;
    Ok(value)
}

/// An id or name (also one from the path) under the one label rule.
fn label(field: &str, value: &str) -> Result<(), ApiError> {
    mimir_core::check_label(field, value).map_err(ApiError::from)
}

/// Body of `POST /api/projects`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectBody {
    /// Its id; one is made up when absent or empty.
    id: Option<String>,
    /// Required: its name.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256, pattern = r"^[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// What it is, for people.
    #[serde(default)]
    description: String,
}

/// `POST /api/projects`.
#[utoipa::path(
    post,
    path = "/api/projects",
    tag = "projects",
    request_body = ProjectBody,
    responses(
        (status = 201, description = "Registered", body = Project),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
        (status = 409, description = "A project with this id exists", body = ErrorBody),
    )
)]
pub async fn create_project(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ProjectBody>,
) -> Result<Response, ApiError> {
    let name = required(body.name, "name")?;
    let id = match body.id.filter(|id| !id.is_empty()) {
        Some(id) => {
            label("id", &id)?;
            id
        }
        None => Uuid::now_v7().to_string(),
    };
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

/// Query of `GET /api/projects`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    /// Projects per page, 1 to 1000; defaults to 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The answer of `GET /api/projects`.
#[derive(Serialize, ToSchema)]
pub struct ProjectPage {
    /// Oldest first: every project tasks or pipelines use, registered or
    /// not, with their counts.
    projects: Vec<ProjectListing>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// `GET /api/projects?limit=&cursor=`: oldest first, a page at a time; every
/// project tasks or pipelines use, registered or not, with their counts.
#[utoipa::path(
    get,
    path = "/api/projects",
    tag = "projects",
    params(ProjectQuery),
    responses(
        (status = 200, description = "A page of projects", body = ProjectPage),
        (status = 400, description = "A parameter refused", body = ErrorBody),
    )
)]
pub async fn list_projects(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> Result<Json<ProjectPage>, ApiError> {
    let limit = super::worktasks::parse_limit(q.limit, super::worktasks::DEFAULT_LIST_LIMIT)?;
    let after = match q.cursor.filter(|c| !c.is_empty()) {
        Some(cursor) => Some(decode_project_cursor(&cursor)?),
        None => None,
    };
    let projects = state
        .store
        .list_projects(after, limit)
        .await
        .map_err(catalog_error)?;
    let next_cursor = (projects.len() == limit)
        .then(|| {
            projects
                .last()
                .map(|last| encode_project_cursor(&last.project))
        })
        .flatten();
    Ok(Json(ProjectPage {
        projects,
        next_cursor,
    }))
}

/// Opaque cursor: the listing position (creation time, id) of a page's last project.
fn encode_project_cursor(project: &Project) -> String {
    use base64::Engine;
    let key = json!([project.created_at.timestamp_micros(), project.id]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.to_string())
}

fn decode_project_cursor(text: &str) -> Result<(chrono::DateTime<Utc>, String), ApiError> {
    use base64::Engine;
    let refuse = || {
        ApiError::bad_field(
            "invalid_cursor",
            "cursor",
            "cursor is not one this API returned; start again without it",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| refuse())?;
    let (micros, id): (i64, String) = serde_json::from_slice(&bytes).map_err(|_| refuse())?;
    let at = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(refuse)?;
    Ok((at, id))
}

/// `GET /api/projects/{id}`.
#[utoipa::path(
    get,
    path = "/api/projects/{id}",
    tag = "projects",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    )
)]
pub async fn get_project(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Project>, ApiError> {
    label("id", &id)?;
    let project = state.store.get_project(&id).await.map_err(catalog_error)?;
    project
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("project {id} not found")))
}

/// `DELETE /api/projects/{id}`.
#[utoipa::path(
    delete,
    path = "/api/projects/{id}",
    tag = "projects",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 409, description = "Still in use", body = ErrorBody),
    )
)]
pub async fn delete_project(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    label("id", &id)?;
    state
        .store
        .delete_project(&id)
        .await
        .map_err(catalog_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/pipelines` and `PUT /api/pipelines/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineBody {
    /// Required: the project it belongs to.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256, pattern = r"^[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    project_id: Option<String>,
    /// Required: its name.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256, pattern = r"^[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// What it is for; defaults to `processing`.
    #[serde(rename = "type")]
    #[schema(value_type = Option<PipelineType>)]
    pipeline_type: Option<String>,
    /// What it does, for people.
    #[serde(default)]
    description: String,
    /// Required: the steps, `{name, plugin, action, parameters, output}`
    /// each (see `GET /api/plugins` for the actions).
    #[schema(value_type = Vec<Object>, required = true, min_items = 1)]
    steps: Option<Vec<Value>>,
    /// The timeout of every step that sets none, in milliseconds.
    #[schema(minimum = 1)]
    step_timeout_ms: Option<u64>,
    /// What may start it besides schedules; defaults to manual runs allowed
    /// and no webhook.
    trigger_config: Option<TriggerConfigBody>,
}

/// `trigger_config` as sent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfigBody {
    /// Whether users may run it by hand; defaults to true.
    allow_manual: Option<bool>,
    /// Its webhook.
    webhook: Option<WebhookBody>,
    /// Ignored: schedules name their pipelines (accepted so a pipeline as
    /// served can be sent back).
    #[serde(default)]
    #[allow(dead_code)]
    schedule_ids: Vec<String>,
}

/// `trigger_config.webhook` as sent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Whether `POST /api/pipelines/{id}/webhook` starts runs.
    enabled: Option<bool>,
    /// The HMAC-SHA256 key callers sign bodies with, 16 to 256 printable
    /// characters. Never shown again; when the webhook is enabled without
    /// one and none is stored, one is made up and shown once in this
    /// answer.
    #[schema(min_length = 16, max_length = 256)]
    secret: Option<String>,
}

/// Bytes of a made-up webhook secret (hex-encoded: twice as many characters).
const WEBHOOK_SECRET_BYTES: usize = 32;

impl TriggerConfigBody {
    /// The trigger config, and a secret made up for it (to show once).
    fn into_config(
        self,
        stored_secret: bool,
    ) -> Result<(mimir_core::TriggerConfig, Option<String>), ApiError> {
        let webhook = self.webhook.unwrap_or(WebhookBody {
            enabled: None,
            secret: None,
        });
        let enabled = webhook.enabled.unwrap_or(false);
        let mut made_up = None;
        let secret = match webhook.secret {
            Some(secret) => {
                let printable = secret.chars().all(|c| c.is_ascii_graphic());
                if !(16..=256).contains(&secret.len()) || !printable {
                    return Err(ApiError::bad_field(
                        "invalid_secret",
                        "trigger_config.webhook.secret",
                        "the webhook secret must be 16 to 256 printable ASCII characters without spaces",
                    ));
                }
                Some(secret)
            }
            None if enabled && !stored_secret => {
                let secret = new_webhook_secret()?;
                made_up = Some(secret.clone());
                Some(secret)
            }
            None => None,
        };
        Ok((
            mimir_core::TriggerConfig {
                allow_manual: self.allow_manual.unwrap_or(true),
                webhook: mimir_core::WebhookTrigger { enabled, secret },
                schedule_ids: Vec::new(),
            },
            made_up,
        ))
    }
}

/// A random webhook secret, hex.
fn new_webhook_secret() -> Result<String, ApiError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; WEBHOOK_SECRET_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("the system's random source failed"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl PipelineBody {
    /// Checks the body; the steps must be a pipeline the engine can run.
    /// Answers the pipeline and a webhook secret made up for it, if one was.
    fn into_pipeline(
        self,
        state: &AppState,
        id: String,
        created_at: chrono::DateTime<Utc>,
        stored_secret: bool,
    ) -> Result<(Pipeline, Option<String>), ApiError> {
        let (trigger_config, made_up) = match self.trigger_config {
            Some(body) => body.into_config(stored_secret)?,
            None => (mimir_core::TriggerConfig::default(), None),
        };
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
        for (i, step) in steps.iter().enumerate() {
            if let Some(name) = step.get("name").and_then(Value::as_str) {
                label(&format!("steps[{i}].name"), name)?;
            }
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
        if trigger_config.webhook.enabled {
            // A webhook passes only `body`: a pipeline reading other
            // parameters could only fail when called.
            let required = mimir_pipeline::reference::required_params(&parsed);
            if let Some(key) = required.iter().find(|k| k.as_str() != "body") {
                return Err(ApiError::bad_field(
                    "invalid_trigger",
                    "trigger_config.webhook.enabled",
                    format!(
                        "a webhook run passes only $.params.body, but the pipeline reads \"$.params.{key}\""
                    ),
                ));
            }
        }
        let steps = parsed
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect();
        let now = Utc::now().trunc_subsecs(6);
        Ok((
            Pipeline {
                id,
                project_id,
                name,
                pipeline_type,
                description: self.description,
                steps,
                created_at,
                updated_at: now,
                step_timeout_ms: self.step_timeout_ms,
                trigger_config,
            },
            made_up,
        ))
    }
}

/// `POST /api/pipelines`.
#[utoipa::path(
    post,
    path = "/api/pipelines",
    tag = "pipelines",
    request_body = PipelineBody,
    responses(
        (status = 201, description = "Created; Location names it", body = Pipeline,
         headers(("location" = String, description = "The pipeline's URL"))),
        (status = 400, description = "A value or step refused, naming the field", body = ErrorBody),
    )
)]
pub async fn create_pipeline(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PipelineBody>,
) -> Result<Response, ApiError> {
    let (pipeline, made_up) = body.into_pipeline(
        &state,
        Uuid::now_v7().to_string(),
        Utc::now().trunc_subsecs(6),
        false,
    )?;
    let pipeline = state
        .store
        .put_pipeline(pipeline, true)
        .await
        .map_err(catalog_error)?;
    tracing::info!(pipeline_id = %pipeline.id, name = %pipeline.name, webhook = pipeline.trigger_config.webhook.enabled, "pipeline created");
    let location = format!("/api/pipelines/{}", pipeline.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(served(&state, pipeline, made_up).await?),
    )
        .into_response())
}

/// Query of `GET /api/pipelines`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PipelineQuery {
    /// Only the pipelines of this project.
    project_id: Option<String>,
}

/// The answer of `GET /api/pipelines`.
#[derive(Serialize, ToSchema)]
pub struct PipelineList {
    /// The pipelines.
    pipelines: Vec<Pipeline>,
}

/// `GET /api/pipelines?project_id=`.
#[utoipa::path(
    get,
    path = "/api/pipelines",
    tag = "pipelines",
    params(PipelineQuery),
    responses(
        (status = 200, description = "The pipelines", body = PipelineList),
        (status = 400, description = "A parameter refused", body = ErrorBody),
    )
)]
pub async fn list_pipelines(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PipelineQuery>,
) -> Result<Json<PipelineList>, ApiError> {
    let project = q.project_id.filter(|p| !p.is_empty());
    if let Some(project) = &project {
        label("project_id", project)?;
    }
    let pipelines = state
        .store
        .list_pipelines(project)
        .await
        .map_err(catalog_error)?;
    Ok(Json(PipelineList { pipelines }))
}

pub(crate) async fn load(state: &AppState, id: &str) -> Result<Pipeline, ApiError> {
    label("id", id)?;
    let pipeline = state.store.get_pipeline(id).await.map_err(catalog_error)?;
    pipeline.ok_or_else(|| ApiError::not_found(format!("pipeline {id} not found")))
}

/// `GET /api/pipelines/{id}`: for users and for the workers that run it.
#[utoipa::path(
    get,
    path = "/api/pipelines/{id}",
    tag = "pipelines",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 200, description = "The pipeline", body = Pipeline),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
    )
)]
pub async fn get_pipeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pipeline = load(&state, &id).await?;
    Ok(Json(served(&state, pipeline, None).await?))
}

/// A pipeline as answered: with the schedules that fire it, and a webhook
/// secret made up by this request (shown this once).
async fn served(
    state: &AppState,
    mut pipeline: Pipeline,
    made_up: Option<String>,
) -> Result<Value, ApiError> {
    let schedules = state
        .store
        .list_schedules(
            mimir_store::ScheduleFilter {
                project_id: Some(pipeline.project_id.clone()),
                pipeline_id: Some(pipeline.id.clone()),
            },
            None,
            mimir_store::MAX_LIST_LIMIT,
        )
        .await?;
    pipeline.trigger_config.schedule_ids = schedules.into_iter().map(|s| s.id).collect();
    let mut value = serde_json::to_value(&pipeline).map_err(ApiError::internal)?;
    if let Some(secret) = made_up
        && let Some(webhook) = value.pointer_mut("/trigger_config/webhook")
        && let Some(webhook) = webhook.as_object_mut()
    {
        webhook.insert("secret".into(), Value::String(secret));
    }
    Ok(value)
}

/// `PUT /api/pipelines/{id}`: replaces the definition; running executions keep
/// the version they started with.
#[utoipa::path(
    put,
    path = "/api/pipelines/{id}",
    tag = "pipelines",
    params(("id" = String, Path, description = "Its id")),
    request_body = PipelineBody,
    responses(
        (status = 200, description = "Replaced", body = Pipeline),
        (status = 400, description = "A value or step refused, naming the field", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
    )
)]
pub async fn update_pipeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PipelineBody>,
) -> Result<Json<Value>, ApiError> {
    let existing = load(&state, &id).await?;
    let stored_secret = existing.trigger_config.webhook.secret.is_some();
    let (pipeline, made_up) = body.into_pipeline(&state, id, existing.created_at, stored_secret)?;
    let pipeline = state.store.put_pipeline(pipeline, false).await;
    // Forgotten whether or not the write went through: the store is the truth.
    state.requirements.forget(&existing.id);
    let pipeline = pipeline.map_err(catalog_error)?;
    Ok(Json(served(&state, pipeline, made_up).await?))
}

/// `DELETE /api/pipelines/{id}`.
#[utoipa::path(
    delete,
    path = "/api/pipelines/{id}",
    tag = "pipelines",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "Still in use", body = ErrorBody),
    )
)]
pub async fn delete_pipeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    label("id", &id)?;
    let deleted = state.store.delete_pipeline(&id).await;
    state.requirements.forget(&id);
    deleted.map_err(catalog_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/pipelines/{id}/execute`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// The execution's parameters (`$.params.*`).
    #[serde(default)]
    #[schema(value_type = Object)]
    parameters: Map<String, Value>,
    /// 1 to 10; defaults to 1.
    #[schema(minimum = 1, maximum = 10)]
    priority: Option<i64>,
    /// Retries allowed; defaults to 3.
    #[schema(minimum = 0, maximum = 100)]
    max_retries: Option<i64>,
}

/// `POST /api/pipelines/{id}/execute`: queues a `pipeline_execution` task.
#[utoipa::path(
    post,
    path = "/api/pipelines/{id}/execute",
    tag = "pipelines",
    params(("id" = String, Path, description = "Its id")),
    request_body(content = ExecuteBody, description = "Optional (an empty body): no parameters, default priority"),
    responses(
        (status = 201, description = "The queued pipeline_execution task", body = WorkTask),
        (status = 400, description = "A value refused, or a parameter the pipeline reads is missing", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
    )
)]
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
    let new = submission.validate()?;
    if !pipeline.trigger_config.allow_manual {
        return Err(super::worktasks::manual_disabled(&pipeline.id));
    }
    let required = state
        .requirements
        .of(state.store.as_ref(), &pipeline.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("pipeline {id} not found")))?;
    super::worktasks::check_parameters(
        &pipeline.id,
        &required.params,
        &new.task_spec.parameters,
        "parameters",
    )?;
    let task = WorkTask::new(Uuid::now_v7(), Utc::now(), new);
    let route = "/api/pipelines/{id}/execute";
    let task = super::worktasks::submit_one(&state, &headers, route, task).await?;
    Ok((StatusCode::CREATED, Json(task)).into_response())
}
