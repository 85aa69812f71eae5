//! The dashboard's data: the overview at first paint, window summaries for
//! zoomed charts, the live stream of closed seconds and a filtered slice of
//! the metric registry for the operator panels.

use super::Second;
use super::timeline::recent_from;
use crate::AppState;
use crate::api::error::ApiError;
use crate::api::extract::ApiQuery;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// The seconds as columns (`{"t": [...], "queue_depth": [...], ...}`): a third
/// the size of one object per second, and what charts draw from.
fn columns(seconds: &[Arc<Second>]) -> Value {
    let mut columns: Map<String, Value> = Map::new();
    for second in seconds {
        let Ok(Value::Object(row)) = serde_json::to_value(&**second) else {
            continue;
        };
        for (key, value) in row {
            match columns.get_mut(&key) {
                Some(Value::Array(column)) => column.push(value),
                _ => {
                    columns.insert(key, Value::Array(vec![value]));
                }
            }
        }
    }
    Value::Object(columns)
}

/// Query of the overview.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewParams {
    /// Unix time of the first second wanted; defaults to all that is kept.
    since: Option<String>,
}

/// `GET /api/dashboard/overview`: everything the overview draws first.
pub async fn overview(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<OverviewParams>,
) -> Result<Json<Value>, ApiError> {
    let now = Utc::now().timestamp();
    let since = unix_time(params.since, "since")?.unwrap_or(i64::MIN);
    let seconds = state.timeline.since(since);
    let counts = state.store.counts().await?;
    Ok(Json(json!({
        "now": now,
        "timeline": columns(&seconds),
        "recent": state.timeline.summary(recent_from(now), now),
        "queue_length": state.store.queue_length().await?,
        "tasks_by_status": counts.by_status(),
        "tasks_by_type": counts.by_type(),
        "autoscaler": state.backend.as_ref().map(|backend| backend.decision()),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// `GET /api/dashboard/pipelines`: run times per pipeline, step and plugin
/// action since start, from the step times attempts reported.
pub async fn pipelines(
    State(state): State<AppState>,
) -> Json<super::pipeline_stats::PipelinesView> {
    Json(state.pipeline_stats.view())
}

/// Query of a window summary: unix times, both ends included.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    from: Option<String>,
    to: Option<String>,
}

fn unix_time(value: Option<String>, field: &'static str) -> Result<Option<i64>, ApiError> {
    let Some(text) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    text.parse::<i64>().map(Some).map_err(|_| {
        ApiError::bad_field(
            "invalid_time",
            field,
            format!("{field} must be a Unix time in seconds, got {text:?}"),
        )
    })
}

/// `GET /api/dashboard/summary?from=&to=`: totals and quantiles of a window;
/// defaults to the last minute.
pub async fn summary(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SummaryParams>,
) -> Result<Json<super::Summary>, ApiError> {
    let to = unix_time(params.to, "to")?.unwrap_or_else(|| Utc::now().timestamp());
    let from = unix_time(params.from, "from")?.unwrap_or(recent_from(to));
    if from > to {
        return Err(ApiError::bad_field(
            "invalid_time",
            "from",
            format!("from ({from}) must not be after to ({to})"),
        ));
    }
    Ok(Json(state.timeline.summary(from, to)))
}

/// `GET /api/dashboard/stream`: server-sent events, one `second` event each
/// second; `resync` when this client fell behind and should reload the
/// overview. Ends when the orchestrator shuts down.
pub async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, axum::Error>>> {
    let updates = state.timeline.subscribe();
    let events = futures_util::stream::unfold(
        (updates, state.shutdown.clone()),
        |(mut updates, shutdown)| async move {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return None,
                next = updates.recv() => next,
            };
            let event = match next {
                Ok(tick) => Event::default().event("second").json_data(&*tick),
                Err(RecvError::Lagged(_)) => Ok(Event::default().event("resync").data("")),
                Err(RecvError::Closed) => return None,
            };
            Some((event, (updates, shutdown)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The most storage configs the Storage page lists.
const MAX_STORAGE_ROWS: usize = 500;

/// `GET /api/dashboard/storage`: storage connectors as the Storage page
/// shows them: operations, latency, records, errors and retries by backend
/// and operation since start, pool use per backend and each storage config's
/// health, from this process's metric families.
pub async fn storage(State(state): State<AppState>) -> Json<Value> {
    crate::telemetry::scrape::refresh_gauges(&state).await;
    let text = mimir_telemetry::render(
        state.metrics.registry(),
        mimir_telemetry::Format::Prometheus,
    );
    let figures = super::storage_view::read(&text);
    // Every config, with the health its last check left (a store that does
    // not answer leaves the list empty; the figures still show).
    let configs = state
        .store
        .list_storage_configs(None)
        .await
        .unwrap_or_default();
    let configs: Vec<Value> = configs
        .iter()
        .take(MAX_STORAGE_ROWS)
        .map(|c| {
            let up = figures
                .health
                .iter()
                .find(|h| h.storage_id == c.id)
                .map(|h| h.up);
            let health = match (c.active, up) {
                (false, _) => "inactive",
                (true, Some(true)) => "up",
                (true, Some(false)) => "down",
                (true, None) => "unchecked",
            };
            json!({
                "storage_id": c.id,
                "project_id": c.project_id,
                "backend": c.plugin_type,
                "health": health,
                "updated_at": c.updated_at,
            })
        })
        .collect();
    Json(json!({
        "now": Utc::now().timestamp_millis() as f64 / 1000.0,
        "configs": configs,
        "operations": figures.operations,
        "pools": figures.pools,
        "health": figures.health,
    }))
}

/// The most models the Models page lists.
const MAX_MODEL_ROWS: usize = 500;

/// `GET /api/dashboard/models`: every model in the registry with its status,
/// versions and latest scores, and this process's inference and training
/// figures since start.
pub async fn models(State(state): State<AppState>) -> Json<Value> {
    crate::telemetry::scrape::refresh_gauges(&state).await;
    let text = mimir_telemetry::render(
        state.metrics.registry(),
        mimir_telemetry::Format::Prometheus,
    );
    let figures = super::models_view::read(&text);
    // A store that does not answer leaves the list empty; the figures still show.
    let models = state.store.list_models(None).await.unwrap_or_default();
    let models: Vec<Value> = models
        .iter()
        .rev()
        .take(MAX_MODEL_ROWS)
        .map(|m| {
            let latest = m.versions.last();
            let headline = m.performance_metrics.headline();
            json!({
                "id": m.id,
                "name": m.name,
                "project_id": m.project_id,
                "type": m.model_type,
                "status": m.status,
                "status_reason": m.status_reason,
                "versions": m.versions.len(),
                "latest_version": latest.map(|v| v.version),
                "metric": headline.map(|(name, _)| name),
                "score": headline.map(|(_, value)| value),
                "quality": m.versions.iter().map(|v| json!({
                    "version": v.version,
                    "metric": v.performance_metrics.headline().map(|(n, _)| n),
                    "score": v.performance_metrics.headline().map(|(_, s)| s),
                    "created_at": v.created_at,
                })).collect::<Vec<_>>(),
                "training_task_id": m.training_task_id,
                "updated_at": m.updated_at,
            })
        })
        .collect();
    Json(json!({
        "now": Utc::now().timestamp_millis() as f64 / 1000.0,
        "models": models,
        "inference": figures.inference,
        "training": figures.training,
    }))
}

/// Query of the metrics slice.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    /// Comma-separated metric family names, e.g. `mimir_store_call_duration_seconds`.
    family: String,
}

/// `GET /api/dashboard/metrics?family=a,b`: those families of the registry in
/// Prometheus text, the same values `/metrics` serves, behind the API token
/// rather than the scrape credentials.
pub async fn metrics(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<MetricsParams>,
) -> Result<Response, ApiError> {
    let families: Vec<&str> = params
        .family
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if families.is_empty() || families.iter().any(|f| !f.starts_with("mimir_")) {
        return Err(ApiError::bad_field(
            "invalid_family",
            "family",
            "family must list metric names starting with mimir_, separated by commas",
        ));
    }
    crate::telemetry::scrape::refresh_gauges(&state).await;
    let text = mimir_telemetry::render(
        state.metrics.registry(),
        mimir_telemetry::Format::Prometheus,
    );
    let mut body = String::new();
    for line in text.lines() {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        let name = name.split([' ', '{']).next().unwrap_or_default();
        let wanted = families.iter().any(|f| {
            name.strip_prefix(f).is_some_and(|rest| {
                matches!(
                    rest,
                    "" | "_bucket" | "_sum" | "_count" | "_total" | "_created"
                )
            })
        });
        if wanted {
            body.push_str(line);
            body.push('\n');
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
