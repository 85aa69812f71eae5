//! What the operators mean: the one definition every backend implements,
//! directly (filesystem, Redis, S3 evaluate it here) or translated to SQL
//! (PostgreSQL, MySQL), and the oracle the conformance suite checks against.
//!
//! - Values of different kinds never compare: `{"n": "5"}` is not `gt 4`.
//!   Numbers compare by value (`1` equals `1.0`), strings by Unicode code
//!   point (case-sensitive, no locale), booleans `false < true`.
//! - `eq null` matches a missing or null attribute; `neq` matches exactly
//!   the records `eq` does not (so `neq 5` includes records without the
//!   attribute).
//! - `gt`, `gte`, `lt`, `lte` and `like` never match a missing or null
//!   attribute.
//! - `in [a, b]` is `eq a or eq b`; an empty list matches nothing.
//! - `like` matches whole strings: `%` any run of characters, `_` one
//!   character, `\` makes the next character literal.
//! - Nested values (objects, arrays) are stored and returned unchanged but
//!   equal nothing a filter can name.
//! - Order: per key, values of one kind in the order above; across kinds
//!   booleans, then numbers, then strings, then nested values; missing and
//!   null values after all others ascending, before all others descending.
//!   Ties keep insertion order.

use crate::{Direction, Filter, Operator, Order};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;

/// A stored record: attribute name to JSON value.
pub type Record = Map<String, Value>;

/// Whether `record` passes every filter.
pub fn matches(record: &Record, filters: &[Filter]) -> bool {
    filters.iter().all(|filter| passes(record, filter))
}

/// Whether `record` passes `filter`.
pub fn passes(record: &Record, filter: &Filter) -> bool {
    let value = record
        .get(filter.attribute.as_str())
        .unwrap_or(&Value::Null);
    match filter.operator {
        Operator::Eq => equals(value, &filter.value),
        Operator::Neq => !equals(value, &filter.value),
        Operator::Gt => compare(value, &filter.value) == Some(Ordering::Greater),
        Operator::Gte => matches!(
            compare(value, &filter.value),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Operator::Lt => compare(value, &filter.value) == Some(Ordering::Less),
        Operator::Lte => matches!(
            compare(value, &filter.value),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Operator::In => filter
            .value
            .as_array()
            .is_some_and(|items| items.iter().any(|item| equals(value, item))),
        Operator::Like => match (value, filter.value.as_str()) {
            (Value::String(text), Some(pattern)) => like(text, pattern),
            _ => false,
        },
    }
}

/// Filter equality: null equals null (and a missing attribute), scalars of
/// one kind compare by value, nested values equal nothing.
pub fn equals(value: &Value, wanted: &Value) -> bool {
    match (value, wanted) {
        (Value::Null, Value::Null) => true,
        _ => compare(value, wanted) == Some(Ordering::Equal),
    }
}

/// The order of two non-null scalars of one kind; `None` across kinds, for
/// nulls and for nested values.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Number(a), Value::Number(b)) => Some(compare_numbers(a, b)),
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    }
}

/// Numbers by value: exactly for integers, as `f64` otherwise.
pub fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a.cmp(&b);
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a.cmp(&b);
    }
    let (a, b) = (
        a.as_f64().unwrap_or(f64::NAN),
        b.as_f64().unwrap_or(f64::NAN),
    );
    a.total_cmp(&b)
}

/// SQL `LIKE` over whole strings, by character: `%` any run, `_` one
/// character, `\` escapes the next one.
pub fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Literal(chars.next().unwrap_or('\\')),
            c => Token::Literal(c),
        });
    }
    // Greedy matching with one backtrack point per `%`: linear in practice,
    // quadratic at worst, never exponential.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                t += 1;
                p += 1;
            }
            Some(Token::Literal(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| *token == Token::Any)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Any,
    One,
    Literal(char),
}

/// The rank of a value's kind in sort order.
fn kind_rank(value: &Value) -> u8 {
    match value {
        Value::Bool(_) => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Array(_) | Value::Object(_) => 3,
        Value::Null => 4,
    }
}

/// How two records sort under `order_by` (ties are `Equal`: callers keep
/// insertion order with a stable sort).
pub fn order(a: &Record, b: &Record, order_by: &[Order]) -> Ordering {
    for key in order_by {
        let x = a.get(key.attribute.as_str()).unwrap_or(&Value::Null);
        let y = b.get(key.attribute.as_str()).unwrap_or(&Value::Null);
        let ordering = kind_rank(x)
            .cmp(&kind_rank(y))
            .then_with(|| compare(x, y).unwrap_or(Ordering::Equal));
        let ordering = match key.direction {
            Direction::Asc => ordering,
            Direction::Desc => ordering.reverse(),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Applies a query to records in insertion order: filter, stable sort, page.
/// Backends that cannot push a query down answer with this.
pub fn evaluate(records: impl IntoIterator<Item = Record>, query: &crate::Query) -> Vec<Record> {
    let mut chosen: Vec<Record> = records
        .into_iter()
        .filter(|record| matches(record, &query.selection.filters))
        .collect();
    if !query.order_by.is_empty() {
        chosen.sort_by(|a, b| order(a, b, &query.order_by));
    }
    chosen
        .into_iter()
        .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Name;
    use serde_json::json;

    fn filter(attribute: &str, operator: Operator, value: Value) -> Filter {
        Filter {
            attribute: Name::new(attribute, "attribute").unwrap_or_else(|e| panic!("{e}")),
            operator,
            value,
        }
    }

    fn record(value: Value) -> Record {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn kinds_never_compare_across() {
        let r = record(json!({"n": "5", "m": 5, "b": true}));
        assert!(!passes(&r, &filter("n", Operator::Gt, json!(4))));
        assert!(passes(&r, &filter("m", Operator::Gt, json!(4.5))));
        assert!(passes(&r, &filter("m", Operator::Eq, json!(5.0))));
        assert!(!passes(&r, &filter("m", Operator::Eq, json!("5"))));
        assert!(passes(&r, &filter("b", Operator::Gt, json!(false))));
    }

    #[test]
    fn null_and_missing() {
        let r = record(json!({"a": null, "b": 1}));
        assert!(passes(&r, &filter("a", Operator::Eq, Value::Null)));
        assert!(passes(&r, &filter("zz", Operator::Eq, Value::Null)));
        assert!(!passes(&r, &filter("b", Operator::Eq, Value::Null)));
        assert!(passes(&r, &filter("b", Operator::Neq, Value::Null)));
        assert!(passes(&r, &filter("zz", Operator::Neq, json!(5))));
        assert!(!passes(&r, &filter("a", Operator::Lt, json!(5))));
        assert!(passes(&r, &filter("a", Operator::In, json!([1, null]))));
        assert!(!passes(&r, &filter("b", Operator::In, json!([]))));
    }

    #[test]
    fn like_patterns() {
        for (text, pattern, expected) in [
            ("hello", "h%", true),
            ("hello", "%llo", true),
            ("hello", "h_llo", true),
            ("hello", "H%", false),
            ("hello", "%", true),
            ("", "%", true),
            ("", "_", false),
            ("50%", "50\\%", true),
            ("500", "50\\%", false),
            ("a_b", "a\\_b", true),
            ("axb", "a\\_b", false),
            ("日本語", "日_語", true),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "%a%a%a%a%a%a%c", false),
            ("mississippi", "%iss%ipp%", true),
        ] {
            assert_eq!(like(text, pattern), expected, "{text} like {pattern}");
        }
    }

    #[test]
    fn order_puts_nulls_last_ascending_and_keeps_ties() {
        let records: Vec<Record> = [
            json!({"k": 2, "i": 0}),
            json!({"i": 1}),
            json!({"k": 1, "i": 2}),
            json!({"k": 2, "i": 3}),
            json!({"k": null, "i": 4}),
        ]
        .into_iter()
        .map(record)
        .collect();
        let by = |direction| {
            vec![Order {
                attribute: Name::new("k", "a").unwrap_or_else(|e| panic!("{e}")),
                direction,
            }]
        };
        let ids = |mut rs: Vec<Record>, o: &[Order]| {
            rs.sort_by(|a, b| order(a, b, o));
            rs.iter().map(|r| r["i"].clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            ids(records.clone(), &by(Direction::Asc)),
            vec![json!(2), json!(0), json!(3), json!(1), json!(4)]
        );
        assert_eq!(
            ids(records, &by(Direction::Desc)),
            vec![json!(1), json!(4), json!(0), json!(3), json!(2)]
        );
    }
}
