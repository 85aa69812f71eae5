//! Label and field selectors as the API server parses them from `labelSelector=` and
//! `fieldSelector=`.

use std::collections::BTreeMap;

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl LabelSelector {
    /// Parses `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma-joined.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(Self { requirements })
    }

    /// Whether these labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced parenthesis in {text:?}"))?;
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parenthesis in {text:?}"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(checked_key(key.trim())?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(
            checked_key(k.trim())?,
            checked_value(v.trim())?,
        ));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(
            checked_key(k.trim())?,
            checked_value(v.trim())?,
        ));
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim_start();
        let (op, values) = if let Some(v) = rest.strip_prefix("notin") {
            (false, v)
        } else if let Some(v) = rest.strip_prefix("in") {
            (true, v)
        } else {
            return Err(format!("unable to parse requirement: {part:?}"));
        };
        let values = values.trim();
        let inner = values
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .ok_or_else(|| format!("unable to parse requirement: {part:?}: expected (values)"))?;
        let mut set = Vec::new();
        for v in inner.split(',') {
            set.push(checked_value(v.trim())?);
        }
        let key = checked_key(words[0])?;
        return Ok(if op {
            Requirement::In(key, set)
        } else {
            Requirement::NotIn(key, set)
        });
    }
    Ok(Requirement::Exists(checked_key(part)?))
}

fn checked_key(key: &str) -> Result<String, String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty()
            || p.len() > 253
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(format!("invalid label key {key:?}: bad prefix"));
    }
    if name.is_empty() || name.len() > 63 || !valid_label_chars(name) {
        return Err(format!(
            "invalid label key {key:?}: name part must be 1-63 alphanumerics, '-', '_' or '.'"
        ));
    }
    Ok(key.to_owned())
}

fn checked_value(value: &str) -> Result<String, String> {
    if value.len() > 63 || (!value.is_empty() && !valid_label_chars(value)) {
        return Err(format!(
            "invalid label value {value:?}: must be at most 63 alphanumerics, '-', '_' or '.'"
        ));
    }
    Ok(value.to_owned())
}

fn valid_label_chars(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A parsed field selector; only `metadata.name` and `metadata.namespace` are known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<(Field, bool, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

impl FieldSelector {
    /// Parses `metadata.name=x`, `metadata.namespace!=y`, comma-joined.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (key, equal, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid field selector {part:?}: expected key=value"
                ));
            };
            let field = match key.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other => return Err(format!("field label not supported: {other}")),
            };
            requirements.push((field, equal, value.trim().to_owned()));
        }
        Ok(Self { requirements })
    }

    /// Whether an object of this namespace and name satisfies every requirement.
    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        self.requirements.iter().all(|(field, equal, value)| {
            let actual = match field {
                Field::Name => name,
                Field::Namespace => namespace,
            };
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_existence_requirements_all_hold() {
        let s = LabelSelector::parse("app=mimir-worker,worktask-id=abc-1").unwrap();
        assert!(s.matches(&labels(&[
            ("app", "mimir-worker"),
            ("worktask-id", "abc-1")
        ])));
        assert!(!s.matches(&labels(&[("app", "mimir-worker")])));
        let s = LabelSelector::parse("app!=x,tier,!gone").unwrap();
        assert!(s.matches(&labels(&[("app", "y"), ("tier", "a")])));
        assert!(s.matches(&labels(&[("tier", "a")])));
        assert!(!s.matches(&labels(&[("tier", "a"), ("gone", "1")])));
        assert!(!s.matches(&labels(&[("app", "x"), ("tier", "a")])));
    }

    #[test]
    fn set_requirements_split_on_commas_outside_parentheses() {
        let s = LabelSelector::parse("env in (a, b),app notin (x),k=v").unwrap();
        assert!(s.matches(&labels(&[("env", "b"), ("k", "v")])));
        assert!(!s.matches(&labels(&[("env", "c"), ("k", "v")])));
        assert!(!s.matches(&labels(&[("env", "a"), ("app", "x"), ("k", "v")])));
    }

    #[test]
    fn empty_selector_matches_everything_and_garbage_is_refused() {
        assert!(LabelSelector::parse("").unwrap().matches(&labels(&[])));
        assert!(LabelSelector::parse("a=(b").is_err());
        assert!(LabelSelector::parse("bad key=v").is_err());
        assert!(LabelSelector::parse("k=v v").is_err());
    }

    #[test]
    fn field_selector_knows_name_and_namespace_only() {
        let f = FieldSelector::parse("metadata.name=j1,metadata.namespace!=x").unwrap();
        assert!(f.matches("ns", "j1"));
        assert!(!f.matches("x", "j1"));
        assert!(FieldSelector::parse("status.phase=Running").is_err());
    }
}
