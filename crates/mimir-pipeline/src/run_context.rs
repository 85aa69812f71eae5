//! What an action knows about the run it belongs to.

use crate::{Checkpoints, Storages};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The run a pipeline belongs to: identity for logs, the attempt number for
/// actions that behave differently on retries, cancellation, and the trace
/// context to forward.
///
/// The caller fills every field except [`RunContext::step`], which the engine
/// sets for each action it runs.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// 0 on the first attempt; equal to the task's `retry_count`.
    pub attempt: u32,
    /// The work task running the pipeline.
    pub worktask_id: String,
    /// The pipeline being run.
    pub pipeline_id: String,
    /// Cancels the run. The engine checks it before each step and abandons a
    /// running action as soon as it fires; `core.sleep` and `http.request`
    /// also stop on their own when used outside the engine. Cancel it, never
    /// replace it, to stop a run.
    pub cancel: CancellationToken,
    /// W3C `traceparent` header value, forwarded on outgoing HTTP requests so
    /// the callee joins the task's trace.
    pub traceparent: Option<String>,
    /// The step being run. Set by the engine; empty outside a step.
    pub step: String,
    /// When the whole run must end (the task's `timeout_ms`), if ever.
    pub deadline: Option<Instant>,
    /// The longest a step without its own `timeout_ms` may run (the
    /// pipeline's `step_timeout_ms`), if any.
    pub step_timeout: Option<Duration>,
    /// The storages `storage.*` steps may use (the task's project's
    /// configs); `None` where this process has no storage access.
    pub storages: Option<Arc<Storages>>,
    /// The pipeline's checkpoints for `checkpoint.*` steps, a fresh value
    /// per run; `None` where the run has none (those steps then fail).
    pub checkpoints: Option<Arc<Checkpoints>>,
}

impl RunContext {
    /// A context for `worktask_id` running `pipeline_id`, first attempt, with
    /// a fresh cancellation token and no trace context.
    pub fn new(worktask_id: impl Into<String>, pipeline_id: impl Into<String>) -> RunContext {
        RunContext {
            worktask_id: worktask_id.into(),
            pipeline_id: pipeline_id.into(),
            ..RunContext::default()
        }
    }

    /// The same context for attempt `attempt`.
    pub fn with_attempt(mut self, attempt: u32) -> RunContext {
        self.attempt = attempt;
        self
    }

    /// The same context, cancelled by `cancel`.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> RunContext {
        self.cancel = cancel;
        self
    }

    /// The same context, ending the run at `deadline`.
    pub fn with_deadline(mut self, deadline: Instant) -> RunContext {
        self.deadline = Some(deadline);
        self
    }

    /// The same context, with steps that set no `timeout_ms` limited to `timeout`.
    pub fn with_step_timeout(mut self, timeout: Duration) -> RunContext {
        self.step_timeout = Some(timeout);
        self
    }

    /// The same context, with `storages` for the `storage.*` steps.
    pub fn with_storages(mut self, storages: Arc<Storages>) -> RunContext {
        self.storages = Some(storages);
        self
    }

    /// The same context, with `checkpoints` for the `checkpoint.*` steps.
    pub fn with_checkpoints(mut self, checkpoints: Arc<Checkpoints>) -> RunContext {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// The same context, forwarding `traceparent` on HTTP requests.
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> RunContext {
        self.traceparent = Some(traceparent.into());
        self
    }
}
