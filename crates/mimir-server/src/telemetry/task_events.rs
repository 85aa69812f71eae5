//! Task lifecycle events become log lines and metrics, off the store's write
//! path: the store hands each commit's events to a channel; one thread records
//! them. One event, one log line and its metrics, so the two never disagree.
//!
//! Levels follow the seed's definitions: `debug` for queue operations
//! (submitted, leased, released), `info` for normal operations (started,
//! completed, cancelled), `warn` for recoverable errors (retried, lease
//! expired), `error` for failures (a task failed for good).

use crate::dashboard::{Occurrence, PipelineStats, Timeline};
use chrono::{DateTime, Utc};
use mimir_core::{PerType, TaskEvent, TaskEventKind, WorkTaskType};
use mimir_store::EventSink;
use mimir_telemetry::Metrics;
use mimir_telemetry::metrics::{StatusTypeLabels, TraceExemplar};
use mimir_telemetry::propagation;
use mimir_telemetry::series::{PipelineSeries, TaskSeries};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use uuid::Uuid;

/// The store's [`EventSink`]: queues events for the recording thread.
#[derive(Debug)]
pub struct TaskEventRecorder {
    events: mpsc::Sender<Vec<TaskEvent>>,
}

impl TaskEventRecorder {
    /// Starts the recording thread; it ends when the recorder is dropped.
    /// Events are counted into `timeline` too, and pipeline attempts into
    /// `pipeline_stats`, when given.
    pub fn start(
        metrics: Arc<Metrics>,
        timeline: Option<Arc<Timeline>>,
        pipeline_stats: Option<Arc<PipelineStats>>,
    ) -> Arc<TaskEventRecorder> {
        let (events, receiver) = mpsc::channel::<Vec<TaskEvent>>();
        let mut recorder = Recording {
            types: PerType::from_fn(|t| TaskSeries::new(&metrics, t)),
            pipelines: Pipelines {
                series: FastMap::default(),
                stats: pipeline_stats,
            },
            metrics,
            timeline: TimelineCounts {
                timeline,
                pending: Vec::new(),
            },
            running: FastMap::default(),
        };
        let _ = std::thread::Builder::new()
            .name("mimir-task-events".into())
            .spawn(move || {
                while let Ok(batch) = receiver.recv() {
                    // One commit's lines, written together.
                    mimir_telemetry::log_writer::batched(|| {
                        for event in batch {
                            recorder.record(event);
                        }
                    });
                    recorder.timeline.hand_over();
                }
            });
        Arc::new(TaskEventRecorder { events })
    }
}

impl EventSink for TaskEventRecorder {
    fn publish(&self, events: Vec<TaskEvent>) {
        // The thread only stops when this sender is gone.
        let _ = self.events.send(events);
    }
}

/// What is known of a leased task beyond its events: kept from its lease to
/// its end, so later lines and metrics carry its pipeline and trace.
struct Correlation {
    pipeline_id: String,
    traceparent: String,
    submitted_at: DateTime<Utc>,
}

/// What every event tells, besides what happened.
struct Header {
    id: Uuid,
    task_type: WorkTaskType,
    at: DateTime<Utc>,
    /// The event's name in log lines.
    name: &'static str,
}

struct Recording {
    metrics: Arc<Metrics>,
    /// Each task type's series.
    types: PerType<TaskSeries>,
    pipelines: Pipelines,
    timeline: TimelineCounts,
    running: FastMap<Uuid, Correlation>,
}

/// The recorder's maps are looked up several times per task, keyed by task
/// ids the orchestrator made and by ids of stored pipelines: a fast hash with
/// a per-process random seed is enough there, where the default SipHash costs
/// more than the rest of a lookup.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One lifecycle line, at a level known at compile time. `tracing` works out
/// the field values only when the line will be written; fields not known (no
/// trace, not a pipeline) are left out.
macro_rules! lifecycle {
    ($level:expr, $e:expr, $c:expr, $worker:expr, $attempt:expr, $message:literal $(, $($rest:tt)*)?) => {{
        let c: Option<&Correlation> = $c;
        let ids = || c.and_then(|c| propagation::ids(&c.traceparent));
        tracing::event!(
            target: "mimir::task",
            $level,
            // Text fields, not a format string or `%`: a formatter writes a
            // `&str` without going through `fmt`.
            message = $message,
            worktask_id = &*$e.id.hyphenated().encode_lower(&mut Uuid::encode_buffer()),
            r#type = $e.task_type.as_str(),
            event = $e.name,
            worker_id = $worker,
            attempt = $attempt,
            pipeline_id = c.map(|c| c.pipeline_id.as_str()).filter(|p| !p.is_empty()),
            trace_id = ids().map(|(trace, _)| trace),
            span_id = ids().map(|(_, span)| span),
            $($($rest)*,)?
        )
    }};
}

/// The dashboard timeline's counts of one commit's events, handed over
/// together (one lock for the commit, not one per event).
struct TimelineCounts {
    timeline: Option<Arc<Timeline>>,
    pending: Vec<Occurrence>,
}

impl TimelineCounts {
    fn count(&mut self, what: Occurrence) {
        if self.timeline.is_some() {
            self.pending.push(what);
        }
    }

    fn hand_over(&mut self) {
        if let Some(timeline) = &self.timeline {
            timeline.record_all(&self.pending);
        }
        self.pending.clear();
    }
}

impl Recording {
    fn record(&mut self, event: TaskEvent) {
        let TaskEvent {
            id,
            task_type,
            at,
            kind,
        } = event;
        // The rest of the event is taken apart: a leased task's pipeline and
        // trace are kept, not copied.
        let e = Header {
            id,
            task_type,
            at,
            name: kind.name(),
        };
        let m = &*self.metrics;
        let series = &self.types[e.task_type];
        match kind {
            TaskEventKind::Submitted { priority } => {
                m.queue_enqueued.inc();
                self.timeline.count(Occurrence::Enqueued);
                lifecycle!(
                    tracing::Level::DEBUG,
                    e,
                    None,
                    "",
                    0,
                    "task submitted",
                    priority = priority.get()
                );
            }
            TaskEventKind::Leased {
                worker_id,
                attempt,
                waiting_since,
                submitted_at,
                pipeline_id,
                traceparent,
            } => {
                m.queue_dequeued.inc();
                let waited = seconds(e.at, waiting_since);
                self.timeline.count(Occurrence::Dequeued { waited });
                series
                    .queue_wait
                    .observe(waited, exemplar(&traceparent), None);
                self.running.insert(
                    e.id,
                    Correlation {
                        pipeline_id,
                        traceparent,
                        submitted_at,
                    },
                );
                let c = self.running.get(&e.id);
                lifecycle!(
                    tracing::Level::DEBUG,
                    e,
                    c,
                    worker_id.as_str(),
                    attempt,
                    "task leased",
                    queue_wait_s = waited
                );
            }
            TaskEventKind::Started { worker_id, attempt } => {
                let c = self.running.get(&e.id);
                if attempt == 1
                    && let Some(c) = c
                {
                    series.start_latency.observe(
                        seconds(e.at, c.submitted_at),
                        exemplar(&c.traceparent),
                        None,
                    );
                }
                lifecycle!(
                    tracing::Level::INFO,
                    e,
                    c,
                    worker_id.as_str(),
                    attempt,
                    "task started"
                );
            }
            TaskEventKind::Released { worker_id } => {
                m.queue_enqueued.inc();
                self.timeline.count(Occurrence::Enqueued);
                let c = self.running.remove(&e.id);
                lifecycle!(
                    tracing::Level::DEBUG,
                    e,
                    c.as_ref(),
                    worker_id.as_str(),
                    0,
                    "task handed back unstarted"
                );
            }
            TaskEventKind::LeaseExpired { worker_id, attempt } => {
                series.lease_expiries.inc();
                self.timeline.count(Occurrence::LeaseExpired);
                let c = self.running.get(&e.id);
                lifecycle!(
                    tracing::Level::WARN,
                    e,
                    c,
                    worker_id.as_str(),
                    attempt,
                    "lease expired: the worker went silent"
                );
            }
            TaskEventKind::Retried {
                worker_id,
                attempt,
                retry_count,
                max_retries,
                reason,
                not_before,
                result,
                ..
            } => {
                series.retries.inc();
                m.queue_enqueued.inc();
                self.timeline.count(Occurrence::Retried);
                self.timeline.count(Occurrence::Enqueued);
                let c = self.running.get(&e.id);
                pipeline_attempt(&mut self.pipelines, m, c, false, result.as_ref());
                let backoff_s = seconds(not_before, e.at);
                lifecycle!(
                    tracing::Level::WARN,
                    e,
                    c,
                    worker_id.as_str(),
                    attempt,
                    "task retried",
                    retry_count,
                    max_retries,
                    backoff_s,
                    reason = reason.as_str()
                );
            }
            TaskEventKind::Completed {
                worker_id,
                attempt,
                started_at,
                result,
            } => {
                let c = self.running.remove(&e.id);
                self.finished(&e, "completed", started_at, result.as_ref(), c.as_ref());
                lifecycle!(
                    tracing::Level::INFO,
                    e,
                    c.as_ref(),
                    worker_id.as_str(),
                    attempt,
                    "task completed",
                    duration_s = started_at.map(|s| seconds(e.at, s)).unwrap_or_default()
                );
            }
            TaskEventKind::Failed {
                worker_id,
                attempt,
                status,
                reason,
                retry_count,
                started_at,
                result,
            } => {
                let c = self.running.remove(&e.id);
                self.finished(&e, status.as_str(), started_at, result.as_ref(), c.as_ref());
                lifecycle!(
                    tracing::Level::ERROR,
                    e,
                    c.as_ref(),
                    worker_id.as_str(),
                    attempt,
                    "task failed",
                    status = status.as_str(),
                    retry_count,
                    reason = reason.as_str()
                );
            }
            TaskEventKind::Cancelled { from } => {
                series.cancelled.inc();
                self.timeline.count(Occurrence::Cancelled);
                let c = self.running.remove(&e.id);
                lifecycle!(
                    tracing::Level::INFO,
                    e,
                    c.as_ref(),
                    "",
                    0,
                    "task cancelled",
                    from = from.as_str()
                );
            }
        }
    }

    /// Metrics of a task that reached a final status through an attempt.
    fn finished(
        &mut self,
        e: &Header,
        status: &'static str,
        started_at: Option<DateTime<Utc>>,
        result: Option<&serde_json::Value>,
        c: Option<&Correlation>,
    ) {
        let m = &*self.metrics;
        let series = &self.types[e.task_type];
        match series.finished(status) {
            Some(counter) => counter.inc(),
            None => m
                .tasks
                .get_or_create(&StatusTypeLabels {
                    status,
                    r#type: e.task_type.as_str(),
                })
                .inc(),
        };
        let ran = started_at.map(|s| seconds(e.at, s));
        if let Some(ran) = ran {
            series
                .duration
                .observe(ran, c.and_then(|c| exemplar(&c.traceparent)), None);
        }
        self.timeline.count(if status == "completed" {
            Occurrence::Completed { ran }
        } else {
            Occurrence::Failed { ran }
        });
        pipeline_attempt(&mut self.pipelines, m, c, status == "completed", result);
    }
}

/// Where pipeline attempts are recorded.
struct Pipelines {
    /// Each pipeline's series, kept once it has run.
    series: FastMap<String, PipelineSeries>,
    /// The dashboard's figures, when kept.
    stats: Option<Arc<PipelineStats>>,
}

/// Pipeline and step metrics of one attempt that ran steps.
fn pipeline_attempt(
    pipelines: &mut Pipelines,
    metrics: &Metrics,
    c: Option<&Correlation>,
    completed: bool,
    result: Option<&serde_json::Value>,
) {
    let steps = result
        .and_then(|r| r.get("steps"))
        .and_then(|s| s.as_array())
        .filter(|steps| !steps.is_empty());
    if let Some(steps) = steps {
        let pipeline = c
            .map(|c| c.pipeline_id.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("unknown");
        match pipelines.series.get_mut(pipeline) {
            Some(series) => series.record(metrics, completed, steps),
            None => {
                let mut series = PipelineSeries::new(metrics, pipeline);
                series.record(metrics, completed, steps);
                pipelines.series.insert(pipeline.to_string(), series);
            }
        }
        if let Some(stats) = &pipelines.stats {
            stats.record(pipeline, completed, steps);
        }
    }
}

/// `later - earlier` in seconds, never negative (clocks of different hosts).
fn seconds(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    let (later, earlier) = (later.naive_utc(), earlier.naive_utc());
    // Most spans lie within one day, where the calendar arithmetic of a full
    // subtraction is not needed.
    let elapsed = if later.date() == earlier.date() {
        later.time() - earlier.time()
    } else {
        later - earlier
    };
    elapsed
        .to_std()
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn exemplar(traceparent: &str) -> Option<TraceExemplar> {
    propagation::ids(traceparent).map(|(trace_id, _)| TraceExemplar {
        trace_id: trace_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_between_two_times_on_one_day_or_across_midnight() {
        let at = |text: &str| text.parse::<DateTime<Utc>>().expect("a time");
        let cases = [
            ("2026-11-22T10:00:01.250Z", "2026-11-22T10:00:00Z", 1.25),
            ("2026-11-23T00:00:00.5Z", "2026-11-22T23:59:59Z", 1.5),
            ("2027-01-01T00:00:00Z", "2026-12-31T00:00:00Z", 86_400.0),
            // A later start (another host's clock) counts as no time.
            ("2026-11-22T10:00:00Z", "2026-11-22T10:00:01Z", 0.0),
            ("2026-11-22T10:00:00Z", "2026-11-23T10:00:00Z", 0.0),
        ];
        for (later, earlier, expected) in cases {
            assert_eq!(
                seconds(at(later), at(earlier)),
                expected,
                "{later} - {earlier}"
            );
        }
    }
}
