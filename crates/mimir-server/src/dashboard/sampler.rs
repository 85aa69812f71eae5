//! Closes the timeline's open second once a second, with the gauges read at
//! that moment: queue depth, running tasks, live and wanted workers.

use super::Gauges;
use crate::AppState;
use chrono::Utc;
use std::time::Duration;

/// The gauges now.
pub async fn gauges(state: &AppState) -> Gauges {
    // A store that cannot answer reads as empty for that second.
    let running = state
        .store
        .counts()
        .await
        .unwrap_or_default()
        .by_status()
        .into_iter()
        .filter(|(status, _)| status.is_running())
        .map(|(_, n)| n)
        .sum();
    let workers = state.workers.active(state.lease_ttl) as u64;
    let desired_workers = state
        .backend
        .as_ref()
        .map_or(workers, |backend| u64::from(backend.decision().desired));
    Gauges {
        queue_depth: state.store.queue_length().await.unwrap_or(0) as u64,
        running,
        workers,
        desired_workers,
    }
}

/// Runs until the task is dropped, closing each second on the wall clock's
/// second boundary so every dashboard sees the same seconds.
pub async fn run(state: AppState) {
    let into_second = Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(
        1000 - into_second.min(999),
    )))
    .await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Rounded, so a tick a few milliseconds early still names its second.
        let t = (Utc::now().timestamp_millis() + 500).div_euclid(1000);
        state.timeline.close(t, gauges(&state).await);
    }
}
