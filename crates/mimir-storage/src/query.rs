//! CIRQuery: which records of an entity type an operation reads or changes.
//!
//! The wire shape (`{entity_type, filters: [{attribute, operator, value}],
//! order_by: [{attribute, direction}], limit, offset}`) is checked once into
//! [`Query`] or [`Selection`], so that no backend ever sees an unchecked
//! name, an operator with a value it cannot take, or an unbounded read.
//! [`crate::matching`] defines what each operator means.

use crate::{Name, StorageError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The entity type of documents that name none.
pub const DEFAULT_ENTITY: &str = "default";

/// Records a retrieve answers when it sets no `limit`.
pub const DEFAULT_LIMIT: u64 = 1000;

/// The most records one retrieve answers; page with `offset` for more.
pub const MAX_LIMIT: u64 = 10_000;

/// The most values an `in` filter may list.
pub const MAX_IN_VALUES: usize = 1000;

/// The most filters or sort keys a query may have.
pub const MAX_CLAUSES: usize = 64;

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operator {
    /// Equal (`null` matches a missing or null attribute).
    Eq,
    /// Not equal: every record `eq` does not match.
    Neq,
    /// Greater than, between values of the same kind.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Equal to one of a list.
    In,
    /// A string matching a pattern: `%` any run, `_` one character, `\` escapes.
    Like,
}

impl Operator {
    /// Every operator.
    pub const ALL: [Operator; 8] = [
        Operator::Eq,
        Operator::Neq,
        Operator::Gt,
        Operator::Gte,
        Operator::Lt,
        Operator::Lte,
        Operator::In,
        Operator::Like,
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::In => "in",
            Operator::Like => "like",
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smallest first; missing and null values last.
    #[default]
    Asc,
    /// Largest first; missing and null values first.
    Desc,
}

/// A filter as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterRequest {
    /// The attribute compared.
    pub attribute: String,
    /// How.
    pub operator: String,
    /// With what.
    #[serde(default)]
    pub value: Value,
}

/// A sort key as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The attribute sorted on.
    pub attribute: String,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub direction: Direction,
}

/// A CIRQuery as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The entity type (`default` when absent).
    #[serde(default)]
    pub entity_type: Option<String>,
    /// All must match.
    #[serde(default)]
    pub filters: Vec<FilterRequest>,
    /// Sort keys, most significant first; ties keep insertion order.
    #[serde(default)]
    pub order_by: Vec<OrderRequest>,
    /// At most this many records (default 1000, at most 10,000).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Skip this many first.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// A checked filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The attribute compared.
    pub attribute: Name,
    /// How.
    pub operator: Operator,
    /// With what: a scalar (null only for `eq` and `neq`), an array of
    /// scalars for `in`, a string for `like`.
    pub value: Value,
}

/// A checked sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// The attribute sorted on.
    pub attribute: Name,
    /// Which way.
    pub direction: Direction,
}

/// Records of one entity type, chosen by filters (all must match).
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// The entity type.
    pub entity_type: Name,
    /// All must match; none matches every record.
    pub filters: Vec<Filter>,
}

/// A checked retrieve: a selection, its order and one page of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Which records.
    pub selection: Selection,
    /// Sort keys; ties keep insertion order.
    pub order_by: Vec<Order>,
    /// At most this many (1 to [`MAX_LIMIT`]).
    pub limit: u64,
    /// Skip this many first.
    pub offset: u64,
}

impl Query {
    /// Checks a retrieve request.
    pub fn check(request: &QueryRequest) -> Result<Query, StorageError> {
        let selection = Selection::from_parts(request.entity_type.as_deref(), &request.filters)?;
        if request.order_by.len() > MAX_CLAUSES {
            return Err(StorageError::invalid(format!(
                "order_by has {} keys; at most {MAX_CLAUSES}",
                request.order_by.len()
            )));
        }
        let mut order_by = Vec::with_capacity(request.order_by.len());
        for (i, order) in request.order_by.iter().enumerate() {
            order_by.push(Order {
                attribute: Name::new(&order.attribute, &format!("order_by[{i}].attribute"))?,
                direction: order.direction,
            });
        }
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(StorageError::invalid(format!(
                "limit {limit} is out of range: 1 to {MAX_LIMIT} records a call (page with offset)"
            )));
        }
        let offset = request.offset.unwrap_or(0);
        if offset > i64::MAX as u64 {
            return Err(StorageError::invalid("offset is too large"));
        }
        Ok(Query {
            selection,
            order_by,
            limit,
            offset,
        })
    }

    /// Every record of `entity_type`, in insertion order, one page.
    pub fn all(entity_type: Name, limit: u64) -> Query {
        Query {
            selection: Selection {
                entity_type,
                filters: Vec::new(),
            },
            order_by: Vec::new(),
            limit: limit.clamp(1, MAX_LIMIT),
            offset: 0,
        }
    }
}

impl Selection {
    /// Checks the selection of an update or delete. No filter means every
    /// record, which is refused unless `all` says so.
    pub fn check(request: &QueryRequest, all: bool) -> Result<Selection, StorageError> {
        if !request.order_by.is_empty() || request.limit.is_some() || request.offset.is_some() {
            return Err(StorageError::invalid(
                "an update or delete takes entity_type and filters only, not order_by, limit or offset",
            ));
        }
        let selection = Selection::from_parts(request.entity_type.as_deref(), &request.filters)?;
        if selection.filters.is_empty() && !all {
            return Err(StorageError::invalid(format!(
                "no filters: this would change every {} record; send \"all\": true to mean that",
                selection.entity_type
            )));
        }
        Ok(selection)
    }

    fn from_parts(
        entity_type: Option<&str>,
        filters: &[FilterRequest],
    ) -> Result<Selection, StorageError> {
        let entity_type = Name::new(entity_type.unwrap_or(DEFAULT_ENTITY), "entity_type")?;
        if filters.len() > MAX_CLAUSES {
            return Err(StorageError::invalid(format!(
                "{} filters; at most {MAX_CLAUSES}",
                filters.len()
            )));
        }
        let mut checked = Vec::with_capacity(filters.len());
        for (i, filter) in filters.iter().enumerate() {
            checked.push(Filter::check(filter, i)?);
        }
        Ok(Selection {
            entity_type,
            filters: checked,
        })
    }
}

impl Filter {
    fn check(request: &FilterRequest, index: usize) -> Result<Filter, StorageError> {
        let at = format!("filters[{index}]");
        let attribute = Name::new(&request.attribute, &format!("{at}.attribute"))?;
        let operator = Operator::ALL
            .into_iter()
            .find(|o| o.as_str() == request.operator)
            .ok_or_else(|| {
                StorageError::invalid(format!(
                    "{at}.operator {:?} is unknown: use eq, neq, gt, gte, lt, lte, in or like",
                    request.operator
                ))
            })?;
        let value = &request.value;
        let refuse = |what: &str| {
            Err(StorageError::invalid(format!(
                "{at}: {} takes {what}, not {value}",
                operator.as_str()
            )))
        };
        match operator {
            Operator::Eq | Operator::Neq if !is_scalar(value) => {
                return refuse("a string, number, boolean or null");
            }
            Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte
                if value.is_null() || !is_scalar(value) =>
            {
                return refuse("a string, number or boolean");
            }
            Operator::In => {
                let Some(items) = value.as_array() else {
                    return refuse("an array of values");
                };
                if items.len() > MAX_IN_VALUES || !items.iter().all(is_scalar) {
                    return refuse(&format!(
                        "an array of at most {MAX_IN_VALUES} strings, numbers, booleans or nulls"
                    ));
                }
            }
            Operator::Like if !value.is_string() => return refuse("a string pattern"),
            _ => {}
        }
        Ok(Filter {
            attribute,
            operator,
            value: value.clone(),
        })
    }
}

/// True for null, booleans, numbers and strings.
pub fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(value: Value) -> Result<QueryRequest, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn checks_a_full_query() -> Result<(), Box<dyn std::error::Error>> {
        let query = Query::check(&request(json!({
            "entity_type": "users",
            "filters": [{"attribute": "status", "operator": "eq", "value": "active"},
                        {"attribute": "age", "operator": "in", "value": [1, 2]}],
            "order_by": [{"attribute": "age", "direction": "desc"}],
            "limit": 5, "offset": 10
        }))?)?;
        assert_eq!(query.selection.entity_type.as_str(), "users");
        assert_eq!(query.selection.filters[1].operator, Operator::In);
        assert_eq!(query.order_by[0].direction, Direction::Desc);
        assert_eq!((query.limit, query.offset), (5, 10));
        let default = Query::check(&QueryRequest::default())?;
        assert_eq!(default.selection.entity_type.as_str(), DEFAULT_ENTITY);
        assert_eq!(default.limit, DEFAULT_LIMIT);
        Ok(())
    }

    #[test]
    fn refuses_bad_operators_values_and_bounds() -> Result<(), Box<dyn std::error::Error>> {
        for (body, says) in [
            (
                json!({"filters": [{"attribute": "a", "operator": "regex", "value": "x"}]}),
                "unknown",
            ),
            (
                json!({"filters": [{"attribute": "a", "operator": "gt", "value": null}]}),
                "gt takes",
            ),
            (
                json!({"filters": [{"attribute": "a", "operator": "eq", "value": {"x": 1}}]}),
                "eq takes",
            ),
            (
                json!({"filters": [{"attribute": "a", "operator": "in", "value": "x"}]}),
                "in takes",
            ),
            (
                json!({"filters": [{"attribute": "a", "operator": "in", "value": [[1]]}]}),
                "in takes",
            ),
            (
                json!({"filters": [{"attribute": "a", "operator": "like", "value": 3}]}),
                "like takes",
            ),
            (
                json!({"filters": [{"attribute": "a\"; drop", "operator": "eq", "value": 1}]}),
                "filters[0].attribute",
            ),
            (json!({"entity_type": "x y"}), "entity_type"),
            (json!({"limit": 0}), "limit"),
            (json!({"limit": 10_001}), "limit"),
        ] {
            let error = Query::check(&request(body.clone())?)
                .err()
                .map(|e| e.message);
            assert!(
                error.as_deref().is_some_and(|m| m.contains(says)),
                "{body}: {error:?}"
            );
        }
        assert!(
            request(json!({"filter": []})).is_err(),
            "unknown keys are refused"
        );
        Ok(())
    }

    #[test]
    fn update_and_delete_need_filters_or_all() -> Result<(), Box<dyn std::error::Error>> {
        let none = request(json!({"entity_type": "users"}))?;
        let error = Selection::check(&none, false).err().map(|e| e.message);
        assert!(error.is_some_and(|m| m.contains("\"all\": true")));
        assert!(Selection::check(&none, true)?.filters.is_empty());
        let paged = request(
            json!({"limit": 3, "filters": [{"attribute": "a", "operator": "eq", "value": 1}]}),
        )?;
        assert!(Selection::check(&paged, false).is_err());
        Ok(())
    }
}
