//! Per-second rates over a sliding window, from samples of a counter.
//!
//! The contract's `mimir_queue_enqueue_rate` and `mimir_queue_dequeue_rate` are
//! gauges of tasks per second over the last minute. A sampler records the
//! counter's value once a second; the rate is the increase across the window
//! divided by the time it spans.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Defaults to one minute.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);

/// Recent samples of one counter.
#[derive(Debug)]
pub struct RateWindow {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    /// A window of `window`.
    pub fn new(window: Duration) -> RateWindow {
        RateWindow {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records the counter's value at `at`, forgetting samples older than the
    /// window (one is kept just outside it, so the rate spans the full window).
    pub fn record(&mut self, at: Instant, value: u64) {
        self.samples.push_back((at, value));
        while self.samples.len() > 2 {
            let second = self.samples[1].0;
            if at.duration_since(second) >= self.window {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Increase per second across the samples held; 0 with fewer than two.
    pub fn per_second(&self) -> f64 {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let span = last.0.duration_since(first.0).as_secs_f64();
        if span <= 0.0 {
            return 0.0;
        }
        last.1.saturating_sub(first.1) as f64 / span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_the_increase_over_the_last_window() {
        let start = Instant::now();
        let mut w = RateWindow::new(Duration::from_secs(60));
        assert_eq!(w.per_second(), 0.0);
        // 10 per second for two minutes, then nothing for 30 s.
        for s in 0..=120 {
            w.record(start + Duration::from_secs(s), s * 10);
        }
        assert!((w.per_second() - 10.0).abs() < 1e-9, "{}", w.per_second());
        for s in 121..=150 {
            w.record(start + Duration::from_secs(s), 1200);
        }
        // 30 s of the last 60 at 10/s.
        assert!((w.per_second() - 5.0).abs() < 1e-9, "{}", w.per_second());
        assert!(w.samples.len() <= 62);
    }
}
