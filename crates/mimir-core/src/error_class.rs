//! Whether retrying a failed attempt can help.
//!
//! A worker classifies each failure it reports. A permanent one (a bad
//! parameter, a reference that cannot resolve, a 4xx answer, a step over its
//! memory limit) ends the task at once, since every retry would fail the same
//! way; a transient one (a refused connection, a timeout, a 5xx or 429 answer,
//! a lost worker) is retried under the retry rules. An unclassified failure is
//! treated as transient, as before classes existed.

use serde::{Deserialize, Serialize};

/// The class of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Retrying cannot help: the task fails now, whatever retries are left.
    Permanent,
    /// It may work next time: retried while retries remain.
    Transient,
}

impl ErrorClass {
    /// The wire name: `permanent` or `transient`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Transient => "transient",
        }
    }

    /// True when a failure of this class may be retried; `None` (not
    /// classified) may.
    pub fn retryable(class: Option<ErrorClass>) -> bool {
        class != Some(ErrorClass::Permanent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permanent_failures_are_not_retried() {
        assert!(!ErrorClass::retryable(Some(ErrorClass::Permanent)));
        assert!(ErrorClass::retryable(Some(ErrorClass::Transient)));
        assert!(ErrorClass::retryable(None));
        assert_eq!(
            serde_json::to_string(&ErrorClass::Permanent).unwrap(),
            "\"permanent\""
        );
    }
}
