//! `GET /metrics`: values read at scrape time, optional auth, and the format
//! the scraper asked for.

use crate::AppState;
use crate::api::auth;
use crate::api::error::ApiError;
use crate::workers::Registry;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mimir_telemetry::Format;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Who may scrape.
#[derive(Debug, Clone, Default)]
pub struct ScrapeAuth {
    /// `Authorization: Bearer` token, if required.
    pub bearer_token: Option<String>,
    /// Basic-auth user and password, if required.
    pub basic: Option<(String, String)>,
}

impl ScrapeAuth {
    /// Whether the request's credentials are good (any configured way works).
    fn allows(&self, headers: &HeaderMap) -> bool {
        if self.bearer_token.is_none() && self.basic.is_none() {
            return true;
        }
        if let Some(token) = &self.bearer_token
            && auth::presents(headers, token)
        {
            return true;
        }
        if let (Some((user, password)), Some(basic)) =
            (&self.basic, auth::credentials(headers, "Basic"))
        {
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            return auth::constant_time_eq(expected.as_bytes(), basic.as_bytes());
        }
        false
    }
}

/// The handler.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.scrape_auth.allows(&headers) {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "scraping /metrics needs the credentials set in metrics.bearerToken or metrics.username/password",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer, Basic realm=\"metrics\""),
        );
        return response;
    }
    refresh_gauges(&state).await;
    refresh_model_gauges(&state).await;
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = mimir_telemetry::render(state.metrics.registry(), format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Sets the gauges read at scrape time.
pub(crate) async fn refresh_gauges(state: &AppState) {
    let m = &state.metrics;
    // A store that cannot answer leaves the last value: `/ready` reports it.
    if let Ok(waiting) = state.store.queue_length().await {
        m.queue_length.set(waiting as i64);
    }
    m.leader.set(i64::from(state.leadership.leads()));
    m.workers_active
        .set(state.workers.active(state.lease_ttl) as i64);
    mimir_storage::record_pools(m, &state.storage);
}

/// Sets the model quality and degraded gauges from the registry: one store
/// read per scrape, so the series follow models as they are trained,
/// degraded and deleted.
pub(crate) async fn refresh_model_gauges(state: &AppState) {
    match state.store.list_models(None).await {
        Ok(models) => {
            let workers = state.workers.running(mimir_core::WorkTaskType::MlInference);
            state.metrics.set_model_gauges(&models, &workers)
        }
        // The last values stay: better slightly stale than gone.
        Err(error) => tracing::warn!(%error, "cannot read models for the quality gauges"),
    }
}

/// Per-worker counts and heartbeat age, read from the registry at scrape time,
/// and local workers' CPU and memory (series end with their worker).
#[derive(Debug)]
pub struct WorkerCollector {
    /// The registry.
    pub registry: Arc<Registry>,
    /// A worker silent this long is lost.
    pub lost_after: Duration,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerOutcome {
    worker: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

impl Collector for WorkerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let views = self.registry.view(&HashMap::new(), self.lost_after);
        let mut tasks = encoder.encode_descriptor(
            "mimir_worker_tasks",
            "Attempts each live worker finished, by outcome (is the load spread evenly?)",
            None,
            MetricType::Counter,
        )?;
        for v in &views {
            for (outcome, n) in [("completed", v.tasks_completed), ("failed", v.tasks_failed)] {
                let labels = WorkerOutcome {
                    worker: v.worker_id.clone(),
                    outcome,
                };
                ConstCounter::new(n).encode(tasks.encode_family(&labels)?)?;
            }
        }
        // Local workers run on this machine: read their CPU and memory from
        // /proc, so the pool's resource use shows without scraping each one.
        let usage: Vec<(String, mimir_telemetry::process::Usage)> = views
            .iter()
            .filter(|v| v.local && v.pid > 0)
            .filter_map(|v| Some((v.worker_id.clone(), mimir_telemetry::process::usage(v.pid)?)))
            .collect();
        let mut cpu = encoder.encode_descriptor(
            "mimir_worker_cpu_seconds",
            "User and system CPU time of each local worker process, in seconds",
            None,
            MetricType::Counter,
        )?;
        for (worker, u) in &usage {
            let labels = WorkerLabel {
                worker: worker.clone(),
            };
            ConstCounter::new(u.cpu_seconds).encode(cpu.encode_family(&labels)?)?;
        }
        let mut memory = encoder.encode_descriptor(
            "mimir_worker_resident_memory_bytes",
            "Resident memory of each local worker process, in bytes",
            None,
            MetricType::Gauge,
        )?;
        for (worker, u) in &usage {
            let labels = WorkerLabel {
                worker: worker.clone(),
            };
            ConstGauge::new(u.resident_bytes).encode(memory.encode_family(&labels)?)?;
        }
        let mut age = encoder.encode_descriptor(
            "mimir_worker_heartbeat_age_seconds",
            "Seconds since each worker was last heard from",
            None,
            MetricType::Gauge,
        )?;
        for v in &views {
            let labels = WorkerLabel {
                worker: v.worker_id.clone(),
            };
            ConstGauge::new(v.last_heartbeat_age_ms as f64 / 1000.0)
                .encode(age.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
