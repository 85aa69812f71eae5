//! Latency distributions that merge: counts in logarithmic buckets, eight per
//! octave from 1 µs, so any quantile read back is within ±4.5% of the exact
//! value and the distributions of many seconds add up to the distribution of
//! their window (which averaging per-second quantiles would not).

/// Buckets per doubling.
const PER_OCTAVE: f64 = 8.0;
/// The smallest value told apart from zero, in seconds.
const FLOOR: f64 = 1e-6;
/// Buckets in all: bucket 0 holds values up to [`FLOOR`], the last one
/// everything from about 12 days up.
pub const BUCKETS: usize = 8 * 40 + 1;

/// Which bucket `seconds` falls in.
pub fn bucket_of(seconds: f64) -> usize {
    // NaN and anything not above the floor (zero, negative) land in bucket 0.
    if seconds.is_nan() || seconds <= FLOOR {
        return 0;
    }
    // In floating point until clamped: infinity must not overflow the cast.
    let index = ((seconds / FLOOR).log2() * PER_OCTAVE).floor() + 1.0;
    index.min((BUCKETS - 1) as f64) as usize
}

/// A bucket's representative value: the geometric middle of its bounds.
fn value_of(bucket: usize) -> f64 {
    if bucket == 0 {
        return 0.0;
    }
    FLOOR * ((bucket as f64 - 0.5) / PER_OCTAVE).exp2()
}

/// Observations of one open interval, one counter per bucket.
#[derive(Debug, Clone)]
pub struct DenseHistogram {
    counts: Box<[u32; BUCKETS]>,
    total: u64,
}

impl Default for DenseHistogram {
    fn default() -> Self {
        DenseHistogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

impl DenseHistogram {
    /// Counts one observation, in seconds.
    pub fn observe(&mut self, seconds: f64) {
        let slot = &mut self.counts[bucket_of(seconds)];
        *slot = slot.saturating_add(1);
        self.total += 1;
    }

    /// The observations as a compact histogram; leaves this one empty.
    pub fn take(&mut self) -> LogHistogram {
        if self.total == 0 {
            return LogHistogram::default();
        }
        let mut counts = Vec::new();
        for (bucket, n) in self.counts.iter_mut().enumerate() {
            if *n > 0 {
                counts.push((bucket as u16, *n));
                *n = 0;
            }
        }
        self.total = 0;
        LogHistogram { counts }
    }
}

/// A closed interval's observations: only the buckets that hold any, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogHistogram {
    counts: Vec<(u16, u32)>,
}

impl LogHistogram {
    /// How many observations it holds.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|(_, n)| u64::from(*n)).sum()
    }

    /// The `q`-quantile (0 to 1), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile(self.counts.iter().copied(), self.count(), q)
    }
}

/// Several intervals' observations added up.
#[derive(Debug, Clone, Default)]
pub struct MergedHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl MergedHistogram {
    /// Adds one interval.
    pub fn add(&mut self, h: &LogHistogram) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for &(bucket, n) in &h.counts {
            self.counts[usize::from(bucket)] += u64::from(n);
            self.total += u64::from(n);
        }
    }

    /// Counts one observation, in seconds.
    pub fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[bucket_of(seconds)] += 1;
        self.total += 1;
    }

    /// Adds another merged histogram.
    pub fn merge(&mut self, other: &MergedHistogram) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// How many observations it holds.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0 to 1), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let buckets = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(b, n)| (b as u16, *n));
        quantile(buckets, self.total, q)
    }
}

/// The smallest bucket value with at least `q` of `total` at or below it.
fn quantile<N: Into<u64>>(
    buckets: impl Iterator<Item = (u16, N)>,
    total: u64,
    q: f64,
) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    let mut last = 0;
    for (bucket, n) in buckets {
        seen += n.into();
        last = bucket;
        if seen >= rank {
            break;
        }
    }
    Some(value_of(usize::from(last)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(values: &mut [f64], q: f64) -> f64 {
        values.sort_by(f64::total_cmp);
        let rank = ((q * values.len() as f64).ceil() as usize).max(1);
        values[rank - 1]
    }

    #[test]
    fn empty_has_no_quantiles() {
        assert_eq!(DenseHistogram::default().take().quantile(0.5), None);
        assert_eq!(MergedHistogram::default().quantile(0.99), None);
    }

    #[test]
    fn zero_and_huge_values_stay_in_range() {
        let mut h = DenseHistogram::default();
        for v in [0.0, -1.0, f64::NAN, 1e12, f64::INFINITY] {
            h.observe(v);
        }
        let h = h.take();
        assert_eq!(h.count(), 5);
        assert_eq!(h.quantile(0.0), Some(0.0));
        assert!(h.quantile(1.0).is_some_and(|v| v > 1e6));
    }

    #[test]
    fn take_empties_the_open_interval() {
        let mut h = DenseHistogram::default();
        h.observe(0.25);
        assert_eq!(h.take().count(), 1);
        assert_eq!(h.take().count(), 0);
    }

    proptest! {
        #[test]
        fn quantiles_are_within_five_percent(
            values in proptest::collection::vec(1e-5f64..1e4, 1..400),
            q in prop_oneof![Just(0.5), Just(0.9), Just(0.99)],
        ) {
            let mut h = DenseHistogram::default();
            for v in &values {
                h.observe(*v);
            }
            let got = h.take().quantile(q).unwrap();
            let want = exact(&mut values.clone(), q);
            prop_assert!((got / want - 1.0).abs() < 0.045, "q{q}: {got} vs {want}");
        }

        #[test]
        fn merging_intervals_equals_one_interval(
            a in proptest::collection::vec(1e-4f64..100.0, 0..100),
            b in proptest::collection::vec(1e-4f64..100.0, 0..100),
        ) {
            let (mut ha, mut hb, mut all) =
                (DenseHistogram::default(), DenseHistogram::default(), DenseHistogram::default());
            for v in &a { ha.observe(*v); all.observe(*v); }
            for v in &b { hb.observe(*v); all.observe(*v); }
            let mut merged = MergedHistogram::default();
            merged.add(&ha.take());
            merged.add(&hb.take());
            let all = all.take();
            prop_assert_eq!(merged.count(), all.count());
            for q in [0.5, 0.99] {
                prop_assert_eq!(merged.quantile(q), all.quantile(q));
            }
        }
    }
}
