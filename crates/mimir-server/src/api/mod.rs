//! The HTTP API. [`app`] builds the whole router, so tests can drive it with
//! `oneshot` and the server with a socket.

pub mod auth;
mod catalog;
pub mod error;
pub mod extract;
mod guard;
mod health;
mod workers;
mod worktasks;

use crate::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use error::ApiError;

pub use worktasks::{DEFAULT_LIST_LIMIT, MAX_BATCH};

/// The orchestrator's router.
pub fn app(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    let record_http = state.record_metrics;
    let metrics = state.metrics.clone();
    let worker_routes = Router::new()
        .route("/api/workers/register", post(workers::register))
        .route(
            "/api/workers/{worker_id}",
            axum::routing::delete(workers::deregister),
        )
        .route("/api/workers/{worker_id}/lease", post(workers::lease))
        .route(
            "/api/workers/{worker_id}/heartbeat",
            post(workers::heartbeat),
        )
        .route("/api/workers/{worker_id}/results", post(workers::results))
        .route("/api/workers/{worker_id}/release", post(workers::release))
        .route("/api/worktasks/{id}", post(worktasks::report))
        .route(
            "/api/worktasks/{id}/progress",
            post(worktasks::progress).layer(DefaultBodyLimit::max(
                max_body.min(crate::progress::MAX_PROGRESS_BYTES),
            )),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_worker_token,
        ));
    let user_routes = Router::new()
        .route("/api/workers", get(workers::list))
        .route(
            "/api/projects",
            post(catalog::create_project).get(catalog::list_projects),
        )
        .route(
            "/api/projects/{id}",
            get(catalog::get_project).delete(catalog::delete_project),
        )
        .route(
            "/api/pipelines",
            post(catalog::create_pipeline).get(catalog::list_pipelines),
        )
        .route(
            "/api/pipelines/{id}",
            axum::routing::put(catalog::update_pipeline).delete(catalog::delete_pipeline),
        )
        .route("/api/pipelines/{id}/execute", post(catalog::execute))
        .route("/api/metrics", get(health::summary))
        .route(
            "/api/worktasks",
            post(worktasks::submit).get(worktasks::list),
        )
        .route("/api/worktasks/batch", post(worktasks::submit_batch))
        .route("/api/worktasks/queue/length", get(worktasks::queue_length))
        .route(
            "/api/worktasks/high-priority",
            get(worktasks::high_priority),
        )
        .route("/api/worktasks/{id}", get(worktasks::get))
        .route("/api/worktasks/{id}/attempts", get(worktasks::attempts))
        .route("/api/worktasks/{id}/cancel", post(worktasks::cancel))
        .merge(crate::dashboard::data_routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_token,
        ));
    // Workers fetch the definitions of the pipelines they run.
    let shared_routes = Router::new()
        .route("/api/pipelines/{id}", get(catalog::get_pipeline))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_any_token,
        ));
    let router = Router::new()
        .merge(worker_routes)
        .merge(user_routes)
        .merge(shared_routes)
        .merge(crate::dashboard::page_routes())
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(crate::telemetry::scrape::metrics))
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
