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
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            // YAML is a superset of JSON, so one parser reads both.
            let body: Value = serde_yaml_ng::from_str(&text)
                .with_context(|| format!("{} is neither JSON nor YAML", file.display()))?;
            let pipeline: Pipeline = client
                .call(Method::POST, "/api/pipelines", Some(&body))
                .await?;
            print_pipeline(&pipeline, format)?;
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

fn encode(s: &str) -> String {
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
                    "  step {} {}.{} {} in {} ms",
                    step["name"].as_str().unwrap_or("?"),
                    step["plugin"].as_str().unwrap_or("?"),
                    step["action"].as_str().unwrap_or("?"),
                    step["status"].as_str().unwrap_or("?"),
                    step["duration_ms"]
                        .as_f64()
                        .map(|ms| format!("{ms:.1}"))
                        .unwrap_or_default(),
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
        for step in task
            .result
            .as_ref()
            .and_then(|r| r["steps"].as_array())
            .into_iter()
            .flatten()
        {
            let error = step["error"]
                .as_str()
                .filter(|e| !e.is_empty())
                .map(|e| format!("  {e}"))
                .unwrap_or_default();
            println!(
                "  {:<24} {}.{:<10} {:<9} {:>8} ms{error}",
                step["name"].as_str().unwrap_or("?"),
                step["plugin"].as_str().unwrap_or("?"),
                step["action"].as_str().unwrap_or("?"),
                step["status"].as_str().unwrap_or("?"),
                step["duration_ms"],
            );
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
