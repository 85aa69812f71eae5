//! CIR documents in and out of connectors.
//!
//! A stored document's entity type is `source.parameters.entity_type`
//! (`default` when absent); an object `data` is one record, an array `data`
//! a batch of records (objects each). A retrieve answers one document per
//! record, `data` holding the record.

use crate::{DEFAULT_ENTITY, Name, Record, StorageError};
use mimir_core::PluginType;
use serde_json::{Value, json};

/// The CIR version written.
pub const CIR_VERSION: &str = "1.0";

/// The entity type and records of a document to store.
pub fn records_of(document: Value) -> Result<(Name, Vec<Record>), StorageError> {
    let Value::Object(mut document) = document else {
        return Err(StorageError::invalid(
            "cir_data must be a CIR document: an object with version and data",
        ));
    };
    if let Some(version) = document.get("version")
        && version.as_str() != Some(CIR_VERSION)
    {
        return Err(StorageError::invalid(format!(
            "cir_data.version {version} is not supported: use \"{CIR_VERSION}\""
        )));
    }
    let entity = document
        .get("source")
        .and_then(|s| s.get("parameters"))
        .and_then(|p| p.get("entity_type"));
    let entity = match entity {
        None | Some(Value::Null) => DEFAULT_ENTITY.to_string(),
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            return Err(StorageError::invalid(format!(
                "cir_data.source.parameters.entity_type must be a string, not {other}"
            )));
        }
    };
    let entity = Name::new(&entity, "cir_data.source.parameters.entity_type")?;
    let records = match document.remove("data") {
        None => return Err(StorageError::invalid("cir_data has no data")),
        Some(Value::Object(record)) => vec![record],
        Some(Value::Array(items)) => {
            let mut records = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::Object(record) => records.push(record),
                    other => {
                        return Err(StorageError::invalid(format!(
                            "cir_data.data[{i}] must be an object (a record), not {}",
                            kind(&other)
                        )));
                    }
                }
            }
            records
        }
        Some(other) => {
            return Err(StorageError::invalid(format!(
                "cir_data.data must be an object or an array of objects, not {}",
                kind(&other)
            )));
        }
    };
    for record in &records {
        for name in record.keys() {
            Name::new(name, "attribute")?;
        }
    }
    Ok((entity, records))
}

/// The document a retrieve answers for one record.
pub fn document_of(record: Record, storage_id: &str, plugin: PluginType, entity: &Name) -> Value {
    json!({
        "version": CIR_VERSION,
        "source": {
            "type": "database",
            "uri": format!("storage://{storage_id}/{entity}"),
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "format": "json",
            "parameters": {"entity_type": entity.as_str(), "storage_type": plugin.as_str()},
        },
        "data": Value::Object(record),
        "metadata": {"record_count": 1},
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_and_single_records() -> Result<(), StorageError> {
        let (entity, records) =
            records_of(json!({"version": "1.0", "data": [{"id": 1}, {"id": 2}]}))?;
        assert_eq!((entity.as_str(), records.len()), ("default", 2));
        let (entity, records) = records_of(json!({
            "version": "1.0",
            "source": {"type": "api", "parameters": {"entity_type": "users"}},
            "data": {"id": 1}
        }))?;
        assert_eq!((entity.as_str(), records.len()), ("users", 1));
        Ok(())
    }

    #[test]
    fn refuses_what_is_not_records() {
        for (doc, says) in [
            (json!([1]), "must be a CIR document"),
            (json!({"version": "2.0", "data": {}}), "not supported"),
            (json!({"version": "1.0"}), "no data"),
            (json!({"version": "1.0", "data": 5}), "not a number"),
            (
                json!({"version": "1.0", "data": [{"a": 1}, "x"]}),
                "data[1] must be an object",
            ),
            (
                json!({"version": "1.0", "data": {"a b": 1}}),
                "attribute \"a b\"",
            ),
            (
                json!({"version": "1.0", "source": {"parameters": {"entity_type": "../x"}}, "data": {}}),
                "entity_type",
            ),
        ] {
            let error = records_of(doc.clone()).err().map(|e| e.message);
            assert!(
                error.as_deref().is_some_and(|m| m.contains(says)),
                "{doc}: {error:?}"
            );
        }
    }
}
