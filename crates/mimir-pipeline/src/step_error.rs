//! Why a step failed.

use crate::ActionError;
use crate::context::human_bytes;
use mimir_core::ErrorClass;

/// Why a step failed; its text is the step record's `error`.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step names an action that is not registered (the pipeline was
    /// stored before the registry changed, or was never validated).
    #[error("no action \"{plugin}.{action}\" is registered")]
    UnknownAction {
        /// The plugin named by the step.
        plugin: String,
        /// The action named by the step.
        action: String,
    },
    /// A reference in the parameters cannot be resolved.
    #[error("{field}: cannot resolve \"{reference}\": {reason}")]
    Reference {
        /// Where the reference sits, e.g. `parameters.input` or `parameters.list[2]`.
        field: String,
        /// The reference as written.
        reference: String,
        /// Which part is missing.
        reason: String,
    },
    /// An `output` mapping cannot be applied to the action's result.
    #[error("{field}: cannot resolve \"{reference}\": {reason}")]
    Output {
        /// The mapping's key, e.g. `output.rows`.
        field: String,
        /// The reference as written.
        reference: String,
        /// Which part of the result is missing.
        reason: String,
    },
    /// The action failed.
    #[error(transparent)]
    Action(ActionError),
    /// Storing the step's entry would make the context bigger than the cap.
    #[error(
        "pipeline context is {}, over the {} cap",
        human_bytes(*size),
        human_bytes(*cap)
    )]
    ContextCap {
        /// The context's size with this entry, in bytes of compact JSON.
        size: usize,
        /// The cap, in bytes.
        cap: usize,
    },
    /// The run was cancelled before or during the step.
    #[error("cancelled")]
    Cancelled,
    /// The step ran past its deadline: its own `timeout_ms`, the pipeline's
    /// `step_timeout_ms`, or what was left of the task's `timeout_ms`.
    #[error("timed out after {after_ms} ms ({limit})")]
    Timeout {
        /// How long it was allowed.
        after_ms: u64,
        /// Which limit it reached, e.g. `the step's timeout_ms`.
        limit: &'static str,
    },
}

impl StepError {
    /// Whether retrying can help: bad pipelines and bad input cannot be fixed
    /// by running again; timeouts and what the action says is transient can.
    pub fn class(&self) -> ErrorClass {
        match self {
            StepError::UnknownAction { .. }
            | StepError::Reference { .. }
            | StepError::Output { .. }
            | StepError::ContextCap { .. } => ErrorClass::Permanent,
            StepError::Action(error) => error.class(),
            StepError::Cancelled | StepError::Timeout { .. } => ErrorClass::Transient,
        }
    }
}

impl From<ActionError> for StepError {
    fn from(error: ActionError) -> StepError {
        match error {
            // One variant for cancellation, whoever noticed it first.
            ActionError::Cancelled => StepError::Cancelled,
            other => StepError::Action(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_message_names_size_and_cap() {
        let e = StepError::ContextCap {
            size: 12_897_485,
            cap: 10_485_760,
        };
        assert_eq!(
            e.to_string(),
            "pipeline context is 12.3 MiB, over the 10.0 MiB cap"
        );
    }

    #[test]
    fn action_cancellation_is_step_cancellation() {
        assert!(matches!(
            StepError::from(ActionError::Cancelled),
            StepError::Cancelled
        ));
    }
}
