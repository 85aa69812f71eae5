//! Reading a task's attempt history. Ended attempts are kept as a JSON array
//! in the task's row, appended by the UPDATE that ends each one; the attempt
//! that completes a task is not appended (the success path stays one plain
//! UPDATE), so it is rebuilt here from the row's worker, start and end.

use crate::StoreError;
use chrono::DateTime;
use mimir_core::{Attempt, AttemptEnd, WorkTaskStatus};
use rusqlite::{Connection, OptionalExtension};
use uuid::Uuid;

/// The ended attempts of task `id`, oldest first; `None` when there is no such task.
pub(crate) fn select(conn: &Connection, id: Uuid) -> Result<Option<Vec<Attempt>>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT attempts, status, attempt, worker_id, started_at, completed_at \
             FROM worktasks WHERE id = ?1",
        )?
        .query_row([id.as_bytes()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })
        .optional()?;
    let Some((text, status, attempt, worker_id, started_us, completed_us)) = row else {
        return Ok(None);
    };
    let mut attempts: Vec<Attempt> = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("attempts of task {id}: {e}")))?;
    if status == WorkTaskStatus::Completed.as_str()
        && let Some(ended_at) = completed_us.and_then(DateTime::from_timestamp_micros)
    {
        attempts.push(Attempt {
            attempt,
            worker_id,
            started_at: started_us.and_then(DateTime::from_timestamp_micros),
            ended_at,
            outcome: AttemptEnd::Completed,
            error: String::new(),
            error_class: None,
        });
    }
    Ok(Some(attempts))
}
