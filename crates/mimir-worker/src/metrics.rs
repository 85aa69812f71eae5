//! A worker's own metrics (`mimir-aip worker --metrics-listen ADDR`): its
//! attempts' run time, its pipelines' step times and the storage operations
//! its steps ran (`mimir_storage_*`) and the items its inferences predicted
//! (`mimir_inference_*`), served on `/metrics`. The orchestrator
//! records the same step times and storage operations from the results
//! workers report, so scraping workers is optional.

use chrono::{DateTime, Utc};
use mimir_core::{AttemptOutcome, WorkTask};
use mimir_telemetry::Metrics;
use mimir_telemetry::metrics::TypeLabel;
use std::net::SocketAddr;
use std::sync::Arc;

/// Records one finished attempt.
pub(crate) fn record_attempt(
    metrics: &Metrics,
    task: &WorkTask,
    outcome: AttemptOutcome,
    started_at: DateTime<Utc>,
    result: Option<&serde_json::Value>,
) {
    let seconds = (Utc::now() - started_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    metrics
        .task_duration
        .get_or_create(&TypeLabel {
            r#type: task.task_type.as_str(),
        })
        .observe(seconds, None, None);
    // An inference counts its items under this worker, as the orchestrator
    // does from the same result: scraping workers shows each one's share.
    if task.task_type == mimir_core::WorkTaskType::MlInference
        && outcome == AttemptOutcome::Completed
        && let Some(result) = result
        && let Some(summary) = mimir_telemetry::InferenceSummary::from_result(result)
    {
        let model = result
            .get("model_name")
            .and_then(|m| m.as_str())
            .unwrap_or(task.task_spec.model_id.as_str());
        metrics.record_inference(model, &task.worker_id, &summary);
    }
    let steps = result
        .and_then(|r| r.get("steps"))
        .and_then(|s| s.as_array());
    if let Some(steps) = steps {
        let pipeline = task.task_spec.pipeline_id.as_str();
        metrics.record_pipeline(pipeline, outcome == AttemptOutcome::Completed, steps);
    }
}

/// Serves `GET /metrics` on `addr` (over TLS with `tls`) until the process ends.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    tls: Option<mimir_http::TlsServer>,
) -> std::io::Result<SocketAddr> {
    use axum::http::header;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let metrics = metrics.clone();
            async move {
                let format = mimir_telemetry::Format::negotiate(
                    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
                );
                let body = mimir_telemetry::render(metrics.registry(), format);
                ([(header::CONTENT_TYPE, format.content_type())], body)
            }
        }),
    );
    tokio::spawn(async move {
        let limits = mimir_http::Limits::default();
        let forever = std::future::pending();
        if let Err(error) = mimir_http::serve(listener, app, limits, tls, forever).await {
            tracing::error!(%error, "worker metrics endpoint stopped");
        }
    });
    Ok(bound)
}
