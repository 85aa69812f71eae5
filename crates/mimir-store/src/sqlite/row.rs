//! Mapping between `worktasks` rows and [`WorkTask`].

use chrono::{DateTime, Utc};
use mimir_core::{Priority, QueueEntry, WorkTask, WorkTaskStatus, WorkTaskType};
use rusqlite::types::Type;
use rusqlite::{Row, Statement, params};
use uuid::Uuid;

/// The columns [`task_from_row`] reads, in order.
pub(crate) const TASK_COLUMNS: &str = "id, type, status, priority, project_id, submitted_at, started_at, \
     completed_at, not_before, retry_count, max_retries, retry_reason, error_message, \
     kubernetes_job_name, cluster_name, task_spec, resource_requirements, data_access, result, attempt, worker_id, traceparent";

/// How many columns [`TASK_COLUMNS`] names: the index of a column selected after them.
pub(crate) const TASK_COLUMN_COUNT: usize = 22;

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(column: usize, us: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| invalid(column, format!("timestamp {us} out of range")))
}

fn invalid(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, message.into())
}

fn parsed<T: std::str::FromStr<Err = String>>(row: &Row<'_>, column: usize) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    text.parse().map_err(|e: String| invalid(column, e))
}

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, column: usize) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| invalid(column, e.to_string()))
}

pub(crate) fn uuid(row: &Row<'_>, column: usize) -> rusqlite::Result<Uuid> {
    let bytes: [u8; 16] = row.get(column)?;
    Ok(Uuid::from_bytes(bytes))
}

/// Reads a row selected with [`TASK_COLUMNS`].
pub(crate) fn task_from_row(row: &Row<'_>) -> rusqlite::Result<WorkTask> {
    let priority: i64 = row.get(3)?;
    let optional_time = |column: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        row.get::<_, Option<i64>>(column)?
            .map(|us| time(column, us))
            .transpose()
    };
    let result: Option<String> = row.get(18)?;
    Ok(WorkTask {
        worktask_id: uuid(row, 0)?,
        task_type: parsed(row, 1)?,
        status: parsed(row, 2)?,
        priority: Priority::new(priority)
            .ok_or_else(|| invalid(3, format!("priority {priority}")))?,
        project_id: row.get(4)?,
        submitted_at: time(5, row.get(5)?)?,
        started_at: optional_time(6)?,
        completed_at: optional_time(7)?,
        not_before: optional_time(8)?,
        retry_count: row.get(9)?,
        max_retries: row.get(10)?,
        retry_reason: row.get(11)?,
        error_message: row.get(12)?,
        kubernetes_job_name: row.get(13)?,
        cluster_name: row.get(14)?,
        task_spec: json(row, 15)?,
        resource_requirements: json(row, 16)?,
        data_access: json(row, 17)?,
        result: result
            .map(|text| serde_json::from_str(&text).map_err(|e| invalid(18, e.to_string())))
            .transpose()?,
        attempt: row.get(19)?,
        worker_id: row.get(20)?,
        traceparent: row.get(21)?,
    })
}

/// The queue facts of a row selected with [`QUEUE_COLUMNS`].
pub(crate) const QUEUE_COLUMNS: &str = "id, type, priority, queue_seq, queued_at, not_before";

pub(crate) fn queue_entry_from_row(row: &Row<'_>) -> rusqlite::Result<QueueEntry> {
    let priority: i64 = row.get(2)?;
    Ok(QueueEntry {
        id: uuid(row, 0)?,
        task_type: parsed::<WorkTaskType>(row, 1)?,
        priority: Priority::new(priority)
            .ok_or_else(|| invalid(2, format!("priority {priority}")))?,
        seq: row.get(3)?,
        enqueued_at_us: row.get(4)?,
        not_before_us: row.get(5)?,
    })
}

/// Inserts a new queued task at position `seq`.
/// A new task with its JSON columns already encoded, so the single writer
/// thread spends no time serializing.
pub(crate) struct NewRow {
    pub(crate) task: WorkTask,
    task_spec: String,
    resource_requirements: String,
    data_access: String,
}

impl NewRow {
    /// Encodes the JSON columns of a new queued task.
    pub(crate) fn encode(task: WorkTask) -> rusqlite::Result<NewRow> {
        debug_assert_eq!(task.status, WorkTaskStatus::Queued);
        Ok(NewRow {
            task_spec: to_json(&task.task_spec)?,
            resource_requirements: to_json(&task.resource_requirements)?,
            data_access: to_json(&task.data_access)?,
            task,
        })
    }
}

/// Inserts a new queued task at position `seq`.
pub(crate) fn insert_task(
    insert: &mut Statement<'_>,
    new: &NewRow,
    seq: u64,
) -> rusqlite::Result<()> {
    let task = &new.task;
    insert.execute(params![
        seq,
        task.worktask_id.as_bytes(),
        task.task_type.as_str(),
        task.status.as_str(),
        task.priority.get(),
        task.project_id,
        micros(task.submitted_at),
        seq,
        micros(task.submitted_at),
        task.retry_count,
        task.max_retries,
        new.task_spec,
        new.resource_requirements,
        new.data_access,
        task.traceparent,
    ])?;
    Ok(())
}

/// The insert statement [`insert_task`] binds.
pub(crate) const INSERT_TASK: &str = "INSERT INTO worktasks (seq, id, type, status, priority, project_id, \
     submitted_at, queue_seq, queued_at, retry_count, max_retries, task_spec, resource_requirements, data_access, traceparent) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

/// Serializes a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_count_matches_the_column_list() {
        assert_eq!(TASK_COLUMNS.split(',').count(), TASK_COLUMN_COUNT);
    }
}
