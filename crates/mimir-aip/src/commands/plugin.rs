//! `mimir-aip plugin`: the plugins and actions pipeline steps can use, as the
//! orchestrator reports them (`GET /api/plugins`).

use super::{OutputFormat, Remote};
use anyhow::bail;
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;
use std::process::ExitCode;

/// `plugin` and its subcommands.
#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Every action with its parameters (name, type, required, default,
    /// description) and what it returns.
    List {
        /// Only this plugin (`core`) or action (`core.sleep`).
        name: Option<String>,
    },
}

/// Runs a `plugin` subcommand.
pub async fn run(args: PluginArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PluginCommand::List { name } => {
            let client = args.remote.client()?;
            let list: Value = client
                .call(reqwest::Method::GET, "/api/plugins", None)
                .await?;
            let actions = select(&list, name.as_deref())?;
            match args.remote.output {
                OutputFormat::Json => crate::output::json(&actions)?,
                OutputFormat::Table => print(&actions),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The actions of `list` that `name` selects (all when `None`); an error
/// naming what exists when it selects none.
fn select(list: &Value, name: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    for plugin in list["plugins"].as_array().into_iter().flatten() {
        for action in plugin["actions"].as_array().into_iter().flatten() {
            all.push((plugin["name"].as_str().unwrap_or_default(), action));
        }
    }
    let chosen: Vec<Value> = all
        .iter()
        .filter(|(plugin, action)| match name {
            None => true,
            Some(name) => *plugin == name || action["id"].as_str() == Some(name),
        })
        .map(|(_, action)| (*action).clone())
        .collect();
    if chosen.is_empty() {
        let known: Vec<&str> = all.iter().filter_map(|(_, a)| a["id"].as_str()).collect();
        match name {
            Some(name) => bail!(
                "no plugin or action is named {name:?}; the orchestrator has {}",
                known.join(", ")
            ),
            None => bail!("the orchestrator reports no plugins"),
        }
    }
    Ok(chosen)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print(actions: &[Value]) {
    for (i, action) in actions.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}: {}", text(&action["id"]), text(&action["summary"]));
        let parameters = action["parameters"].as_array().cloned().unwrap_or_default();
        if parameters.is_empty() {
            println!("  parameters: none");
        } else {
            let mut table = Table::new();
            table.load_preset(UTF8_BORDERS_ONLY).set_header([
                "PARAMETER",
                "TYPE",
                "REQUIRED",
                "DEFAULT",
                "DESCRIPTION",
            ]);
            for p in &parameters {
                let required = if p["required"] == Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                };
                table.add_row([
                    text(&p["name"]),
                    text(&p["type"]),
                    required.to_string(),
                    text(&p["default"]),
                    text(&p["description"]),
                ]);
            }
            println!("{table}");
        }
        println!("  returns: {}", text(&action["returns"]));
    }
}
