//! The worker protocol: register, lease (long-poll), heartbeat, report results.
//!
//! A worker registers, then leases up to N tasks per call (waiting up to
//! `wait_ms` when none is eligible), renews the leases of what it holds with
//! heartbeats (learning there which tasks to stop), and reports each attempt's
//! end. Results may be sent in batches here or one by one to
//! `POST /api/worktasks/{id}`.

use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::AppState;
use crate::workers::Registration;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use mimir_core::{WorkTask, WorkTaskResult, WorkTaskType};
use mimir_store::LeaseRequest;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest a lease call waits for work.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Most tasks one lease call hands out.
pub const MAX_LEASE: usize = 1000;

/// The answer of a registration.
#[derive(Serialize, ToSchema)]
pub struct Registered {
    /// The id to use in every later call.
    worker_id: String,
    /// How long a lease lasts without a heartbeat, in milliseconds.
    lease_ttl_ms: u64,
    /// How often to send heartbeats, in milliseconds.
    heartbeat_interval_ms: u64,
}

/// `POST /api/workers/register`.
#[utoipa::path(
    post,
    path = "/api/workers/register",
    tag = "worker protocol",
    request_body = Registration,
    responses(
        (status = 201, description = "Registered", body = Registered),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(registration): ApiJson<Registration>,
) -> Result<Response, ApiError> {
    check_registration(&registration)?;
    let worker_id = state.workers.register(registration);
    tracing::info!(worker_id = %worker_id, "worker registered");
    let ttl = state.lease_ttl.as_millis() as u64;
    let registered = Registered {
        worker_id,
        lease_ttl_ms: ttl,
        heartbeat_interval_ms: ttl / 3,
    };
    Ok((StatusCode::CREATED, Json(registered)).into_response())
}

/// Most task types a worker may name.
const MAX_TYPES: usize = 16;

/// Every name a worker gives of itself is a label: bounded, printable.
fn check_registration(registration: &Registration) -> Result<(), ApiError> {
    mimir_core::check_optional_label("worker_id", &registration.worker_id)?;
    mimir_core::check_optional_label("hostname", &registration.hostname)?;
    mimir_core::check_optional_label("version", &registration.version)?;
    parse_types(&registration.types)?;
    Ok(())
}

/// A worker's list of task types: known names, at most [`MAX_TYPES`].
fn parse_types(types: &[String]) -> Result<Vec<WorkTaskType>, ApiError> {
    if types.len() > MAX_TYPES {
        return Err(ApiError::bad_field(
            "invalid_value",
            "types",
            format!("at most {MAX_TYPES} types, got {}", types.len()),
        ));
    }
    let mut parsed = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        mimir_core::check_label(&format!("types[{i}]"), t)?;
        parsed.push(
            t.parse::<WorkTaskType>()
                .map_err(|m| ApiError::bad_field("invalid_type", format!("types[{i}]"), m))?,
        );
    }
    Ok(parsed)
}

/// Body of a lease call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseBody {
    /// Most tasks wanted, 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    max: usize,
    /// Only these types.
    #[serde(default)]
    types: Vec<String>,
    /// Longest wait for work, in milliseconds.
    #[serde(default)]
    wait_ms: u64,
    /// Only this task (a one-task worker, e.g. a Kubernetes Job).
    #[serde(default)]
    worktask_id: Option<Uuid>,
    /// Of `max`, how many the worker can start at once (free running slots);
    /// the rest it would hold ahead. Defaults to `max`.
    #[serde(default)]
    idle: Option<usize>,
}

/// Answer of a lease call.
#[derive(Serialize, ToSchema)]
pub struct Leased {
    /// The tasks leased, each with its `attempt`.
    worktasks: Vec<WorkTask>,
    /// The worker should stop leasing and exit once its tasks are done.
    stop: bool,
}

/// Checks that `worker_id` is registered, noting it was heard from (and
/// busy, when `busy`).
pub(crate) fn known(state: &AppState, worker_id: &str, busy: bool) -> Result<(), ApiError> {
    mimir_core::check_label("worker_id", worker_id)?;
    if state.workers.touch(worker_id, busy) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_worker",
            format!("worker {worker_id} is not registered; register again"),
        ))
    }
}

/// `POST /api/workers/{worker_id}/lease`: up to `max` tasks, waiting up to `wait_ms`.
#[utoipa::path(
    post,
    path = "/api/workers/{worker_id}/lease",
    tag = "worker protocol",
    params(("worker_id" = String, Path, description = "The id the worker registered under")),
    request_body = LeaseBody,
    responses(
        (status = 200, description = "The tasks leased, none when the wait ran out", body = Leased),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
        (status = 404, description = "The worker is not registered", body = ErrorBody),
    )
)]
pub async fn lease(
    State(state): State<AppState>,
    Path(worker_id): Path<String>,
    ApiJson(body): ApiJson<LeaseBody>,
) -> Result<Response, ApiError> {
    known(&state, &worker_id, false)?;
    if body.max == 0 || body.max > MAX_LEASE {
        return Err(ApiError::bad_field(
            "invalid_max",
            "max",
            format!("max must be from 1 to {MAX_LEASE}"),
        ));
    }
    let types = parse_types(&body.types)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(body.wait_ms).min(MAX_WAIT);
    let startable = body.idle.unwrap_or(body.max).min(body.max);
    let signal = state.store.queue_signal();
    loop {
        let stop = state
            .backend
            .as_ref()
            .is_some_and(|b| b.should_stop(&worker_id));
        if stop {
            state.workers.drain(&worker_id);
            return Ok(Json(Leased {
                worktasks: Vec::new(),
                stop: true,
            })
            .into_response());
        }
        // Listen before looking, so a task queued in between still wakes us.
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // While another worker waits with free slots, this one gets only what
        // it can start now: a task held ahead here would wait while that one
        // idles.
        let held_back =
            body.worktask_id.is_none() && state.idle_capacity.besides(&worker_id, &types) > 0;
        let max = if held_back { startable } else { body.max };
        let tasks = if max == 0 {
            Vec::new()
        } else {
            let request = LeaseRequest {
                worker_id: worker_id.clone(),
                max,
                types: (!types.is_empty()).then(|| types.clone()),
                limits: state.type_limits.clone(),
                only: body.worktask_id,
                at: Utc::now(),
            };
            state.store.lease(request).await?
        };
        let now = tokio::time::Instant::now();
        if !tasks.is_empty() || now >= deadline || body.worktask_id.is_some() {
            state.workers.touch(&worker_id, !tasks.is_empty());
            crate::telemetry::spans::leased(&tasks, &worker_id, Utc::now());
            return Ok(Json(Leased {
                worktasks: tasks,
                stop: false,
            })
            .into_response());
        }
        let mut wake = deadline;
        if let Some(eligible) = state.store.next_eligible_at().await? {
            let until = (eligible - Utc::now()).to_std().unwrap_or_default();
            wake = wake.min(now + until);
        }
        let stop_requested = async {
            match &state.backend {
                Some(backend) => backend.stop_requested().await,
                None => std::future::pending().await,
            }
        };
        // Counted as idle while it waits, so busy workers give back what
        // they hold unstarted.
        let _waiting = state.idle_capacity.wait(&worker_id, &types, startable);
        tokio::select! {
            _ = &mut notified => {}
            _ = stop_requested => {}
            _ = state.idle_capacity.filled(), if max == 0 => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// A task a worker holds, by attempt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Held {
    worktask_id: Uuid,
    attempt: u32,
    /// When it began running, if it has.
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
}

/// Body of a heartbeat.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    #[serde(default)]
    tasks: Vec<Held>,
}

/// `POST /api/workers/{worker_id}/heartbeat`: renews leases; answers the tasks
/// to stop (`cancel`: cancelled by a user; `lost`: lease no longer held), how
/// many unstarted tasks to give back for idle workers (`give_back`) and the
/// tasks waiting in the queue (`waiting`).
#[utoipa::path(
    post,
    path = "/api/workers/{worker_id}/heartbeat",
    tag = "worker protocol",
    params(("worker_id" = String, Path, description = "The id the worker registered under")),
    request_body = HeartbeatBody,
    responses(
        (status = 200, description = "`{cancel: [id], lost: [id], stop, give_back, waiting}`: the tasks to stop, whether to exit, how many unstarted tasks to give back for idle workers, and the tasks waiting in the queue", body = Object),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
        (status = 404, description = "The worker is not registered", body = ErrorBody),
        (status = 409, description = "None of the leases named is this worker's; `lost` lists them, with `error`", body = Object),
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(worker_id): Path<String>,
    ApiJson(body): ApiJson<HeartbeatBody>,
) -> Result<Response, ApiError> {
    known(&state, &worker_id, !body.tasks.is_empty())?;
    let held: Vec<(Uuid, u32)> = body
        .tasks
        .iter()
        .map(|t| (t.worktask_id, t.attempt))
        .collect();
    let renewal = state.store.renew(&worker_id, &held).await?;
    let started: Vec<(Uuid, u32)> = body
        .tasks
        .iter()
        .filter(|t| t.started_at.is_some() && !renewal.lost.contains(&t.worktask_id))
        .map(|t| (t.worktask_id, t.attempt))
        .collect();
    let at = body
        .tasks
        .iter()
        .filter_map(|t| t.started_at)
        .min()
        .unwrap_or_else(Utc::now);
    state.store.start(&worker_id, started, at).await?;
    let stop = state
        .backend
        .as_ref()
        .is_some_and(|b| b.should_stop(&worker_id));
    // Free slots of workers waiting for work: this worker gives back up to
    // that many tasks it holds but has not started.
    let give_back = if state.idle_capacity.total() == 0 {
        0
    } else {
        let types = state.workers.types(&worker_id);
        state.idle_capacity.besides(&worker_id, &types)
    };
    // Tasks waiting: a worker whose slots are all busy runs more at once
    // while there are some and its machine has room.
    let waiting = state.store.queue_length().await?;
    let mut answer = json!({ "cancel": renewal.cancelled, "lost": renewal.lost, "stop": stop, "give_back": give_back, "waiting": waiting });
    if !body.tasks.is_empty() && renewal.lost.len() == body.tasks.len() {
        // Not one lease is this worker's: nothing was renewed or started.
        // `lost` still tells a real worker what to stop.
        answer["error"] = ApiError::not_lease_holder(format!(
            "worker {worker_id} holds none of the leases it named; stop the tasks listed in lost"
        ))
        .body();
        return Ok((StatusCode::CONFLICT, Json(answer)).into_response());
    }
    Ok(Json(answer).into_response())
}

/// Body of a batch of results.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultsBody {
    results: Vec<WorkTaskResult>,
}

/// `POST /api/workers/{worker_id}/results`: many results, each accepted or
/// refused on its own (a refused one was for a lost or finished attempt).
#[utoipa::path(
    post,
    path = "/api/workers/{worker_id}/results",
    tag = "worker protocol",
    params(("worker_id" = String, Path, description = "The id the worker registered under")),
    request_body = ResultsBody,
    responses(
        (status = 200, description = "`{results: [{worktask_id, accepted, status | error}]}` in the order sent", body = Object),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
        (status = 404, description = "The worker is not registered", body = ErrorBody),
        (status = 409, description = "Not one result was this worker's to give; `error` and `results` say why", body = Object),
    )
)]
pub async fn results(
    State(state): State<AppState>,
    Path(worker_id): Path<String>,
    ApiJson(body): ApiJson<ResultsBody>,
) -> Result<Response, ApiError> {
    known(&state, &worker_id, true)?;
    // Each result names its task and attempt, and no other worker: those that
    // do not are refused here, the rest by the store unless this worker holds
    // the attempt's lease.
    let mut answers: Vec<Option<serde_json::Value>> = Vec::with_capacity(body.results.len());
    let mut ids = Vec::with_capacity(body.results.len());
    let mut reports = Vec::with_capacity(body.results.len());
    let mut operations = Vec::with_capacity(body.results.len());
    let mut checkpoints = Vec::with_capacity(body.results.len());
    for (index, mut report) in body.results.into_iter().enumerate() {
        let Some(id) = report.worktask_id else {
            return Err(ApiError::bad_field(
                "missing_field",
                format!("results[{index}].worktask_id"),
                "each result names its worktask_id",
            ));
        };
        let refusal = if report.attempt.is_none() {
            Some("a result names the attempt it ends")
        } else if report.worker_id.as_deref().is_some_and(|w| w != worker_id) {
            Some("a result names the worker of the path or none")
        } else {
            None
        };
        match refusal {
            Some(why) => {
                let error = ApiError::not_lease_holder(why).with_field(format!("results[{index}]"));
                answers.push(Some(
                    json!({ "worktask_id": id, "accepted": false, "error": error.body() }),
                ));
            }
            None => {
                answers.push(None);
                ids.push(id);
                operations.push(std::mem::take(&mut report.storage_operations));
                checkpoints.push(saved_checkpoints(&report));
                reports.push(report);
            }
        }
    }
    let statuses = state
        .store
        .finish_many(&worker_id, reports, Utc::now())
        .await?;
    let mut accepted = 0;
    let mut stored = ids
        .into_iter()
        .zip(statuses)
        .zip(operations)
        .zip(checkpoints);
    for answer in &mut answers {
        if answer.is_some() {
            continue;
        }
        let Some((((id, status), operations), checkpoints)) = stored.next() else {
            return Err(ApiError::internal(
                "the store answered fewer results than sent",
            ));
        };
        *answer = Some(match status {
            Ok(status) => {
                accepted += 1;
                state.progress.forget(id);
                let completed = status == mimir_core::WorkTaskStatus::Completed;
                if completed && let Some(saved) = &checkpoints {
                    super::checkpoints::apply_from_result(&state, id, saved).await;
                }
                state.workers.count(&worker_id, completed);
                record_storage(&state, &operations);
                json!({ "worktask_id": id, "accepted": true, "status": status })
            }
            Err(error) => {
                json!({ "worktask_id": id, "accepted": false, "error": ApiError::from(error).body() })
            }
        });
    }
    let answers: Vec<serde_json::Value> = answers.into_iter().flatten().collect();
    if accepted == 0 && !answers.is_empty() {
        // Not one result was this worker's to give: nothing changed.
        let error = ApiError::not_lease_holder(format!(
            "none of these results is for an attempt worker {worker_id} holds"
        ));
        return Ok((
            StatusCode::CONFLICT,
            Json(json!({ "error": error.body(), "results": answers })),
        )
            .into_response());
    }
    Ok(Json(json!({ "results": answers })).into_response())
}

/// Counts the storage operations an accepted attempt ran into the
/// orchestrator's metrics, so workers need not be scraped for them.
pub fn record_storage(state: &AppState, operations: &[mimir_core::StorageOperationEvent]) {
    if !state.record_metrics {
        return;
    }
    for operation in operations {
        mimir_storage::record_operation(&state.metrics, operation);
    }
}

/// Counts a finished attempt for its worker (the task event logs it).
pub fn record_finish(state: &AppState, worker_id: &str, task: &WorkTask) {
    let completed = task.status == mimir_core::WorkTaskStatus::Completed;
    state.workers.count(worker_id, completed);
}

/// Body of a release.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    #[serde(default)]
    tasks: Vec<Held>,
}

/// `POST /api/workers/{worker_id}/release`: gives back tasks that never
/// started (a worker shutting down), keeping their place in the queue.
#[utoipa::path(
    post,
    path = "/api/workers/{worker_id}/release",
    tag = "worker protocol",
    params(("worker_id" = String, Path, description = "The id the worker registered under")),
    request_body = ReleaseBody,
    responses(
        (status = 200, description = "`{released: N}`", body = Object),
        (status = 400, description = "A value refused, naming the field", body = ErrorBody),
        (status = 404, description = "The worker is not registered", body = ErrorBody),
    )
)]
pub async fn release(
    State(state): State<AppState>,
    Path(worker_id): Path<String>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> Result<Response, ApiError> {
    known(&state, &worker_id, false)?;
    let tasks = body
        .tasks
        .iter()
        .map(|t| (t.worktask_id, t.attempt))
        .collect();
    state.store.release(&worker_id, tasks).await?;
    Ok(Json(json!({ "released": body.tasks.len() })).into_response())
}

/// `DELETE /api/workers/{worker_id}`: a worker leaving; leases it still holds expire now.
#[utoipa::path(
    delete,
    path = "/api/workers/{worker_id}",
    tag = "worker protocol",
    params(("worker_id" = String, Path, description = "The id the worker registered under")),
    responses(
        (status = 204, description = "Gone"),
        (status = 400, description = "The id is refused", body = ErrorBody),
        (status = 404, description = "The worker is not registered", body = ErrorBody),
    )
)]
pub async fn deregister(
    State(state): State<AppState>,
    Path(worker_id): Path<String>,
) -> Result<Response, ApiError> {
    known(&state, &worker_id, false)?;
    // Tasks leased but never started (say, in a lease answer the leaving
    // worker stopped waiting for) go back to their place in the queue without
    // costing an attempt; leases of anything else it held expire now.
    let held = state
        .store
        .leases_by_worker()
        .await?
        .remove(&worker_id)
        .unwrap_or_default();
    let mut unstarted = Vec::new();
    for id in held {
        if let Some(task) = state.store.get(id).await?
            && task.status == mimir_core::WorkTaskStatus::Scheduled
        {
            unstarted.push((id, task.attempt));
        }
    }
    if !unstarted.is_empty() {
        tracing::info!(worker_id = %worker_id, count = unstarted.len(), "a leaving worker's unstarted tasks go back to the queue");
        state.store.release(&worker_id, unstarted).await?;
    }
    state.store.forfeit(&worker_id).await?;
    if let Some(lifetime) = state.workers.leave(&worker_id) {
        state
            .metrics
            .worker_duration
            .observe(lifetime.as_secs_f64());
    }
    tracing::info!(worker_id = %worker_id, "worker left");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/workers`.
#[utoipa::path(
    get,
    path = "/api/workers",
    operation_id = "list_workers",
    tag = "workers",
    responses((status = 200, description = "`{workers: [{worker_id, state, pid, hostname, current_task, last_heartbeat_age_ms, tasks_completed, tasks_failed, waiting_slots}], autoscaler}`", body = Object))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let held = state.store.leases_by_worker().await?;
    let mut workers = state.workers.view(&held, state.lease_ttl);
    for worker in &mut workers {
        worker.waiting_slots = state.idle_capacity.of(&worker.worker_id);
    }
    let autoscaler = state.backend.as_ref().map(|b| b.decision());
    let clusters = state
        .backend
        .as_ref()
        .map(|b| b.clusters())
        .unwrap_or_default();
    Ok(Json(
        json!({ "workers": workers, "autoscaler": autoscaler, "clusters": clusters }),
    ))
}

/// The checkpoints a successful run saved, from its report's result.
pub(crate) fn saved_checkpoints(report: &mimir_core::WorkTaskResult) -> Option<serde_json::Value> {
    let result = report.result.as_ref()?;
    let saved = result.get("checkpoints")?.as_object()?;
    (!saved.is_empty()).then(|| json!({ "checkpoints": saved }))
}
