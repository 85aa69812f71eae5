//! What the PostgreSQL and MySQL/MariaDB backends share: the storage model
//! and the translation of checked queries into SQL with bind parameters.
//!
//! Storage model: a table per entity type.
//! - Without a definition (JSON mode) the table has `__seq` (insertion
//!   order) and `__data` (the record as JSON), and every filter guards on
//!   the JSON kind first (`jsonb_typeof`, `JSON_TYPE`), so values of
//!   different kinds never compare, as [`crate::matching`] says.
//! - With a definition (typed mode) the table has `__seq` and a typed
//!   column per attribute (strings compared by code point: `COLLATE "C"`,
//!   `utf8mb4_nopad_bin`), an index per `indexed` attribute, and the
//!   definition is kept in `__mimir_schemas` so records and filters are
//!   checked and normalized before they reach SQL.
//!
//! Every filter, sort key, limit and offset is pushed into SQL; values are
//! always bind parameters, names are checked [`Name`]s and still quoted.
//! Known limits, both for values no real data set holds: on MySQL, numbers
//! beyond 2^53 sort as doubles; on PostgreSQL, text cannot hold U+0000, so
//! strings are stored with an order-preserving escape (see [`escape`]).

use crate::{Attribute, AttributeType, Direction, EntitySchema, Filter, Name, Operator, Order};
use crate::{Record, StorageError};
use parking_lot::RwLock;
use serde_json::{Number, Value};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

/// The table keeping entity definitions.
pub const SCHEMAS_TABLE: &str = "__mimir_schemas";

/// Which SQL the translation writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `$n` parameters, `jsonb`, `COLLATE "C"`.
    Postgres,
    /// MySQL/MariaDB: `?` parameters, JSON text, `utf8mb4_nopad_bin`.
    MySql,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    /// Text (also numbers and times PostgreSQL casts from text).
    Text(String),
    /// Optional text.
    OptText(Option<String>),
    /// A whole number.
    Int(i64),
    /// A double.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A PostgreSQL `text[]` (cast to the column's array type).
    TextArray(Vec<Option<String>>),
}

/// A statement under construction: its text and its bind values.
#[derive(Debug)]
pub struct Sql {
    dialect: Dialect,
    /// The statement.
    pub text: String,
    /// Its parameters, in order.
    pub binds: Vec<Bind>,
}

impl Sql {
    /// An empty statement.
    pub fn new(dialect: Dialect) -> Sql {
        Sql {
            dialect,
            text: String::new(),
            binds: Vec::new(),
        }
    }

    /// Appends text.
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a parameter's placeholder and binds `value` to it.
    pub fn bind(&mut self, value: Bind) -> &mut Sql {
        self.binds.push(value);
        match self.dialect {
            Dialect::Postgres => {
                let _ = write!(self.text, "${}", self.binds.len());
            }
            Dialect::MySql => self.text.push('?'),
        }
        self
    }
}

/// Quotes an identifier (checked names never hold a quote; quoting keeps
/// reserved words working).
pub fn ident(dialect: Dialect, name: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        Dialect::MySql => format!("`{}`", name.replace('`', "``")),
    }
}

/// Entity definitions and created tables a connector has seen, so that an
/// operation costs one statement. Definitions only change through
/// `create_schema` on an empty entity type; an entry is dropped whenever a
/// statement on its table fails, so another process's change is picked up.
#[derive(Debug, Default)]
pub struct Catalog {
    schemas: RwLock<HashMap<String, Option<Arc<EntitySchema>>>>,
    tables: RwLock<HashSet<String>>,
}

impl Catalog {
    /// The known definition: `None` when not looked up yet.
    pub fn schema(&self, entity: &Name) -> Option<Option<Arc<EntitySchema>>> {
        self.schemas.read().get(entity.as_str()).cloned()
    }

    /// Remembers a definition (or its absence).
    pub fn remember(&self, entity: &Name, schema: Option<Arc<EntitySchema>>) {
        self.schemas.write().insert(entity.to_string(), schema);
    }

    /// Whether the entity's JSON table is known to exist.
    pub fn has_table(&self, entity: &Name) -> bool {
        self.tables.read().contains(entity.as_str())
    }

    /// Remembers that the entity's table exists.
    pub fn table_made(&self, entity: &Name) {
        self.tables.write().insert(entity.to_string());
    }

    /// Forgets what it knows of an entity type.
    pub fn forget(&self, entity: &Name) {
        self.schemas.write().remove(entity.as_str());
        self.tables.write().remove(entity.as_str());
    }
}

// ---- Values in and out ----------------------------------------------------

/// PostgreSQL text cannot hold U+0000: strings are stored with U+0000 as
/// U+0001 U+0001 and U+0001 as U+0001 U+0002. The escape keeps equality
/// and code-point order (no code is a prefix of another, and the codes
/// sort as the characters did); `like` patterns are translated to match
/// it ([`like_regex`]).
pub fn escape(text: &str) -> String {
    if !text.contains(['\u{0}', '\u{1}']) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        match c {
            '\u{0}' => out.push_str("\u{1}\u{1}"),
            '\u{1}' => out.push_str("\u{1}\u{2}"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape`].
pub fn unescape(text: &str) -> String {
    if !text.contains('\u{1}') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1}' => match chars.next() {
                Some('\u{1}') => out.push('\u{0}'),
                Some('\u{2}') => out.push('\u{1}'),
                Some(other) => {
                    out.push('\u{1}');
                    out.push(other);
                }
                None => out.push('\u{1}'),
            },
            c => out.push(c),
        }
    }
    out
}

/// Applies `f` to every string (keys included) of a JSON value.
fn map_strings(value: Value, f: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::String(s) => Value::String(f(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| map_strings(v, f)).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (f(&k), map_strings(v, f)))
                .collect(),
        ),
        other => other,
    }
}

/// A string as the dialect stores it.
pub fn text_in(dialect: Dialect, text: &str) -> String {
    match dialect {
        Dialect::Postgres => escape(text),
        Dialect::MySql => text.to_string(),
    }
}

/// A JSON value's text as the dialect stores it.
pub fn json_in(dialect: Dialect, value: &Value) -> String {
    match dialect {
        Dialect::Postgres => map_strings(value.clone(), &escape).to_string(),
        Dialect::MySql => value.to_string(),
    }
}

/// A JSON value read back.
pub fn json_out(dialect: Dialect, text: &str) -> Result<Value, StorageError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| StorageError::backend(format!("a stored record is not JSON: {e}")))?;
    Ok(match dialect {
        Dialect::Postgres => map_strings(value, &unescape),
        Dialect::MySql => value,
    })
}

/// A stored record (JSON mode) read back.
pub fn record_out(dialect: Dialect, text: &str) -> Result<Record, StorageError> {
    match json_out(dialect, text)? {
        Value::Object(record) => Ok(record),
        _ => Err(StorageError::backend("a stored record is not an object")),
    }
}

/// A typed column's value, read as text (see [`column_text`]), as JSON.
pub fn typed_out(dialect: Dialect, kind: AttributeType, text: &str) -> Result<Value, StorageError> {
    let bad = || StorageError::backend(format!("a stored {kind:?} value is damaged: {text:?}"));
    Ok(match kind {
        AttributeType::String => Value::String(match dialect {
            Dialect::Postgres => unescape(text),
            Dialect::MySql => text.to_string(),
        }),
        AttributeType::Timestamp => Value::String(text.to_string()),
        AttributeType::Integer => Value::from(text.parse::<i64>().map_err(|_| bad())?),
        AttributeType::Number => {
            Value::Number(serde_json::from_str::<Number>(text).map_err(|_| bad())?)
        }
        AttributeType::Boolean => Value::Bool(matches!(text, "true" | "t" | "1")),
        AttributeType::Json => json_out(dialect, text)?,
    })
}

/// A canonical timestamp as MySQL's DATETIME takes it (UTC, no zone).
fn mysql_time(canonical: &str) -> String {
    canonical.trim_end_matches('Z').replacen('T', " ", 1)
}

/// A non-null value of a typed column as text (PostgreSQL casts it).
pub fn typed_text(dialect: Dialect, kind: AttributeType, value: &Value) -> Option<String> {
    match (kind, value) {
        (_, Value::Null) => None,
        (AttributeType::String, Value::String(s)) => Some(text_in(dialect, s)),
        (AttributeType::Timestamp, Value::String(s)) => Some(match dialect {
            Dialect::Postgres => s.clone(),
            Dialect::MySql => mysql_time(s),
        }),
        (AttributeType::Json, v) => Some(json_in(dialect, v)),
        (_, Value::String(s)) => Some(s.clone()),
        (_, v) => Some(v.to_string()),
    }
}

/// A typed column's value as a MySQL bind.
pub fn mysql_bind(kind: AttributeType, value: &Value) -> Bind {
    match (kind, value) {
        (_, Value::Null) => Bind::OptText(None),
        (AttributeType::Integer, v) => v.as_i64().map_or(Bind::OptText(None), Bind::Int),
        (AttributeType::Number, v) => v.as_f64().map_or(Bind::OptText(None), Bind::Float),
        (AttributeType::Boolean, v) => v.as_bool().map_or(Bind::OptText(None), Bind::Bool),
        (kind, v) => Bind::OptText(typed_text(Dialect::MySql, kind, v)),
    }
}

// ---- Columns ----------------------------------------------------------------

/// The SQL type of a typed column.
pub fn column_type(dialect: Dialect, attribute: &Attribute) -> &'static str {
    match (dialect, attribute.attribute_type) {
        (Dialect::Postgres, AttributeType::String) => "text COLLATE \"C\"",
        (Dialect::Postgres, AttributeType::Integer) => "bigint",
        (Dialect::Postgres, AttributeType::Number) => "numeric",
        (Dialect::Postgres, AttributeType::Boolean) => "boolean",
        (Dialect::Postgres, AttributeType::Timestamp) => "timestamptz",
        (Dialect::Postgres, AttributeType::Json) => "jsonb",
        (Dialect::MySql, AttributeType::String) if attribute.indexed => {
            "VARCHAR(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
        }
        (Dialect::MySql, AttributeType::String) => {
            "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
        }
        (Dialect::MySql, AttributeType::Integer) => "BIGINT",
        (Dialect::MySql, AttributeType::Number) => "DOUBLE",
        (Dialect::MySql, AttributeType::Boolean) => "BOOLEAN",
        (Dialect::MySql, AttributeType::Timestamp) => "DATETIME(6)",
        (Dialect::MySql, AttributeType::Json) => {
            "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        }
    }
}

/// The PostgreSQL array type a `text[]` parameter is cast to for a column.
pub fn pg_array_type(kind: AttributeType) -> &'static str {
    match kind {
        AttributeType::String => "text[]",
        AttributeType::Integer => "bigint[]",
        AttributeType::Number => "numeric[]",
        AttributeType::Boolean => "boolean[]",
        AttributeType::Timestamp => "timestamptz[]",
        AttributeType::Json => "jsonb[]",
    }
}

/// A typed column selected as text, timestamps in canonical form.
pub fn column_text(dialect: Dialect, attribute: &Attribute) -> String {
    let column = ident(dialect, attribute.name.as_str());
    match (dialect, attribute.attribute_type) {
        (Dialect::Postgres, AttributeType::Timestamp) => {
            format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        }
        (Dialect::Postgres, _) => format!("{column}::text"),
        (Dialect::MySql, AttributeType::Timestamp) => {
            format!("DATE_FORMAT({column}, '%Y-%m-%dT%H:%i:%s.%fZ')")
        }
        (Dialect::MySql, _) => format!("CAST({column} AS CHAR CHARACTER SET utf8mb4)"),
    }
}

// ---- Filters ------------------------------------------------------------------

/// How an attribute is reached: a JSON value (JSON mode, or a typed `json`
/// column) or a typed column.
#[derive(Debug, Clone)]
enum Target {
    /// An expression yielding JSON (SQL NULL when missing).
    Json(String),
    /// A typed column.
    Column(String, AttributeType),
}

fn target(dialect: Dialect, schema: Option<&EntitySchema>, attribute: &Name) -> Option<Target> {
    match schema {
        None => Some(Target::Json(match dialect {
            Dialect::Postgres => format!("(\"__data\" -> '{attribute}')"),
            Dialect::MySql => format!("JSON_EXTRACT(`__data`, '$.\"{attribute}\"')"),
        })),
        Some(schema) => {
            let declared = schema.attribute(attribute.as_str())?;
            let column = ident(dialect, attribute.as_str());
            Some(match declared.attribute_type {
                AttributeType::Json => Target::Json(column),
                kind => Target::Column(column, kind),
            })
        }
    }
}

fn op_sql(operator: Operator) -> &'static str {
    match operator {
        Operator::Gt => ">",
        Operator::Gte => ">=",
        Operator::Lt => "<",
        Operator::Lte => "<=",
        _ => "=",
    }
}

/// Appends the WHERE clause (or nothing) choosing the records `filters`
/// choose. `schema` is the entity's definition (filters already
/// normalized against it).
pub fn where_clause(
    sql: &mut Sql,
    schema: Option<&EntitySchema>,
    filters: &[Filter],
) -> Result<(), StorageError> {
    for (i, filter) in filters.iter().enumerate() {
        sql.push(if i == 0 { " WHERE " } else { " AND " });
        let Some(target) = target(sql.dialect, schema, &filter.attribute) else {
            return Err(StorageError::invalid(format!(
                "cannot filter on {}: it is not declared",
                filter.attribute
            )));
        };
        condition(sql, &target, filter.operator, &filter.value);
    }
    Ok(())
}

/// One filter as a condition: TRUE when it matches, FALSE or NULL when not
/// (plain comparisons stay indexable; only `neq` needs the NULL folded).
fn condition(sql: &mut Sql, target: &Target, operator: Operator, value: &Value) {
    match operator {
        Operator::Eq => equals(sql, target, value),
        Operator::Neq => {
            sql.push("(NOT COALESCE(");
            equals(sql, target, value);
            sql.push(", FALSE))");
        }
        Operator::In => {
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            if items.is_empty() {
                sql.push("(1 = 0)");
                return;
            }
            sql.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                equals(sql, target, item);
            }
            sql.push(")");
        }
        Operator::Like => {
            let pattern = value.as_str().unwrap_or_default();
            compare(sql, target, "LIKE", &Value::String(pattern.to_string()));
        }
        _ => compare(sql, target, op_sql(operator), value),
    }
}

/// `eq`: null matches missing or null; otherwise a same-kind comparison.
fn equals(sql: &mut Sql, target: &Target, value: &Value) {
    if !value.is_null() {
        return compare(sql, target, "=", value);
    }
    match (sql.dialect, target) {
        (_, Target::Column(column, _)) => {
            sql.push(&format!("({column} IS NULL)"));
        }
        (Dialect::Postgres, Target::Json(x)) => {
            sql.push(&format!("(COALESCE(jsonb_typeof({x}), 'null') = 'null')"));
        }
        (Dialect::MySql, Target::Json(x)) => {
            sql.push(&format!("(COALESCE(JSON_TYPE({x}), 'NULL') = 'NULL')"));
        }
    }
}

/// `target op value` for a non-null scalar: true only when the stored
/// value has the same kind and compares so (`LIKE` for patterns).
fn compare(sql: &mut Sql, target: &Target, op: &str, value: &Value) {
    let dialect = sql.dialect;
    sql.push("(");
    match target {
        Target::Column(column, kind) => typed_compare(sql, column, *kind, op, value),
        Target::Json(x) => match (dialect, value) {
            (Dialect::Postgres, Value::String(s)) => {
                sql.push(&format!(
                    "jsonb_typeof({x}) = 'string' AND ({x} #>> '{{}}') COLLATE \"C\" "
                ));
                string_op(sql, op, s);
            }
            // CASE, not AND: PostgreSQL may cast before it checks the kind.
            (Dialect::Postgres, Value::Number(n)) => {
                sql.push(&format!(
                    "CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric END {op} "
                ));
                sql.bind(Bind::Text(n.to_string())).push("::numeric");
            }
            (Dialect::Postgres, Value::Bool(b)) => {
                sql.push(&format!(
                    "CASE WHEN jsonb_typeof({x}) = 'boolean' THEN ({x})::boolean END {op} "
                ));
                sql.bind(Bind::Bool(*b));
            }
            (Dialect::MySql, Value::String(s)) => {
                sql.push(&format!(
                    "JSON_TYPE({x}) = 'STRING' AND JSON_UNQUOTE({x}) COLLATE utf8mb4_nopad_bin "
                ));
                string_op(sql, op, s);
            }
            (Dialect::MySql, Value::Number(n)) => match n.as_i64() {
                Some(i) => {
                    sql.push(&format!(
                        "CASE JSON_TYPE({x}) WHEN 'INTEGER' THEN CAST({x} AS SIGNED) {op} "
                    ));
                    sql.bind(Bind::Int(i));
                    sql.push(&format!(" WHEN 'DOUBLE' THEN CAST({x} AS DOUBLE) {op} "));
                    sql.bind(Bind::Float(i as f64)).push(" ELSE 0 END");
                }
                None => {
                    sql.push(&format!(
                        "JSON_TYPE({x}) IN ('INTEGER', 'DOUBLE') AND CAST({x} AS DOUBLE) {op} "
                    ));
                    sql.bind(Bind::Float(n.as_f64().unwrap_or(f64::NAN)));
                }
            },
            (Dialect::MySql, Value::Bool(b)) => {
                sql.push(&format!(
                    "JSON_TYPE({x}) = 'BOOLEAN' AND ({x} = 'true') {op} "
                ));
                sql.bind(Bind::Bool(*b));
            }
            // Nulls are handled by `equals`; nested values are refused by
            // the query check.
            _ => {
                sql.push("1 = 0");
            }
        },
    }
    sql.push(")");
}

/// `<op> <string>`, or a pattern match for `LIKE`.
fn string_op(sql: &mut Sql, op: &str, text: &str) {
    match (sql.dialect, op) {
        (Dialect::Postgres, "LIKE") => {
            sql.push("~ ").bind(Bind::Text(like_regex(text)));
        }
        (Dialect::MySql, "LIKE") => {
            sql.push("LIKE ")
                .bind(Bind::Text(text.to_string()))
                .push(" ESCAPE '\\\\'");
        }
        (dialect, op) => {
            sql.push(op)
                .push(" ")
                .bind(Bind::Text(text_in(dialect, text)));
        }
    }
}

fn typed_compare(sql: &mut Sql, column: &str, kind: AttributeType, op: &str, value: &Value) {
    let dialect = sql.dialect;
    sql.push(column).push(" ");
    match (dialect, kind, value) {
        (_, AttributeType::String, Value::String(s)) => string_op(sql, op, s),
        (Dialect::Postgres, AttributeType::Number, v) => {
            sql.push(op)
                .push(" ")
                .bind(Bind::Text(v.to_string()))
                .push("::numeric");
        }
        (Dialect::Postgres, AttributeType::Timestamp, Value::String(s)) => {
            sql.push(op)
                .push(" ")
                .bind(Bind::Text(s.clone()))
                .push("::timestamptz");
        }
        (_, kind, v) if op != "LIKE" => {
            let bind = match dialect {
                Dialect::MySql => mysql_bind(kind, v),
                Dialect::Postgres => match v {
                    Value::Bool(b) => Bind::Bool(*b),
                    v => v.as_i64().map_or(Bind::OptText(None), Bind::Int),
                },
            };
            sql.push(op).push(" ").bind(bind);
        }
        _ => {
            sql.push("IS NULL AND 1 = 0");
        }
    }
}

/// A `like` pattern as an anchored PostgreSQL regular expression over
/// [`escape`]d text: `%` any run, `_` one (escaped) character, `\` makes
/// the next character literal.
pub fn like_regex(pattern: &str) -> String {
    let mut regex = String::from("^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => regex.push_str(".*"),
            '_' => regex.push_str("(?:\u{1}.|[^\u{1}])"),
            '\\' => literal(&mut regex, chars.next().unwrap_or('\\')),
            c => literal(&mut regex, c),
        }
    }
    regex.push('$');
    regex
}

fn literal(regex: &mut String, c: char) {
    for c in escape(&c.to_string()).chars() {
        if c.is_ascii_alphanumeric() || !c.is_ascii() {
            regex.push(c);
        } else if c.is_ascii_control() {
            let _ = write!(regex, "\\u{:04x}", c as u32);
        } else {
            regex.push('\\');
            regex.push(c);
        }
    }
}

// ---- Order ----------------------------------------------------------------------

/// Appends ORDER BY: each key as [`crate::matching::order`] defines it,
/// then insertion order.
pub fn order_clause(sql: &mut Sql, schema: Option<&EntitySchema>, order_by: &[Order]) {
    let dialect = sql.dialect;
    sql.push(" ORDER BY ");
    for key in order_by {
        let dir = match key.direction {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        };
        // An undeclared attribute is null in every record: no order.
        let Some(target) = target(dialect, schema, &key.attribute) else {
            continue;
        };
        let text = match (dialect, target) {
            (Dialect::Postgres, Target::Column(c, _)) => {
                let nulls = if dir == "ASC" { "LAST" } else { "FIRST" };
                format!("{c} {dir} NULLS {nulls}, ")
            }
            (Dialect::MySql, Target::Column(c, _)) => format!("({c} IS NULL) {dir}, {c} {dir}, "),
            (Dialect::Postgres, Target::Json(x)) => format!(
                "CASE jsonb_typeof({x}) WHEN 'boolean' THEN 0 WHEN 'number' THEN 1 \
                 WHEN 'string' THEN 2 WHEN 'object' THEN 3 WHEN 'array' THEN 3 ELSE 4 END {dir}, \
                 CASE WHEN jsonb_typeof({x}) = 'boolean' THEN ({x})::boolean END {dir}, \
                 CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric END {dir}, \
                 CASE WHEN jsonb_typeof({x}) = 'string' THEN ({x} #>> '{{}}') END COLLATE \"C\" {dir}, "
            ),
            (Dialect::MySql, Target::Json(x)) => format!(
                "CASE JSON_TYPE({x}) WHEN 'BOOLEAN' THEN 0 WHEN 'INTEGER' THEN 1 WHEN 'DOUBLE' THEN 1 \
                 WHEN 'STRING' THEN 2 WHEN 'OBJECT' THEN 3 WHEN 'ARRAY' THEN 3 ELSE 4 END {dir}, \
                 CASE WHEN JSON_TYPE({x}) = 'BOOLEAN' THEN {x} = 'true' END {dir}, \
                 CASE WHEN JSON_TYPE({x}) IN ('INTEGER', 'DOUBLE') THEN CAST({x} AS DOUBLE) END {dir}, \
                 CASE WHEN JSON_TYPE({x}) = 'STRING' THEN JSON_UNQUOTE({x}) END COLLATE utf8mb4_nopad_bin {dir}, "
            ),
        };
        sql.push(&text);
    }
    sql.push(&format!("{} ASC", ident(dialect, "__seq")));
}

/// Appends LIMIT and OFFSET.
pub fn page(sql: &mut Sql, limit: u64, offset: u64) {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    sql.push(" LIMIT ").bind(Bind::Int(limit));
    sql.push(" OFFSET ").bind(Bind::Int(offset));
}

/// The SELECT list of a table: `__data` in JSON mode, each column as text
/// in typed mode.
pub fn select_list(dialect: Dialect, schema: Option<&EntitySchema>) -> String {
    match schema {
        None => match dialect {
            Dialect::Postgres => "\"__data\"::text".to_string(),
            // A `_bin` collation reads as a BLOB to the driver.
            Dialect::MySql => "CAST(`__data` AS CHAR CHARACTER SET utf8mb4)".to_string(),
        },
        Some(schema) => schema
            .attributes
            .iter()
            .map(|a| column_text(dialect, a))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A row of [`select_list`] texts as a record (typed mode omits nulls).
pub fn row_record(
    dialect: Dialect,
    schema: Option<&EntitySchema>,
    texts: Vec<Option<String>>,
) -> Result<Record, StorageError> {
    match schema {
        None => record_out(
            dialect,
            texts.first().and_then(|t| t.as_deref()).unwrap_or("{}"),
        ),
        Some(schema) => {
            let mut record = Record::new();
            for (attribute, text) in schema.attributes.iter().zip(texts) {
                if let Some(text) = text {
                    record.insert(
                        attribute.name.to_string(),
                        typed_out(dialect, attribute.attribute_type, &text)?,
                    );
                }
            }
            Ok(record)
        }
    }
}

/// Checks an update against a definition: declared attributes of the
/// right type, no required attribute cleared; timestamps canonicalized.
pub fn normalize_update(schema: &EntitySchema, updates: &mut Record) -> Result<(), StorageError> {
    for (name, value) in updates.iter() {
        if value.is_null() && schema.attribute(name).is_some_and(|a| a.required) {
            return Err(StorageError::invalid(format!(
                "{}.{name} is required and cannot be set to null",
                schema.name
            )));
        }
    }
    let mut optional = schema.clone();
    for attribute in &mut optional.attributes {
        attribute.required = false;
    }
    optional.normalize_record(updates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_equality_and_order() {
        let words = [
            "",
            "\u{0}",
            "\u{0}z",
            "\u{1}",
            "\u{1}\u{0}",
            "\u{2}",
            "a",
            "a\u{0}",
            "ab",
        ];
        for a in words {
            assert_eq!(unescape(&escape(a)), a);
            for b in words {
                assert_eq!(escape(a).cmp(&escape(b)), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn like_becomes_an_anchored_regex() {
        assert_eq!(like_regex("a%b_c"), "^a.*b(?:\u{1}.|[^\u{1}])c$");
        assert_eq!(like_regex("50\\%"), "^50\\%$");
        assert_eq!(like_regex("a.b"), "^a\\.b$");
    }
}
