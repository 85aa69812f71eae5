//! The history of a task's attempts: one record per attempt that ended, so a
//! user can see which worker ran it, when, and why it failed or was retried.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptEnd {
    /// The work is done.
    Completed,
    /// The worker reported a failure.
    Failed,
    /// The attempt ran past its deadline.
    Timeout,
    /// The worker went silent and its lease ran out.
    LeaseExpired,
    /// A user cancelled the task while it ran.
    Cancelled,
}

/// One ended attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// Which attempt (1 for the first lease).
    pub attempt: u32,
    /// The worker that held it.
    pub worker_id: String,
    /// When the worker started it, when it said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: AttemptEnd,
    /// Why it failed; empty when it did not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Whether the failure could be retried, as the worker classified it;
    /// absent when the attempt did not fail or was not classified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<crate::ErrorClass>,
}

/// Longest error kept per attempt in the history, in bytes: a retry storm
/// of large messages must not grow one task's record without bound (the
/// full message stays on the task itself).
pub const MAX_ATTEMPT_ERROR: usize = 4096;

impl Attempt {
    /// The record of an attempt that ended, its error cut to
    /// [`MAX_ATTEMPT_ERROR`] bytes on a character boundary.
    pub fn ended(
        attempt: u32,
        worker_id: String,
        started_at: Option<DateTime<Utc>>,
        ended_at: DateTime<Utc>,
        outcome: AttemptEnd,
        mut error: String,
        error_class: Option<crate::ErrorClass>,
    ) -> Attempt {
        if error.len() > MAX_ATTEMPT_ERROR {
            let mut end = MAX_ATTEMPT_ERROR;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error.truncate(end);
            error.push('…');
        }
        Attempt {
            attempt,
            worker_id,
            started_at,
            ended_at,
            outcome,
            error,
            error_class,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_without_empty_fields() {
        let attempt = Attempt {
            attempt: 2,
            worker_id: "w-1".into(),
            started_at: None,
            ended_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            outcome: AttemptEnd::LeaseExpired,
            error: String::new(),
            error_class: None,
        };
        let text = serde_json::to_string(&attempt).unwrap();
        assert!(!text.contains("started_at") && !text.contains("error"));
        assert!(text.contains(r#""outcome":"lease_expired""#));
        assert_eq!(serde_json::from_str::<Attempt>(&text).unwrap(), attempt);
    }
}
