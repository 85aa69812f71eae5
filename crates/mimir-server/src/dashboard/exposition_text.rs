//! Reading Prometheus exposition text back, for the dashboard's pages: the
//! registry is read as the text `/metrics` serves (`prometheus-client` does
//! not let its families be listed), so the pages and Grafana agree.

/// One sample of the text: name, labels, value.
pub struct Sample<'a> {
    /// The series name.
    pub name: &'a str,
    /// Its labels, as written.
    pub labels: Vec<(&'a str, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample<'_> {
    /// The value of label `key` ("" when absent).
    pub fn label(&self, key: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Parses one line of Prometheus text (`name{k="v",...} value`); `None` for
/// comments and anything malformed.
pub fn sample(line: &str) -> Option<Sample<'_>> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = None;
            while let Some((at, c)) = chars.next() {
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => {
                        end = Some(at);
                        break;
                    }
                    other => value.push(other),
                }
            }
            rest = &after[end? + 1..];
            labels.push((key, value));
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// `histogram_quantile(q, ...)` over cumulative buckets sorted by bound:
/// linear within the bucket the rank falls in; the highest finite bound when
/// it falls in `+Inf`.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, cumulative) in buckets {
        if cumulative >= rank {
            if bound.is_infinite() {
                return Some(lower);
            }
            let inside = cumulative - below;
            if inside <= 0.0 {
                return Some(bound);
            }
            return Some(lower + (bound - lower) * ((rank - below) / inside));
        }
        lower = bound;
        below = cumulative;
    }
    Some(lower)
}

/// The `le` bound of a bucket sample (`+Inf` included); `None` when malformed.
pub fn bucket_bound(s: &Sample<'_>) -> Option<f64> {
    match s.label("le") {
        "+Inf" => Some(f64::INFINITY),
        le => le.parse().ok(),
    }
}
