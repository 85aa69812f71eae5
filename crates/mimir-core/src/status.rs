//! The work task status machine.
//!
//! ```text
//! queued ──► scheduled ──► spawned ──► executing ──► completed
//!   ▲            │            │            │
//!   └────────────┴────────────┴────────────┤ (retry: attempt failed, retries left)
//!                                          ├──► failed | timeout
//! any non-terminal state ───────────────────► cancelled
//! ```
//!
//! `completed`, `failed`, `timeout` and `cancelled` are terminal. Every change of
//! status goes through [`WorkTaskStatus::transition`], so an illegal move is an
//! error instead of a silent overwrite.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a work task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkTaskStatus {
    /// Waiting in the queue (possibly in retry backoff).
    Queued,
    /// Taken from the queue and assigned to a worker.
    Scheduled,
    /// The worker process or Kubernetes Job for it was started.
    Spawned,
    /// A worker is running it.
    Executing,
    /// Finished successfully.
    Completed,
    /// Failed with no retries left.
    Failed,
    /// Ran past its deadline.
    Timeout,
    /// Cancelled by a user.
    Cancelled,
}

/// Where `s` is in [`WorkTaskStatus::ALL`]; only called when compiling,
/// where the panic is a build error.
const fn place(s: WorkTaskStatus) -> usize {
    let mut i = 0;
    while i < WorkTaskStatus::COUNT {
        if WorkTaskStatus::ALL[i] as usize == s as usize {
            return i;
        }
        i += 1;
    }
    panic!("a work task status is missing from WorkTaskStatus::ALL");
}

// `ALL` holds no status twice, so the indices of the statuses are distinct.
const _: () = {
    let mut i = 0;
    while i < WorkTaskStatus::COUNT {
        assert!(
            place(WorkTaskStatus::ALL[i]) == i,
            "WorkTaskStatus::ALL lists a status twice"
        );
        i += 1;
    }
};

/// An attempted status change the machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} work task cannot become {to}")]
pub struct InvalidTransition {
    /// The current status.
    pub from: WorkTaskStatus,
    /// The refused target status.
    pub to: WorkTaskStatus,
}

impl WorkTaskStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [WorkTaskStatus; 8] = [
        WorkTaskStatus::Queued,
        WorkTaskStatus::Scheduled,
        WorkTaskStatus::Spawned,
        WorkTaskStatus::Executing,
        WorkTaskStatus::Completed,
        WorkTaskStatus::Failed,
        WorkTaskStatus::Timeout,
        WorkTaskStatus::Cancelled,
    ];

    /// How many statuses there are: the length of arrays indexed by status.
    pub const COUNT: usize = WorkTaskStatus::ALL.len();

    /// This status's place in [`WorkTaskStatus::ALL`], below
    /// [`WorkTaskStatus::COUNT`]: decided when compiling, as
    /// [`WorkTaskType::index`](crate::WorkTaskType::index) is, so a status
    /// added to the enum but not to `ALL` does not build.
    pub const fn index(self) -> usize {
        match self {
            WorkTaskStatus::Queued => const { place(WorkTaskStatus::Queued) },
            WorkTaskStatus::Scheduled => const { place(WorkTaskStatus::Scheduled) },
            WorkTaskStatus::Spawned => const { place(WorkTaskStatus::Spawned) },
            WorkTaskStatus::Executing => const { place(WorkTaskStatus::Executing) },
            WorkTaskStatus::Completed => const { place(WorkTaskStatus::Completed) },
            WorkTaskStatus::Failed => const { place(WorkTaskStatus::Failed) },
            WorkTaskStatus::Timeout => const { place(WorkTaskStatus::Timeout) },
            WorkTaskStatus::Cancelled => const { place(WorkTaskStatus::Cancelled) },
        }
    }

    /// The wire name (`"queued"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkTaskStatus::Queued => "queued",
            WorkTaskStatus::Scheduled => "scheduled",
            WorkTaskStatus::Spawned => "spawned",
            WorkTaskStatus::Executing => "executing",
            WorkTaskStatus::Completed => "completed",
            WorkTaskStatus::Failed => "failed",
            WorkTaskStatus::Timeout => "timeout",
            WorkTaskStatus::Cancelled => "cancelled",
        }
    }

    /// True once the task can never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkTaskStatus::Completed
                | WorkTaskStatus::Failed
                | WorkTaskStatus::Timeout
                | WorkTaskStatus::Cancelled
        )
    }

    /// True while a worker holds the task (scheduled, spawned or executing).
    pub fn is_running(self) -> bool {
        matches!(
            self,
            WorkTaskStatus::Scheduled | WorkTaskStatus::Spawned | WorkTaskStatus::Executing
        )
    }

    /// Whether the machine allows moving from `self` to `to`.
    pub fn can_become(self, to: WorkTaskStatus) -> bool {
        use WorkTaskStatus::*;
        matches!(
            (self, to),
            (Queued, Scheduled | Cancelled)
                | (Scheduled, Spawned | Executing)
                | (Spawned, Executing)
                | (
                    Scheduled | Spawned | Executing,
                    Queued | Failed | Timeout | Cancelled
                )
                | (Executing, Completed)
        )
    }

    /// Checks a status change: `Ok(to)` when allowed, the refusal otherwise.
    pub fn transition(self, to: WorkTaskStatus) -> Result<WorkTaskStatus, InvalidTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

impl fmt::Display for WorkTaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkTaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkTaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}; expected one of {}",
                    WorkTaskStatus::ALL.map(WorkTaskStatus::as_str).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::WorkTaskStatus::*;
    use super::*;

    #[test]
    fn terminal_states_never_move() {
        for from in WorkTaskStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in WorkTaskStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to} must be refused");
            }
        }
    }

    #[test]
    fn the_happy_path_is_allowed() {
        let path = [Queued, Scheduled, Spawned, Executing, Completed];
        for pair in path.windows(2) {
            assert_eq!(pair[0].transition(pair[1]), Ok(pair[1]));
        }
    }

    #[test]
    fn a_queued_task_cannot_complete_or_fail_without_running() {
        assert_eq!(
            Queued.transition(Completed),
            Err(InvalidTransition {
                from: Queued,
                to: Completed
            })
        );
        assert!(!Queued.can_become(Failed));
        assert!(!Queued.can_become(Queued));
        assert!(Queued.can_become(Cancelled));
        assert!(Executing.can_become(Cancelled));
        assert!(Executing.can_become(Queued));
        assert!(!Scheduled.can_become(Completed));
    }

    #[test]
    fn parses_every_wire_name() {
        for status in WorkTaskStatus::ALL {
            assert_eq!(status.as_str().parse::<WorkTaskStatus>(), Ok(status));
        }
        assert!("done".parse::<WorkTaskStatus>().is_err());
    }
}
