//! Which statuses a task listing asks for: one status, a group, or a comma
//! list of both (`?status=running`, `?status=queued,failed`).
//!
//! The groups name what users look for rather than the machine's steps:
//! `running` is every task a worker holds (`scheduled`, `spawned`,
//! `executing`), `waiting` every task not yet started (`queued`, `scheduled`:
//! a scheduled task is leased by a worker but not begun).

use crate::WorkTaskStatus;
use std::fmt;
use std::str::FromStr;

/// The groups a filter may name, with their statuses.
pub const STATUS_GROUPS: [(&str, &[WorkTaskStatus]); 2] = [
    (
        "running",
        &[
            WorkTaskStatus::Scheduled,
            WorkTaskStatus::Spawned,
            WorkTaskStatus::Executing,
        ],
    ),
    (
        "waiting",
        &[WorkTaskStatus::Queued, WorkTaskStatus::Scheduled],
    ),
];

/// A non-empty set of statuses, in life-cycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusFilter {
    /// Bit `i` stands for `WorkTaskStatus::ALL[i]`.
    bits: u8,
}

impl StatusFilter {
    /// The statuses, in life-cycle order.
    pub fn statuses(self) -> impl Iterator<Item = WorkTaskStatus> {
        WorkTaskStatus::ALL
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, status)| status)
    }

    /// Whether `status` is one of them.
    pub fn contains(self, status: WorkTaskStatus) -> bool {
        self.statuses().any(|s| s == status)
    }

    fn bit(status: WorkTaskStatus) -> u8 {
        let index = WorkTaskStatus::ALL
            .iter()
            .position(|s| *s == status)
            .unwrap_or_default();
        1 << index
    }
}

impl From<WorkTaskStatus> for StatusFilter {
    fn from(status: WorkTaskStatus) -> StatusFilter {
        StatusFilter {
            bits: StatusFilter::bit(status),
        }
    }
}

impl FromStr for StatusFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<StatusFilter, String> {
        let mut bits = 0;
        for name in text.split(',').map(str::trim) {
            if let Some((_, statuses)) = STATUS_GROUPS.iter().find(|(group, _)| *group == name) {
                for status in *statuses {
                    bits |= StatusFilter::bit(*status);
                }
                continue;
            }
            match name.parse::<WorkTaskStatus>() {
                Ok(status) => bits |= StatusFilter::bit(status),
                Err(_) => {
                    return Err(format!(
                        "unknown status {name:?}; expected one of {}, the groups {}, or a comma list of them",
                        WorkTaskStatus::ALL.map(WorkTaskStatus::as_str).join(", "),
                        STATUS_GROUPS
                            .iter()
                            .map(|(group, statuses)| format!(
                                "{group} ({})",
                                statuses
                                    .iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ));
                }
            }
        }
        Ok(StatusFilter { bits })
    }
}

impl fmt::Display for StatusFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.statuses().map(WorkTaskStatus::as_str).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkTaskStatus::*;

    fn parse(text: &str) -> Vec<WorkTaskStatus> {
        text.parse::<StatusFilter>()
            .expect("a filter")
            .statuses()
            .collect()
    }

    #[test]
    fn one_status_is_itself() {
        for status in WorkTaskStatus::ALL {
            assert_eq!(parse(status.as_str()), vec![status]);
            assert_eq!(StatusFilter::from(status).to_string(), status.as_str());
        }
    }

    #[test]
    fn running_is_every_status_a_worker_holds() {
        assert_eq!(parse("running"), vec![Scheduled, Spawned, Executing]);
        let running: StatusFilter = "running".parse().expect("a filter");
        for status in WorkTaskStatus::ALL {
            assert_eq!(running.contains(status), status.is_running(), "{status}");
        }
    }

    #[test]
    fn waiting_is_every_status_not_yet_started() {
        assert_eq!(parse("waiting"), vec![Queued, Scheduled]);
    }

    #[test]
    fn comma_lists_merge_in_life_cycle_order() {
        assert_eq!(parse("failed, queued"), vec![Queued, Failed]);
        assert_eq!(
            parse("waiting,running"),
            vec![Queued, Scheduled, Spawned, Executing]
        );
        assert_eq!(
            "failed,queued"
                .parse::<StatusFilter>()
                .map(|f| f.to_string()),
            Ok("queued,failed".into())
        );
    }

    #[test]
    fn unknown_and_empty_names_are_refused_naming_them() {
        for bad in ["done", "queued,done", "", "queued,", "RUNNING"] {
            let error = bad.parse::<StatusFilter>().expect_err(bad);
            assert!(error.starts_with("unknown status"), "{bad}: {error}");
            assert!(
                error.contains("running (scheduled, spawned, executing)"),
                "{error}"
            );
        }
    }
}
