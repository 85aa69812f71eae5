//! Durations as people read them: `850 µs`, `51 ms`, `1.26 s`, `1 m 15 s`,
//! `2 h 10 m`. Three significant digits below a minute, whole seconds below an
//! hour, whole minutes above; the unit is chosen after rounding, so a value
//! just under a unit's end reads `1 ms`, never `1000 µs`.
//!
//! The CLI prints durations with this and the dashboard's `format.js` follows
//! the same rules (its browser test compares the two), so a figure reads the
//! same wherever it is shown.

use std::time::Duration;

/// `d` as text, e.g. `1.26 s`.
pub fn duration_text(d: Duration) -> String {
    seconds_text(d.as_secs_f64())
}

/// A duration given in milliseconds (as the API's `duration_ms` fields are);
/// `None` for a negative or non-finite figure, which is no duration.
pub fn millis_text(ms: f64) -> Option<String> {
    (ms.is_finite() && ms >= 0.0).then(|| seconds_text(ms / 1000.0))
}

/// `seconds` as text, e.g. `51 ms`; `–` when not a number, `0 s` for zero.
/// Negative values read as their size with a minus sign.
pub fn seconds_text(seconds: f64) -> String {
    if seconds.is_nan() {
        return "–".to_string();
    }
    if seconds < 0.0 {
        return format!("-{}", seconds_text(-seconds));
    }
    if seconds == 0.0 {
        return "0 s".to_string();
    }
    let rounded = three_significant(seconds);
    if rounded < 1e-3 {
        return format!("{} µs", three_significant_text(seconds * 1e6));
    }
    if rounded < 1.0 {
        return format!("{} ms", three_significant_text(seconds * 1e3));
    }
    if rounded < 60.0 {
        return format!("{} s", three_significant_text(seconds));
    }
    let whole = seconds.round();
    if whole < 3600.0 {
        let whole = whole as u64;
        return match whole % 60 {
            0 => format!("{} m", whole / 60),
            s => format!("{} m {s} s", whole / 60),
        };
    }
    if !seconds.is_finite() {
        return "∞".to_string();
    }
    let minutes = (seconds / 60.0).round() as u64;
    match minutes % 60 {
        0 => format!("{} h", minutes / 60),
        m => format!("{} h {m} m", minutes / 60),
    }
}

/// `x` rounded to three significant digits.
fn three_significant(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(2 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// `x` (at least 1 once rounded, below 1000) with three significant digits,
/// trailing zeros dropped: `51`, `1.26`, `12.5`.
fn three_significant_text(x: f64) -> String {
    let rounded = three_significant(x);
    let decimals = if rounded >= 100.0 {
        0
    } else if rounded >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{rounded:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases the dashboard's formatter is checked against too.
    const CASES: &[(f64, &str)] = &[
        (0.0, "0 s"),
        (0.000_000_4, "0.4 µs"),
        (0.000_011_6, "11.6 µs"),
        (0.000_85, "850 µs"),
        (0.000_999_7, "1 ms"),
        (0.001_264_351, "1.26 ms"),
        (0.051, "51 ms"),
        (0.150, "150 ms"),
        (1.264_351, "1.26 s"),
        (12.34, "12.3 s"),
        (59.96, "1 m"),
        (75.0, "1 m 15 s"),
        (84.4, "1 m 24 s"),
        (3599.6, "1 h"),
        (7800.0, "2 h 10 m"),
    ];

    #[test]
    fn reads_as_people_write_durations() {
        for (seconds, text) in CASES {
            assert_eq!(seconds_text(*seconds), *text, "{seconds} s");
        }
    }

    #[test]
    fn odd_values_still_read() {
        assert_eq!(seconds_text(f64::NAN), "–");
        assert_eq!(seconds_text(-0.051), "-51 ms");
        assert_eq!(seconds_text(f64::INFINITY), "∞");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1.5 s");
    }
}
