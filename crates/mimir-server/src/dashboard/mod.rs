//! The built-in dashboard: a page at `/` whose HTML, CSS and JavaScript are
//! compiled into the binary, and the data it reads under `/api/dashboard/`.
//!
//! Nothing here needs another service: the overview's charts come from the
//! in-memory [`Timeline`] (the last hour, second by second), live updates from
//! a server-sent event stream of each closed second, and the operator panels
//! from the same metric registry `/metrics` serves, as are the Storage page's
//! figures.

mod assets;
mod data;
pub mod exposition_text;
pub mod log_histogram;
pub mod models_view;
pub mod pipeline_stats;
pub mod sampler;
pub mod storage_view;
pub mod timeline;

use crate::AppState;
use axum::Router;
use axum::routing::get;

pub use pipeline_stats::PipelineStats;
pub use timeline::{Gauges, Occurrence, Second, Summary, Tick, Timeline};

/// The page and its static files; open, so the page can ask for a token.
pub fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(assets::index))
        .route("/dashboard/{*path}", get(assets::file))
}

/// What the page reads; behind the API token like the rest of the user API.
pub fn data_routes() -> crate::api::routes::Routes {
    crate::api::routes::Routes::new()
        .get("/api/dashboard/overview", data::overview)
        .get("/api/dashboard/summary", data::summary)
        .get("/api/dashboard/pipelines", data::pipelines)
        .get("/api/dashboard/stream", data::stream)
        .get("/api/dashboard/metrics", data::metrics)
        .get("/api/dashboard/storage", data::storage)
        .get("/api/dashboard/models", data::models)
}
