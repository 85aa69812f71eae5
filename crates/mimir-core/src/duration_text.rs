//! Durations as people read them: `850 µs`, `51 ms`, `1.26 s`, `1 m 15 s`.
//!
//! One format for every place the product prints a duration (the CLI's task
//! and step tables, the dashboard), so the same time never reads two ways.
//! Below a minute a figure keeps three significant digits, trailing zeros
//! dropped; from a minute on it is whole units, the largest two.

use std::time::Duration;

/// `duration` in the product's one human format, e.g. `1.26 s`.
pub fn duration_text(duration: Duration) -> String {
    seconds_text(duration.as_secs_f64())
}

/// A duration given in milliseconds (as the API's `duration_ms` fields are);
/// `None` for a negative or non-finite figure, which is no duration.
pub fn millis_text(ms: f64) -> Option<String> {
    (ms.is_finite() && ms >= 0.0).then(|| seconds_text(ms / 1000.0))
}

fn seconds_text(seconds: f64) -> String {
    if seconds <= 0.0 {
        return "0 µs".into();
    }
    let micros = seconds * 1e6;
    if micros < 1.0 {
        // At least 0.1 µs, so a figure above zero never reads "0 µs".
        return format!("{} µs", significant(micros.max(0.1)));
    }
    // A figure that rounds up to 1000 (999.7 µs) is one of the next unit.
    for (value, unit) in [(micros, "µs"), (seconds * 1e3, "ms")] {
        let text = significant(value);
        if rounded(&text) < 1000.0 {
            return format!("{text} {unit}");
        }
    }
    let text = significant(seconds);
    if rounded(&text) < 60.0 {
        return format!("{text} s");
    }
    whole_units(seconds.round() as u64)
}

fn rounded(text: &str) -> f64 {
    text.parse().unwrap_or(f64::INFINITY)
}

/// Three significant digits, trailing zeros dropped (`1.26`, `51.3`, `850`).
fn significant(value: f64) -> String {
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The largest two whole units: `1 m 15 s`, `2 h 5 m`, `3 d 4 h`.
fn whole_units(seconds: u64) -> String {
    const UNITS: [(u64, &str, u64, &str); 3] = [
        (86_400, "d", 3_600, "h"),
        (3_600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ];
    for (size, unit, next_size, next_unit) in UNITS {
        if seconds >= size {
            let rest = (seconds % size) / next_size;
            return format!("{} {unit} {rest} {next_unit}", seconds / size);
        }
    }
    format!("{seconds} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: f64) -> String {
        millis_text(ms).expect("a duration")
    }

    #[test]
    fn the_issues_examples_read_as_people_write_them() {
        assert_eq!(ms(1.264351), "1.26 ms");
        assert_eq!(ms(0.0), "0 µs");
        assert_eq!(ms(0.85), "850 µs");
        assert_eq!(ms(51.0), "51 ms");
        assert_eq!(ms(1264.0), "1.26 s");
        assert_eq!(ms(75_000.0), "1 m 15 s");
    }

    #[test]
    fn each_unit_keeps_three_significant_digits() {
        assert_eq!(ms(0.0116), "11.6 µs");
        assert_eq!(ms(0.0012), "1.2 µs");
        assert_eq!(ms(0.0004), "0.4 µs");
        assert_eq!(ms(12.34), "12.3 ms");
        assert_eq!(ms(123.4), "123 ms");
        assert_eq!(ms(30_000.0), "30 s");
        assert_eq!(ms(12_345.0), "12.3 s");
    }

    #[test]
    fn rounding_up_to_the_next_unit_moves_to_that_unit() {
        assert_eq!(ms(0.9997), "1 ms");
        assert_eq!(ms(999.7), "1 s");
        assert_eq!(ms(59_990.0), "1 m 0 s");
    }

    #[test]
    fn long_durations_show_the_two_largest_units() {
        assert_eq!(duration_text(Duration::from_secs(7_500)), "2 h 5 m");
        assert_eq!(
            duration_text(Duration::from_secs(3 * 86_400 + 4 * 3_600)),
            "3 d 4 h"
        );
        assert_eq!(duration_text(Duration::from_secs(3_600)), "1 h 0 m");
        assert_eq!(duration_text(Duration::from_micros(850)), "850 µs");
    }

    #[test]
    fn no_figure_is_no_duration() {
        assert_eq!(millis_text(-1.0), None);
        assert_eq!(millis_text(f64::NAN), None);
        assert_eq!(millis_text(f64::INFINITY), None);
    }
}
