//! Rendering the registry for a scrape, in the format the scraper asked for.
//!
//! `prometheus-client` writes OpenMetrics text. Scrapers that do not ask for
//! OpenMetrics (`Accept` without `application/openmetrics-text`) get the
//! classic Prometheus text format (0.0.4), converted line by line: counter
//! families are named with their `_total` suffix, `# UNIT` and `# EOF` lines
//! and exemplars are left out.

use prometheus_client::registry::Registry;

/// The OpenMetrics content type.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text content type.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
    /// Prometheus text 0.0.4.
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// Renders every metric of `registry` in `format`.
pub fn render(registry: &Registry, format: Format) -> String {
    let mut text = String::with_capacity(64 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    match format {
        Format::OpenMetrics => text,
        Format::Prometheus => to_prometheus_text(&text),
    }
}

/// Converts OpenMetrics text to the classic Prometheus text format, in one
/// pass (a scrape of a large catalog must stay cheap).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP line waits for its TYPE line: a counter's name gains `_total`.
    let mut help: Option<&str> = None;
    let mut counter_family: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, help.take(), false);
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let counter = kind == "counter";
            flush_help(&mut out, help.take(), counter);
            counter_family = counter.then_some(name);
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(match kind {
                "counter" => "_total counter",
                "info" | "stateset" => " gauge",
                "unknown" => " untyped",
                "gauge" => " gauge",
                "histogram" => " histogram",
                "summary" => " summary",
                _ => " untyped",
            });
            out.push('\n');
            continue;
        }
        let sample = match line.find(" # {") {
            Some(at) => &line[..at],
            None => line,
        };
        // `_created` samples are OpenMetrics-only.
        if let Some(family) = counter_family
            && sample.starts_with(family)
            && sample[family.len()..].starts_with("_created")
        {
            continue;
        }
        out.push_str(sample);
        out.push('\n');
    }
    flush_help(&mut out, help, false);
    out
}

/// Writes a pending `# HELP name text` line, naming `name_total` for a counter.
fn flush_help(out: &mut String, help: Option<&str>, counter: bool) {
    let Some(rest) = help else { return };
    out.push_str("# HELP ");
    match rest.split_once(' ') {
        Some((name, text)) if counter => {
            out.push_str(name);
            out.push_str("_total ");
            out.push_str(text);
        }
        _ => out.push_str(rest),
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMETRICS: &str = "# HELP mimir_tasks Tasks that reached a final status.\n\
# TYPE mimir_tasks counter\n\
mimir_tasks_total{status=\"completed\",type=\"ml_training\"} 3\n\
# HELP mimir_task_duration_seconds Run time.\n\
# TYPE mimir_task_duration_seconds histogram\n\
mimir_task_duration_seconds_bucket{le=\"0.1\"} 1 # {trace_id=\"abc\"} 0.05\n\
mimir_task_duration_seconds_sum 0.05\n\
mimir_task_duration_seconds_count 1\n\
# HELP mimir_build_info Version.\n\
# TYPE mimir_build_info info\n\
mimir_build_info{version=\"0.1.0\"} 1\n\
# EOF\n";

    #[test]
    fn classic_text_names_counters_with_total_and_drops_openmetrics_only_parts() {
        let text = to_prometheus_text(OPENMETRICS);
        assert!(text.contains("# HELP mimir_tasks_total Tasks"), "{text}");
        assert!(
            text.contains("# TYPE mimir_tasks_total counter\n"),
            "{text}"
        );
        assert!(text.contains("mimir_tasks_total{status=\"completed\",type=\"ml_training\"} 3\n"));
        assert!(
            text.contains("mimir_task_duration_seconds_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE mimir_build_info gauge\n"));
        assert!(!text.contains("# EOF"));
        assert!(!text.contains("trace_id"));
    }

    #[test]
    fn accept_header_picks_the_format() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    }
}
