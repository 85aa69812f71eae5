//! The contract's rate gauges (`mimir_queue_enqueue_rate`,
//! `mimir_queue_dequeue_rate`): tasks per second over the last minute, from
//! the queue counters sampled once a second.

use mimir_telemetry::Metrics;
use mimir_telemetry::rate::{DEFAULT_RATE_WINDOW, RateWindow};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples the counters every second until the task is dropped.
pub async fn sample_queue_rates(metrics: Arc<Metrics>) {
    let mut enqueued = RateWindow::new(DEFAULT_RATE_WINDOW);
    let mut dequeued = RateWindow::new(DEFAULT_RATE_WINDOW);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        enqueued.record(now, metrics.queue_enqueued.get());
        dequeued.record(now, metrics.queue_dequeued.get());
        metrics.queue_enqueue_rate.set(enqueued.per_second());
        metrics.queue_dequeue_rate.set(dequeued.per_second());
    }
}
