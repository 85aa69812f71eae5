//! How many tasks a worker runs at once and how many it leases ahead, adapted
//! to what it measures rather than fixed.
//!
//! - **Ahead (prefetch)** pays only for short tasks: it hides the lease round
//!   trip. A worker holds enough to keep each running slot busy for
//!   [`HORIZON`], judged by the typical duration of its recent tasks, but not
//!   for slots taken by a task that has already run longer than [`SHORT`]: a
//!   slow task stops prefetch for its slot at once, not after it ends. None
//!   before anything ran.
//! - **At once (concurrency)** starts at the number of CPUs and grows while
//!   every slot is busy, tasks wait (held here or in the orchestrator's
//!   queue) and the machine has idle CPU and free memory
//!   (tasks that wait on I/O), up to the configured most; it falls back while
//!   the CPU is saturated.

use std::time::Duration;

/// Defaults to 4 per CPU: the most tasks a worker runs at once.
pub fn default_max_concurrency() -> usize {
    4 * cpus()
}

/// Defaults to 256: the most tasks a worker leases ahead of those it runs.
pub const DEFAULT_MAX_PREFETCH: usize = 256;

/// CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Prefetch keeps each running slot busy for this long.
pub const HORIZON: Duration = Duration::from_millis(25);
/// Tasks typically taking at least this long are not prefetched.
pub const SHORT: Duration = Duration::from_millis(50);
/// Concurrency grows only while the machine's CPUs are idle at least this
/// share of the time.
const GROW_BELOW_BUSY: f64 = 0.8;
/// Concurrency falls back while the CPUs are busy more than this share.
const SHRINK_ABOVE_BUSY: f64 = 0.97;
/// Concurrency grows only while this much memory is available.
const GROW_WITH_MEMORY: u64 = 1 << 30;

/// What a worker measured over the last adjustment period.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    /// Every slot was busy and a task waited (here or in the queue) the
    /// whole period.
    pub backlog: bool,
    /// Share of the period the machine's CPUs were busy, if known.
    pub cpu_busy: Option<f64>,
    /// Memory the machine has available, in bytes, if known.
    pub memory_available: Option<u64>,
}

/// A worker's sizing.
#[derive(Debug, Clone)]
pub struct Sizing {
    max_concurrency: usize,
    max_prefetch: usize,
    floor: usize,
    concurrency: usize,
    /// Moving average of recent task durations, in seconds.
    typical: Option<f64>,
}

impl Sizing {
    /// Runs at most `max_concurrency` tasks at once (starting at `cpus`) and
    /// leases at most `max_prefetch` ahead.
    pub fn new(max_concurrency: usize, max_prefetch: usize, cpus: usize) -> Sizing {
        let max_concurrency = max_concurrency.max(1);
        let floor = cpus.clamp(1, max_concurrency);
        Sizing {
            max_concurrency,
            max_prefetch,
            floor,
            concurrency: floor,
            typical: None,
        }
    }

    /// Tasks to run at once now.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Typical duration of recent tasks, once one finished.
    pub fn typical(&self) -> Option<Duration> {
        self.typical.map(Duration::from_secs_f64)
    }

    /// Tasks to lease beyond those running, given how many running tasks
    /// have already run at least [`SHORT`].
    pub fn prefetch(&self, running_long: usize) -> usize {
        let Some(typical) = self.typical else {
            return 0;
        };
        if typical >= SHORT.as_secs_f64() {
            return 0;
        }
        // At least 50 µs a task: no task is free, and the figure stays finite.
        let per_slot = (HORIZON.as_secs_f64() / typical.max(50e-6)).ceil() as usize;
        per_slot
            .saturating_mul(self.concurrency.saturating_sub(running_long))
            .min(self.max_prefetch)
    }

    /// Folds a finished task's duration into the typical duration.
    pub fn observe(&mut self, took: Duration) {
        let took = took.as_secs_f64();
        self.typical = Some(self.typical.map_or(took, |t| t * 0.8 + took * 0.2));
    }

    /// Adjusts the concurrency after a period; returns the new one when it
    /// changed.
    pub fn adjust(&mut self, load: Load) -> Option<usize> {
        let before = self.concurrency;
        let cpu_free = load.cpu_busy.is_some_and(|busy| busy < GROW_BELOW_BUSY);
        let memory_free = load
            .memory_available
            .is_none_or(|bytes| bytes >= GROW_WITH_MEMORY);
        if load.backlog && cpu_free && memory_free {
            // Grow by half, so a worker of I/O-bound tasks reaches its most in
            // a few periods.
            self.concurrency =
                (self.concurrency + self.concurrency.div_ceil(2)).min(self.max_concurrency);
        } else if load.cpu_busy.is_some_and(|busy| busy > SHRINK_ABOVE_BUSY)
            && self.concurrency > self.floor
        {
            self.concurrency -= 1;
        }
        (self.concurrency != before).then_some(self.concurrency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn prefetches_nothing_before_a_task_finished() {
        let sizing = Sizing::new(8, 256, 2);
        assert_eq!(sizing.prefetch(0), 0);
    }

    #[test]
    fn prefetch_covers_the_horizon_for_short_tasks() {
        let mut sizing = Sizing::new(8, 256, 2);
        sizing.observe(ms(5));
        // 25 ms / 5 ms = 5 per slot, 2 slots.
        assert_eq!(sizing.prefetch(0), 10);
        let mut fast = Sizing::new(8, 256, 2);
        fast.observe(Duration::from_micros(100));
        assert_eq!(fast.prefetch(0), 256, "capped at the most");
    }

    #[test]
    fn no_prefetch_for_long_tasks_nor_for_slots_taken_by_one() {
        let mut sizing = Sizing::new(8, 256, 2);
        sizing.observe(ms(200));
        assert_eq!(sizing.prefetch(0), 0);
        let mut short = Sizing::new(8, 256, 2);
        short.observe(ms(5));
        assert_eq!(short.prefetch(0), 10);
        // One slot runs a task that has run long already: only the other
        // slot is prefetched for.
        assert_eq!(short.prefetch(1), 5);
        assert_eq!(short.prefetch(2), 0);
        assert_eq!(short.prefetch(3), 0);
    }

    #[test]
    fn the_typical_duration_follows_recent_tasks() {
        let mut sizing = Sizing::new(8, 256, 2);
        sizing.observe(ms(1));
        for _ in 0..30 {
            sizing.observe(ms(100));
        }
        let typical = sizing.typical().unwrap();
        assert!(typical > ms(99) && typical <= ms(100), "{typical:?}");
        assert_eq!(sizing.prefetch(0), 0);
    }

    #[test]
    fn concurrency_starts_at_the_cpus_within_the_most() {
        assert_eq!(Sizing::new(8, 0, 2).concurrency(), 2);
        assert_eq!(Sizing::new(1, 0, 2).concurrency(), 1);
        assert_eq!(Sizing::new(0, 0, 0).concurrency(), 1);
    }

    #[test]
    fn concurrency_grows_for_waiting_tasks_while_cpu_and_memory_are_free() {
        let mut sizing = Sizing::new(8, 0, 2);
        let io_bound = Load {
            backlog: true,
            cpu_busy: Some(0.1),
            memory_available: Some(4 << 30),
        };
        assert_eq!(sizing.adjust(io_bound), Some(3));
        assert_eq!(sizing.adjust(io_bound), Some(5));
        assert_eq!(sizing.adjust(io_bound), Some(8));
        assert_eq!(sizing.adjust(io_bound), None, "never above the most");
        // No backlog, CPU neither free nor saturated: stays.
        let steady = Load {
            backlog: false,
            cpu_busy: Some(0.9),
            memory_available: None,
        };
        assert_eq!(sizing.adjust(steady), None);
    }

    #[test]
    fn concurrency_does_not_grow_without_cpu_or_memory_to_spare() {
        let mut sizing = Sizing::new(8, 0, 2);
        let cpu_bound = Load {
            backlog: true,
            cpu_busy: Some(0.9),
            memory_available: Some(4 << 30),
        };
        assert_eq!(sizing.adjust(cpu_bound), None);
        let short_of_memory = Load {
            backlog: true,
            cpu_busy: Some(0.1),
            memory_available: Some(100 << 20),
        };
        assert_eq!(sizing.adjust(short_of_memory), None);
        let unknown_cpu = Load {
            backlog: true,
            cpu_busy: None,
            memory_available: None,
        };
        assert_eq!(sizing.adjust(unknown_cpu), None);
    }

    #[test]
    fn concurrency_falls_back_to_the_cpus_while_the_cpu_is_saturated() {
        let mut sizing = Sizing::new(8, 0, 2);
        let io_bound = Load {
            backlog: true,
            cpu_busy: Some(0.1),
            memory_available: None,
        };
        while sizing.adjust(io_bound).is_some() {}
        assert_eq!(sizing.concurrency(), 8);
        let saturated = Load {
            backlog: true,
            cpu_busy: Some(0.99),
            memory_available: None,
        };
        while sizing.adjust(saturated).is_some() {}
        assert_eq!(sizing.concurrency(), 2);
    }
}
