//! CIR, the common intermediate representation that data moves in:
//! `{"version": "1.0", "source": {...}, "data": ..., "metadata": {...}}`.

use serde_json::{Value, json};

/// The CIR version this crate writes.
pub const CIR_VERSION: &str = "1.0";

/// True when `value` looks like a CIR document: an object with a string
/// `version` and a `data` key.
pub fn is_document(value: &Value) -> bool {
    value.get("version").is_some_and(Value::is_string) && value.get("data").is_some()
}

/// How many records `data` holds: an array's length, 0 for null, else 1.
pub fn record_count(data: &Value) -> usize {
    match data {
        Value::Array(items) => items.len(),
        Value::Null => 0,
        _ => 1,
    }
}

/// The CIR document for data read from a file.
///
/// `metadata` holds `records`, `bytes` (the file's size), `read_at` (RFC 3339)
/// and, for CSV, `columns` in file order (JSON objects do not keep key order,
/// so writers use it to keep the columns as they were).
pub fn file_document(
    path: &str,
    format: &str,
    data: Value,
    bytes: usize,
    columns: Option<Vec<String>>,
) -> Value {
    let mut metadata = json!({
        "records": record_count(&data),
        "bytes": bytes,
        "read_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if let (Some(columns), Some(map)) = (columns, metadata.as_object_mut()) {
        map.insert("columns".to_string(), json!(columns));
    }
    json!({
        "version": CIR_VERSION,
        "source": {"type": "file", "path": path, "format": format},
        "data": data,
        "metadata": metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_recognizes_documents() {
        let doc = file_document(
            "a.csv",
            "csv",
            json!([{"a": "1"}]),
            4,
            Some(vec!["a".into()]),
        );
        assert!(is_document(&doc));
        assert_eq!(doc["metadata"]["records"], json!(1));
        assert_eq!(doc["metadata"]["columns"], json!(["a"]));
        assert_eq!(
            doc["source"],
            json!({"type": "file", "path": "a.csv", "format": "csv"})
        );
        let read_at = doc["metadata"]["read_at"].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(read_at).is_ok(),
            "{read_at}"
        );
        assert!(!is_document(&json!({"data": 1})));
        assert!(!is_document(&json!([1])));
    }
}
