//! The task state machine's decisions as pure functions: what a result,
//! a lease expiry or a cancel does to a task, and what is refused.
//!
//! Every store backend reads a task's [`Current`] state inside its
//! transaction, asks the planner, and writes what the [`Plan`] says. The
//! rules thus live once, and two backends cannot drift apart on them.

use crate::{
    AttemptEnd, AttemptOutcome, ErrorClass, InvalidTransition, RetryDecision, RetryPolicy,
    WorkTaskStatus,
};
use chrono::{DateTime, Utc};

/// What a store knows of a task when an attempt may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current<'a> {
    /// Its status.
    pub status: WorkTaskStatus,
    /// Its current attempt (0 before the first lease).
    pub attempt: u32,
    /// The worker holding the current attempt ("" when none).
    pub worker_id: &'a str,
    /// Retries used.
    pub retry_count: u32,
    /// Retries allowed.
    pub max_retries: u32,
}

/// A worker's report of how its attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report<'a> {
    /// The reporting worker; `None` for the orchestrator itself, which may
    /// end any attempt.
    pub by: Option<&'a str>,
    /// The attempt it names, if any.
    pub attempt: Option<u32>,
    /// What happened.
    pub outcome: AttemptOutcome,
    /// Whether a retry could help, when it failed.
    pub class: Option<ErrorClass>,
}

/// What the store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The task completed.
    Complete,
    /// Back to the queue as retry `retry_count`, eligible from `not_before`.
    Retry {
        /// The task's new `retry_count`.
        retry_count: u32,
        /// When it may run again.
        not_before: DateTime<Utc>,
        /// How the ended attempt is recorded in the history.
        end: AttemptEnd,
    },
    /// The task ends in `status` (`failed` or `timeout`).
    End {
        /// Its final status.
        status: WorkTaskStatus,
        /// How the ended attempt is recorded in the history.
        end: AttemptEnd,
    },
}

impl Plan {
    /// The task's status once the plan is written.
    pub fn status(self) -> WorkTaskStatus {
        match self {
            Plan::Complete => WorkTaskStatus::Completed,
            Plan::Retry { .. } => WorkTaskStatus::Queued,
            Plan::End { status, .. } => status,
        }
    }
}

/// Why a report is refused; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The task is not running: it ended, or was never leased.
    Transition(InvalidTransition),
    /// Another worker holds the current attempt.
    NotLeaseHolder,
    /// The report is for an attempt that is no longer current.
    StaleAttempt {
        /// The attempt reported.
        attempt: u32,
        /// The current one.
        current: u32,
    },
}

/// What a worker's report of its attempt does; `random` in `[0, 1)` spreads
/// the backoff.
pub fn report(
    current: Current<'_>,
    report: Report<'_>,
    policy: &RetryPolicy,
    at: DateTime<Utc>,
    random: f64,
) -> Result<Plan, Refusal> {
    let Report {
        by,
        attempt,
        outcome,
        class,
    } = report;
    let target = match outcome {
        AttemptOutcome::Completed => WorkTaskStatus::Completed,
        AttemptOutcome::Failed => WorkTaskStatus::Failed,
        AttemptOutcome::Timeout => WorkTaskStatus::Timeout,
    };
    if !current.status.is_running() {
        return Err(Refusal::Transition(InvalidTransition {
            from: current.status,
            to: target,
        }));
    }
    if by.is_some_and(|worker| worker != current.worker_id) {
        return Err(Refusal::NotLeaseHolder);
    }
    if let Some(attempt) = attempt
        && attempt != current.attempt
    {
        return Err(Refusal::StaleAttempt {
            attempt,
            current: current.attempt,
        });
    }
    let end = match outcome {
        AttemptOutcome::Completed => return Ok(Plan::Complete),
        AttemptOutcome::Failed => AttemptEnd::Failed,
        AttemptOutcome::Timeout => AttemptEnd::Timeout,
    };
    Ok(failed(current, end, class, target, policy, at, random))
}

/// What the expiry of attempt `attempt`'s lease does: `None` when that
/// attempt is no longer the running one (it ended, or a newer one began).
/// A lost worker may do better elsewhere: the attempt counts as transient.
pub fn expiry(
    current: Current<'_>,
    attempt: u32,
    policy: &RetryPolicy,
    at: DateTime<Utc>,
    random: f64,
) -> Option<Plan> {
    (current.status.is_running() && current.attempt == attempt).then(|| {
        failed(
            current,
            AttemptEnd::LeaseExpired,
            Some(ErrorClass::Transient),
            WorkTaskStatus::Failed,
            policy,
            at,
            random,
        )
    })
}

/// What cancelling a task in `status` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancel {
    /// The task leaves the queue (it was queued).
    pub leaves_queue: bool,
    /// Its running attempt ends as cancelled, and its worker must stop it.
    pub ends_attempt: bool,
}

/// Whether a task in `status` may be cancelled, and what that does.
pub fn cancel(status: WorkTaskStatus) -> Result<Cancel, InvalidTransition> {
    status.transition(WorkTaskStatus::Cancelled)?;
    Ok(Cancel {
        leaves_queue: status == WorkTaskStatus::Queued,
        ends_attempt: status.is_running(),
    })
}

/// An attempt that did not complete: retried while retries remain and the
/// error may pass, else the task ends in `final_status`.
fn failed(
    current: Current<'_>,
    end: AttemptEnd,
    class: Option<ErrorClass>,
    final_status: WorkTaskStatus,
    policy: &RetryPolicy,
    at: DateTime<Utc>,
    random: f64,
) -> Plan {
    let decision = if ErrorClass::retryable(class) {
        policy.decide(current.retry_count, current.max_retries, random)
    } else {
        // Every retry would fail the same way.
        RetryDecision::Fail
    };
    match decision {
        RetryDecision::Retry { retry_count, delay } => {
            let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            Plan::Retry {
                retry_count,
                not_before: at.checked_add_signed(delay).unwrap_or(at),
                end,
            }
        }
        RetryDecision::Fail => Plan::End {
            status: final_status,
            end,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn running(worker_id: &str) -> Current<'_> {
        Current {
            status: WorkTaskStatus::Executing,
            attempt: 2,
            worker_id,
            retry_count: 1,
            max_retries: 3,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            jitter: 0.0,
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("time")
    }

    fn by(worker: &str, attempt: Option<u32>, outcome: AttemptOutcome) -> Report<'_> {
        Report {
            by: Some(worker),
            attempt,
            outcome,
            class: None,
        }
    }

    fn reported(outcome: AttemptOutcome, class: Option<ErrorClass>) -> Result<Plan, Refusal> {
        let report_ = Report {
            class,
            ..by("w", Some(2), outcome)
        };
        report(running("w"), report_, &policy(), at(), 0.5)
    }

    #[test]
    fn a_completed_report_completes() {
        assert_eq!(
            reported(AttemptOutcome::Completed, None),
            Ok(Plan::Complete)
        );
    }

    #[test]
    fn a_failure_with_retries_left_is_retried_after_its_backoff() {
        let plan = reported(AttemptOutcome::Failed, None).expect("plan");
        let Plan::Retry {
            retry_count,
            not_before,
            end,
        } = plan
        else {
            panic!("expected a retry, got {plan:?}")
        };
        assert_eq!(retry_count, 2);
        assert!(not_before > at());
        assert_eq!(end, AttemptEnd::Failed);
        assert_eq!(plan.status(), WorkTaskStatus::Queued);
    }

    #[test]
    fn a_permanent_failure_ends_the_task_at_once() {
        assert_eq!(
            reported(AttemptOutcome::Failed, Some(ErrorClass::Permanent)),
            Ok(Plan::End {
                status: WorkTaskStatus::Failed,
                end: AttemptEnd::Failed
            })
        );
    }

    #[test]
    fn a_timeout_without_retries_left_ends_in_timeout() {
        let current = Current {
            retry_count: 3,
            ..running("w")
        };
        let plan = report(
            current,
            by("w", None, AttemptOutcome::Timeout),
            &policy(),
            at(),
            0.5,
        );
        assert_eq!(
            plan,
            Ok(Plan::End {
                status: WorkTaskStatus::Timeout,
                end: AttemptEnd::Timeout
            })
        );
    }

    #[test]
    fn reports_of_others_stale_attempts_and_ended_tasks_are_refused() {
        let p = policy();
        let other = report(
            running("w"),
            by("x", Some(2), AttemptOutcome::Completed),
            &p,
            at(),
            0.5,
        );
        assert_eq!(other, Err(Refusal::NotLeaseHolder));
        let stale = report(
            running("w"),
            by("w", Some(1), AttemptOutcome::Completed),
            &p,
            at(),
            0.5,
        );
        assert_eq!(
            stale,
            Err(Refusal::StaleAttempt {
                attempt: 1,
                current: 2
            })
        );
        let ended = Current {
            status: WorkTaskStatus::Completed,
            ..running("w")
        };
        let orchestrator = Report {
            by: None,
            ..by("w", None, AttemptOutcome::Failed)
        };
        let late = report(ended, orchestrator, &p, at(), 0.5);
        assert!(matches!(late, Err(Refusal::Transition(_))));
    }

    #[test]
    fn an_expired_lease_retries_only_the_current_running_attempt() {
        let p = policy();
        assert!(matches!(
            expiry(running("w"), 2, &p, at(), 0.5),
            Some(Plan::Retry {
                end: AttemptEnd::LeaseExpired,
                ..
            })
        ));
        assert_eq!(expiry(running("w"), 1, &p, at(), 0.5), None);
        let queued = Current {
            status: WorkTaskStatus::Queued,
            ..running("w")
        };
        assert_eq!(expiry(queued, 2, &p, at(), 0.5), None);
    }

    #[test]
    fn cancelling_says_what_leaves_the_queue_and_what_stops() {
        assert_eq!(
            cancel(WorkTaskStatus::Queued),
            Ok(Cancel {
                leaves_queue: true,
                ends_attempt: false
            })
        );
        assert_eq!(
            cancel(WorkTaskStatus::Executing),
            Ok(Cancel {
                leaves_queue: false,
                ends_attempt: true
            })
        );
        assert!(cancel(WorkTaskStatus::Completed).is_err());
    }
}
