//! `mimir-aip backup`: a consistent copy of a store, live or not.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// File to write the copy to: a SQLite database that, renamed `mimir.db`
    /// in an empty data directory, restores the store.
    dest: PathBuf,
    /// Data directory of the store to copy [default: ./mimir-data].
    #[arg(long, env = "MIMIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Replace DEST if it exists.
    #[arg(long)]
    force: bool,
}

/// Copies the store with SQLite's online backup while the orchestrator may
/// keep running and writing; prints what it copied.
pub async fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| mimir_server::config::Config::default().data_dir);
    let dest = args.dest;
    let force = args.force;
    let report =
        tokio::task::spawn_blocking(move || mimir_store::sqlite::backup(&data_dir, &dest, force))
            .await
            .context("the backup thread failed")??;
    println!(
        "backed up {} tasks ({} bytes) from {} to {} in {}",
        report.tasks,
        report.bytes,
        report.source.display(),
        report.destination.display(),
        mimir_core::duration_text(report.elapsed)
    );
    Ok(ExitCode::SUCCESS)
}
