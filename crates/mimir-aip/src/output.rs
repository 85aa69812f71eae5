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

/// Prints a list of tasks, one row each.
pub fn tasks(tasks: &[WorkTask], format: OutputFormat) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        return json(&tasks);
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
            task.error_message.chars().take(60).collect(),
        ]);
    }
    println!("{t}");
    Ok(())
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
