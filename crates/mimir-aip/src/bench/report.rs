//! Printing latency percentiles.

use hdrhistogram::Histogram;
use std::time::Duration;

/// A histogram of latencies in microseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

/// One line of percentiles.
pub fn latency_line(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "{name:<28} n={:<8} p50 {:>11}  p90 {:>11}  p99 {:>11}  p99.9 {:>11}  max {:>11}",
        h.len(),
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    )
}

/// Records a duration.
pub fn record(h: &mut Histogram<u64>, elapsed: Duration) {
    h.saturating_record(elapsed.as_micros().max(1) as u64);
}

/// Formats bytes as MiB.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
