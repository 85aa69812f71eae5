//! Printing tasks as tables or JSON.

use crate::commands::OutputFormat;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use mimir_core::WorkTask;
use serde::Serialize;

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn table() -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Errors longer than this are cut in a task table unless it is wide.
const ERROR_COLUMN_CHARS: usize = 60;

/// Prints a list of tasks, one row each; `wide` shows whole error messages
/// instead of their first 60 characters.
pub fn tasks(tasks: &[WorkTask], format: OutputFormat, wide: bool) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        return json(&tasks);
    }
    if tasks.is_empty() {
        println!("no tasks");
        return Ok(());
    }
    let mut t = table();
    t.set_header([
        "ID",
        "TYPE",
        "STATUS",
        "PRI",
        "PROJECT",
        "SUBMITTED",
        "RETRIES",
        "ERROR",
    ]);
    for task in tasks {
        t.add_row([
            task.worktask_id.to_string(),
            task.task_type.to_string(),
            task.status.to_string(),
            task.priority.to_string(),
            task.project_id.clone(),
            time(Some(task.submitted_at)),
            format!("{}/{}", task.retry_count, task.max_retries),
            error_cell(&task.error_message, wide),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// An error message for a table cell: whole when `wide`, else its first
/// characters with `…` marking the cut (and how to see the rest).
fn error_cell(message: &str, wide: bool) -> String {
    if wide || message.chars().count() <= ERROR_COLUMN_CHARS {
        return message.to_string();
    }
    let mut cut: String = message.chars().take(ERROR_COLUMN_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Prints `what` (e.g. "no pipelines") in place of an empty table.
pub fn nothing(what: &str) {
    println!("{what}");
}

/// Prints one task, a field per row.
pub fn task(task: &WorkTask, format: OutputFormat) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        return json(task);
    }
    let mut t = table();
    let rows: Vec<(&str, String)> = vec![
        ("id", task.worktask_id.to_string()),
        ("type", task.task_type.to_string()),
        ("status", task.status.to_string()),
        ("priority", task.priority.to_string()),
        ("project", task.project_id.clone()),
        ("submitted", time(Some(task.submitted_at))),
        ("started", time(task.started_at)),
        ("completed", time(task.completed_at)),
        (
            "took",
            match (task.started_at, task.completed_at) {
                (Some(started), Some(ended)) => (ended - started)
                    .to_std()
                    .map(mimir_core::duration_text)
                    .unwrap_or_default(),
                _ => String::new(),
            },
        ),
        (
            "retries",
            format!("{} of {}", task.retry_count, task.max_retries),
        ),
        ("retry reason", task.retry_reason.clone()),
        ("not before", time(task.not_before)),
        ("error", task.error_message.clone()),
        ("pipeline", task.task_spec.pipeline_id.clone()),
        ("model", task.task_spec.model_id.clone()),
        (
            "resources",
            format!(
                "cpu {} memory {}{}",
                task.resource_requirements.cpu,
                task.resource_requirements.memory,
                if task.resource_requirements.gpu {
                    " gpu"
                } else {
                    ""
                }
            ),
        ),
    ];
    for (name, value) in rows {
        if !value.is_empty() && value != "-" {
            t.add_row([name.to_string(), value]);
        }
    }
    println!("{t}");
    Ok(())
}
