//! `mimir-aip schedule`: fire pipelines on a clock.

use super::pipeline::encode;
use super::{OutputFormat, Remote};
use crate::output;
use anyhow::bail;
use chrono::Utc;
use clap::{Args, Subcommand};
use mimir_core::{Schedule, WorkTask};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::process::ExitCode;

/// `schedule` and its subcommands.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Create a schedule firing a pipeline.
    Create {
        /// Its name, unique within the project.
        #[arg(long)]
        name: String,
        /// The pipeline to fire; repeat to fire several (one task each).
        #[arg(long = "pipeline", required = true)]
        pipelines: Vec<String>,
        /// Cron: 5 fields (`*/5 * * * *`), 6 with seconds first, or
        /// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
        #[arg(long)]
        cron: String,
        /// IANA time zone the cron is read in, e.g. Europe/Berlin.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Parameter KEY=VALUE of every fire (VALUE read as JSON when it
        /// parses); repeatable.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// 1 to 10.
        #[arg(long)]
        priority: Option<i64>,
        /// Slots passed unfired: skip, once or all.
        #[arg(long)]
        catchup: Option<String>,
        /// While the previous run goes on: allow, skip or queue.
        #[arg(long)]
        overlap: Option<String>,
        /// Fire each slot up to this many milliseconds late.
        #[arg(long)]
        jitter_ms: Option<u64>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// List schedules.
    List {
        /// Only this project's.
        #[arg(long)]
        project: Option<String>,
        /// Only those firing this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// Show one schedule.
    Get {
        /// Schedule id.
        id: String,
    },
    /// Stop firing.
    Pause {
        /// Schedule id.
        id: String,
    },
    /// Fire again from the next slot.
    Resume {
        /// Schedule id.
        id: String,
    },
    /// Delete a schedule (the tasks it fired stay).
    Delete {
        /// Schedule id.
        id: String,
    },
    /// Fire once now.
    RunNow {
        /// Schedule id.
        id: String,
    },
}

/// Runs a `schedule` subcommand.
pub async fn run(args: ScheduleArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    let format = args.remote.output;
    let path = |id: &str, action: &str| format!("/api/schedules/{}{action}", encode(id));
    match args.command {
        ScheduleCommand::Create {
            name,
            pipelines,
            cron,
            timezone,
            params,
            priority,
            catchup,
            overlap,
            jitter_ms,
            paused,
        } => {
            let mut body = json!({
                "name": name,
                "pipeline_ids": pipelines,
                "cron": cron,
                "timezone": timezone,
                "parameters": parameters(&params)?,
                "enabled": !paused,
            });
            for (key, value) in [
                ("priority", priority.map(Value::from)),
                ("catchup", catchup.map(Value::from)),
                ("overlap", overlap.map(Value::from)),
                ("jitter_ms", jitter_ms.map(Value::from)),
            ] {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            let schedule: Schedule = client
                .call(Method::POST, "/api/schedules", Some(&body))
                .await?;
            print_schedule(&schedule, format)?;
        }
        ScheduleCommand::List { project, pipeline } => {
            let mut schedules: Vec<Schedule> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut query = vec!["limit=1000".to_string()];
                if let Some(p) = &project {
                    query.push(format!("project_id={}", encode(p)));
                }
                if let Some(p) = &pipeline {
                    query.push(format!("pipeline_id={}", encode(p)));
                }
                if let Some(c) = &cursor {
                    query.push(format!("cursor={}", encode(c)));
                }
                let page: Value = client
                    .call(
                        Method::GET,
                        &format!("/api/schedules?{}", query.join("&")),
                        None,
                    )
                    .await?;
                schedules.extend(serde_json::from_value::<Vec<Schedule>>(
                    page["schedules"].clone(),
                )?);
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_string()),
                    None => break,
                }
            }
            if format == OutputFormat::Json {
                output::json(&schedules)?;
            } else if schedules.is_empty() {
                output::nothing("no schedules");
            } else {
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
                t.set_header([
                    "ID",
                    "NAME",
                    "CRON",
                    "TIMEZONE",
                    "STATE",
                    "NEXT FIRE",
                    "LAST",
                    "OUTCOME",
                ]);
                for s in schedules {
                    t.add_row([
                        s.id.clone(),
                        s.name.clone(),
                        s.cron.clone(),
                        s.timezone.clone(),
                        state(&s).to_string(),
                        when(s.next_fire_at),
                        when(s.last_fire_at),
                        s.last_outcome.map(|o| o.to_string()).unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
        }
        ScheduleCommand::Get { id } => {
            let schedule: Schedule = client.call(Method::GET, &path(&id, ""), None).await?;
            print_schedule(&schedule, format)?;
        }
        ScheduleCommand::Pause { id } => {
            let schedule: Schedule = client
                .call(Method::POST, &path(&id, "/pause"), None)
                .await?;
            print_schedule(&schedule, format)?;
        }
        ScheduleCommand::Resume { id } => {
            let schedule: Schedule = client
                .call(Method::POST, &path(&id, "/resume"), None)
                .await?;
            print_schedule(&schedule, format)?;
        }
        ScheduleCommand::Delete { id } => {
            client.call_empty(Method::DELETE, &path(&id, "")).await?;
            match format {
                OutputFormat::Json => output::json(&json!({ "deleted": id }))?,
                OutputFormat::Table => println!("deleted schedule {id}"),
            }
        }
        ScheduleCommand::RunNow { id } => {
            let fired: Value = client
                .call(Method::POST, &path(&id, "/run-now"), None)
                .await?;
            let tasks: Vec<WorkTask> = serde_json::from_value(fired["worktasks"].clone())?;
            output::tasks(&tasks, format, false)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parameters(params: &[String]) -> anyhow::Result<Map<String, Value>> {
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
    Ok(parameters)
}

fn state(schedule: &Schedule) -> &'static str {
    if schedule.enabled { "active" } else { "paused" }
}

/// A time in UTC with how far it is from now, or `-`.
fn when(at: Option<chrono::DateTime<Utc>>) -> String {
    let Some(at) = at else {
        return "-".into();
    };
    let seconds = (at - Utc::now()).num_seconds();
    let relative = if seconds >= 0 {
        format!(
            "in {}",
            mimir_core::duration_text(std::time::Duration::from_secs(seconds as u64))
        )
    } else {
        format!(
            "{} ago",
            mimir_core::duration_text(std::time::Duration::from_secs(seconds.unsigned_abs()))
        )
    };
    format!("{} ({relative})", at.format("%Y-%m-%d %H:%M:%S"))
}

fn print_schedule(schedule: &Schedule, format: OutputFormat) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        return output::json(schedule);
    }
    println!("id:          {}", schedule.id);
    println!("name:        {}", schedule.name);
    println!("project:     {}", schedule.project_id);
    println!("pipelines:   {}", schedule.pipeline_ids.join(", "));
    println!("cron:        {} ({})", schedule.cron, schedule.timezone);
    println!("state:       {}", state(schedule));
    println!("catchup:     {}", schedule.catchup);
    println!("overlap:     {}", schedule.overlap);
    if schedule.jitter_ms > 0 {
        println!("jitter:      up to {} ms", schedule.jitter_ms);
    }
    println!("next fire:   {}", when(schedule.next_fire_at));
    if let Some(queued) = schedule.queued_fire_at {
        println!(
            "queued fire: {} (waits for the previous run)",
            when(Some(queued))
        );
    }
    println!("last fire:   {}", when(schedule.last_fire_at));
    if let Some(outcome) = schedule.last_outcome {
        println!("last outcome: {outcome}");
    }
    if let Some(task) = schedule.last_task_id {
        println!("last task:   {task}");
    }
    Ok(())
}
