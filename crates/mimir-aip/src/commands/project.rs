//! `mimir-aip project`: register, list, show and delete projects.
//!
//! A `project_id` need not be registered to be used; registering gives it a
//! name and a description. The list shows every project tasks or pipelines
//! use, registered or not, with how many of each.

use super::pipeline::encode;
use super::{OutputFormat, Remote};
use crate::output;
use anyhow::bail;
use clap::{Args, Subcommand};
use mimir_core::{Project, ProjectListing};
use reqwest::Method;
use serde_json::{Value, json};
use std::process::ExitCode;

/// `project` and its subcommands.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: ProjectCommand,
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Register a project (its id is what tasks and pipelines name).
    Create {
        /// Its id [default: a new UUID].
        #[arg(long)]
        id: Option<String>,
        /// Its name.
        #[arg(long)]
        name: String,
        /// What it is, for people.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List projects, oldest first, with their task and pipeline counts.
    List {
        /// Projects per page.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue from a previous page's cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one registered project.
    Get {
        /// Project id.
        id: String,
    },
    /// Remove a project's registration (its tasks and pipelines stay).
    Delete {
        /// Project id.
        id: String,
    },
}

/// Runs a `project` subcommand.
pub async fn run(args: ProjectArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    let format = args.remote.output;
    match args.command {
        ProjectCommand::Create {
            id,
            name,
            description,
        } => {
            if name.trim().is_empty() {
                bail!("the project name is empty: pass --name NAME");
            }
            let mut body = json!({ "name": name, "description": description });
            if let Some(id) = id {
                body["id"] = id.into();
            }
            let project: Project = client
                .call(Method::POST, "/api/projects", Some(&body))
                .await?;
            print_project(&project, format)?;
        }
        ProjectCommand::List { limit, cursor } => {
            let mut path = format!("/api/projects?limit={limit}");
            if let Some(cursor) = cursor {
                path.push_str(&format!("&cursor={}", encode(&cursor)));
            }
            let page: Value = client.call(Method::GET, &path, None).await?;
            if format == OutputFormat::Json {
                return output::json(&page).map(|()| ExitCode::SUCCESS);
            }
            let projects: Vec<ProjectListing> = serde_json::from_value(page["projects"].clone())?;
            if projects.is_empty() {
                output::nothing("no projects");
            } else {
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
                t.set_header(["ID", "NAME", "TASKS", "PIPELINES", "SINCE", "DESCRIPTION"]);
                for p in projects {
                    let name = if p.registered {
                        p.project.name
                    } else {
                        "(not registered)".into()
                    };
                    t.add_row([
                        p.project.id,
                        name,
                        p.tasks.to_string(),
                        p.pipelines.to_string(),
                        p.project.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        p.project.description,
                    ]);
                }
                println!("{t}");
            }
            if let Some(cursor) = page["next_cursor"].as_str() {
                println!("more: --cursor {cursor}");
            }
        }
        ProjectCommand::Get { id } => {
            let project: Project = client
                .call(Method::GET, &format!("/api/projects/{}", encode(&id)), None)
                .await?;
            print_project(&project, format)?;
        }
        ProjectCommand::Delete { id } => {
            client
                .call_empty(Method::DELETE, &format!("/api/projects/{}", encode(&id)))
                .await?;
            match format {
                OutputFormat::Json => output::json(&json!({ "deleted": id }))?,
                OutputFormat::Table => println!("deleted project {id}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_project(project: &Project, format: OutputFormat) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        return output::json(project);
    }
    println!("{} {}", project.id, project.name);
    if !project.description.is_empty() {
        println!("  {}", project.description);
    }
    println!(
        "  registered {}",
        project.created_at.format("%Y-%m-%d %H:%M:%S")
    );
    Ok(())
}
