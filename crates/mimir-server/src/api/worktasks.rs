//! `/api/worktasks`: submit, inspect and cancel work tasks.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use crate::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use mimir_core::{Priority, Submission, WorkTask, WorkTaskType};
use mimir_store::{ListQuery, MAX_LIST_LIMIT};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Defaults to 50: tasks per page when `limit` is not given.
pub const DEFAULT_LIST_LIMIT: usize = 50;
/// Defaults to 100: tasks the high-priority view returns.
pub const DEFAULT_URGENT_LIMIT: usize = 100;
/// Most entries one batch may hold.
pub const MAX_BATCH: usize = 10_000;

/// `POST /api/worktasks`: 201 once the task is durably stored.
#[utoipa::path(
    post,
    path = "/api/worktasks",
    operation_id = "submit_worktask",
    tag = "worktasks",
    request_body = Submission,
    responses(
        (status = 201, description = "Stored durably; Location names it", body = WorkTask,
         headers(("location" = String, description = "The task's URL"))),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(submission): ApiJson<Submission>,
) -> Result<Response, ApiError> {
    let new = submission.validate()?;
    check_runnable(&state, &new.task_spec, "task_spec").await?;
    let task = WorkTask::new(Uuid::now_v7(), Utc::now(), new);
    let task = submit_one(&state, &headers, "/api/worktasks", task).await?;
    let location = format!("/api/worktasks/{}", task.worktask_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(task),
    )
        .into_response())
}

/// Refuses a task that could only fail: its pipeline does not exist, or reads
/// a parameter (`$.params.x`) the task does not pass. `at` is where the spec
/// sits in the request (`task_spec`, `worktasks[3].task_spec`); a parameter
/// is named `<at>.parameters.x`. Answered from a cache of each pipeline's
/// parameters, so a known pipeline costs no store read.
pub(crate) async fn check_runnable(
    state: &AppState,
    spec: &mimir_core::TaskSpec,
    at: &str,
) -> Result<(), ApiError> {
    let id = spec.pipeline_id.as_str();
    let Some(required) = state.requirements.of(state.store.as_ref(), id).await? else {
        return Err(ApiError::bad_field(
            "unknown_pipeline",
            format!("{at}.pipeline_id"),
            format!("pipeline {id:?} does not exist; create it first (POST /api/pipelines)"),
        ));
    };
    if !required.allow_manual {
        return Err(manual_disabled(id).with_field(format!("{at}.pipeline_id")));
    }
    check_parameters(
        id,
        &required.params,
        &spec.parameters,
        &format!("{at}.parameters"),
    )
}

/// The refusal of a manual run of a pipeline whose trigger config forbids it.
pub(crate) fn manual_disabled(pipeline_id: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "manual_trigger_disabled",
        format!(
            "pipeline {pipeline_id} runs only from its schedules and webhook (trigger_config.allow_manual is false)"
        ),
    )
}

/// Refuses parameters that lack one of `required`, naming it under `at`.
pub(crate) fn check_parameters(
    pipeline_id: &str,
    required: &[String],
    parameters: &serde_json::Map<String, serde_json::Value>,
    at: &str,
) -> Result<(), ApiError> {
    match required
        .iter()
        .find(|key| !parameters.contains_key(key.as_str()))
    {
        None => Ok(()),
        Some(key) => Err(ApiError::bad_field(
            "missing_parameter",
            format!("{at}.{key}"),
            format!(
                "pipeline {pipeline_id} reads \"$.params.{key}\"; pass {key} in the parameters"
            ),
        )),
    }
}

/// Stores `tasks` under a submit span, each carrying the trace context its
/// worker continues.
pub(crate) async fn submit_traced(
    state: &AppState,
    headers: &HeaderMap,
    route: &'static str,
    mut tasks: Vec<WorkTask>,
) -> Result<Vec<WorkTask>, ApiError> {
    let span = crate::telemetry::spans::submit(headers, route, tasks.len());
    let traceparent = crate::telemetry::spans::task_traceparent(&span, headers);
    if !traceparent.is_empty() {
        for task in &mut tasks {
            task.traceparent.clone_from(&traceparent);
        }
    }
    let commit = crate::telemetry::spans::store_commit(&span, state.store.backend());
    let stored = state
        .store
        .submit(tasks)
        .instrument(commit)
        .instrument(span)
        .await?;
    Ok(stored)
}

/// [`submit_traced`] for one task.
pub(crate) async fn submit_one(
    state: &AppState,
    headers: &HeaderMap,
    route: &'static str,
    task: WorkTask,
) -> Result<WorkTask, ApiError> {
    submit_traced(state, headers, route, vec![task])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("store returned no task"))
}

/// The body of `POST /api/worktasks/batch`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// 1 to 10,000 submissions, stored together or not at all.
    worktasks: Vec<Submission>,
}

/// `POST /api/worktasks/batch`: all tasks in one durable commit, or none.
#[utoipa::path(
    post,
    path = "/api/worktasks/batch",
    tag = "worktasks",
    request_body = Batch,
    responses(
        (status = 201, description = "All stored, in the order sent", body = TaskList),
        (status = 400, description = "An entry refused (the field names its index); nothing stored", body = ErrorBody),
    )
)]
pub async fn submit_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(batch): ApiJson<Batch>,
) -> Result<Response, ApiError> {
    if batch.worktasks.is_empty() {
        return Err(ApiError::bad_field(
            "empty_batch",
            "worktasks",
            "worktasks must hold at least one task",
        ));
    }
    if batch.worktasks.len() > MAX_BATCH {
        return Err(ApiError::bad_field(
            "batch_too_large",
            "worktasks",
            format!(
                "a batch holds at most {MAX_BATCH} tasks, got {}",
                batch.worktasks.len()
            ),
        ));
    }
    let now = Utc::now();
    let mut tasks = Vec::with_capacity(batch.worktasks.len());
    for (index, submission) in batch.worktasks.into_iter().enumerate() {
        let prefix = format!("worktasks[{index}]");
        let new = submission.validate().map_err(|e| e.within(&prefix))?;
        check_runnable(&state, &new.task_spec, &format!("{prefix}.task_spec")).await?;
        tasks.push(WorkTask::new(Uuid::now_v7(), now, new));
    }
    let stored = submit_traced(&state, &headers, "/api/worktasks/batch", tasks).await?;
    tracing::debug!(count = stored.len(), "task batch submitted");
    Ok((StatusCode::CREATED, Json(TaskList { worktasks: &stored })).into_response())
}

/// `{"worktasks": [...]}`, serialized without an intermediate JSON value.
#[derive(Serialize, ToSchema)]
pub struct TaskList<'a> {
    /// The tasks.
    #[schema(value_type = Vec<WorkTask>)]
    worktasks: &'a [WorkTask],
}

/// A page of `GET /api/worktasks`.
#[derive(Serialize, ToSchema)]
pub struct Page<'a> {
    /// Newest first.
    #[schema(value_type = Vec<WorkTask>)]
    worktasks: &'a [WorkTask],
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
    /// Tasks waiting to run.
    queue_length: usize,
}

/// The answer of `GET /api/worktasks/high-priority`.
#[derive(Serialize, ToSchema)]
pub struct Urgent<'a> {
    /// Most urgent first.
    #[schema(value_type = Vec<WorkTask>)]
    worktasks: &'a [WorkTask],
    /// Queued tasks at or above `min_priority`, beyond the ones listed too.
    count: usize,
    /// The bound applied.
    min_priority: Priority,
}

/// Query of `GET /api/worktasks`. Empty values mean "no filter"; an unknown
/// parameter is refused.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A status, a group (`running`: scheduled, spawned or executing;
    /// `waiting`: queued or scheduled) or a comma list of them.
    #[param(value_type = Option<String>)]
    status: Option<String>,
    /// Only tasks of this type.
    #[serde(rename = "type")]
    #[param(value_type = Option<WorkTaskType>)]
    task_type: Option<String>,
    /// Only tasks of this project.
    project_id: Option<String>,
    /// Only tasks of this priority or above (1 to 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10)]
    min_priority: Option<String>,
    /// Only tasks of this priority or below (1 to 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10)]
    max_priority: Option<String>,
    /// Only tasks submitted at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Only tasks submitted before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Tasks per page, 1 to 1000; defaults to 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A priority bound of a query, 1 to 10.
fn parse_priority(
    value: Option<String>,
    field: &'static str,
) -> Result<Option<Priority>, ApiError> {
    let Some(text) = non_empty(value) else {
        return Ok(None);
    };
    text.parse::<i64>()
        .ok()
        .and_then(Priority::new)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_field(
                "invalid_priority",
                field,
                format!("{field} must be a whole number from 1 to 10, got {text:?}"),
            )
        })
}

/// A time bound of a query, RFC 3339 (`2026-11-21T10:00:00Z`).
fn parse_time(
    value: Option<String>,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = non_empty(value) else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| {
            ApiError::bad_field(
                "invalid_time",
                field,
                format!("{field} must be an RFC 3339 time such as 2026-11-21T10:00:00Z, got {text:?}: {e}"),
            )
        })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

pub(crate) fn parse_limit(value: Option<String>, default: usize) -> Result<usize, ApiError> {
    let Some(text) = non_empty(value) else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_field(
            "invalid_limit",
            "limit",
            format!("limit must be a whole number from 1 to {MAX_LIST_LIMIT}, got {text:?}"),
        )),
    }
}

/// Opaque cursor: the position after which the next page starts.
fn encode_cursor(seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(seq.to_be_bytes())
}

fn decode_cursor(text: &str) -> Result<u64, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b).ok());
    bytes.map(u64::from_be_bytes).ok_or_else(|| {
        ApiError::bad_field(
            "invalid_cursor",
            "cursor",
            "cursor is not one this API returned; start again without it",
        )
    })
}

/// `GET /api/worktasks`: newest first, filtered, paginated by cursor.
#[utoipa::path(
    get,
    path = "/api/worktasks",
    operation_id = "list_worktasks",
    tag = "worktasks",
    params(ListParams),
    responses(
        (status = 200, description = "A page of tasks", body = Page),
        (status = 400, description = "A filter refused, naming the parameter", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let status = non_empty(params.status)
        .map(|s| s.parse::<mimir_core::StatusFilter>())
        .transpose()
        .map_err(|m| ApiError::bad_field("invalid_status", "status", m))?;
    let task_type = non_empty(params.task_type)
        .map(|s| s.parse::<WorkTaskType>())
        .transpose()
        .map_err(|m| ApiError::bad_field("invalid_type", "type", m))?;
    let query = ListQuery {
        status,
        task_type,
        project_id: match non_empty(params.project_id) {
            Some(project) => {
                mimir_core::check_label("project_id", &project)?;
                Some(project)
            }
            None => None,
        },
        min_priority: parse_priority(params.min_priority, "min_priority")?,
        max_priority: parse_priority(params.max_priority, "max_priority")?,
        submitted_from: parse_time(params.since, "since")?,
        submitted_until: parse_time(params.until, "until")?,
        limit: parse_limit(params.limit, DEFAULT_LIST_LIMIT)?,
        after: non_empty(params.cursor)
            .as_deref()
            .map(decode_cursor)
            .transpose()?,
    };
    if let (Some(min), Some(max)) = (query.min_priority, query.max_priority)
        && min > max
    {
        return Err(ApiError::bad_field(
            "invalid_priority",
            "min_priority",
            format!("min_priority ({min}) must not be above max_priority ({max})"),
        ));
    }
    if let (Some(since), Some(until)) = (query.submitted_from, query.submitted_until)
        && since >= until
    {
        return Err(ApiError::bad_field(
            "invalid_time",
            "since",
            format!("since ({since}) must be before until ({until})"),
        ));
    }
    let page = state.store.list(query).await?;
    Ok(Json(Page {
        worktasks: &page.tasks,
        next_cursor: page.next.map(encode_cursor),
        queue_length: state.store.queue_length().await?,
    })
    .into_response())
}

/// The answer of `GET /api/worktasks/queue/length`.
#[derive(Serialize, ToSchema)]
pub struct QueueLength {
    /// Tasks waiting to run.
    queue_length: usize,
}

/// `GET /api/worktasks/queue/length`.
#[utoipa::path(
    get,
    path = "/api/worktasks/queue/length",
    tag = "worktasks",
    responses((status = 200, description = "Tasks waiting to run", body = QueueLength))
)]
pub async fn queue_length(State(state): State<AppState>) -> Result<Json<QueueLength>, ApiError> {
    Ok(Json(QueueLength {
        queue_length: state.store.queue_length().await?,
    }))
}

/// Query of `GET /api/worktasks/high-priority`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UrgentParams {
    /// The lowest priority listed, 1 to 10; defaults to 5.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10)]
    min_priority: Option<String>,
    /// Tasks listed, 1 to 1000; defaults to 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// Defaults to 5 when `min_priority` is not given (the seed's example).
pub const DEFAULT_MIN_PRIORITY: i64 = 5;

/// `GET /api/worktasks/high-priority`: queued tasks with priority >= N, most urgent first.
#[utoipa::path(
    get,
    path = "/api/worktasks/high-priority",
    tag = "worktasks",
    params(UrgentParams),
    responses(
        (status = 200, description = "Queued tasks at or above the priority", body = Urgent),
        (status = 400, description = "A parameter refused", body = ErrorBody),
    )
)]
pub async fn high_priority(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<UrgentParams>,
) -> Result<Response, ApiError> {
    let min = match parse_priority(params.min_priority, "min_priority")? {
        Some(min) => min,
        None => Priority::new(DEFAULT_MIN_PRIORITY)
            .ok_or_else(|| ApiError::internal("the default minimum priority is out of range"))?,
    };
    let limit = parse_limit(params.limit, DEFAULT_URGENT_LIMIT)?;
    let (total, tasks) = state.store.most_urgent(min, limit).await?;
    Ok(Json(Urgent {
        worktasks: &tasks,
        count: total,
        min_priority: min,
    })
    .into_response())
}

pub(super) fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::bad_field(
            "invalid_id",
            "worktask_id",
            format!("{text:?} is not a work task id (a UUID)"),
        )
    })
}

/// The answer of `GET /api/worktasks/{id}/attempts`.
#[derive(Serialize, ToSchema)]
pub struct Attempts {
    /// The task.
    worktask_id: Uuid,
    /// Its ended attempts, oldest first.
    attempts: Vec<mimir_core::Attempt>,
}

/// `GET /api/worktasks/{id}/attempts`: the ended attempts, oldest first.
#[utoipa::path(
    get,
    path = "/api/worktasks/{id}/attempts",
    tag = "worktasks",
    params(("id" = Uuid, Path, description = "The work task's id")),
    responses(
        (status = 200, description = "The ended attempts", body = Attempts),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    )
)]
pub async fn attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Attempts>, ApiError> {
    let id = parse_id(&id)?;
    let attempts = state
        .store
        .attempts(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("work task {id} not found")))?;
    Ok(Json(Attempts {
        worktask_id: id,
        attempts,
    }))
}

/// `GET /api/worktasks/{id}`.
#[utoipa::path(
    get,
    path = "/api/worktasks/{id}",
    operation_id = "get_worktask",
    tag = "worktasks",
    params(("id" = Uuid, Path, description = "The work task's id")),
    responses(
        (status = 200, description = "The task; while it runs, result.steps holds the steps done so far", body = WorkTask),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WorkTask>, ApiError> {
    let id = parse_id(&id)?;
    let task = state
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("work task {id} not found")))?;
    let mut task = task;
    if task.status.is_running() {
        // Steps finished so far, until the durable result replaces them.
        if let Some(steps) = state.progress.steps(id, task.attempt) {
            task.result = Some(json!({ "steps": steps, "running": true }));
        }
    } else {
        state.progress.forget(id);
    }
    Ok(Json(task))
}

/// Body of `POST /api/worktasks/{id}/progress`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressBody {
    /// The worker holding the attempt's lease.
    #[serde(default)]
    worker_id: Option<String>,
    /// The attempt the steps belong to.
    #[serde(default)]
    attempt: Option<u32>,
    /// The steps finished so far, as the worker records them.
    #[schema(value_type = Vec<Object>)]
    steps: Vec<serde_json::Value>,
}

/// The worker and attempt a report names, which must be the lease holder's.
async fn holder(
    state: &AppState,
    id: Uuid,
    worker_id: Option<&str>,
    attempt: Option<u32>,
) -> Result<(), ApiError> {
    let (Some(worker_id), Some(attempt)) = (worker_id, attempt) else {
        return Err(ApiError::not_lease_holder(
            "a worker's report names its worker_id and the attempt it holds",
        ));
    };
    if state.store.holds(worker_id, id, attempt).await? {
        Ok(())
    } else {
        Err(ApiError::not_lease_holder(format!(
            "worker {worker_id:?} does not hold the lease of attempt {attempt} of work task {id}"
        )))
    }
}

/// `POST /api/worktasks/{id}/progress`: a worker tells the steps a running
/// attempt has finished so far. Only the lease holder's current attempt is
/// kept, at most [`crate::progress::MAX_PROGRESS_STEPS`] steps.
#[utoipa::path(
    post,
    path = "/api/worktasks/{id}/progress",
    tag = "worker protocol",
    params(("id" = Uuid, Path, description = "The work task's id")),
    request_body = ProgressBody,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "The id or body refused", body = ErrorBody),
        (status = 409, description = "The worker does not hold this attempt's lease", body = ErrorBody),
        (status = 413, description = "Too many steps, or the body is over the limit", body = ErrorBody),
    )
)]
pub async fn progress(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProgressBody>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    holder(&state, id, body.worker_id.as_deref(), body.attempt).await?;
    let max = crate::progress::MAX_PROGRESS_STEPS;
    if body.steps.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "a progress report holds at most {max} steps, got {}",
                body.steps.len()
            ),
        )
        .with_field("steps"));
    }
    let (Some(worker_id), Some(attempt)) = (body.worker_id, body.attempt) else {
        return Err(ApiError::internal("holder checked without a worker"));
    };
    state.progress.record(id, &worker_id, attempt, body.steps);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/worktasks/{id}`: a worker reports how the current attempt ended.
/// 409 unless it names the worker holding the lease and its current attempt,
/// or when the task already finished; a refusal changes nothing.
#[utoipa::path(
    post,
    path = "/api/worktasks/{id}",
    operation_id = "report_result",
    tag = "worker protocol",
    params(("id" = Uuid, Path, description = "The work task's id")),
    request_body = mimir_core::WorkTaskResult,
    responses(
        (status = 200, description = "Recorded; the task as it now is", body = WorkTask),
        (status = 400, description = "The id or body refused", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not the lease holder's current attempt, or already finished", body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(mut report): ApiJson<mimir_core::WorkTaskResult>,
) -> Result<Json<WorkTask>, ApiError> {
    let id = parse_id(&id)?;
    if report.worktask_id.is_some_and(|body_id| body_id != id) {
        return Err(ApiError::bad_field(
            "id_mismatch",
            "worktask_id",
            "worktask_id differs from the id in the path",
        ));
    }
    let (Some(worker_id), Some(_)) = (report.worker_id.clone(), report.attempt) else {
        return Err(ApiError::not_lease_holder(
            "a result names the worker_id holding the task's lease and its attempt",
        ));
    };
    let operations = std::mem::take(&mut report.storage_operations);
    let checkpoints = super::workers::saved_checkpoints(&report);
    let task = state
        .store
        .finish(id, Some(worker_id), report, Utc::now())
        .await?;
    if task.status == mimir_core::WorkTaskStatus::Completed
        && let Some(saved) = &checkpoints
    {
        super::checkpoints::apply_from_result(&state, id, saved).await;
    }
    state.progress.forget(id);
    super::workers::record_finish(&state, &task.worker_id, &task);
    super::workers::record_storage(&state, &operations);
    Ok(Json(task))
}

/// `POST /api/worktasks/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/worktasks/{id}/cancel",
    operation_id = "cancel_worktask",
    tag = "worktasks",
    params(("id" = Uuid, Path, description = "The work task's id")),
    responses(
        (status = 200, description = "Cancelled; the task as it now is", body = WorkTask),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "The task already finished", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WorkTask>, ApiError> {
    let id = parse_id(&id)?;
    let task = state.store.cancel(id, Utc::now()).await?;
    state.progress.forget(id);
    Ok(Json(task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        for seq in [0, 1, 12345, u64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(seq)).ok(), Some(seq));
        }
        for junk in ["x", "!!!!", "AAAA", "AAAAAAAAAAAAAAAA"] {
            assert_eq!(
                decode_cursor(junk).map_err(|e| e.status()).err(),
                Some(StatusCode::BAD_REQUEST)
            );
        }
    }
}
