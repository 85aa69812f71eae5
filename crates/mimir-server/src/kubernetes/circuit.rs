//! A cluster's circuit breaker: after `failures` failed API calls in a row,
//! or `failures` Jobs in a row whose pods could not start, the cluster is
//! skipped (open) for `cooldown`; then one probe Job may go to it (half
//! open): its success closes the circuit, its failure opens it again.
//!
//! The two kinds are counted apart because an API that answers says nothing
//! about whether pods start: a cluster whose image cannot be pulled answers
//! every create. A circuit opened by failed starts closes only when a pod
//! starts. Pure: the caller passes the time.

use std::time::{Duration, Instant};

/// The circuit's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The cluster takes Jobs.
    Closed,
    /// Skipped until the instant.
    Open {
        /// When one probe may go.
        until: Instant,
    },
    /// One probe is allowed; `probing` once it went.
    HalfOpen {
        /// Whether the probe is out.
        probing: bool,
    },
}

/// One cluster's breaker.
#[derive(Debug, Clone)]
pub struct Circuit {
    state: State,
    failures_in_a_row: u32,
    start_failures_in_a_row: u32,
    threshold: u32,
    cooldown: Duration,
    last_error: String,
}

impl Circuit {
    /// A closed circuit that opens after `threshold` failures in a row.
    pub fn new(threshold: u32, cooldown: Duration) -> Circuit {
        Circuit {
            state: State::Closed,
            failures_in_a_row: 0,
            start_failures_in_a_row: 0,
            threshold: threshold.max(1),
            cooldown,
            last_error: String::new(),
        }
    }

    /// The state at `now` (an open circuit whose cooldown ended is half open).
    pub fn state(&mut self, now: Instant) -> State {
        if let State::Open { until } = self.state
            && now >= until
        {
            self.state = State::HalfOpen { probing: false };
        }
        self.state
    }

    /// How many Jobs may go to the cluster now: all it has room for when
    /// closed, one probe when half open and none is out, else none.
    pub fn admits(&mut self, now: Instant, room: u32) -> u32 {
        match self.state(now) {
            State::Closed => room,
            State::HalfOpen { probing: false } => room.min(1),
            _ => 0,
        }
    }

    /// A Job (or probe) was sent.
    pub fn sent(&mut self, now: Instant) {
        if let State::HalfOpen { probing: false } = self.state(now) {
            self.state = State::HalfOpen { probing: true };
        }
    }

    /// An API call succeeded: the circuit closes, unless pods keep failing
    /// to start.
    pub fn succeeded(&mut self) {
        self.failures_in_a_row = 0;
        if self.start_failures_in_a_row < self.threshold {
            self.state = State::Closed;
            self.last_error.clear();
        }
    }

    /// A pod started: the circuit closes, unless API calls keep failing.
    pub fn started(&mut self) {
        self.start_failures_in_a_row = 0;
        if self.failures_in_a_row < self.threshold {
            self.state = State::Closed;
            self.last_error.clear();
        }
    }

    /// An API call failed; returns true when this opened the circuit.
    pub fn failed(&mut self, now: Instant, error: impl Into<String>) -> bool {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        self.open_if(now, error.into(), self.failures_in_a_row)
    }

    /// A Job's pod could not start; returns true when this opened the circuit.
    pub fn start_failed(&mut self, now: Instant, error: impl Into<String>) -> bool {
        self.start_failures_in_a_row = self.start_failures_in_a_row.saturating_add(1);
        self.open_if(now, error.into(), self.start_failures_in_a_row)
    }

    fn open_if(&mut self, now: Instant, error: String, in_a_row: u32) -> bool {
        self.last_error = error;
        let opens = match self.state(now) {
            State::HalfOpen { .. } => true,
            State::Closed => in_a_row >= self.threshold,
            State::Open { .. } => false,
        };
        if opens {
            self.state = State::Open {
                until: now + self.cooldown,
            };
        }
        opens
    }

    /// Why it last failed.
    pub fn last_error(&self) -> &str {
        &self.last_error
    }

    /// `closed`, `open` or `half_open`.
    pub fn name(&mut self, now: Instant) -> &'static str {
        match self.state(now) {
            State::Closed => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_probes_after_the_cooldown_and_closes_on_success() {
        let t0 = Instant::now();
        let mut c = Circuit::new(3, Duration::from_secs(30));
        assert_eq!(c.admits(t0, 10), 10);
        assert!(!c.failed(t0, "boom"));
        c.succeeded();
        assert!(!c.failed(t0, "1"));
        assert!(!c.failed(t0, "2"));
        assert!(c.failed(t0, "3"), "the third failure in a row opens it");
        assert_eq!(c.admits(t0 + Duration::from_secs(29), 10), 0);
        let later = t0 + Duration::from_secs(30);
        assert_eq!(c.admits(later, 10), 1, "one probe after the cooldown");
        c.sent(later);
        assert_eq!(c.admits(later, 10), 0, "only one probe at a time");
        assert!(
            c.failed(later, "still down"),
            "a failed probe opens it again"
        );
        assert_eq!(c.name(later), "open");
        let again = later + Duration::from_secs(30);
        assert_eq!(c.admits(again, 10), 1);
        c.sent(again);
        c.succeeded();
        assert_eq!(c.admits(again, 10), 10);
        assert_eq!(c.name(again), "closed");
    }

    #[test]
    fn pods_failing_to_start_open_it_and_only_a_started_pod_closes_it() {
        let t0 = Instant::now();
        let mut c = Circuit::new(2, Duration::from_secs(30));
        assert!(!c.start_failed(t0, "ImagePullBackOff"));
        c.succeeded();
        assert!(
            c.start_failed(t0, "ImagePullBackOff"),
            "API successes between failed starts do not reset their count"
        );
        c.succeeded();
        assert_eq!(c.name(t0), "open", "an answering API does not close it");
        let later = t0 + Duration::from_secs(30);
        assert_eq!(c.admits(later, 10), 1, "one probe");
        c.sent(later);
        c.succeeded();
        assert_eq!(
            c.admits(later, 10),
            0,
            "the probe's create succeeding is not enough: its pod must start"
        );
        assert!(
            c.start_failed(later, "ImagePullBackOff"),
            "the probe failed to start"
        );
        let again = later + Duration::from_secs(30);
        c.sent(again);
        c.started();
        assert_eq!(c.name(again), "closed");
        assert_eq!(c.admits(again, 10), 10);
    }
}
