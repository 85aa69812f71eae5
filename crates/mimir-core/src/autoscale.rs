//! The autoscaling rule: how many workers the queue calls for, and how that
//! call is damped so the pool does not flap.
//!
//! [`desired_workers`] is the seed's formula, read fresh at every poll. A
//! queue that hovers around a threshold makes it flip between two values
//! every few polls; [`DampedDesired`] follows a rise at once (work is
//! waiting) but a fall only once the queue has called for fewer workers for a
//! whole cool-down, and says which of the two happened.

use std::time::{Duration, Instant};

/// `clamp(ceil(queue_length / threshold), min, max)`. A `threshold` of 0 is
/// treated as 1; `max` of 0 means no local workers at all.
pub fn desired_workers(queue_length: usize, threshold: u32, min: u32, max: u32) -> u32 {
    if max == 0 {
        return 0;
    }
    let threshold = threshold.max(1) as usize;
    let wanted = queue_length.div_ceil(threshold).min(u32::MAX as usize) as u32;
    wanted.clamp(min.min(max), max)
}

/// What one poll did to the desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// The queue calls for as many workers as are desired.
    Steady,
    /// The queue calls for more: raised at once.
    Raised {
        /// The desired count before.
        from: u32,
    },
    /// The queue calls for fewer, but not yet for a whole cool-down: kept.
    Holding {
        /// The most workers the queue called for since it started calling for fewer.
        wanted: u32,
        /// How much longer it must keep calling for fewer.
        left: Duration,
    },
    /// The queue called for fewer for a whole cool-down: lowered to the
    /// most it called for meanwhile.
    Lowered {
        /// The desired count before.
        from: u32,
    },
}

/// The desired worker count between polls: up at once, down only after a
/// cool-down. Pure: the caller passes the time of each poll.
#[derive(Debug, Clone)]
pub struct DampedDesired {
    cooldown: Duration,
    desired: u32,
    /// Since when the queue has called for fewer than `desired`, and the
    /// most it called for since then.
    lower: Option<(Instant, u32)>,
}

impl DampedDesired {
    /// Starts at 0 desired; a fall must last `cooldown` (0: follow at once).
    pub fn new(cooldown: Duration) -> DampedDesired {
        DampedDesired {
            cooldown,
            desired: 0,
            lower: None,
        }
    }

    /// The desired count now.
    pub fn desired(&self) -> u32 {
        self.desired
    }

    /// One poll at `now` where the queue calls for `wanted` workers (the
    /// output of [`desired_workers`]): the new desired count and why.
    pub fn update(&mut self, wanted: u32, now: Instant) -> (u32, Trend) {
        if wanted >= self.desired {
            self.lower = None;
            let from = self.desired;
            self.desired = wanted;
            let trend = if wanted > from {
                Trend::Raised { from }
            } else {
                Trend::Steady
            };
            return (wanted, trend);
        }
        let (since, most) = match self.lower {
            Some((since, most)) => (since, most.max(wanted)),
            None => (now, wanted),
        };
        let lasted = now.saturating_duration_since(since);
        if lasted >= self.cooldown {
            let from = self.desired;
            self.desired = most;
            self.lower = None;
            return (most, Trend::Lowered { from });
        }
        self.lower = Some((since, most));
        let trend = Trend::Holding {
            wanted: most,
            left: self.cooldown - lasted,
        };
        (self.desired, trend)
    }
}

/// `1 worker`, `2 workers`.
fn workers(n: u32) -> String {
    if n == 1 {
        "1 worker".to_string()
    } else {
        format!("{n} workers")
    }
}

/// Why a poll left the desired count at `desired`, in words: `by_queue` is
/// what the queue of `queue_length` alone calls for (before `minWorkers`),
/// `cooldown` how long a fall must last.
pub fn reason(
    trend: Trend,
    queue_length: usize,
    by_queue: u32,
    desired: u32,
    cooldown: Duration,
) -> String {
    let cooldown = cooldown.as_secs_f64();
    let queue = format!("queue of {queue_length} calls for {}", workers(by_queue));
    match trend {
        Trend::Steady | Trend::Raised { .. } if by_queue < desired => {
            let kept = format!("{queue}; minWorkers keeps {desired}");
            match trend {
                Trend::Raised { .. } => format!("{kept}: raised at once"),
                _ => kept,
            }
        }
        Trend::Steady => queue,
        Trend::Raised { .. } => format!("{queue}: raised at once"),
        Trend::Holding { left, .. } => format!(
            "{queue}: keeping {desired} until it has for {cooldown:.0} s ({:.0} s left)",
            left.as_secs_f64().ceil()
        ),
        Trend::Lowered { .. } => format!(
            "queue called for {} or fewer for {cooldown:.0} s: lowered",
            workers(desired)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn follows_the_seed_formula() {
        assert_eq!(desired_workers(0, 5, 1, 10), 1);
        assert_eq!(desired_workers(1, 5, 1, 10), 1);
        assert_eq!(desired_workers(6, 5, 1, 10), 2);
        assert_eq!(desired_workers(1000, 5, 1, 10), 10);
        assert_eq!(desired_workers(1000, 5, 1, 0), 0);
        assert_eq!(desired_workers(0, 5, 0, 4), 0);
    }

    const COOLDOWN: Duration = Duration::from_secs(30);

    #[test]
    fn rises_at_once() {
        let t0 = Instant::now();
        let mut d = DampedDesired::new(COOLDOWN);
        assert_eq!(d.update(1, t0), (1, Trend::Raised { from: 0 }));
        assert_eq!(d.update(1, t0), (1, Trend::Steady));
        assert_eq!(
            d.update(3, t0 + Duration::from_millis(250)),
            (3, Trend::Raised { from: 1 })
        );
    }

    #[test]
    fn a_queue_flipping_between_one_and_two_keeps_two() {
        // The queue hovers around the threshold: the formula says 2, 1, 2, 1, …
        let t0 = Instant::now();
        let mut d = DampedDesired::new(COOLDOWN);
        let mut seen = Vec::new();
        for poll in 0..400u32 {
            let wanted = if (poll / 8) % 2 == 0 { 2 } else { 1 };
            let (desired, _) = d.update(wanted, t0 + Duration::from_millis(250) * poll);
            seen.push(desired);
        }
        assert!(seen.iter().all(|&n| n == 2), "{seen:?}");
    }

    #[test]
    fn falls_only_after_a_whole_cooldown_of_calling_for_fewer() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = DampedDesired::new(COOLDOWN);
        d.update(4, t0);
        assert_eq!(
            d.update(1, t0 + s(1)),
            (
                4,
                Trend::Holding {
                    wanted: 1,
                    left: s(30)
                }
            )
        );
        // The most called for during the cool-down is where it lands.
        assert_eq!(
            d.update(2, t0 + s(11)),
            (
                4,
                Trend::Holding {
                    wanted: 2,
                    left: s(20)
                }
            )
        );
        assert_eq!(d.update(1, t0 + s(31)), (2, Trend::Lowered { from: 4 }));
        // A rise back to the desired count restarts the cool-down.
        d.update(2, t0 + s(32));
        assert_eq!(d.update(1, t0 + s(33)).0, 2);
        assert_eq!(d.update(1, t0 + s(62)).0, 2);
        assert_eq!(d.update(1, t0 + s(63)), (1, Trend::Lowered { from: 2 }));
    }

    #[test]
    fn no_cooldown_follows_the_formula() {
        let t0 = Instant::now();
        let mut d = DampedDesired::new(Duration::ZERO);
        for (i, wanted) in [3, 1, 0, 5, 2].into_iter().enumerate() {
            assert_eq!(
                d.update(wanted, t0 + Duration::from_secs(i as u64)).0,
                wanted
            );
        }
    }

    #[test]
    fn reasons_say_what_the_queue_called_for_and_what_was_done() {
        let s = Duration::from_secs;
        let said = |trend, queue, by_queue, desired| reason(trend, queue, by_queue, desired, s(30));
        assert_eq!(
            said(Trend::Raised { from: 1 }, 7, 2, 2),
            "queue of 7 calls for 2 workers: raised at once"
        );
        assert_eq!(
            said(Trend::Raised { from: 0 }, 0, 0, 1),
            "queue of 0 calls for 0 workers; minWorkers keeps 1: raised at once"
        );
        assert_eq!(
            said(Trend::Steady, 3, 1, 1),
            "queue of 3 calls for 1 worker"
        );
        assert_eq!(
            said(
                Trend::Holding {
                    wanted: 1,
                    left: s(12)
                },
                2,
                1,
                2
            ),
            "queue of 2 calls for 1 worker: keeping 2 until it has for 30 s (12 s left)"
        );
        assert_eq!(
            said(Trend::Lowered { from: 2 }, 0, 1, 1),
            "queue called for 1 worker or fewer for 30 s: lowered"
        );
    }

    proptest! {
        #[test]
        fn always_within_bounds(queue in 0usize..1_000_000, threshold in 0u32..100, min in 0u32..20, max in 0u32..50) {
            let n = desired_workers(queue, threshold, min, max);
            prop_assert!(n <= max);
            if max > 0 { prop_assert!(n >= min.min(max)); }
        }

        #[test]
        fn never_below_the_call_and_never_above_the_highest_call(
            calls in proptest::collection::vec((0u32..10, 0u64..20), 1..200),
        ) {
            let mut d = DampedDesired::new(COOLDOWN);
            let mut now = Instant::now();
            let mut highest = 0;
            for (wanted, step) in calls {
                now += Duration::from_secs(step);
                highest = highest.max(wanted);
                let (desired, _) = d.update(wanted, now);
                prop_assert!(desired >= wanted);
                prop_assert!(desired <= highest);
                prop_assert_eq!(desired, d.desired());
            }
        }
    }
}
