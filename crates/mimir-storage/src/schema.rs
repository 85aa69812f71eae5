//! Entity definitions: typed attributes and the ones users filter on.
//!
//! Without a definition an entity type takes any JSON objects. With one
//! (`create_schema`), SQL backends make a table with a typed column per
//! attribute and an index on each `indexed` one, and every backend refuses
//! records that do not fit: an undeclared attribute, a value of the wrong
//! type, a `required` one missing. Timestamps are RFC 3339 strings, stored
//! and answered in one canonical form (UTC, microseconds, `Z`) so that they
//! sort and compare the same as strings and as SQL timestamps.

use crate::{Filter, Name, Operator, Record, StorageError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An attribute's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeType {
    /// Text.
    String,
    /// A whole number that fits in 64 bits.
    Integer,
    /// Any number.
    Number,
    /// true or false.
    Boolean,
    /// An RFC 3339 date and time.
    Timestamp,
    /// Any JSON value, stored as given (not filterable).
    Json,
}

/// One attribute of an entity definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// Its name.
    pub name: Name,
    /// Its type.
    #[serde(rename = "type")]
    pub attribute_type: AttributeType,
    /// Make filters on it fast (an index, where the backend has them).
    #[serde(default)]
    pub indexed: bool,
    /// Refuse records without it (or with null).
    #[serde(default)]
    pub required: bool,
}

/// An entity definition: `{name, attributes: [{name, type, indexed, required}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySchema {
    /// The entity type.
    pub name: Name,
    /// Its attributes, in column order.
    pub attributes: Vec<Attribute>,
}

impl EntitySchema {
    /// Checks the definition itself: at least one attribute, no name twice,
    /// `json` attributes not indexed.
    pub fn check(&self) -> Result<(), StorageError> {
        if self.attributes.is_empty() {
            return Err(StorageError::invalid(format!(
                "entity {} declares no attributes",
                self.name
            )));
        }
        for (i, attribute) in self.attributes.iter().enumerate() {
            if self.attributes[..i]
                .iter()
                .any(|a| a.name == attribute.name)
            {
                return Err(StorageError::invalid(format!(
                    "entity {} declares attribute {} twice",
                    self.name, attribute.name
                )));
            }
            if attribute.indexed && attribute.attribute_type == AttributeType::Json {
                return Err(StorageError::invalid(format!(
                    "attribute {}.{} is json, which cannot be indexed",
                    self.name, attribute.name
                )));
            }
        }
        Ok(())
    }

    /// The declared attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name.as_str() == name)
    }

    /// Checks a record against the definition and puts its timestamps in
    /// canonical form; the error names the attribute.
    pub fn normalize_record(&self, record: &mut Record) -> Result<(), StorageError> {
        for name in record.keys() {
            if self.attribute(name).is_none() {
                return Err(StorageError::invalid(format!(
                    "attribute {name} is not declared for entity {}",
                    self.name
                )));
            }
        }
        for attribute in &self.attributes {
            let what = format!("{}.{}", self.name, attribute.name);
            match record.get_mut(attribute.name.as_str()) {
                None | Some(Value::Null) if attribute.required => {
                    return Err(StorageError::invalid(format!("{what} is required")));
                }
                None | Some(Value::Null) => {}
                Some(value) => normalize_value(attribute.attribute_type, value, &what)?,
            }
        }
        Ok(())
    }

    /// Checks filter values against the attributes' types (a filter on an
    /// undeclared or json attribute is refused) and puts timestamps in
    /// canonical form.
    pub fn normalize_filters(&self, filters: &mut [Filter]) -> Result<(), StorageError> {
        for filter in filters {
            let what = format!("{}.{}", self.name, filter.attribute);
            let Some(attribute) = self.attribute(filter.attribute.as_str()) else {
                return Err(StorageError::invalid(format!(
                    "cannot filter on {what}: it is not declared"
                )));
            };
            let kind = attribute.attribute_type;
            if kind == AttributeType::Json {
                return Err(StorageError::invalid(format!(
                    "cannot filter on {what}: json attributes are not filterable"
                )));
            }
            match (&mut filter.value, filter.operator) {
                (Value::Null, _) => {}
                (Value::Array(items), Operator::In) => {
                    for item in items.iter_mut().filter(|v| !v.is_null()) {
                        normalize_value(kind, item, &what)?;
                    }
                }
                (Value::String(_), Operator::Like) if kind == AttributeType::String => {}
                (_, Operator::Like) => {
                    return Err(StorageError::invalid(format!(
                        "like needs a string attribute; {what} is not one"
                    )));
                }
                (value, _) => normalize_value(kind, value, &what)?,
            }
        }
        Ok(())
    }
}

/// Checks one non-null value against a type, canonicalizing timestamps.
fn normalize_value(kind: AttributeType, value: &mut Value, what: &str) -> Result<(), StorageError> {
    let fits = match kind {
        AttributeType::String => value.is_string(),
        AttributeType::Integer => value.is_i64(),
        AttributeType::Number => value.is_number(),
        AttributeType::Boolean => value.is_boolean(),
        AttributeType::Json => true,
        AttributeType::Timestamp => match value.as_str().and_then(canonical_timestamp) {
            Some(canonical) => {
                *value = Value::String(canonical);
                true
            }
            None => false,
        },
    };
    if fits {
        return Ok(());
    }
    let kind = serde_json::to_value(kind).unwrap_or_default();
    Err(StorageError::invalid(format!(
        "{what} must be {}, not {value}",
        kind.as_str().unwrap_or("of its type")
    )))
}

/// An RFC 3339 time in canonical form (`2026-11-30T05:00:00.000000Z`).
pub fn canonical_timestamp(text: &str) -> Option<String> {
    let time = DateTime::parse_from_rfc3339(text).ok()?;
    Some(
        time.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Micros, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> EntitySchema {
        serde_json::from_value(json!({
            "name": "orders",
            "attributes": [
                {"name": "id", "type": "integer", "indexed": true, "required": true},
                {"name": "customer", "type": "string", "indexed": true},
                {"name": "total", "type": "number"},
                {"name": "paid", "type": "boolean"},
                {"name": "at", "type": "timestamp"},
                {"name": "extra", "type": "json"}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn records_are_checked_and_timestamps_canonical() {
        let schema = schema();
        assert!(schema.check().is_ok());
        let mut ok = json!({"id": 1, "customer": "a", "total": 2.5, "paid": true,
            "at": "2026-11-30T06:00:00+01:00", "extra": {"x": [1]}})
        .as_object()
        .cloned()
        .unwrap_or_default();
        assert!(schema.normalize_record(&mut ok).is_ok());
        assert_eq!(ok["at"], json!("2026-11-30T05:00:00.000000Z"));
        for (bad, says) in [
            (json!({"customer": "a"}), "orders.id is required"),
            (json!({"id": 1.5}), "orders.id must be integer"),
            (
                json!({"id": 1, "paid": "yes"}),
                "orders.paid must be boolean",
            ),
            (
                json!({"id": 1, "at": "yesterday"}),
                "orders.at must be timestamp",
            ),
            (json!({"id": 1, "other": 1}), "other is not declared"),
        ] {
            let mut record = bad.as_object().cloned().unwrap_or_default();
            let error = schema
                .normalize_record(&mut record)
                .err()
                .map(|e| e.message);
            assert!(
                error.as_deref().is_some_and(|m| m.contains(says)),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn definitions_are_checked() {
        let mut twice = schema();
        twice.attributes.push(twice.attributes[0].clone());
        assert!(twice.check().is_err());
        let mut indexed_json = schema();
        indexed_json.attributes[5].indexed = true;
        assert!(indexed_json.check().is_err());
    }
}
