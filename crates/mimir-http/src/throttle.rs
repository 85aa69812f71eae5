//! At most one warning per interval about a recurring condition, with the
//! count of occurrences since the last one.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// How often a recurring condition is logged.
const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// Counts one occurrence; `Some(n)` when it should be logged, `n` being
    /// the occurrences since the last time (this one included).
    pub(crate) fn hit(&self) -> Option<u64> {
        let mut state = self.state.lock();
        state.1 += 1;
        let now = Instant::now();
        if state.0.is_some_and(|last| now - last < INTERVAL) {
            return None;
        }
        state.0 = Some(now);
        let count = state.1;
        state.1 = 0;
        Some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_is_logged_and_the_next_ones_counted() {
        let throttle = Throttle::default();
        assert_eq!(throttle.hit(), Some(1));
        assert_eq!(throttle.hit(), None);
        assert_eq!(throttle.hit(), None);
        throttle.state.lock().0 = Some(Instant::now() - INTERVAL);
        assert_eq!(throttle.hit(), Some(3));
    }
}
