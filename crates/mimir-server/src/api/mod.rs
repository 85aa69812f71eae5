//! The HTTP API. [`app`] builds the whole router, so tests can drive it with
//! `oneshot` and the server with a socket.

pub mod auth;
mod catalog;
mod checkpoints;
pub mod error;
mod explain;
pub mod extract;
pub(crate) mod guard;
mod health;
mod ml_models;
pub mod openapi;
mod plugins;
pub mod routes;
mod schedules;
mod step_schema;
pub(crate) mod storage;
mod webhooks;
mod workers;
mod worktasks;

use crate::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::routing::post;
use error::ApiError;
use routes::Routes;

pub use worktasks::{DEFAULT_LIST_LIMIT, MAX_BATCH};

/// The orchestrator's router.
pub fn app(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    let record_http = state.record_metrics;
    let metrics = state.metrics.clone();
    let router = routes(&state)
        .into_router()
        .merge(crate::dashboard::page_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state);
    if !record_http {
        return router;
    }
    router.route_layer(axum::middleware::from_fn_with_state(
        metrics,
        crate::telemetry::http_metrics::record,
    ))
}

/// Every route of the API with its guards, without the dashboard's page and
/// the shared layers. Each one is in the OpenAPI document ([`openapi`]).
pub fn routes(state: &AppState) -> Routes {
    let max_body = state.max_body_bytes;
    // An artifact travels as base64 inside JSON: a third more, plus the
    // other fields.
    let artifact_body = state
        .max_artifact_bytes
        .saturating_add(state.max_artifact_bytes / 3)
        .saturating_add(1024 * 1024)
        .max(max_body);
    let worker_routes = Routes::new()
        .post("/api/workers/register", workers::register)
        .delete("/api/workers/{worker_id}", workers::deregister)
        .post("/api/workers/{worker_id}/lease", workers::lease)
        .post("/api/workers/{worker_id}/heartbeat", workers::heartbeat)
        .post("/api/workers/{worker_id}/results", workers::results)
        .post("/api/workers/{worker_id}/release", workers::release)
        .get(
            "/api/workers/{worker_id}/storage-configs",
            storage::worker::configs,
        )
        .add(
            Method::POST,
            "/api/workers/{worker_id}/ml-models/{id}/versions",
            post(ml_models::versions::upload).layer(DefaultBodyLimit::max(artifact_body)),
        )
        .post("/api/worktasks/{id}", worktasks::report)
        .add(
            Method::POST,
            "/api/worktasks/{id}/progress",
            post(worktasks::progress).layer(DefaultBodyLimit::max(
                max_body.min(crate::progress::MAX_PROGRESS_BYTES),
            )),
        )
        .map(|router| {
            router.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_worker_token,
            ))
        });
    let user_routes = Routes::new()
        .get("/api/workers", workers::list)
        .post("/api/projects", catalog::create_project)
        .get("/api/projects", catalog::list_projects)
        .get("/api/projects/{id}", catalog::get_project)
        .delete("/api/projects/{id}", catalog::delete_project)
        .post("/api/pipelines", catalog::create_pipeline)
        .get("/api/pipelines", catalog::list_pipelines)
        .put("/api/pipelines/{id}", catalog::update_pipeline)
        .delete("/api/pipelines/{id}", catalog::delete_pipeline)
        .post("/api/pipelines/{id}/execute", catalog::execute)
        .put("/api/pipelines/{id}/checkpoints", checkpoints::put)
        .merge(schedule_routes())
        .merge(storage_routes())
        .merge(ml_model_routes(artifact_body))
        .get("/api/plugins", plugins::list)
        .get("/api/metrics", health::summary)
        .post("/api/worktasks", worktasks::submit)
        .get("/api/worktasks", worktasks::list)
        .post("/api/worktasks/batch", worktasks::submit_batch)
        .get("/api/worktasks/queue/length", worktasks::queue_length)
        .get("/api/worktasks/high-priority", worktasks::high_priority)
        .get("/api/worktasks/{id}", worktasks::get)
        .get("/api/worktasks/{id}/attempts", worktasks::attempts)
        .get("/api/worktasks/{id}/explain", explain::explain)
        .post("/api/worktasks/{id}/cancel", worktasks::cancel)
        .merge(crate::dashboard::data_routes())
        .map(|router| {
            router.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_api_token,
            ))
        });
    // Workers fetch the definitions of the pipelines they run.
    let shared_routes = Routes::new()
        .get("/api/pipelines/{id}", catalog::get_pipeline)
        .get("/api/pipelines/{id}/checkpoints", checkpoints::get)
        .get(
            "/api/ml-models/{id}/versions/{version}/artifact",
            ml_models::artifacts::download,
        )
        .map(|router| {
            router.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_any_token,
            ))
        });
    worker_routes
        .merge(user_routes)
        .merge(shared_routes)
        // Webhook senders hold no token: the body's signature is the
        // credential.
        .post("/api/pipelines/{id}/webhook", webhooks::webhook)
        .get("/health", health::health)
        .get("/ready", health::ready)
        .get("/metrics", crate::telemetry::scrape::metrics)
        .get("/openapi.json", openapi::serve)
}

/// `/api/schedules`: pipelines fired on a clock.
fn schedule_routes() -> Routes {
    Routes::new()
        .get("/api/schedules", schedules::list)
        .post("/api/schedules", schedules::create)
        .get("/api/schedules/{id}", schedules::get)
        .put("/api/schedules/{id}", schedules::update)
        .delete("/api/schedules/{id}", schedules::delete)
        .post("/api/schedules/{id}/pause", schedules::pause)
        .post("/api/schedules/{id}/resume", schedules::resume)
        .post("/api/schedules/{id}/run-now", schedules::run_now)
}

/// `/api/storage`: configs and the operations through them.
fn storage_routes() -> Routes {
    use storage::{configs, operations};
    Routes::new()
        .get("/api/storage/configs", configs::list)
        .post("/api/storage/configs", configs::create)
        .get("/api/storage/configs/{id}", configs::get)
        .put("/api/storage/configs/{id}", configs::update)
        .delete("/api/storage/configs/{id}", configs::delete)
        .post("/api/storage/store", operations::store)
        .post("/api/storage/retrieve", operations::retrieve)
        .post("/api/storage/update", operations::update)
        .post("/api/storage/delete", operations::delete)
        .post("/api/storage/schema", operations::schema)
        .get("/api/storage/health", operations::health)
        .get("/api/storage/metadata", operations::metadata)
}

/// `/api/ml-models`: the registry, training, inference, import and quality
/// checks. The import takes a body as large as an artifact.
fn ml_model_routes(artifact_body: usize) -> Routes {
    use ml_models::{evaluate, import, infer, models, train};
    Routes::new()
        .get("/api/ml-models", models::list)
        .post("/api/ml-models", models::create)
        .post("/api/ml-models/train", train::train)
        .add(
            Method::POST,
            "/api/ml-models/import",
            post(import::import).layer(DefaultBodyLimit::max(artifact_body)),
        )
        .get("/api/ml-models/{id}", models::get)
        .put("/api/ml-models/{id}", models::update)
        .delete("/api/ml-models/{id}", models::delete)
        .post("/api/ml-models/{id}/infer", infer::infer)
        .post("/api/ml-models/{id}/evaluate", evaluate::evaluate)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see the API overview in the README",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}
