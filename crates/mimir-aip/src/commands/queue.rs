//! `mimir-aip queue`: inspect the queue.

use super::{OutputFormat, Remote};
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// `queue` and its subcommands.
#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Tasks waiting to run.
    Length,
}

/// Runs a `queue` subcommand.
pub async fn run(args: QueueArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        QueueCommand::Length => {
            let length = args.remote.client()?.queue_length().await?;
            match args.remote.output {
                OutputFormat::Json => println!("{}", serde_json::json!({ "queue_length": length })),
                OutputFormat::Table => println!("{length}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
