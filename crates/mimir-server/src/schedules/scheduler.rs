//! The scheduler: on the leader, fires every schedule that is due.
//!
//! It sleeps until the earliest `next_due_at` in the store (at most a
//! second, so schedules made at another replica are seen soon), reads the
//! due schedules a batch at a time, decides each with
//! [`mimir_core::schedule::plan`] and stores the whole batch's decisions
//! and tasks in one write. Between fires it costs one indexed query a
//! second. A replica that does not lead only sleeps; the term on the write
//! keeps a deposed leader from firing.

use super::fires::{Decision, decide};
use crate::AppState;
use chrono::Utc;
use mimir_core::{Cadence, Schedule};
use mimir_store::{StoreError, Term};
use mimir_telemetry::metrics::ScheduleOutcomeLabels;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Due schedules read and decided per store round trip.
pub const BATCH: usize = 1000;

/// The longest the scheduler sleeps without looking at the store.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Parsed cadences kept; past it the cache starts over.
const CADENCE_CACHE: usize = 20_000;

/// Wakes the scheduler at once: a schedule was made, changed or resumed in
/// this process.
#[derive(Debug, Clone, Default)]
pub struct SchedulerWake(Arc<Notify>);

impl SchedulerWake {
    /// Makes the scheduler look at the store now.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    async fn woken(&self) {
        self.0.notified().await;
    }
}

/// Fires due schedules while this process leads, until it stops.
pub async fn run(state: AppState) {
    let mut cadences = Cadences::default();
    loop {
        let wait = match state.leadership.term() {
            Some(term) => match tick(&state, term, &mut cadences).await {
                Ok(_) => until_next(&state).await,
                Err(error) => {
                    if matches!(error, StoreError::Unavailable(_)) {
                        state.leadership.note_unreachable();
                    }
                    tracing::error!(%error, "cannot fire schedules; trying again");
                    MAX_SLEEP
                }
            },
            None => MAX_SLEEP,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = state.scheduler_wake.woken() => {}
        }
    }
}

/// How long to sleep before the next schedule is due.
async fn until_next(state: &AppState) -> Duration {
    match state.store.next_schedule_due().await {
        Ok(Some(at)) => (at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_SLEEP),
        Ok(None) | Err(_) => MAX_SLEEP,
    }
}

/// Fires every schedule due now, as leader in `term`; answers how many
/// tasks it submitted.
pub async fn tick(
    state: &AppState,
    term: Term,
    cadences: &mut Cadences,
) -> Result<usize, StoreError> {
    let mut submitted = 0;
    loop {
        let now = Utc::now();
        let due = state.store.due_schedules(now, BATCH).await?;
        let full = due.len() == BATCH;
        let mut decided: Vec<(String, Decision)> = Vec::new();
        for entry in due {
            let schedule = &entry.schedule;
            let decision = match cadences.get(schedule) {
                Some(cadence) => {
                    let plan =
                        mimir_core::schedule::plan(schedule, cadence, now, entry.previous_running);
                    decide(schedule, plan, now)
                }
                // Stored before a rule tightened: stop it rather than read
                // it again every second.
                None => decide(schedule, mimir_core::schedule::Plan::default(), now),
            };
            if !decision.is_empty(schedule) {
                decided.push((schedule.name.clone(), decision));
            }
        }
        if decided.is_empty() {
            return Ok(submitted);
        }
        let advances = decided.iter().map(|(_, d)| d.advance.clone()).collect();
        let applied = state.store.advance_schedules(advances, Some(term)).await?;
        let mut any = false;
        let mut fired = 0;
        let mut schedules = 0;
        for ((name, decision), applied) in decided.into_iter().zip(applied) {
            if !applied {
                continue;
            }
            any = true;
            schedules += usize::from(!decision.advance.tasks.is_empty());
            fired += decision.advance.tasks.len();
            record(state, &name, &decision);
        }
        if fired > 0 {
            tracing::info!(schedules, tasks = fired, "schedules fired");
        }
        submitted += fired;
        if !full || !any {
            return Ok(submitted);
        }
    }
}

/// Counts a stored decision in the schedule metrics.
fn record(state: &AppState, name: &str, decision: &Decision) {
    for (outcome, n) in &decision.outcomes {
        state
            .metrics
            .schedule_fires
            .get_or_create(&ScheduleOutcomeLabels {
                schedule: name.to_string(),
                outcome: outcome.as_str(),
            })
            .inc_by(*n);
    }
    for lag in &decision.lags {
        state.metrics.schedule_lag.observe(*lag);
    }
    if !decision.advance.tasks.is_empty() {
        // One line per fire at debug: thousands may fire in one second;
        // the tick's summary is the info line.
        tracing::debug!(
            schedule_id = %decision.advance.schedule_id,
            schedule = %name,
            tasks = decision.advance.tasks.len(),
            slot = ?decision.advance.last_fire_at,
            "schedule fired"
        );
    }
}

/// Parsed cadences by cron and time zone, so a busy minute parses each
/// expression once.
#[derive(Debug, Default)]
pub struct Cadences {
    parsed: HashMap<(String, String), Option<Cadence>>,
}

impl Cadences {
    /// The cadence of `schedule`; `None` (logged once) when its stored cron
    /// or zone no longer parses.
    pub fn get(&mut self, schedule: &Schedule) -> Option<&Cadence> {
        if self.parsed.len() >= CADENCE_CACHE {
            self.parsed.clear();
        }
        self.parsed
            .entry((schedule.cron.clone(), schedule.timezone.clone()))
            .or_insert_with(|| match Cadence::parse(&schedule.cron, &schedule.timezone) {
                Ok(cadence) => Some(cadence),
                Err(error) => {
                    tracing::error!(schedule_id = %schedule.id, %error, "a stored schedule no longer parses; it stops firing until it is updated");
                    None
                }
            })
            .as_ref()
    }
}
