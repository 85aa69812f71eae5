//! One module per subcommand.

pub mod backup;
pub mod executor;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod plugin;
pub mod project;
pub mod queue;
pub mod record_file;
pub mod schedule;
pub mod serve;
pub mod storage;
pub mod task;
pub mod worker;

use clap::{Args, ValueEnum};
use mimir_client::{Client, ClientError, DEFAULT_ORCHESTRATOR_URL, TlsOptions};
use std::path::PathBuf;

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
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl Remote {
    /// A client for these options; errors name a TLS file that cannot be used.
    pub fn client(&self) -> Result<Client, ClientError> {
        Ok(Client::with_tls(&self.orchestrator, &self.tls.options())?
            .with_token(self.token.clone()))
    }
}

/// How an `https` orchestrator is verified, and the client certificate
/// mutual TLS asks for.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// PEM CA the orchestrator's certificate must be signed by [default: the system's roots].
    #[arg(long, global = true, env = "MIMIR_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, for an orchestrator with tls.clientCaFile.
    #[arg(
        long,
        global = true,
        env = "MIMIR_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        global = true,
        env = "MIMIR_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The client's TLS options.
    pub fn options(&self) -> TlsOptions {
        TlsOptions {
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }
}
