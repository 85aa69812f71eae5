//! Options every connector reads from its config's `options`.

use crate::StorageError;
use serde_json::{Map, Value};
use std::time::Duration;

/// Connections a pool opens at most, unless `options.max_connections` says.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long an operation may take, unless `options.timeout_ms` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening a connection may take, unless `options.connect_timeout_ms` says.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a transient failure is retried, unless `options.retries` says.
pub const DEFAULT_RETRIES: u32 = 3;

/// The options common to every backend.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonOptions {
    /// The pool's size.
    pub max_connections: u32,
    /// Per operation, including retries.
    pub timeout: Duration,
    /// Per connection attempt.
    pub connect_timeout: Duration,
    /// Retries of transient failures.
    pub retries: u32,
}

impl CommonOptions {
    /// Reads them, refusing values out of range by name.
    pub fn read(options: &Map<String, Value>) -> Result<CommonOptions, StorageError> {
        let max_connections = number(options, "max_connections", 1, 1000)?
            .map_or(DEFAULT_MAX_CONNECTIONS, |n| n as u32);
        let timeout = number(options, "timeout_ms", 1, 3_600_000)?
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let connect_timeout = number(options, "connect_timeout_ms", 1, 600_000)?
            .map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_millis);
        let retries = number(options, "retries", 0, 10)?.map_or(DEFAULT_RETRIES, |n| n as u32);
        Ok(CommonOptions {
            max_connections,
            timeout,
            connect_timeout,
            retries,
        })
    }
}

/// An optional whole-number option within `min..=max`.
pub fn number(
    options: &Map<String, Value>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, StorageError> {
    match options.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(StorageError::config(format!(
                "options.{name} must be a whole number from {min} to {max}, not {value}"
            ))),
        },
    }
}

/// An optional string option.
pub fn text<'a>(
    options: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, StorageError> {
    match options.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(StorageError::config(format!(
            "options.{name} must be a string, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_bounds() {
        let empty = Map::new();
        let defaults = CommonOptions::read(&empty).ok();
        assert_eq!(
            defaults.map(|o| o.max_connections),
            Some(DEFAULT_MAX_CONNECTIONS)
        );
        let bad = json!({"max_connections": 0})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let error = CommonOptions::read(&bad).err().map(|e| e.message);
        assert!(error.is_some_and(|m| m.contains("options.max_connections")));
        let set = json!({"timeout_ms": 250, "retries": 0})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let set = CommonOptions::read(&set).ok();
        assert_eq!(
            set.as_ref().map(|o| o.timeout),
            Some(Duration::from_millis(250))
        );
        assert_eq!(set.map(|o| o.retries), Some(0));
    }
}
