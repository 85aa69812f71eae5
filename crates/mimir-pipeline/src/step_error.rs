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
    /// The step's `when` program failed or stopped.
    #[error("when: {0}")]
    When(String),
    /// A `for_each` step's `items` is not an array, or is too long.
    #[error("for_each.items: \"{reference}\" {message}")]
    Items {
        /// The reference as written.
        reference: String,
        /// What it gave instead, e.g. `is an object, not an array`.
        message: String,
    },
    /// An item of a `for_each` step failed (the lowest failing index).
    #[error("item {index}: step \"{step}\" ({action}) failed: {error}")]
    Item {
        /// The item's index.
        index: usize,
        /// The inner step that failed.
        step: String,
        /// Its `plugin.action`.
        action: String,
        /// Why.
        error: Box<StepError>,
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
            | StepError::ContextCap { .. }
            | StepError::When(_)
            | StepError::Items { .. } => ErrorClass::Permanent,
            StepError::Action(error) => error.class(),
            StepError::Item { error, .. } => error.class(),
            StepError::Cancelled | StepError::Timeout { .. } => ErrorClass::Transient,
        }
    }
}

impl StepError {
    /// What failed first: the inner step's error for a failed item, at any
    /// depth of loops; the error itself otherwise.
    pub fn root(&self) -> &StepError {
        match self {
            StepError::Item { error, .. } => error.root(),
            other => other,
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
    fn an_item_failure_names_the_index_and_inner_step_and_keeps_its_class() {
        let e = StepError::Item {
            index: 3,
            step: "fetch".into(),
            action: "http.request".into(),
            error: Box::new(StepError::Timeout {
                after_ms: 5,
                limit: "the step's timeout_ms",
            }),
        };
        assert_eq!(
            e.to_string(),
            "item 3: step \"fetch\" (http.request) failed: timed out after 5 ms (the step's timeout_ms)"
        );
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(matches!(e.root(), StepError::Timeout { .. }));
    }

    #[test]
    fn action_cancellation_is_step_cancellation() {
        assert!(matches!(
            StepError::from(ActionError::Cancelled),
            StepError::Cancelled
        ));
    }
}
