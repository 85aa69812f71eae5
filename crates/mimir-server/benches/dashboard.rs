//! The dashboard's reads with a full hour of history: the overview the page
//! fetches first (3,600 seconds as columns, through the real router) and the
//! summary of a zoomed window (merging every second's latency histograms).

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use mimir_server::AppState;
use mimir_server::dashboard::{Gauges, Occurrence, Timeline};
use mimir_store::{SqliteOptions, SqliteStore};
use std::hint::black_box;
use std::sync::Arc;
use tower::ServiceExt;

/// An hour of busy seconds: 200 tasks through each, waits and run times spread
/// over four decades.
fn busy_hour() -> Arc<Timeline> {
    let timeline = Arc::new(Timeline::default());
    for t in 0..3600 {
        for k in 0..200u32 {
            let spread = f64::from((k * 7919 + t as u32) % 1000) / 100.0;
            timeline.record(Occurrence::Enqueued);
            timeline.record(Occurrence::Dequeued {
                waited: 0.001 * 10f64.powf(spread / 3.0),
            });
            timeline.record(Occurrence::Completed {
                ran: Some(0.01 * 10f64.powf(spread / 4.0)),
            });
        }
        timeline.close(t, Gauges::default());
    }
    timeline
}

fn dashboard(c: &mut Criterion) {
    let timeline = busy_hour();
    c.bench_function("timeline summary of one hour", |b| {
        b.iter(|| black_box(timeline.summary(0, 3599)))
    });

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("store");
    let mut state = AppState::new(Arc::new(store));
    state.timeline = timeline;
    let app = mimir_server::api::app(state);
    c.bench_function("GET /api/dashboard/overview with one hour", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::get("/api/dashboard/overview")
                .body(Body::empty())
                .expect("request");
            let response = app.clone().oneshot(request).await.expect("response");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            black_box(body.len())
        })
    });
}

criterion_group!(benches, dashboard);
criterion_main!(benches);
