//! `mimir-aip pipeline`: define, list, show and run pipelines.

use super::{OutputFormat, Remote};
use crate::output;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mimir_core::{Pipeline, WorkTask, WorkTaskStatus};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `pipeline` and its subcommands.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: PipelineCommand,
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Create a pipeline from a JSON or YAML file.
    Create {
        /// The definition (`-` for stdin).
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// List pipelines.
    List {
        /// Only this project's.
        #[arg(long)]
        project: Option<String>,
    },
    /// Show one pipeline.
    Get {
        /// Pipeline id.
        id: String,
    },
    /// Replace a pipeline's definition from a JSON or YAML file (running
    /// executions keep the version they started with).
    Update {
        /// Pipeline id.
        id: String,
        /// The new definition (`-` for stdin).
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// Delete a pipeline.
    Delete {
        /// Pipeline id.
        id: String,
    },
    /// Execute a pipeline.
    Run {
        /// Pipeline id.
        id: String,
        /// Parameter KEY=VALUE (VALUE read as JSON when it parses); repeatable.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// 1 to 10.
        #[arg(long)]
        priority: Option<i64>,
        /// Show progress until the execution ends; exit non-zero unless it completed.
        #[arg(long)]
        follow: bool,
    },
}

/// Runs a `pipeline` subcommand.
pub async fn run(args: PipelineArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    let format = args.remote.output;
    match args.command {
        PipelineCommand::Create { file } => {
            let body = definition(&file)?;
            let pipeline: Pipeline = client
                .call(Method::POST, "/api/pipelines", Some(&body))
                .await?;
            print_pipeline(&pipeline, format)?;
        }
        PipelineCommand::Update { id, file } => {
            let body = definition(&file)?;
            let pipeline: Pipeline = client
                .call(
                    Method::PUT,
                    &format!("/api/pipelines/{}", encode(&id)),
                    Some(&body),
                )
                .await?;
            print_pipeline(&pipeline, format)?;
        }
        PipelineCommand::Delete { id } => {
            client
                .call_empty(Method::DELETE, &format!("/api/pipelines/{}", encode(&id)))
                .await?;
            match format {
                OutputFormat::Json => output::json(&json!({ "deleted": id }))?,
                OutputFormat::Table => println!("deleted pipeline {id}"),
            }
        }
        PipelineCommand::List { project } => {
            let path = match project {
                Some(p) => format!("/api/pipelines?project_id={}", encode(&p)),
                None => "/api/pipelines".into(),
            };
            let list: Value = client.call(Method::GET, &path, None).await?;
            let pipelines: Vec<Pipeline> = serde_json::from_value(list["pipelines"].clone())?;
            if format == OutputFormat::Json {
                output::json(&pipelines)?;
            } else if pipelines.is_empty() {
                output::nothing("no pipelines");
            } else {
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
                t.set_header(["ID", "NAME", "TYPE", "PROJECT", "STEPS", "UPDATED"]);
                for p in pipelines {
                    t.add_row([
                        p.id,
                        p.name,
                        p.pipeline_type.to_string(),
                        p.project_id,
                        p.steps.len().to_string(),
                        p.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    ]);
                }
                println!("{t}");
            }
        }
        PipelineCommand::Get { id } => {
            let pipeline: Pipeline = client
                .call(
                    Method::GET,
                    &format!("/api/pipelines/{}", encode(&id)),
                    None,
                )
                .await?;
            print_pipeline(&pipeline, format)?;
        }
        PipelineCommand::Run {
            id,
            params,
            priority,
            follow,
        } => {
            let mut parameters = Map::new();
            for param in params {
                let Some((key, value)) = param.split_once('=') else {
                    bail!("--param {param:?} must look like KEY=VALUE")
                };
                parameters.insert(
                    key.into(),
                    serde_json::from_str(value).unwrap_or_else(|_| Value::from(value)),
                );
            }
            let mut body = json!({ "parameters": parameters });
            if let Some(priority) = priority {
                body["priority"] = priority.into();
            }
            let task: WorkTask = client
                .call(
                    Method::POST,
                    &format!("/api/pipelines/{}/execute", encode(&id)),
                    Some(&body),
                )
                .await?;
            if !follow {
                output::task(&task, format)?;
                return Ok(ExitCode::SUCCESS);
            }
            return follow_execution(&client, task, format).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A pipeline definition read from a JSON or YAML file (`-` for stdin).
fn definition(file: &std::path::Path) -> anyhow::Result<Value> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    // YAML is a superset of JSON, so one parser reads both.
    let body: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is neither JSON nor YAML", file.display()))?;
    if !body.is_object() {
        bail!(
            "{} must hold a pipeline definition (a mapping with project_id, name and steps)",
            file.display()
        );
    }
    Ok(body)
}

pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn print_pipeline(pipeline: &Pipeline, format: OutputFormat) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        return output::json(pipeline);
    }
    println!(
        "{} {} ({}, project {})",
        pipeline.id, pipeline.name, pipeline.pipeline_type, pipeline.project_id
    );
    for (i, step) in pipeline.steps.iter().enumerate() {
        println!(
            "  {}. {} {}.{}",
            i + 1,
            step["name"].as_str().unwrap_or("?"),
            step["plugin"].as_str().unwrap_or("?"),
            step["action"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// Polls an execution, showing its status, then its steps with durations.
async fn follow_execution(
    client: &mimir_client::Client,
    task: WorkTask,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut last: Option<(WorkTaskStatus, u32)> = None;
    let mut shown_steps = 0;
    let task = loop {
        let task = client.get(task.worktask_id).await?;
        if task.status.is_running() {
            // Steps finished so far, as the worker reports them.
            let steps = task
                .result
                .as_ref()
                .and_then(|r| r["steps"].as_array())
                .cloned()
                .unwrap_or_default();
            for step in steps.iter().skip(shown_steps) {
                let line = format!(
                    "  step {} {}.{} {} in {}",
                    step["name"].as_str().unwrap_or("?"),
                    step["plugin"].as_str().unwrap_or("?"),
                    step["action"].as_str().unwrap_or("?"),
                    step["status"].as_str().unwrap_or("?"),
                    step_duration(step),
                );
                if bar.is_hidden() {
                    eprintln!("{line}")
                } else {
                    bar.println(line)
                }
            }
            shown_steps = shown_steps.max(steps.len());
        } else if last.is_some_and(|(_, retries)| retries != task.retry_count) {
            shown_steps = 0;
        }
        if last != Some((task.status, task.retry_count)) {
            let line = match task.retry_count {
                0 => format!("{} {}", task.worktask_id, task.status),
                n => format!(
                    "{} {} (attempt {} after: {})",
                    task.worktask_id,
                    task.status,
                    n + 1,
                    task.retry_reason
                ),
            };
            if bar.is_hidden() {
                eprintln!("{line}")
            } else {
                bar.println(line)
            }
            last = Some((task.status, task.retry_count));
        }
        if task.status.is_terminal() {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish_and_clear();
    if format == OutputFormat::Json {
        output::json(&task)?;
    } else {
        let steps = task
            .result
            .as_ref()
            .and_then(|r| r["steps"].as_array())
            .cloned()
            .unwrap_or_default();
        for line in step_table(&steps) {
            println!("{line}");
        }
        println!("{} {}", task.worktask_id, task.status);
        if !task.error_message.is_empty() {
            println!("error: {}", task.error_message);
        }
    }
    Ok(if task.status == WorkTaskStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A step's `duration_ms` in the product's one duration format.
fn step_duration(step: &Value) -> String {
    step["duration_ms"]
        .as_f64()
        .and_then(mimir_core::millis_text)
        .unwrap_or_else(|| "-".into())
}

/// The finished steps, one line each, columns as wide as their widest cell
/// (so `transform.jq` lines up with `core.log`), durations right-aligned.
fn step_table(steps: &[Value]) -> Vec<String> {
    let rows: Vec<[String; 5]> = steps
        .iter()
        .map(|step| {
            [
                step["name"].as_str().unwrap_or("?").to_string(),
                format!(
                    "{}.{}",
                    step["plugin"].as_str().unwrap_or("?"),
                    step["action"].as_str().unwrap_or("?")
                ),
                step["status"].as_str().unwrap_or("?").to_string(),
                step_duration(step),
                step["error"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    let width = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or_default()
    };
    let (name, action, status, took) = (width(0), width(1), width(2), width(3));
    rows.iter()
        .map(|[n, a, s, d, error]| {
            let line = format!("  {n:<name$}  {a:<action$}  {s:<status$}  {d:>took$}  {error}");
            line.trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_table_columns_line_up_whatever_the_action_names() {
        let steps = vec![
            json!({"name": "load", "plugin": "core", "action": "log", "status": "completed", "duration_ms": 0.85}),
            json!({"name": "pick", "plugin": "transform", "action": "jq", "status": "completed", "duration_ms": 1.264351}),
            json!({"name": "a_much_longer_step_name_here", "plugin": "http", "action": "request", "status": "failed", "duration_ms": 75000.0, "error": "refused"}),
        ];
        let lines = step_table(&steps);
        assert_eq!(lines.len(), 3);
        // Every column starts at the same place on every line.
        let starts = |line: &str, cell: &str| line.find(cell).expect(cell);
        assert_eq!(
            starts(&lines[0], "core.log"),
            starts(&lines[1], "transform.jq")
        );
        assert_eq!(
            starts(&lines[1], "transform.jq"),
            starts(&lines[2], "http.request")
        );
        assert_eq!(starts(&lines[0], "completed"), starts(&lines[2], "failed"));
        // Durations are right-aligned, in the human format.
        assert!(
            lines[0].contains("850 µs") && lines[1].contains("1.26 ms"),
            "{lines:?}"
        );
        assert!(lines[2].contains("1 m 15 s  refused"), "{lines:?}");
        // In characters, as a terminal shows them ("µ" is two bytes).
        let end = |line: &str, cell: &str| {
            line[..line.find(cell).expect(cell)].chars().count() + cell.chars().count()
        };
        assert_eq!(end(&lines[0], "850 µs"), end(&lines[1], "1.26 ms"));
    }
}
