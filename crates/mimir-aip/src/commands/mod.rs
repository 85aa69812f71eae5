//! One module per subcommand.

pub mod backup;
pub mod executor;
pub mod metrics;
pub mod pipeline;
pub mod queue;
pub mod serve;
pub mod task;
pub mod worker;

use clap::{Args, ValueEnum};
use mimir_client::{Client, DEFAULT_ORCHESTRATOR_URL};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// A readable table.
    #[default]
    Table,
    /// The API's JSON.
    Json,
}

/// Options of every command that talks to an orchestrator.
#[derive(Debug, Args)]
pub struct Remote {
    /// Orchestrator URL.
    #[arg(long, global = true, env = "MIMIR_ORCHESTRATOR_URL", default_value = DEFAULT_ORCHESTRATOR_URL)]
    pub orchestrator: String,
    /// API token, sent as `Authorization: Bearer`.
    #[arg(long, global = true, env = "MIMIR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

impl Remote {
    /// A client for these options.
    pub fn client(&self) -> Client {
        Client::new(&self.orchestrator).with_token(self.token.clone())
    }
}
