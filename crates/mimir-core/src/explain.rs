//! Why a task has not started: the answer of `GET /api/worktasks/{id}/explain`
//! and `mimir-aip task why`.
//!
//! Each reason is a stable snake_case code (users script against them and
//! dashboards count them), a sentence, and the figures behind it. The store
//! and the worker backend gather the facts; [`explain`] turns them into
//! reasons, so the wording and the rules live in one pure place.

use crate::{Priority, WorkTaskStatus, WorkTaskType};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// Tasks ahead of it in the queue (at its priority and above).
    QueuePosition,
    /// A failed attempt's backoff has not ended.
    RetryBackoff,
    /// Its type's concurrency limit (`orchestrator.typeConcurrency`) is reached.
    TypeConcurrencyLimit,
    /// No connected worker accepts its type and the backend starts none.
    NoWorkerForType,
    /// Every cluster (or the local pool) runs its `maxWorkers`.
    MaxWorkersReached,
    /// A cluster cannot be used now (API unreachable, Jobs failing to start).
    ClusterUnavailable,
    /// Its Job's pod waits for the scheduler (e.g. insufficient memory).
    PodPending,
    /// Its Job's pod cannot pull its image.
    ImagePullFailing,
    /// A worker holds it and has not started it yet.
    LeasedNotStarted,
    /// It runs (nothing keeps it waiting).
    Running,
    /// It has ended (nothing keeps it waiting).
    Finished,
}

/// One reason a task waits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reason {
    /// The stable code.
    pub code: ReasonCode,
    /// A sentence for people.
    pub message: String,
    /// The figures behind it (`tasks_ahead`, `until`, `limit`, `cluster`, ...).
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Reason {
    /// A reason with no figures.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Reason {
        Reason {
            code,
            message: message.into(),
            details: serde_json::Map::new(),
        }
    }

    /// Adds one figure.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Reason {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// Where a queued task stands in the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueuePosition {
    /// Eligible tasks of a higher priority, waiting.
    pub ahead_higher: usize,
    /// Eligible tasks of the same priority that arrived before it.
    pub ahead_same: usize,
}

/// The type concurrency limit as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeLimit {
    /// `orchestrator.typeConcurrency` for the type.
    pub limit: usize,
    /// Tasks of the type running now (leased or executing).
    pub running: usize,
    /// Some of them, to name.
    pub running_ids: Vec<uuid::Uuid>,
}

/// Everything [`explain`] needs to know about one task.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The task's status.
    pub status: WorkTaskStatus,
    /// Its type.
    pub task_type: WorkTaskType,
    /// Its priority.
    pub priority: Priority,
    /// Now.
    pub now: DateTime<Utc>,
    /// While in retry backoff: when it may run again.
    pub not_before: Option<DateTime<Utc>>,
    /// Its place, when queued.
    pub position: Option<QueuePosition>,
    /// The type's concurrency limit, when one is set.
    pub type_limit: Option<TypeLimit>,
    /// Whether any connected worker or the backend can run its type.
    pub worker_for_type: bool,
    /// Reasons the worker backend adds (clusters full, pod pending, image
    /// pulls failing, ...), already worded.
    pub backend: Vec<Reason>,
    /// The worker holding it, when leased.
    pub worker_id: String,
}

/// Every reason the task has not started, most telling first; a running or
/// finished task gets one reason saying so.
pub fn explain(facts: &Facts) -> Vec<Reason> {
    match facts.status {
        WorkTaskStatus::Queued => queued(facts),
        WorkTaskStatus::Scheduled => {
            let mut reasons = vec![leased_not_started(&facts.worker_id)];
            reasons.extend(facts.backend.iter().cloned());
            reasons
        }
        WorkTaskStatus::Spawned | WorkTaskStatus::Executing => vec![running(&facts.worker_id)],
        WorkTaskStatus::Completed
        | WorkTaskStatus::Failed
        | WorkTaskStatus::Timeout
        | WorkTaskStatus::Cancelled => vec![finished(facts.status)],
    }
}

/// The reasons of a task waiting in the queue; never empty.
fn queued(facts: &Facts) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if let Some(until) = facts.not_before.filter(|t| *t > facts.now) {
        reasons.push(retry_backoff(until, facts.now));
    }
    if let Some(position) = facts.position
        && position.ahead_higher + position.ahead_same > 0
    {
        reasons.push(queue_position(position, facts.priority));
    }
    if let Some(limit) = &facts.type_limit
        && limit.running >= limit.limit
    {
        reasons.push(type_concurrency_limit(limit, facts.task_type));
    }
    if !facts.worker_for_type {
        reasons.push(no_worker_for_type(facts.task_type));
    }
    reasons.extend(facts.backend.iter().cloned());
    if reasons.is_empty() {
        reasons.push(
            queue_position(QueuePosition::default(), facts.priority).with_message(
                "It is next in line and should start within a moment, as soon as a worker \
                 asks for work.",
            ),
        );
    }
    reasons
}

fn retry_backoff(until: DateTime<Utc>, now: DateTime<Utc>) -> Reason {
    // Rounded up: "0 seconds" would read as if it were over.
    let millis = (until - now).num_milliseconds().max(0);
    let seconds = (millis + 999) / 1000;
    Reason::new(
        ReasonCode::RetryBackoff,
        format!(
            "An earlier attempt failed and it waits out the retry backoff: it may run again \
             at {} (in {}).",
            until.format("%Y-%m-%d %H:%M:%S UTC"),
            count(seconds as usize, "second", "seconds"),
        ),
    )
    .with(
        "until",
        until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
    .with("seconds", seconds)
}

fn queue_position(position: QueuePosition, priority: Priority) -> Reason {
    let ahead = position.ahead_higher + position.ahead_same;
    let mut parts = Vec::new();
    if position.ahead_higher > 0 {
        parts.push(format!("{} at a higher priority", position.ahead_higher));
    }
    if position.ahead_same > 0 {
        parts.push(format!(
            "{} at priority {priority} that arrived earlier",
            position.ahead_same
        ));
    }
    let verb = if ahead == 1 { "is" } else { "are" };
    Reason::new(
        ReasonCode::QueuePosition,
        format!(
            "{} {verb} ahead of it: {}.",
            count(ahead, "task", "tasks"),
            parts.join(", ")
        ),
    )
    .with("tasks_ahead", ahead)
    .with("ahead_higher_priority", position.ahead_higher)
    .with("ahead_same_priority", position.ahead_same)
    .with("priority", priority.get())
}

fn type_concurrency_limit(limit: &TypeLimit, task_type: WorkTaskType) -> Reason {
    let ids: Vec<serde_json::Value> = limit
        .running_ids
        .iter()
        .map(|id| serde_json::Value::String(id.to_string()))
        .collect();
    let figures = |reason: Reason| {
        reason
            .with("type", task_type.as_str())
            .with("limit", limit.limit)
            .with("running", limit.running)
            .with("running_tasks", ids.clone())
    };
    if limit.limit == 0 {
        return figures(Reason::new(
            ReasonCode::TypeConcurrencyLimit,
            format!(
                "Tasks of type {task_type} may not run at all: its concurrency limit \
                 (orchestrator.typeConcurrency) is 0."
            ),
        ));
    }
    let mut message = format!(
        "At most {} of type {task_type} may run at once and {} running",
        count(limit.limit, "task", "tasks"),
        if limit.running == 1 {
            "1 is".to_string()
        } else {
            format!("{} are", limit.running)
        },
    );
    if !limit.running_ids.is_empty() {
        let ids: Vec<String> = limit.running_ids.iter().map(ToString::to_string).collect();
        let shown = if limit.running_ids.len() < limit.running {
            " among them"
        } else {
            ""
        };
        message.push_str(&format!("{shown} ({})", ids.join(", ")));
    }
    message.push_str(": it starts when one of them ends.");
    figures(Reason::new(ReasonCode::TypeConcurrencyLimit, message))
}

fn no_worker_for_type(task_type: WorkTaskType) -> Reason {
    Reason::new(
        ReasonCode::NoWorkerForType,
        format!(
            "No connected worker runs {task_type} tasks and the orchestrator starts none for \
             them: start one, e.g. `mimir-aip worker --types {task_type}`."
        ),
    )
    .with("type", task_type.as_str())
}

fn leased_not_started(worker_id: &str) -> Reason {
    let message = if worker_id.is_empty() {
        "A worker has taken it from the queue and has not started it yet.".to_string()
    } else {
        format!("Worker {worker_id} has taken it from the queue and has not started it yet.")
    };
    Reason::new(ReasonCode::LeasedNotStarted, message).with("worker_id", worker_id)
}

fn running(worker_id: &str) -> Reason {
    let message = if worker_id.is_empty() {
        "It is running: nothing keeps it waiting.".to_string()
    } else {
        format!("It is running on worker {worker_id}: nothing keeps it waiting.")
    };
    Reason::new(ReasonCode::Running, message).with("worker_id", worker_id)
}

fn finished(status: WorkTaskStatus) -> Reason {
    let how = match status {
        WorkTaskStatus::Completed => "It has finished: it completed.",
        WorkTaskStatus::Failed => "It has finished: it failed.",
        WorkTaskStatus::Timeout => "It has finished: it ran past its deadline (timeout).",
        WorkTaskStatus::Cancelled => "It has finished: it was cancelled.",
        _ => "It has finished.",
    };
    Reason::new(ReasonCode::Finished, how).with("status", status.as_str())
}

/// `n` with its noun, singular or plural: `1 task`, `3 tasks`.
fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

impl Reason {
    fn with_message(mut self, message: impl Into<String>) -> Reason {
        self.message = message.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    /// A queued task with a worker for it and nothing in its way.
    fn facts(status: WorkTaskStatus) -> Facts {
        Facts {
            status,
            task_type: WorkTaskType::MlTraining,
            priority: Priority::new(5).unwrap(),
            now: now(),
            not_before: None,
            position: Some(QueuePosition::default()),
            type_limit: None,
            worker_for_type: true,
            backend: Vec::new(),
            worker_id: String::new(),
        }
    }

    fn codes(reasons: &[Reason]) -> Vec<ReasonCode> {
        reasons.iter().map(|r| r.code).collect()
    }

    #[test]
    fn a_task_behind_others_is_told_how_many_and_why() {
        let mut f = facts(WorkTaskStatus::Queued);
        f.position = Some(QueuePosition {
            ahead_higher: 1,
            ahead_same: 2,
        });
        let reasons = explain(&f);
        assert_eq!(codes(&reasons), [ReasonCode::QueuePosition]);
        assert_eq!(
            reasons[0].message,
            "3 tasks are ahead of it: 1 at a higher priority, 2 at priority 5 that arrived earlier."
        );
        let json = serde_json::to_value(&reasons[0]).unwrap();
        assert_eq!(json["code"], "queue_position");
        assert_eq!(json["tasks_ahead"], 3);
        assert_eq!(json["ahead_higher_priority"], 1);
        assert_eq!(json["ahead_same_priority"], 2);
        assert_eq!(json["priority"], 5);
    }

    #[test]
    fn one_task_ahead_reads_in_the_singular() {
        let mut f = facts(WorkTaskStatus::Queued);
        f.position = Some(QueuePosition {
            ahead_higher: 0,
            ahead_same: 1,
        });
        assert_eq!(
            explain(&f)[0].message,
            "1 task is ahead of it: 1 at priority 5 that arrived earlier."
        );
    }

    #[test]
    fn a_task_with_nothing_in_its_way_is_next() {
        let reasons = explain(&facts(WorkTaskStatus::Queued));
        assert_eq!(codes(&reasons), [ReasonCode::QueuePosition]);
        assert!(
            reasons[0].message.contains("next"),
            "{}",
            reasons[0].message
        );
        assert_eq!(reasons[0].details["tasks_ahead"], 0);
    }

    #[test]
    fn a_task_in_backoff_says_until_when() {
        let mut f = facts(WorkTaskStatus::Queued);
        f.position = None;
        f.not_before = Some(now() + Duration::milliseconds(4_200));
        let reasons = explain(&f);
        assert_eq!(codes(&reasons), [ReasonCode::RetryBackoff]);
        assert_eq!(reasons[0].details["until"], "2026-03-01T12:00:04.200Z");
        assert_eq!(reasons[0].details["seconds"], 5);
        assert!(reasons[0].message.contains("in 5 seconds"));
    }

    #[test]
    fn a_backoff_that_has_ended_is_no_reason() {
        let mut f = facts(WorkTaskStatus::Queued);
        f.not_before = Some(now() - Duration::seconds(1));
        assert_eq!(codes(&explain(&f)), [ReasonCode::QueuePosition]);
    }

    #[test]
    fn a_full_type_names_its_limit_and_the_running_tasks() {
        let running = uuid::Uuid::nil();
        let mut f = facts(WorkTaskStatus::Queued);
        f.type_limit = Some(TypeLimit {
            limit: 1,
            running: 1,
            running_ids: vec![running],
        });
        let reasons = explain(&f);
        assert_eq!(codes(&reasons), [ReasonCode::TypeConcurrencyLimit]);
        let r = &reasons[0];
        assert!(r.message.contains(&running.to_string()), "{}", r.message);
        assert!(r.message.contains("ml_training"), "{}", r.message);
        assert_eq!(r.details["limit"], 1);
        assert_eq!(r.details["running"], 1);
        assert_eq!(r.details["type"], "ml_training");
        assert_eq!(
            r.details["running_tasks"],
            serde_json::json!([running.to_string()])
        );
    }

    #[test]
    fn a_type_below_its_limit_is_no_reason() {
        let mut f = facts(WorkTaskStatus::Queued);
        f.type_limit = Some(TypeLimit {
            limit: 2,
            running: 1,
            running_ids: vec![uuid::Uuid::nil()],
        });
        assert_eq!(codes(&explain(&f)), [ReasonCode::QueuePosition]);
    }

    #[test]
    fn every_obstacle_is_listed_in_order_with_the_backends_last() {
        let mut f = facts(WorkTaskStatus::Queued);
        f.not_before = Some(now() + Duration::seconds(3));
        f.position = Some(QueuePosition {
            ahead_higher: 2,
            ahead_same: 0,
        });
        f.type_limit = Some(TypeLimit {
            limit: 0,
            running: 0,
            running_ids: Vec::new(),
        });
        f.worker_for_type = false;
        f.backend = vec![Reason::new(ReasonCode::MaxWorkersReached, "full")];
        assert_eq!(
            codes(&explain(&f)),
            [
                ReasonCode::RetryBackoff,
                ReasonCode::QueuePosition,
                ReasonCode::TypeConcurrencyLimit,
                ReasonCode::NoWorkerForType,
                ReasonCode::MaxWorkersReached,
            ]
        );
    }

    #[test]
    fn no_worker_for_the_type_says_how_to_start_one() {
        let mut f = facts(WorkTaskStatus::Queued);
        f.worker_for_type = false;
        let reasons = explain(&f);
        assert_eq!(codes(&reasons), [ReasonCode::NoWorkerForType]);
        assert!(reasons[0].message.contains("--types ml_training"));
    }

    #[test]
    fn a_leased_task_names_its_worker_and_the_backends_reasons() {
        let mut f = facts(WorkTaskStatus::Scheduled);
        f.worker_id = "w-1".into();
        f.backend = vec![Reason::new(ReasonCode::PodPending, "pending")];
        let reasons = explain(&f);
        assert_eq!(
            codes(&reasons),
            [ReasonCode::LeasedNotStarted, ReasonCode::PodPending]
        );
        assert!(reasons[0].message.contains("w-1"));
    }

    #[test]
    fn a_running_task_gets_one_running_reason() {
        for status in [WorkTaskStatus::Spawned, WorkTaskStatus::Executing] {
            let mut f = facts(status);
            f.worker_for_type = false;
            f.worker_id = "w-2".into();
            let reasons = explain(&f);
            assert_eq!(codes(&reasons), [ReasonCode::Running]);
            assert!(reasons[0].message.contains("w-2"));
        }
    }

    #[test]
    fn a_finished_task_gets_one_finished_reason_naming_its_status() {
        for status in [
            WorkTaskStatus::Completed,
            WorkTaskStatus::Failed,
            WorkTaskStatus::Timeout,
            WorkTaskStatus::Cancelled,
        ] {
            let reasons = explain(&facts(status));
            assert_eq!(codes(&reasons), [ReasonCode::Finished]);
            assert_eq!(reasons[0].details["status"], status.as_str());
        }
    }

    fn any_facts() -> impl Strategy<Value = Facts> {
        (
            0..WorkTaskStatus::COUNT,
            1i64..=10,
            proptest::option::of(-100i64..100),
            proptest::option::of((0usize..50, 0usize..50)),
            proptest::option::of((0usize..5, 0usize..5)),
            any::<bool>(),
            0usize..3,
        )
            .prop_map(
                |(status, priority, backoff, position, limit, worker, backend)| Facts {
                    status: WorkTaskStatus::ALL[status],
                    task_type: WorkTaskType::PipelineExecution,
                    priority: Priority::new(priority).unwrap(),
                    now: now(),
                    not_before: backoff.map(|s| now() + Duration::seconds(s)),
                    position: position.map(|(ahead_higher, ahead_same)| QueuePosition {
                        ahead_higher,
                        ahead_same,
                    }),
                    type_limit: limit.map(|(limit, running)| TypeLimit {
                        limit,
                        running,
                        running_ids: Vec::new(),
                    }),
                    worker_for_type: worker,
                    backend: vec![Reason::new(ReasonCode::MaxWorkersReached, "full"); backend],
                    worker_id: String::new(),
                },
            )
    }

    proptest! {
        #[test]
        fn a_waiting_task_always_gets_a_reason_and_a_started_one_exactly_one(f in any_facts()) {
            let reasons = explain(&f);
            match f.status {
                WorkTaskStatus::Queued | WorkTaskStatus::Scheduled => {
                    prop_assert!(!reasons.is_empty());
                    prop_assert!(reasons.iter().all(|r| r.code != ReasonCode::Running
                        && r.code != ReasonCode::Finished));
                }
                WorkTaskStatus::Spawned | WorkTaskStatus::Executing => {
                    prop_assert_eq!(codes(&reasons), [ReasonCode::Running]);
                }
                _ => prop_assert_eq!(codes(&reasons), [ReasonCode::Finished]),
            }
            for r in &reasons {
                prop_assert!(!r.message.is_empty());
            }
        }
    }
}
