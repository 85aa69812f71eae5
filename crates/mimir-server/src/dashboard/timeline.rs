//! The overview's history: one [`Second`] per second for the last hour, in
//! memory. Task events are counted into the open second as they are recorded
//! (by the same code that records their metrics, so the two agree); once a
//! second the sampler closes it with the gauges of that moment and sends it to
//! every live dashboard.

use super::log_histogram::{DenseHistogram, LogHistogram, MergedHistogram};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Defaults to 3600: seconds of history kept (one hour at one-second resolution).
pub const DEFAULT_HISTORY_SECONDS: usize = 3600;

/// Seconds the "recent" summary sent with each closed second covers.
pub const RECENT_SECONDS: i64 = 60;

/// The first second of the [`RECENT_SECONDS`] ending with `to` (both included).
pub fn recent_from(to: i64) -> i64 {
    to.saturating_sub(RECENT_SECONDS - 1)
}

/// What subscribers get each second: the second that closed and the summary
/// of the last minute up to it, computed once for all of them.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    /// The second.
    #[serde(serialize_with = "shared")]
    pub second: Arc<Second>,
    /// The last [`RECENT_SECONDS`], this one included.
    pub recent: Summary,
}

/// Serializes a shared second as the second itself.
fn shared<S: serde::Serializer>(second: &Arc<Second>, serializer: S) -> Result<S::Ok, S::Error> {
    second.as_ref().serialize(serializer)
}

/// Something that happened to a task, as the timeline counts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Occurrence {
    /// A task entered the queue (submitted, retried or handed back).
    Enqueued,
    /// A task left the queue for a worker after waiting this many seconds.
    Dequeued { waited: f64 },
    /// A task completed; the attempt ran this many seconds, when known.
    Completed { ran: Option<f64> },
    /// A task failed for good; the last attempt ran this many seconds, when known.
    Failed { ran: Option<f64> },
    /// An attempt failed and the task will run again.
    Retried,
    /// A worker went silent and lost its lease.
    LeaseExpired,
    /// A user cancelled a task.
    Cancelled,
}

/// What the sampler reads at the end of each second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Gauges {
    /// Tasks waiting to run.
    pub queue_depth: u64,
    /// Tasks leased or running.
    pub running: u64,
    /// Workers heard from recently.
    pub workers: u64,
    /// Workers the autoscaler wants.
    pub desired_workers: u64,
}

/// One second of the system.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Second {
    /// Unix time of the second's end.
    pub t: i64,
    /// The gauges at its end.
    #[serde(flatten)]
    pub gauges: Gauges,
    /// Tasks that entered the queue.
    pub enqueued: u32,
    /// Tasks handed to workers.
    pub dequeued: u32,
    /// Tasks completed.
    pub completed: u32,
    /// Tasks that failed for good.
    pub failed: u32,
    /// Attempts that failed and will be retried.
    pub retried: u32,
    /// Leases lost to silent workers.
    pub lease_expired: u32,
    /// Tasks cancelled.
    pub cancelled: u32,
    /// Median queue wait of the tasks dequeued, in seconds.
    pub wait_p50: Option<f64>,
    /// 99th percentile queue wait, in seconds.
    pub wait_p99: Option<f64>,
    /// Median run time of the tasks that ended, in seconds.
    pub duration_p50: Option<f64>,
    /// 99th percentile run time, in seconds.
    pub duration_p99: Option<f64>,
    #[serde(skip)]
    waits: LogHistogram,
    #[serde(skip)]
    durations: LogHistogram,
}

/// Totals and quantiles over a window of seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Unix time of the first second in the window.
    pub from: i64,
    /// Unix time of the last second in the window.
    pub to: i64,
    /// Seconds with data in the window.
    pub seconds: usize,
    /// Tasks that entered the queue.
    pub enqueued: u64,
    /// Tasks handed to workers.
    pub dequeued: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks that failed for good.
    pub failed: u64,
    /// Attempts retried.
    pub retried: u64,
    /// Leases lost.
    pub lease_expired: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Queue wait quantiles over the window, in seconds.
    pub wait_p50: Option<f64>,
    /// See `wait_p50`.
    pub wait_p99: Option<f64>,
    /// Run time quantiles over the window, in seconds.
    pub duration_p50: Option<f64>,
    /// See `duration_p50`.
    pub duration_p99: Option<f64>,
}

/// The open second's counts.
#[derive(Default)]
struct Tally {
    enqueued: u32,
    dequeued: u32,
    completed: u32,
    failed: u32,
    retried: u32,
    lease_expired: u32,
    cancelled: u32,
    waits: DenseHistogram,
    durations: DenseHistogram,
}

/// The last hour, second by second.
pub struct Timeline {
    open: Mutex<Tally>,
    closed: Mutex<VecDeque<Arc<Second>>>,
    capacity: usize,
    updates: broadcast::Sender<Arc<Tick>>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new(DEFAULT_HISTORY_SECONDS)
    }
}

impl Timeline {
    /// A timeline keeping `capacity` seconds.
    pub fn new(capacity: usize) -> Timeline {
        Timeline {
            open: Mutex::default(),
            closed: Mutex::new(VecDeque::with_capacity(capacity.max(1))),
            capacity: capacity.max(1),
            updates: broadcast::channel(64).0,
        }
    }

    /// Counts one occurrence into the open second.
    pub fn record(&self, what: Occurrence) {
        self.record_all(std::slice::from_ref(&what));
    }

    /// Counts occurrences into the open second, under one lock: the task
    /// event recorder hands over a whole commit's.
    pub fn record_all(&self, occurrences: &[Occurrence]) {
        let mut open = self.open.lock();
        let ended = |open: &mut Tally, ran: Option<f64>| {
            if let Some(ran) = ran {
                open.durations.observe(ran);
            }
        };
        for what in occurrences {
            match *what {
                Occurrence::Enqueued => open.enqueued += 1,
                Occurrence::Dequeued { waited } => {
                    open.dequeued += 1;
                    open.waits.observe(waited);
                }
                Occurrence::Completed { ran } => {
                    open.completed += 1;
                    ended(&mut open, ran);
                }
                Occurrence::Failed { ran } => {
                    open.failed += 1;
                    ended(&mut open, ran);
                }
                Occurrence::Retried => open.retried += 1,
                Occurrence::LeaseExpired => open.lease_expired += 1,
                Occurrence::Cancelled => open.cancelled += 1,
            }
        }
    }

    /// Closes the open second at unix time `t` with `gauges`, keeps it and
    /// sends it to subscribers. Seconds stay in order even when the wall
    /// clock steps back: such a second is numbered after the last one.
    pub fn close(&self, t: i64, gauges: Gauges) -> Arc<Second> {
        let fresh = Tally::default();
        let mut tally = std::mem::replace(&mut *self.open.lock(), fresh);
        let mut closed = self.closed.lock();
        let t = match closed.back() {
            Some(last) if t <= last.t => last.t + 1,
            _ => t,
        };
        let waits = tally.waits.take();
        let durations = tally.durations.take();
        let second = Arc::new(Second {
            t,
            gauges,
            enqueued: tally.enqueued,
            dequeued: tally.dequeued,
            completed: tally.completed,
            failed: tally.failed,
            retried: tally.retried,
            lease_expired: tally.lease_expired,
            cancelled: tally.cancelled,
            wait_p50: waits.quantile(0.5),
            wait_p99: waits.quantile(0.99),
            duration_p50: durations.quantile(0.5),
            duration_p99: durations.quantile(0.99),
            waits,
            durations,
        });
        if closed.len() == self.capacity {
            closed.pop_front();
        }
        closed.push_back(second.clone());
        drop(closed);
        if self.updates.receiver_count() > 0 {
            let recent = self.summary(recent_from(t), t);
            // A subscriber leaving meanwhile is fine.
            let _ = self.updates.send(Arc::new(Tick {
                second: second.clone(),
                recent,
            }));
        }
        second
    }

    /// The kept seconds from unix time `from` on, oldest first.
    pub fn since(&self, from: i64) -> Vec<Arc<Second>> {
        let closed = self.closed.lock();
        let start = closed.partition_point(|s| s.t < from);
        closed.range(start..).cloned().collect()
    }

    /// Totals and quantiles of the kept seconds in `from..=to` (unix times).
    pub fn summary(&self, from: i64, to: i64) -> Summary {
        let seconds: Vec<Arc<Second>> = {
            let closed = self.closed.lock();
            let start = closed.partition_point(|s| s.t < from);
            let end = closed.partition_point(|s| s.t <= to);
            closed.range(start..end.max(start)).cloned().collect()
        };
        let mut summary = Summary {
            from,
            to,
            seconds: seconds.len(),
            ..Summary::default()
        };
        let mut waits = MergedHistogram::default();
        let mut durations = MergedHistogram::default();
        for s in &seconds {
            summary.enqueued += u64::from(s.enqueued);
            summary.dequeued += u64::from(s.dequeued);
            summary.completed += u64::from(s.completed);
            summary.failed += u64::from(s.failed);
            summary.retried += u64::from(s.retried);
            summary.lease_expired += u64::from(s.lease_expired);
            summary.cancelled += u64::from(s.cancelled);
            waits.add(&s.waits);
            durations.add(&s.durations);
        }
        summary.wait_p50 = waits.quantile(0.5);
        summary.wait_p99 = waits.quantile(0.99);
        summary.duration_p50 = durations.quantile(0.5);
        summary.duration_p99 = durations.quantile(0.99);
        summary
    }

    /// Each second as it closes. A subscriber that falls behind misses
    /// seconds and is told so by the channel; it can read [`Timeline::since`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Tick>> {
        self.updates.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges(queue_depth: u64) -> Gauges {
        Gauges {
            queue_depth,
            ..Gauges::default()
        }
    }

    #[test]
    fn each_second_counts_only_what_happened_in_it() {
        let timeline = Timeline::new(10);
        timeline.record(Occurrence::Enqueued);
        timeline.record(Occurrence::Enqueued);
        timeline.record(Occurrence::Dequeued { waited: 0.5 });
        let first = timeline.close(100, gauges(1));
        // A commit's occurrences, handed over together.
        timeline.record_all(&[
            Occurrence::Completed { ran: Some(2.0) },
            Occurrence::Failed { ran: None },
        ]);
        let second = timeline.close(101, gauges(0));
        assert_eq!((first.enqueued, first.dequeued, first.completed), (2, 1, 0));
        assert!(first.wait_p50.is_some_and(|w| (w / 0.5 - 1.0).abs() < 0.05));
        assert_eq!(first.duration_p50, None);
        assert_eq!(
            (second.enqueued, second.completed, second.failed),
            (0, 1, 1)
        );
        assert_eq!(second.wait_p99, None);
        assert!(
            second
                .duration_p99
                .is_some_and(|d| (d / 2.0 - 1.0).abs() < 0.05)
        );
        assert_eq!(second.gauges.queue_depth, 0);
    }

    #[test]
    fn seconds_stay_in_order_when_the_clock_steps_back() {
        let timeline = Timeline::new(10);
        timeline.close(100, gauges(0));
        timeline.close(90, gauges(0));
        timeline.close(100, gauges(0));
        let kept: Vec<i64> = timeline.since(0).iter().map(|s| s.t).collect();
        assert_eq!(kept, [100, 101, 102]);
    }

    #[test]
    fn keeps_only_the_last_capacity_seconds() {
        let timeline = Timeline::new(3);
        for t in 0..5 {
            timeline.close(t, gauges(t as u64));
        }
        let kept: Vec<i64> = timeline.since(0).iter().map(|s| s.t).collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(timeline.since(4).len(), 1);
        assert!(timeline.since(5).is_empty());
    }

    #[test]
    fn summary_merges_the_window() {
        let timeline = Timeline::new(100);
        for t in 0..10 {
            for _ in 0..10 {
                timeline.record(Occurrence::Dequeued {
                    waited: (t + 1) as f64,
                });
            }
            timeline.record(Occurrence::Retried);
            timeline.close(t, gauges(0));
        }
        let all = timeline.summary(0, 9);
        assert_eq!((all.seconds, all.dequeued, all.retried), (10, 100, 10));
        // Waits 1..=10 s, ten each: the median is 5 s, the 99th percentile 10 s.
        assert!(all.wait_p50.is_some_and(|w| (w / 5.0 - 1.0).abs() < 0.05));
        assert!(all.wait_p99.is_some_and(|w| (w / 10.0 - 1.0).abs() < 0.05));
        let late = timeline.summary(8, 20);
        assert_eq!((late.seconds, late.dequeued), (2, 20));
        assert_eq!(timeline.summary(50, 60).wait_p50, None);
        assert_eq!(timeline.summary(5, 2).seconds, 0);
    }

    #[tokio::test]
    async fn subscribers_get_each_closed_second() {
        let timeline = Timeline::new(10);
        let mut updates = timeline.subscribe();
        timeline.record(Occurrence::Cancelled);
        timeline.close(7, gauges(3));
        let got = updates.recv().await.unwrap();
        let second = &got.second;
        assert_eq!(
            (second.t, second.cancelled, second.gauges.queue_depth),
            (7, 1, 3)
        );
        assert_eq!(
            (got.recent.from, got.recent.to, got.recent.cancelled),
            (-52, 7, 1)
        );
    }
}
