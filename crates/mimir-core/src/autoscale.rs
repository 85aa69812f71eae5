//! The autoscaling rule: how many workers the queue calls for.

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

    proptest! {
        #[test]
        fn always_within_bounds(queue in 0usize..1_000_000, threshold in 0u32..100, min in 0u32..20, max in 0u32..50) {
            let n = desired_workers(queue, threshold, min, max);
            prop_assert!(n <= max);
            if max > 0 { prop_assert!(n >= min.min(max)); }
        }
    }
}
