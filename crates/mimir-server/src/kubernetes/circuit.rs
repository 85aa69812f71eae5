//! A cluster's circuit breaker: after `failures` failed API calls or Job
//! starts in a row the cluster is skipped (open) for `cooldown`; then one
//! probe Job may go to it (half open): its success closes the circuit, its
//! failure opens it again. Pure: the caller passes the time.

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

    /// A call or Job start succeeded: the circuit closes.
    pub fn succeeded(&mut self) {
        self.failures_in_a_row = 0;
        self.state = State::Closed;
        self.last_error.clear();
    }

    /// A call or Job start failed; returns true when this opened the circuit.
    pub fn failed(&mut self, now: Instant, error: impl Into<String>) -> bool {
        self.last_error = error.into();
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        let opens = match self.state(now) {
            State::HalfOpen { .. } => true,
            State::Closed => self.failures_in_a_row >= self.threshold,
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
}
