//! Running a pipeline's steps in order: conditions (`when`), loops
//! (`for_each`) and the context cap.

use crate::context::{Context, DEFAULT_CONTEXT_CAP_BYTES, json_len};
use crate::reference::kind;
use crate::resolve::{Scope, apply_output, resolve, resolve_parameters};
use crate::step::{ForEach, MAX_FOR_EACH_CONCURRENCY, MAX_FOR_EACH_ITEMS};
use crate::{Execution, Registry, RunContext, Step, StepError, StepRecord, StepStatus, jq};
use futures_util::stream::{self, StreamExt};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How a step that did not fail ended.
enum Ran {
    /// It ran; its context entry.
    Entry(Value),
    /// Its `when` did not hold; why, for its record.
    Skipped(String),
}

/// A step running, boxed: loops run steps inside steps.
type StepRun<'a> = Pin<Box<dyn Future<Output = Result<Ran, StepError>> + Send + 'a>>;

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
    whens: Arc<WhenCache>,
}

/// Compiled `when` programs by text: compiling takes milliseconds, and a
/// loop evaluates an inner step's `when` once per item.
#[derive(Default)]
struct WhenCache(std::sync::Mutex<std::collections::HashMap<String, Arc<jq::Filter>>>);

/// Programs kept; past it the cache starts over.
const WHEN_CACHE_CAPACITY: usize = 256;

impl WhenCache {
    fn get(&self, program: &str) -> Option<Arc<jq::Filter>> {
        self.lock().get(program).cloned()
    }

    fn put(&self, program: &str, filter: Arc<jq::Filter>) {
        let mut cache = self.lock();
        if cache.len() >= WHEN_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(program.to_string(), filter);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<jq::Filter>>> {
        // Every change is one insert or clear: a poisoned map is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for WhenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhenCache")
            .field("programs", &self.lock().len())
            .finish()
    }
}

impl Engine {
    /// An engine running `registry`'s actions, with the context capped at
    /// [`DEFAULT_CONTEXT_CAP_BYTES`].
    pub fn new(registry: Arc<Registry>) -> Engine {
        Engine {
            registry,
            context_cap_bytes: DEFAULT_CONTEXT_CAP_BYTES,
            whens: Arc::default(),
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
            let outcome = {
                let scope = Scope::top(params, context.entries());
                self.run_step(step, &scope, run, limit, context.bytes())
                    .instrument(span.clone())
                    .await
            };
            let outcome = outcome.and_then(|ran| match ran {
                Ran::Entry(entry) => {
                    let sized = context.size_with(&step.name, &entry);
                    if sized.0 > self.context_cap_bytes {
                        return Err(StepError::ContextCap {
                            size: sized.0,
                            cap: self.context_cap_bytes,
                        });
                    }
                    context.insert(&step.name, entry, sized);
                    Ok(None)
                }
                Ran::Skipped(reason) => Ok(Some(reason)),
            });
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let record = match outcome {
                Ok(None) => {
                    span.in_scope(|| tracing::debug!(duration_ms, "step completed"));
                    record(step, StepStatus::Completed, duration_ms, String::new())
                }
                Ok(Some(reason)) => {
                    span.in_scope(|| tracing::debug!(duration_ms, %reason, "step skipped"));
                    record(step, StepStatus::Skipped, duration_ms, reason)
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
                    cancelled = matches!(failure.root(), StepError::Cancelled);
                    timed_out = matches!(failure.root(), StepError::Timeout { .. });
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
        // Saves count only when the whole run succeeded: a failed run must
        // not move a bookmark past data it did not finish loading.
        let checkpoints = match (&error, &run.checkpoints) {
            (None, Some(checkpoints)) => checkpoints.staged(),
            _ => Map::new(),
        };
        Execution {
            steps: records,
            context: context.into_entries(),
            error,
            cancelled,
            timed_out,
            error_class,
            checkpoints,
        }
    }

    /// Runs one step against `scope`: its `when`, then its loop or action,
    /// then its `output`, all before `limit`. `used` is the size of the
    /// context so far, which a loop's entry must fit beside.
    fn run_step<'a>(
        &'a self,
        step: &'a Step,
        scope: &'a Scope<'a>,
        run: &'a RunContext,
        limit: Option<(tokio::time::Instant, Limit)>,
        used: usize,
    ) -> StepRun<'a> {
        Box::pin(async move {
            if run.cancel.is_cancelled() {
                return Err(StepError::Cancelled);
            }
            let work = async {
                if let Some(program) = &step.when
                    && let Some(reason) = self.when_skips(program, scope).await?
                {
                    return Ok(Ran::Skipped(reason));
                }
                let result = match &step.for_each {
                    Some(each) => self.run_for_each(each, scope, run, used).await?,
                    None => {
                        let action =
                            self.registry
                                .get(&step.plugin, &step.action)
                                .ok_or_else(|| StepError::UnknownAction {
                                    plugin: step.plugin.clone(),
                                    action: step.action.clone(),
                                })?;
                        let resolved = resolve_parameters(&step.parameters, scope)?;
                        let step_run = RunContext {
                            step: step.name.clone(),
                            ..run.clone()
                        };
                        action.run(resolved, &step_run).await?
                    }
                };
                Ok(Ran::Entry(apply_output(step.output.as_ref(), result)?))
            };
            // Racing the token here makes every action cancellable, including
            // plugins that never look at it, and stops every item of a loop.
            let expired = async {
                match limit {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = work => result,
                () = run.cancel.cancelled() => Err(StepError::Cancelled),
                () = expired => {
                    let (_, limit) = limit.expect("only a set deadline expires");
                    Err(StepError::Timeout { after_ms: limit.allowed_ms, limit: limit.which })
                }
            }
        })
    }

    /// Runs `each`'s steps for every item, `each.concurrency` items at a
    /// time, and returns the array of the items' entries in item order.
    async fn run_for_each(
        &self,
        each: &ForEach,
        scope: &Scope<'_>,
        run: &RunContext,
        used: usize,
    ) -> Result<Value, StepError> {
        let items_failed = |message: String| StepError::Items {
            reference: each.items.clone(),
            message,
        };
        let items = match resolve(&Value::String(each.items.clone()), "for_each.items", scope)? {
            Value::Array(items) => items,
            other => {
                return Err(items_failed(format!("is {}, not an array", kind(&other))));
            }
        };
        if items.len() > MAX_FOR_EACH_ITEMS {
            return Err(items_failed(format!(
                "has {} items, over the limit of {MAX_FOR_EACH_ITEMS}",
                items.len()
            )));
        }
        let count = items.len();
        let concurrency = each.concurrency.clamp(1, MAX_FOR_EACH_CONCURRENCY);
        // `buffered` keeps item order and starts an item only when one of
        // the `concurrency` slots is free; dropping it stops the rest.
        let mut outcomes = stream::iter(items.into_iter().enumerate())
            .map(|(index, item)| self.run_item(each, index, item, scope, run, used))
            .buffered(concurrency);
        let mut elements = Vec::with_capacity(count);
        let mut size = 2; // `[]`
        while let Some(outcome) = outcomes.next().await {
            if run.cancel.is_cancelled() {
                return Err(StepError::Cancelled);
            }
            let index = elements.len();
            let element = match outcome {
                Ok(entries) => Value::Object(entries),
                Err(failure) if each.continue_on_error => {
                    // The index has its own key; the message says the rest.
                    let error = match &failure {
                        StepError::Item {
                            step,
                            action,
                            error,
                            ..
                        } => format!("step \"{step}\" ({action}) failed: {error}"),
                        other => other.to_string(),
                    };
                    json!({"error": error, "index": index})
                }
                // Items come in order, so this is the lowest failing index.
                Err(failure) => return Err(failure),
            };
            size += json_len(&element) + usize::from(index > 0);
            if used + size > self.context_cap_bytes {
                return Err(StepError::ContextCap {
                    size: used + size,
                    cap: self.context_cap_bytes,
                });
            }
            elements.push(element);
        }
        Ok(Value::Array(elements))
    }

    /// Runs `each`'s steps for item `index`: the object of their entries,
    /// or the first failure, naming the index and the inner step.
    async fn run_item(
        &self,
        each: &ForEach,
        index: usize,
        item: Value,
        scope: &Scope<'_>,
        run: &RunContext,
        used: usize,
    ) -> Result<Map<String, Value>, StepError> {
        let mut entries = Map::new();
        entries.insert(each.item_name.clone(), item);
        let mut size = 0;
        for step in &each.steps {
            let failed = |error: StepError| StepError::Item {
                index,
                step: step.name.clone(),
                action: step.qualified_action(),
                error: Box::new(error),
            };
            let outcome = {
                let scope = scope.inner(&entries);
                self.run_step(step, &scope, run, deadline(step, run), used + size)
                    .await
            };
            match outcome.map_err(failed)? {
                Ran::Entry(entry) => {
                    size += json_len(&step.name) + json_len(&entry) + 2;
                    if used + size > self.context_cap_bytes {
                        return Err(failed(StepError::ContextCap {
                            size: used + size,
                            cap: self.context_cap_bytes,
                        }));
                    }
                    entries.insert(step.name.clone(), entry);
                }
                Ran::Skipped(_) => {}
            }
        }
        entries.remove(&each.item_name);
        Ok(entries)
    }

    /// Runs a `when` program on everything `scope` can read: `None` when
    /// the step runs, else why it is skipped.
    ///
    /// The program runs on a blocking thread, like `transform.jq`; the
    /// step's deadline and cancellation abandon it, and a supervisor's
    /// deadline stops one that never ends.
    async fn when_skips(
        &self,
        program: &str,
        scope: &Scope<'_>,
    ) -> Result<Option<String>, StepError> {
        let input = scope.readable();
        let cached = self.whens.get(program);
        let text = program.to_string();
        let (filter, first) = tokio::task::spawn_blocking(move || {
            let filter = match cached {
                Some(filter) => filter,
                None => Arc::new(jq::compile(&text).map_err(|e| format!("does not compile: {e}"))?),
            };
            let first = jq::first(&filter, &input)?;
            Ok::<_, String>((filter, first))
        })
        .await
        .map_err(|e| StepError::When(format!("the program stopped: {e}")))?
        .map_err(StepError::When)?;
        self.whens.put(program, filter);
        Ok(match first {
            None => Some("when gave no output".to_string()),
            Some(Value::Bool(false)) => Some("when was false".to_string()),
            Some(Value::Null) => Some("when was null".to_string()),
            Some(_) => None,
        })
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
/// deadline: whichever comes first. The pipeline's `step_timeout_ms` bounds
/// each step a loop runs, not the loop as a whole.
fn deadline(step: &Step, run: &RunContext) -> Option<(tokio::time::Instant, Limit)> {
    let now = tokio::time::Instant::now();
    let own = match (step.timeout_ms, run.step_timeout) {
        (Some(ms), _) => Some((Duration::from_millis(ms), "the step's timeout_ms")),
        (None, Some(timeout)) if step.for_each.is_none() => {
            Some((timeout, "the pipeline's step_timeout_ms"))
        }
        _ => None,
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
