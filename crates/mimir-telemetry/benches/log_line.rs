//! One task lifecycle line (the orchestrator writes two per task at info):
//! what formatting it costs with `tracing-subscriber`'s JSON formatter and
//! with ours, writing to a sink.

use criterion::{Criterion, criterion_group, criterion_main};
use mimir_telemetry::json_lines::JsonLines;
use mimir_telemetry::rate_limit::{DEFAULT_BURST, RateLimit};
use std::time::Duration;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;

fn lifecycle_line() {
    // As the task event recorder writes it (no trace).
    tracing::event!(
        target: "mimir::task",
        tracing::Level::INFO,
        message = "task completed",
        worktask_id = uuid_like(),
        r#type = "pipeline_execution",
        event = "completed",
        worker_id = "local-28a10001",
        attempt = 1u32,
        pipeline_id = "01a2001b-83be-7020-97a4-4274e6cfb605",
        duration_s = 0.13110411,
    );
}

fn uuid_like() -> &'static str {
    "01a2001b-83c2-73bb-8d8b-1a8d50e9bd47"
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("log line");
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false),
    );
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("tracing-subscriber json", |b| b.iter(lifecycle_line));
    });
    let subscriber = tracing_subscriber::registry().with(JsonLines::new(std::io::sink));
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("mimir json_lines", |b| b.iter(lifecycle_line));
    });
    // As `serve` stacks it: level filter and per-call-site rate limit too.
    let subscriber = tracing_subscriber::registry()
        .with(JsonLines::new(std::io::sink).with_filter(EnvFilter::new("info")))
        .with(RateLimit::new(DEFAULT_BURST, Duration::from_secs(1)));
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("mimir json_lines, filtered", |b| b.iter(lifecycle_line));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
