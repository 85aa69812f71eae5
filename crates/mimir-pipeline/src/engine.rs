//! Running a pipeline's steps in order.

use crate::context::{Context, DEFAULT_CONTEXT_CAP_BYTES};
use crate::resolve::{Scope, apply_output, resolve_parameters};
use crate::{Execution, Registry, RunContext, Step, StepError, StepRecord, StepStatus};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Told as a run goes, so a caller can report progress and enforce deadlines
/// from outside (a supervisor that must stop a step which never yields).
pub trait Watcher: Send {
    /// A step is about to run and must end by `deadline`, if set.
    fn step_started(&mut self, step: &Step, deadline: Option<tokio::time::Instant>) {
        let _ = (step, deadline);
    }

    /// A step's record (completed, failed or skipped) exists.
    fn step_done(&mut self, record: &StepRecord);
}

/// A watcher that only wants records.
struct OnStep<'a>(&'a mut (dyn FnMut(&StepRecord) + Send));

impl Watcher for OnStep<'_> {
    fn step_done(&mut self, record: &StepRecord) {
        (self.0)(record)
    }
}

/// Runs pipelines with the actions of a [`Registry`].
///
/// Steps run one after another. Before a step runs, the references in its
/// parameters are resolved against the execution's parameters and the entries
/// of earlier steps; after it, its result (mapped by `output`, if any) becomes
/// its context entry. The first failing step stops the run and the rest are
/// recorded as skipped.
#[derive(Debug, Clone)]
pub struct Engine {
    registry: Arc<Registry>,
    context_cap_bytes: usize,
}

impl Engine {
    /// An engine running `registry`'s actions, with the context capped at
    /// [`DEFAULT_CONTEXT_CAP_BYTES`].
    pub fn new(registry: Arc<Registry>) -> Engine {
        Engine {
            registry,
            context_cap_bytes: DEFAULT_CONTEXT_CAP_BYTES,
        }
    }

    /// The same engine with the serialized context capped at `bytes`.
    /// Defaults to [`DEFAULT_CONTEXT_CAP_BYTES`] (10 MiB).
    pub fn with_context_cap(mut self, bytes: usize) -> Engine {
        self.context_cap_bytes = bytes;
        self
    }

    /// The actions this engine runs.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The context cap, in bytes of compact JSON.
    pub fn context_cap_bytes(&self) -> usize {
        self.context_cap_bytes
    }

    /// Runs `steps` with the execution's `params`, calling `on_step` with each
    /// record (completed, failed or skipped) as soon as it exists, so callers
    /// can report progress.
    ///
    /// Never panics on bad input: an unvalidated pipeline fails at the step at
    /// fault. When `run.cancel` fires, the running action is abandoned and the
    /// step fails with `cancelled`.
    pub async fn run(
        &self,
        steps: &[Step],
        params: &Map<String, Value>,
        run: &RunContext,
        on_step: &mut (dyn FnMut(&StepRecord) + Send),
    ) -> Execution {
        self.run_watched(steps, params, run, &mut OnStep(on_step))
            .await
    }

    /// [`Engine::run`], telling `watcher` when each step starts (with its
    /// deadline) as well as when it ends.
    ///
    /// A step's deadline is the earliest of its `timeout_ms`, else
    /// `run.step_timeout`, and `run.deadline`; an action still running then
    /// is abandoned and the step fails with [`StepError::Timeout`]. An action
    /// that never yields (a CPU-bound jq program) cannot be abandoned from
    /// inside the process: that is what the watcher's deadline is for.
    pub async fn run_watched(
        &self,
        steps: &[Step],
        params: &Map<String, Value>,
        run: &RunContext,
        watcher: &mut dyn Watcher,
    ) -> Execution {
        let mut context = Context::new();
        let mut records = Vec::with_capacity(steps.len());
        let mut error = None;
        let mut error_class = None;
        let mut cancelled = false;
        let mut timed_out = false;
        for step in steps {
            if error.is_some() {
                let record = record(step, StepStatus::Skipped, 0.0, String::new());
                watcher.step_done(&record);
                records.push(record);
                continue;
            }
            let limit = deadline(step, run);
            watcher.step_started(step, limit.map(|(at, _)| at));
            // A span per step costs a few microseconds: it exists for traces,
            // and for debug logs; warnings name the step themselves.
            let span = if mimir_telemetry::otel::enabled() {
                let span = tracing::info_span!(
                    "pipeline_step",
                    otel.name = %format_args!("step {}", step.name),
                    step = %step.name,
                    action = %step.qualified_action(),
                    worktask_id = %run.worktask_id,
                    pipeline_id = %run.pipeline_id,
                    attempt = run.attempt,
                );
                // Run in a process of its own (an executor), the step joins
                // the attempt's trace through the context it was handed.
                if let Some(traceparent) = &run.traceparent
                    && outer_span_is_none()
                {
                    mimir_telemetry::propagation::set_parent(&span, traceparent);
                }
                span
            } else {
                tracing::debug_span!(
                    "pipeline_step",
                    step = %step.name,
                    action = %step.qualified_action(),
                    worktask_id = %run.worktask_id,
                    pipeline_id = %run.pipeline_id,
                    attempt = run.attempt,
                )
            };
            let started = Instant::now();
            let outcome = self
                .run_step(step, params, &mut context, run, limit)
                .instrument(span.clone())
                .await;
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let record = match outcome {
                Ok(()) => {
                    span.in_scope(|| tracing::debug!(duration_ms, "step completed"));
                    record(step, StepStatus::Completed, duration_ms, String::new())
                }
                Err(failure) => {
                    span.in_scope(|| {
                        tracing::warn!(
                            worktask_id = %run.worktask_id,
                            pipeline_id = %run.pipeline_id,
                            step = %step.name,
                            action = %step.qualified_action(),
                            duration_ms,
                            error = %failure,
                            "step failed"
                        )
                    });
                    cancelled = matches!(failure, StepError::Cancelled);
                    timed_out = matches!(failure, StepError::Timeout { .. });
                    error_class = Some(failure.class());
                    error = Some(format!(
                        "step \"{}\" ({}) failed: {failure}",
                        step.name,
                        step.qualified_action()
                    ));
                    record(step, StepStatus::Failed, duration_ms, failure.to_string())
                }
            };
            watcher.step_done(&record);
            records.push(record);
        }
        Execution {
            steps: records,
            context: context.into_entries(),
            error,
            cancelled,
            timed_out,
            error_class,
        }
    }

    async fn run_step(
        &self,
        step: &Step,
        params: &Map<String, Value>,
        context: &mut Context,
        run: &RunContext,
        limit: Option<(tokio::time::Instant, Limit)>,
    ) -> Result<(), StepError> {
        if run.cancel.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let action = self
            .registry
            .get(&step.plugin, &step.action)
            .ok_or_else(|| StepError::UnknownAction {
                plugin: step.plugin.clone(),
                action: step.action.clone(),
            })?;
        let scope = Scope {
            params,
            context: context.entries(),
        };
        let resolved = resolve_parameters(&step.parameters, &scope)?;
        let step_run = RunContext {
            step: step.name.clone(),
            ..run.clone()
        };
        // Racing the token here makes every action cancellable, including
        // plugins that never look at it.
        let expired = async {
            match limit {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            result = action.run(resolved, &step_run) => result?,
            () = run.cancel.cancelled() => return Err(StepError::Cancelled),
            () = expired => {
                let (_, limit) = limit.expect("only a set deadline expires");
                return Err(StepError::Timeout { after_ms: limit.allowed_ms, limit: limit.which });
            }
        };
        let entry = apply_output(step.output.as_ref(), result)?;
        let sized = context.size_with(&step.name, &entry);
        if sized.0 > self.context_cap_bytes {
            return Err(StepError::ContextCap {
                size: sized.0,
                cap: self.context_cap_bytes,
            });
        }
        context.insert(&step.name, entry, sized);
        Ok(())
    }
}

/// True when no span encloses the run here.
fn outer_span_is_none() -> bool {
    tracing::Span::current().is_none()
}

/// Which limit a step's deadline comes from, and how long it allowed.
#[derive(Debug, Clone, Copy)]
struct Limit {
    allowed_ms: u64,
    which: &'static str,
}

/// When `step` must end, from its own timeout or the pipeline's, and the run's
/// deadline: whichever comes first.
fn deadline(step: &Step, run: &RunContext) -> Option<(tokio::time::Instant, Limit)> {
    let now = tokio::time::Instant::now();
    let own = match (step.timeout_ms, run.step_timeout) {
        (Some(ms), _) => Some((Duration::from_millis(ms), "the step's timeout_ms")),
        (None, Some(timeout)) => Some((timeout, "the pipeline's step_timeout_ms")),
        (None, None) => None,
    }
    .map(|(allowed, which)| {
        (
            now + allowed,
            Limit {
                allowed_ms: allowed.as_millis() as u64,
                which,
            },
        )
    });
    let task = run.deadline.map(|at| {
        (
            at,
            Limit {
                allowed_ms: at.saturating_duration_since(now).as_millis() as u64,
                which: "what was left of the task's timeout_ms",
            },
        )
    });
    match (own, task) {
        (Some(own), Some(task)) => Some(if task.0 < own.0 { task } else { own }),
        (own, task) => own.or(task),
    }
}

fn record(step: &Step, status: StepStatus, duration_ms: f64, error: String) -> StepRecord {
    StepRecord {
        name: step.name.clone(),
        plugin: step.plugin.clone(),
        action: step.action.clone(),
        status,
        duration_ms,
        error,
    }
}
