//! `mimir-aip task`: submit, get, list, cancel and wait for work tasks, and
//! say why one has not started.

use super::{OutputFormat, Remote};
use crate::output;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mimir_client::ListFilter;
use mimir_core::WorkTaskStatus;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// `task` and its subcommands.
#[derive(Debug, Args)]
pub struct TaskArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: TaskCommand,
}

#[derive(Debug, Subcommand)]
enum TaskCommand {
    /// Submit a work task, from flags or a JSON file.
    Submit(SubmitArgs),
    /// Show one task.
    Get {
        /// Task id.
        id: Uuid,
    },
    /// List tasks, newest first.
    List(ListArgs),
    /// Cancel a task.
    Cancel {
        /// Task id.
        id: Uuid,
    },
    /// Wait until a task ends, showing its progress; exits non-zero unless it completed.
    Wait(WaitArgs),
    /// Say why a task has not started: one line per reason, `code: message`.
    Why {
        /// Task id.
        id: Uuid,
    },
}

#[derive(Debug, Args)]
struct SubmitArgs {
    /// The submission as a JSON file (`-` for stdin); flags given too override its fields.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// pipeline_execution, ml_training or ml_inference.
    #[arg(long = "type", short = 't')]
    task_type: Option<String>,
    /// Project the task belongs to.
    #[arg(long, short = 'p')]
    project: Option<String>,
    /// 1 (default) to 10 (most urgent).
    #[arg(long)]
    priority: Option<i64>,
    /// Retries before the task fails.
    #[arg(long)]
    max_retries: Option<i64>,
    /// Pipeline to execute (task_spec.pipeline_id).
    #[arg(long)]
    pipeline: Option<String>,
    /// Model to train or serve (task_spec.model_id).
    #[arg(long)]
    model: Option<String>,
    /// Execution parameter KEY=VALUE (VALUE read as JSON when it parses); repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only these statuses: a status, `running` (scheduled, spawned,
    /// executing), `waiting` (queued, scheduled), or a comma list of them.
    #[arg(long)]
    status: Option<String>,
    /// Only this type.
    #[arg(long = "type")]
    task_type: Option<String>,
    /// Only this project.
    #[arg(long)]
    project: Option<String>,
    /// Tasks per page.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Show whole error messages instead of their first 60 characters.
    #[arg(long)]
    wide: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// Task id.
    pub(crate) id: Uuid,
    /// Give up after this many seconds (0: wait forever).
    #[arg(long, default_value_t = 0)]
    pub(crate) timeout: u64,
    /// Polling interval in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub(crate) interval_ms: u64,
}

/// Runs a `task` subcommand.
pub async fn run(args: TaskArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    let format = args.remote.output;
    match args.command {
        TaskCommand::Submit(submit) => {
            let body = submission(submit)?;
            let task = client.submit(&body).await?;
            output::task(&task, format)?;
        }
        TaskCommand::Get { id } => output::task(&client.get(id).await?, format)?,
        TaskCommand::List(list) => {
            let filter = ListFilter {
                status: list.status,
                task_type: list.task_type,
                project_id: list.project,
                limit: Some(list.limit),
                cursor: list.cursor,
            };
            let page = client.list(&filter).await?;
            if format == OutputFormat::Json {
                output::json(&json!({
                    "worktasks": page.worktasks,
                    "next_cursor": page.next_cursor,
                    "queue_length": page.queue_length,
                }))?;
            } else {
                output::tasks(&page.worktasks, format, list.wide)?;
                if let Some(cursor) = page.next_cursor {
                    println!("more: --cursor {cursor}");
                }
            }
        }
        TaskCommand::Cancel { id } => output::task(&client.cancel(id).await?, format)?,
        TaskCommand::Wait(wait) => return wait_for(&client, wait, format).await,
        TaskCommand::Why { id } => {
            let explanation = client.explain(id).await?;
            if format == OutputFormat::Json {
                output::json(&explanation)?;
            } else {
                for reason in &explanation.reasons {
                    println!("{}: {}", reason.code, reason.message);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the submission body from a file and/or flags.
fn submission(args: SubmitArgs) -> anyhow::Result<Value> {
    let mut body = match &args.file {
        None => Map::new(),
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("cannot read the submission from stdin")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
            };
            match serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?
            {
                Value::Object(map) => map,
                _ => bail!("{} must hold a JSON object", path.display()),
            }
        }
    };
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(key.into(), value);
        }
    };
    set("type", args.task_type.map(Value::from));
    set("project_id", args.project.map(Value::from));
    set("priority", args.priority.map(Value::from));
    set("max_retries", args.max_retries.map(Value::from));
    if args.pipeline.is_some() || args.model.is_some() || !args.params.is_empty() {
        let spec = body.entry("task_spec").or_insert_with(|| json!({}));
        let Some(spec) = spec.as_object_mut() else {
            bail!("task_spec must be a JSON object")
        };
        if let Some(pipeline) = args.pipeline {
            spec.insert("pipeline_id".into(), pipeline.into());
        }
        if let Some(model) = args.model {
            spec.insert("model_id".into(), model.into());
        }
        let parameters = spec.entry("parameters").or_insert_with(|| json!({}));
        let Some(parameters) = parameters.as_object_mut() else {
            bail!("task_spec.parameters must be a JSON object")
        };
        for param in args.params {
            let Some((key, value)) = param.split_once('=') else {
                bail!("--param {param:?} must look like KEY=VALUE");
            };
            let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
            parameters.insert(key.into(), value);
        }
    }
    if !body.contains_key("type") {
        bail!(
            "the task type is missing: pass --type pipeline_execution|ml_training|ml_inference or -f FILE"
        );
    }
    if !body.contains_key("project_id") {
        bail!("the project is missing: pass --project NAME");
    }
    let pipeline = body
        .get("task_spec")
        .and_then(|spec| spec.get("pipeline_id"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if pipeline.is_empty() {
        bail!(
            "the pipeline is missing: pass --pipeline ID (every task runs a pipeline; `mimir-aip pipeline create -f FILE` makes one)"
        );
    }
    Ok(Value::Object(body))
}

/// Waits until task `args.id` ends, showing its status; prints it and
/// answers success when it completed.
pub(crate) async fn wait_for(
    client: &mimir_client::Client,
    args: WaitArgs,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut last: Option<WorkTaskStatus> = None;
    let task = loop {
        let task = client.get(args.id).await?;
        if last != Some(task.status) {
            let line = match task.retry_count {
                0 => format!("{} {}", task.worktask_id, task.status),
                n => format!(
                    "{} {} (retry {n} of {}: {})",
                    task.worktask_id, task.status, task.max_retries, task.retry_reason
                ),
            };
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.set_message(line);
            }
            last = Some(task.status);
        }
        if task.status.is_terminal() {
            break task;
        }
        if args.timeout > 0 && started.elapsed() >= Duration::from_secs(args.timeout) {
            bar.finish_and_clear();
            bail!(
                "gave up after {}s; task {} is still {}",
                args.timeout,
                task.worktask_id,
                task.status
            );
        }
        tokio::time::sleep(Duration::from_millis(args.interval_ms.max(10))).await;
    };
    bar.finish_and_clear();
    output::task(&task, format)?;
    Ok(if task.status == WorkTaskStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
