//! From a schedule's decision to the tasks it fires and the store write
//! that records them.

use chrono::{DateTime, SecondsFormat, Utc};
use mimir_core::schedule::Plan;
use mimir_core::{FireOutcome, Schedule, Submission, TaskSpec, ValidationError, WorkTask};
use mimir_store::ScheduleAdvance;
use serde_json::Value;
use uuid::Uuid;

/// The tasks one slot fires: one `pipeline_execution` per pipeline, in the
/// schedule's order, each carrying the schedule id and the slot as
/// `parameters.scheduled_at` (RFC 3339, UTC).
pub fn slot_tasks(
    schedule: &Schedule,
    slot: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<WorkTask>, ValidationError> {
    let mut parameters = schedule.parameters.clone();
    parameters.insert(
        "scheduled_at".into(),
        Value::String(slot.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    );
    schedule
        .pipeline_ids
        .iter()
        .map(|pipeline_id| {
            let new = Submission {
                task_type: Some("pipeline_execution".into()),
                priority: Some(i64::from(schedule.priority.get())),
                project_id: Some(schedule.project_id.clone()),
                task_spec: Some(TaskSpec {
                    pipeline_id: pipeline_id.clone(),
                    parameters: parameters.clone(),
                    schedule_id: schedule.id.clone(),
                    ..TaskSpec::default()
                }),
                ..Submission::default()
            }
            .validate()?;
            Ok(WorkTask::new(Uuid::now_v7(), now, new))
        })
        .collect()
}

/// A decision ready to store, and what to count once it is stored.
#[derive(Debug)]
pub struct Decision {
    /// The write.
    pub advance: ScheduleAdvance,
    /// Slots decided, by outcome, for `mimir_schedule_fires_total`.
    pub outcomes: Vec<(FireOutcome, u64)>,
    /// Lag of each slot fired on time, in seconds, for
    /// `mimir_schedule_lag_seconds`.
    pub lags: Vec<f64>,
}

impl Decision {
    /// Whether storing it changes nothing (a queued fire still waiting).
    pub fn is_empty(&self, schedule: &Schedule) -> bool {
        self.advance.tasks.is_empty()
            && self.outcomes.is_empty()
            && self.advance.next_fire_at == schedule.next_fire_at
            && self.advance.next_due_at == schedule.next_due_at
            && self.advance.queued_fire_at == schedule.queued_fire_at
    }
}

/// The write and the counts for `plan`, made at `now`. A slot whose tasks
/// cannot be built (a schedule stored before a rule tightened) is counted
/// `missed` and logged, so one bad schedule never stops the others.
pub fn decide(schedule: &Schedule, plan: Plan, now: DateTime<Utc>) -> Decision {
    let mut tasks = Vec::new();
    let mut outcomes: Vec<(FireOutcome, u64)> = plan.not_fired.clone();
    let mut lags = Vec::new();
    let mut last_fire = None;
    for (slot, outcome) in &plan.fire {
        match slot_tasks(schedule, *slot, now) {
            Ok(fired) => {
                last_fire = Some((*slot, fired.iter().map(|t| t.worktask_id).collect()));
                tasks.extend(fired);
                count(&mut outcomes, *outcome);
                if *outcome == FireOutcome::Fired {
                    let due = *slot
                        + mimir_core::schedule::jitter(&schedule.id, *slot, schedule.jitter_ms);
                    lags.push((now - due).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
                }
            }
            Err(error) => {
                tracing::error!(schedule_id = %schedule.id, schedule = %schedule.name, %error, "cannot build the tasks of a schedule's fire; the slot is missed");
                count(&mut outcomes, FireOutcome::Missed);
            }
        }
    }
    let (last_fire_at, last_task_ids) = match last_fire {
        Some((at, ids)) => (Some(at), ids),
        None => (None, Vec::new()),
    };
    Decision {
        advance: ScheduleAdvance {
            schedule_id: schedule.id.clone(),
            revision: schedule.revision,
            next_fire_at: plan.next_fire_at,
            next_due_at: plan.next_due_at,
            queued_fire_at: plan.queued_fire_at,
            last_outcome: plan.last_outcome,
            last_fire_at,
            last_task_ids,
            tasks,
        },
        outcomes,
        lags,
    }
}

fn count(outcomes: &mut Vec<(FireOutcome, u64)>, outcome: FireOutcome) {
    match outcomes.iter_mut().find(|(o, _)| *o == outcome) {
        Some((_, n)) => *n += 1,
        None => outcomes.push((outcome, 1)),
    }
}
