//! `GET /api/worktasks/{id}/explain`: why a task has not started.
//!
//! The handler gathers the facts (the task, its place in the queue, its
//! type's concurrency limit, the workers that could run it, the backend's own
//! reasons) and [`mimir_core::explain::explain`] words them.

use super::error::{ApiError, ErrorBody};
use super::worktasks::parse_id;
use crate::AppState;
use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use mimir_core::explain::{Facts, TypeLimit, explain as reasons_for};
use mimir_core::{Reason, StatusFilter, WorkTask, WorkTaskStatus};
use mimir_store::ListQuery;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Running tasks of a full type named in its reason.
const RUNNING_NAMED: usize = 5;

/// The answer of `GET /api/worktasks/{id}/explain`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    /// The task.
    pub worktask_id: Uuid,
    /// Its status now.
    pub status: WorkTaskStatus,
    /// Why it has not started, most telling first; a running or finished
    /// task has one reason saying so.
    pub reasons: Vec<Reason>,
}

/// `GET /api/worktasks/{id}/explain`.
#[utoipa::path(
    get,
    path = "/api/worktasks/{id}/explain",
    operation_id = "explain_worktask",
    tag = "worktasks",
    params(("id" = Uuid, Path, description = "The work task's id")),
    responses(
        (status = 200, description = "Why the task has not started (queue position, retry \
            backoff, type concurrency limit, no worker for its type, the worker backend's \
            capacity and pods), or that it runs or has finished", body = Explanation),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    )
)]
pub async fn explain(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Explanation>, ApiError> {
    let id = parse_id(&id)?;
    let task = state
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("work task {id} not found")))?;
    let facts = facts(&state, &task).await?;
    Ok(Json(Explanation {
        worktask_id: id,
        status: task.status,
        reasons: reasons_for(&facts),
    }))
}

/// What the orchestrator knows of `task`'s chances to start. Only a waiting
/// task needs the queue, the limits and the workers looked up.
async fn facts(state: &AppState, task: &WorkTask) -> Result<Facts, ApiError> {
    let mut facts = Facts {
        status: task.status,
        task_type: task.task_type,
        priority: task.priority,
        now: Utc::now(),
        not_before: task.not_before,
        position: None,
        type_limit: None,
        worker_for_type: true,
        backend: Vec::new(),
        worker_id: task.worker_id.clone(),
    };
    let waiting = matches!(
        task.status,
        WorkTaskStatus::Queued | WorkTaskStatus::Scheduled
    );
    if !waiting {
        return Ok(facts);
    }
    facts.backend = state
        .backend
        .as_ref()
        .map(|b| b.waiting_reasons(task))
        .unwrap_or_default();
    if task.status != WorkTaskStatus::Queued {
        return Ok(facts);
    }
    facts.position = state.store.queue_position(task.worktask_id).await?;
    if let Some(&limit) = state.type_limits.get(&task.task_type) {
        facts.type_limit = Some(type_limit(state, task, limit).await?);
    }
    facts.worker_for_type = !state.workers.running(task.task_type).is_empty()
        || state
            .backend
            .as_ref()
            .is_some_and(|b| b.starts_workers_for(task.task_type));
    Ok(facts)
}

/// The type's limit, how many of the type a worker holds, and some of them.
async fn type_limit(
    state: &AppState,
    task: &WorkTask,
    limit: usize,
) -> Result<TypeLimit, ApiError> {
    let counts = state.store.counts().await?;
    let running: u64 = [
        WorkTaskStatus::Scheduled,
        WorkTaskStatus::Spawned,
        WorkTaskStatus::Executing,
    ]
    .into_iter()
    .map(|s| counts.get(task.task_type, s))
    .sum();
    let mut running_ids = Vec::new();
    if running > 0 && running as usize >= limit {
        let page = state
            .store
            .list(ListQuery {
                status: "running".parse::<StatusFilter>().ok(),
                task_type: Some(task.task_type),
                limit: RUNNING_NAMED,
                ..ListQuery::default()
            })
            .await?;
        running_ids = page.tasks.iter().map(|t| t.worktask_id).collect();
    }
    Ok(TypeLimit {
        limit,
        running: running as usize,
        running_ids,
    })
}
