//! Mapping between `worktasks` rows and [`WorkTask`], and the few facts a
//! status change reads ([`Control`]).

use crate::StoreError;
use chrono::{DateTime, Utc};
use mimir_core::{
    Attempt, AttemptEnd, ErrorClass, Priority, WorkTask, WorkTaskStatus, WorkTaskType, lifecycle,
};
use sqlx_core::decode::Decode;
use sqlx_core::row::Row;
use sqlx_core::types::Type;
use sqlx_postgres::{PgRow, Postgres};
use uuid::Uuid;

/// The columns [`task`] reads, in order.
pub(crate) const TASK_COLUMNS: &str = "id, type, status, priority, project_id, submitted_at, started_at, \
     completed_at, not_before, retry_count, max_retries, retry_reason, error_message, \
     kubernetes_job_name, cluster_name, task_spec, resource_requirements, data_access, result, attempt, worker_id, traceparent";

/// How many columns [`TASK_COLUMNS`] names: the index of a column selected after them.
pub(crate) const TASK_COLUMN_COUNT: usize = 22;

/// Running statuses: the task is held under a lease.
pub(crate) const RUNNING: &str = "('scheduled', 'spawned', 'executing')";

/// Column `index` of `row`, or [`StoreError::Corrupt`] naming it.
pub(crate) fn column<'r, T>(row: &'r PgRow, index: usize) -> Result<T, StoreError>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(index)
        .map_err(|e| StoreError::Corrupt(format!("column {index}: {e}")))
}

fn parsed<T: std::str::FromStr<Err = String>>(row: &PgRow, index: usize) -> Result<T, StoreError> {
    let text: String = column(row, index)?;
    text.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("column {index}: {e}")))
}

fn json<T: serde::de::DeserializeOwned>(row: &PgRow, index: usize) -> Result<T, StoreError> {
    let text: String = column(row, index)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("column {index}: {e}")))
}

pub(crate) fn priority(value: i16) -> Result<Priority, StoreError> {
    Priority::new(i64::from(value)).ok_or_else(|| StoreError::Corrupt(format!("priority {value}")))
}

pub(crate) fn count(value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}

/// A `u32` as the `integer` column it is stored in.
pub(crate) fn int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// A `u64` as the `bigint` column it is stored in.
pub(crate) fn bigint(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads a row selected with [`TASK_COLUMNS`].
pub(crate) fn task(row: &PgRow) -> Result<WorkTask, StoreError> {
    let result: Option<String> = column(row, 18)?;
    Ok(WorkTask {
        worktask_id: column(row, 0)?,
        task_type: parsed(row, 1)?,
        status: parsed(row, 2)?,
        priority: priority(column(row, 3)?)?,
        project_id: column(row, 4)?,
        submitted_at: column(row, 5)?,
        started_at: column(row, 6)?,
        completed_at: column(row, 7)?,
        not_before: column(row, 8)?,
        retry_count: count(column(row, 9)?)?,
        max_retries: count(column(row, 10)?)?,
        retry_reason: column(row, 11)?,
        error_message: column(row, 12)?,
        kubernetes_job_name: column(row, 13)?,
        cluster_name: column(row, 14)?,
        task_spec: json(row, 15)?,
        resource_requirements: json(row, 16)?,
        data_access: json(row, 17)?,
        result: result
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("result: {e}")))
            })
            .transpose()?,
        attempt: count(column(row, 19)?)?,
        worker_id: column(row, 20)?,
        traceparent: column(row, 21)?,
    })
}

/// Serializes a JSON column. PostgreSQL's `text` and `jsonb` refuse the NUL
/// character, which JSON (and so a submission or a worker's result) may
/// hold: it is stored as U+FFFD instead of failing the whole write.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    let encode = |e: serde_json::Error| StoreError::Corrupt(format!("cannot encode: {e}"));
    let text = serde_json::to_string(value).map_err(encode)?;
    if !text.contains("\\u0000") {
        return Ok(text);
    }
    let mut value = serde_json::to_value(value).map_err(encode)?;
    without_nul(&mut value);
    serde_json::to_string(&value).map_err(encode)
}

/// `value` with every NUL in its strings and keys replaced by U+FFFD.
fn without_nul(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if s.contains('\0') {
                *s = s.replace('\0', "\u{FFFD}");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(without_nul),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                without_nul(&mut item);
                map.insert(key.replace('\0', "\u{FFFD}"), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Free text for a `text` column, NUL characters stored as U+FFFD.
pub(crate) fn text(value: String) -> String {
    if value.contains('\0') {
        value.replace('\0', "\u{FFFD}")
    } else {
        value
    }
}

/// What a status change needs to know of a task.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    pub(crate) id: Uuid,
    pub(crate) task_type: WorkTaskType,
    pub(crate) status: WorkTaskStatus,
    pub(crate) attempt: u32,
    pub(crate) retry_count: u32,
    pub(crate) max_retries: u32,
    pub(crate) worker_id: String,
    pub(crate) started_at: Option<DateTime<Utc>>,
}

/// Columns [`Control::from_row`] reads.
pub(crate) const CONTROL_COLUMNS: &str =
    "id, type, status, attempt, retry_count, max_retries, worker_id, started_at";

impl Control {
    pub(crate) fn from_row(row: &PgRow) -> Result<Control, StoreError> {
        Ok(Control {
            id: column(row, 0)?,
            task_type: parsed(row, 1)?,
            status: parsed(row, 2)?,
            attempt: count(column(row, 3)?)?,
            retry_count: count(column(row, 4)?)?,
            max_retries: count(column(row, 5)?)?,
            worker_id: column(row, 6)?,
            started_at: column(row, 7)?,
        })
    }

    /// What the state machine needs to decide ([`lifecycle`]).
    pub(crate) fn current(&self) -> lifecycle::Current<'_> {
        lifecycle::Current {
            status: self.status,
            attempt: self.attempt,
            worker_id: &self.worker_id,
            retry_count: self.retry_count,
            max_retries: self.max_retries,
        }
    }

    /// The history record of the current attempt, ending at `at`, as JSON.
    pub(crate) fn ended(
        &self,
        started_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        outcome: AttemptEnd,
        error: String,
        error_class: Option<ErrorClass>,
    ) -> Result<String, StoreError> {
        to_json(&Attempt::ended(
            self.attempt,
            self.worker_id.clone(),
            started_at,
            at,
            outcome,
            error,
            error_class,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_stored_as_replacement_characters() {
        let value = serde_json::json!({"a\u{0}": ["x\u{0}y", 1], "b": "plain"});
        let stored = to_json(&value).expect("json");
        assert!(!stored.contains("\\u0000"), "{stored}");
        assert!(
            stored.contains("x\u{FFFD}y") && stored.contains("a\u{FFFD}"),
            "{stored}"
        );
        assert_eq!(text("e\u{0}".into()), "e\u{FFFD}");
        assert_eq!(to_json(&"plain").expect("json"), "\"plain\"");
    }

    #[test]
    fn the_column_count_matches_the_column_list() {
        assert_eq!(TASK_COLUMNS.split(',').count(), TASK_COLUMN_COUNT);
    }
}
