//! `/api/schedules`: pipelines fired on a clock (see [`crate::schedules`]).

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use crate::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SubsecRound, Utc};
use mimir_core::schedule::{MAX_JITTER_MS, MAX_PIPELINES, first_slot};
use mimir_core::{Cadence, CatchUp, FireOutcome, Overlap, Priority, Schedule, WorkTask};
use mimir_store::{ScheduleAdvance, ScheduleFilter, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// How many times run-now reads the schedule again when a fire or a change
/// got in between.
const RUN_NOW_TRIES: usize = 5;

fn schedule_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Missing { kind, id } => ApiError::not_found(format!("{kind} {id} not found")),
        StoreError::AlreadyExists { id, .. } => ApiError::new(
            StatusCode::CONFLICT,
            "already_exists",
            format!("a schedule {id} already exists in this project; schedule names are unique within a project"),
        )
        .with_field("name"),
        other => ApiError::from(other),
    }
}

fn label(field: &str, value: &str) -> Result<(), ApiError> {
    mimir_core::check_label(field, value).map_err(ApiError::from)
}

/// Body of `POST /api/schedules` and `PUT /api/schedules/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// The project; defaults to the pipelines' (and must be theirs).
    project_id: Option<String>,
    /// Required: its name, unique within the project.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256, pattern = r"^[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// The pipeline to fire (or give `pipeline_ids`).
    pipeline_id: Option<String>,
    /// The pipelines to fire, one task each per slot.
    pipeline_ids: Option<Vec<String>>,
    /// Required: 5 fields (`*/5 * * * *`), 6 with seconds first, or
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    #[schema(value_type = String, required = true)]
    cron: Option<String>,
    /// IANA time zone the cron is read in; defaults to `UTC`.
    timezone: Option<String>,
    /// Parameters of every fire; `scheduled_at` is added.
    #[schema(value_type = Object)]
    parameters: Option<Map<String, Value>>,
    /// 1 to 10; defaults to 1.
    #[schema(minimum = 1, maximum = 10)]
    priority: Option<i64>,
    /// False to create it paused; defaults to true.
    enabled: Option<bool>,
    /// `skip` (default), `once` or `all`.
    #[schema(value_type = Option<CatchUp>)]
    catchup: Option<String>,
    /// `allow` (default), `skip` or `queue`.
    #[schema(value_type = Option<Overlap>)]
    overlap: Option<String>,
    /// Fire each slot up to this many milliseconds late, to spread load.
    #[schema(minimum = 0, maximum = 3_600_000)]
    jitter_ms: Option<u64>,
}

impl ScheduleBody {
    /// Checks every field and the pipelines, and builds the schedule as it
    /// would be stored at `now` (first slot computed, when enabled).
    async fn into_schedule(
        self,
        state: &AppState,
        id: String,
        created_at: chrono::DateTime<Utc>,
    ) -> Result<Schedule, ApiError> {
        let name = self.name.unwrap_or_default();
        label("name", &name)?;
        let (pipeline_ids, field) = match (self.pipeline_id, self.pipeline_ids) {
            (Some(one), None) if !one.is_empty() => (vec![one], "pipeline_id"),
            (None, Some(many)) => (many, "pipeline_ids"),
            (Some(one), Some(many)) if many.first() == Some(&one) => (many, "pipeline_ids"),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_field(
                    "invalid_field",
                    "pipeline_ids",
                    "give pipeline_id or pipeline_ids, not both (or pipeline_id as the first of pipeline_ids)",
                ));
            }
            _ => {
                return Err(ApiError::bad_field(
                    "missing_field",
                    "pipeline_id",
                    "pipeline_id (or pipeline_ids) is required: the pipeline the schedule fires",
                ));
            }
        };
        if pipeline_ids.is_empty() || pipeline_ids.len() > MAX_PIPELINES {
            return Err(ApiError::bad_field(
                "invalid_field",
                field,
                format!(
                    "a schedule fires 1 to {MAX_PIPELINES} pipelines, got {}",
                    pipeline_ids.len()
                ),
            ));
        }
        let cron = self.cron.unwrap_or_default();
        let timezone = self
            .timezone
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "UTC".to_string());
        let cadence = Cadence::parse(&cron, &timezone)
            .map_err(|e| ApiError::bad_field("invalid_schedule", e.field, e.message))?;
        let priority = match self.priority {
            None => Priority::default(),
            Some(p) => Priority::new(p).ok_or_else(|| {
                ApiError::bad_field(
                    "invalid_priority",
                    "priority",
                    format!("priority must be between 1 and 10, got {p}"),
                )
            })?,
        };
        let catchup: CatchUp = parse_choice(self.catchup, "catchup")?;
        let overlap: Overlap = parse_choice(self.overlap, "overlap")?;
        let jitter_ms = self.jitter_ms.unwrap_or(0);
        if jitter_ms > MAX_JITTER_MS {
            return Err(ApiError::bad_field(
                "invalid_field",
                "jitter_ms",
                format!("jitter_ms must be at most {MAX_JITTER_MS} (one hour), got {jitter_ms}"),
            ));
        }
        let parameters = self.parameters.unwrap_or_default();
        if parameters.contains_key("scheduled_at") {
            return Err(ApiError::bad_field(
                "invalid_field",
                "parameters.scheduled_at",
                "scheduled_at is set by each fire to its slot; pick another parameter name",
            ));
        }
        let mut project_id = self.project_id.filter(|p| !p.is_empty());
        if let Some(project) = &project_id {
            label("project_id", project)?;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, pipeline_id) in pipeline_ids.iter().enumerate() {
            let at = if field == "pipeline_id" {
                "pipeline_id".to_string()
            } else {
                format!("pipeline_ids[{i}]")
            };
            label(&at, pipeline_id)?;
            if !seen.insert(pipeline_id.as_str()) {
                return Err(ApiError::bad_field(
                    "invalid_field",
                    at,
                    format!("pipeline {pipeline_id} is listed twice"),
                ));
            }
            let pipeline = state
                .store
                .get_pipeline(pipeline_id)
                .await?
                .ok_or_else(|| {
                    ApiError::bad_field(
                        "unknown_pipeline",
                        at.clone(),
                        format!("pipeline {pipeline_id:?} does not exist; create it first (POST /api/pipelines)"),
                    )
                })?;
            match &project_id {
                Some(project) if *project != pipeline.project_id => {
                    return Err(ApiError::bad_field(
                        "invalid_field",
                        at,
                        format!(
                            "pipeline {pipeline_id} belongs to project {:?}, not {project:?}: a schedule fires pipelines of its own project",
                            pipeline.project_id
                        ),
                    ));
                }
                Some(_) => {}
                None => project_id = Some(pipeline.project_id.clone()),
            }
            // Every fire passes the schedule's parameters and scheduled_at.
            let required = state
                .requirements
                .of(state.store.as_ref(), pipeline_id)
                .await?
                .unwrap_or_default();
            let mut given = parameters.clone();
            given.insert("scheduled_at".into(), Value::Null);
            super::worktasks::check_parameters(
                pipeline_id,
                &required.params,
                &given,
                "parameters",
            )?;
        }
        let enabled = self.enabled.unwrap_or(true);
        let now = Utc::now();
        let (next_fire_at, next_due_at) = if enabled {
            first_slot(&id, &cadence, jitter_ms, now)
        } else {
            (None, None)
        };
        Ok(Schedule {
            id,
            project_id: project_id.unwrap_or_default(),
            name,
            pipeline_id: pipeline_ids[0].clone(),
            pipeline_ids,
            cron,
            timezone,
            parameters,
            priority,
            enabled,
            catchup,
            overlap,
            jitter_ms,
            next_fire_at,
            next_due_at,
            queued_fire_at: None,
            last_fire_at: None,
            last_task_id: None,
            last_task_ids: Vec::new(),
            last_outcome: None,
            revision: 0,
            created_at,
            updated_at: now.trunc_subsecs(6),
        })
    }
}

fn parse_choice<T: std::str::FromStr<Err = String> + Default>(
    value: Option<String>,
    field: &'static str,
) -> Result<T, ApiError> {
    match value.as_deref() {
        None | Some("") => Ok(T::default()),
        Some(text) => text
            .parse()
            .map_err(|m: String| ApiError::bad_field("invalid_field", field, m)),
    }
}

async fn load(state: &AppState, id: &str) -> Result<Schedule, ApiError> {
    label("id", id)?;
    state
        .store
        .get_schedule(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("schedule {id} not found")))
}

/// `POST /api/schedules`.
#[utoipa::path(
    post,
    path = "/api/schedules",
    operation_id = "create_schedule",
    tag = "schedules",
    request_body = ScheduleBody,
    responses(
        (status = 201, description = "Created; Location names it", body = Schedule,
         headers(("location" = String, description = "The schedule's URL"))),
        (status = 400, description = "A value refused, naming the field (a bad cron, an unknown time zone or pipeline, a parameter the pipeline reads)", body = ErrorBody),
        (status = 409, description = "The name is taken in the project", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Response, ApiError> {
    let id = Uuid::now_v7().to_string();
    let schedule = body
        .into_schedule(&state, id, Utc::now().trunc_subsecs(6))
        .await?;
    let schedule = state
        .store
        .put_schedule(schedule, true)
        .await
        .map_err(schedule_error)?;
    state.scheduler_wake.wake();
    tracing::info!(schedule_id = %schedule.id, schedule = %schedule.name, cron = %schedule.cron, timezone = %schedule.timezone, "schedule created");
    let location = format!("/api/schedules/{}", schedule.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(schedule),
    )
        .into_response())
}

/// Query of `GET /api/schedules`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScheduleQuery {
    /// Only this project's schedules.
    project_id: Option<String>,
    /// Only the schedules firing this pipeline.
    pipeline_id: Option<String>,
    /// Schedules per page, 1 to 1000; defaults to 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The answer of `GET /api/schedules`.
#[derive(Serialize, ToSchema)]
pub struct SchedulePage {
    /// Oldest first.
    schedules: Vec<Schedule>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// `GET /api/schedules?project_id=&pipeline_id=&limit=&cursor=`.
#[utoipa::path(
    get,
    path = "/api/schedules",
    operation_id = "list_schedules",
    tag = "schedules",
    params(ScheduleQuery),
    responses(
        (status = 200, description = "A page of schedules, oldest first", body = SchedulePage),
        (status = 400, description = "A parameter refused", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ScheduleQuery>,
) -> Result<Json<SchedulePage>, ApiError> {
    let limit = super::worktasks::parse_limit(q.limit, super::worktasks::DEFAULT_LIST_LIMIT)?;
    let project_id = q.project_id.filter(|p| !p.is_empty());
    if let Some(project) = &project_id {
        label("project_id", project)?;
    }
    let pipeline_id = q.pipeline_id.filter(|p| !p.is_empty());
    if let Some(pipeline) = &pipeline_id {
        label("pipeline_id", pipeline)?;
    }
    let after = q.cursor.filter(|c| !c.is_empty());
    if let Some(cursor) = &after {
        // The cursor is the last id of the previous page.
        label("cursor", cursor).map_err(|_| {
            ApiError::bad_field(
                "invalid_cursor",
                "cursor",
                "cursor is not one this API returned; start again without it",
            )
        })?;
    }
    let schedules = state
        .store
        .list_schedules(
            ScheduleFilter {
                project_id,
                pipeline_id,
            },
            after,
            limit,
        )
        .await?;
    let next_cursor = (schedules.len() == limit)
        .then(|| schedules.last().map(|s| s.id.clone()))
        .flatten();
    Ok(Json(SchedulePage {
        schedules,
        next_cursor,
    }))
}

/// `GET /api/schedules/{id}`.
#[utoipa::path(
    get,
    path = "/api/schedules/{id}",
    operation_id = "get_schedule",
    tag = "schedules",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 200, description = "The schedule", body = Schedule),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    load(&state, &id).await.map(Json)
}

/// `PUT /api/schedules/{id}`: replaces its definition; the next slot is
/// computed afresh from now, and its record of past fires is kept.
#[utoipa::path(
    put,
    path = "/api/schedules/{id}",
    operation_id = "update_schedule",
    tag = "schedules",
    params(("id" = String, Path, description = "Its id")),
    request_body = ScheduleBody,
    responses(
        (status = 200, description = "Replaced", body = Schedule),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 409, description = "The name is taken in the project", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Json<Schedule>, ApiError> {
    let existing = load(&state, &id).await?;
    let schedule = body.into_schedule(&state, id, existing.created_at).await?;
    let schedule = state
        .store
        .put_schedule(schedule, false)
        .await
        .map_err(schedule_error)?;
    state.scheduler_wake.wake();
    Ok(Json(schedule))
}

/// `DELETE /api/schedules/{id}`: the tasks it fired stay.
#[utoipa::path(
    delete,
    path = "/api/schedules/{id}",
    operation_id = "delete_schedule",
    tag = "schedules",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    label("id", &id)?;
    state
        .store
        .delete_schedule(&id)
        .await
        .map_err(schedule_error)?;
    tracing::info!(schedule_id = %id, "schedule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Stores `schedule` enabled or paused: resuming starts from the next slot
/// after now (slots passed while paused are not caught up).
async fn set_enabled(state: &AppState, id: &str, enabled: bool) -> Result<Schedule, ApiError> {
    let mut schedule = load(state, id).await?;
    if schedule.enabled == enabled {
        return Ok(schedule);
    }
    schedule.enabled = enabled;
    (schedule.next_fire_at, schedule.next_due_at) = if enabled {
        let cadence = Cadence::parse(&schedule.cron, &schedule.timezone)
            .map_err(|e| ApiError::bad_field("invalid_schedule", e.field, e.message))?;
        first_slot(&schedule.id, &cadence, schedule.jitter_ms, Utc::now())
    } else {
        (None, None)
    };
    schedule.queued_fire_at = None;
    schedule.updated_at = Utc::now().trunc_subsecs(6);
    let schedule = state
        .store
        .put_schedule(schedule, false)
        .await
        .map_err(schedule_error)?;
    state.scheduler_wake.wake();
    tracing::info!(schedule_id = %schedule.id, schedule = %schedule.name, enabled, "schedule paused or resumed");
    Ok(schedule)
}

/// `POST /api/schedules/{id}/pause`: stops firing (a queued fire is dropped).
#[utoipa::path(
    post,
    path = "/api/schedules/{id}/pause",
    operation_id = "pause_schedule",
    tag = "schedules",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 200, description = "Paused", body = Schedule),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    set_enabled(&state, &id, false).await.map(Json)
}

/// `POST /api/schedules/{id}/resume`: fires again from the next slot after
/// now.
#[utoipa::path(
    post,
    path = "/api/schedules/{id}/resume",
    operation_id = "resume_schedule",
    tag = "schedules",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 200, description = "Resumed", body = Schedule),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    set_enabled(&state, &id, true).await.map(Json)
}

/// The answer of `POST /api/schedules/{id}/run-now`.
#[derive(Serialize, ToSchema)]
pub struct RunNow {
    /// The tasks fired, one per pipeline.
    worktasks: Vec<WorkTask>,
}

/// `POST /api/schedules/{id}/run-now`: fires once now, paused or not, with
/// `scheduled_at` now; the schedule's next slot is unchanged.
#[utoipa::path(
    post,
    path = "/api/schedules/{id}/run-now",
    operation_id = "run_schedule_now",
    tag = "schedules",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 201, description = "The tasks fired", body = RunNow),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 409, description = "The schedule kept changing meanwhile; try again", body = ErrorBody),
    )
)]
pub async fn run_now(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    for _ in 0..RUN_NOW_TRIES {
        let schedule = load(&state, &id).await?;
        let now = Utc::now();
        let slot = now.trunc_subsecs(3);
        let tasks = crate::schedules::fires::slot_tasks(&schedule, slot, now)?;
        let advance = ScheduleAdvance {
            schedule_id: schedule.id.clone(),
            revision: schedule.revision,
            next_fire_at: schedule.next_fire_at,
            next_due_at: schedule.next_due_at,
            queued_fire_at: schedule.queued_fire_at,
            last_outcome: Some(FireOutcome::Fired),
            last_fire_at: Some(slot),
            last_task_ids: tasks.iter().map(|t| t.worktask_id).collect(),
            tasks: tasks.clone(),
        };
        let applied = state
            .store
            .advance_schedules(vec![advance], None)
            .await?
            .first()
            .copied()
            .unwrap_or(false);
        if applied {
            tracing::info!(schedule_id = %schedule.id, schedule = %schedule.name, tasks = tasks.len(), "schedule run now");
            let mut stored = Vec::with_capacity(tasks.len());
            for task in tasks {
                stored.push(state.store.get(task.worktask_id).await?.unwrap_or(task));
            }
            return Ok((StatusCode::CREATED, Json(RunNow { worktasks: stored })).into_response());
        }
        if !schedule.enabled {
            // Paused schedules are skipped by the store's write; fire the
            // tasks on their own.
            let stored = state.store.submit(tasks).await?;
            return Ok((StatusCode::CREATED, Json(RunNow { worktasks: stored })).into_response());
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!("schedule {id} kept changing while it was fired; try again"),
    ))
}
