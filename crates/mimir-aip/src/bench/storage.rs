//! `bench storage`: a storage connector's figures beside the database's own
//! tools, in one run (`mimir_storage::bench` measures; this is its CLI).
//!
//! - Batch store of `--records` records (10 attributes) through the
//!   connector, beside `psql \copy` (PostgreSQL) or `mariadb … LOAD DATA
//!   LOCAL INFILE` (MySQL/MariaDB) of the same rows from CSV.
//! - `eq` retrieves on an indexed attribute from `--retrieve-records`
//!   records: p50/p99 through the connector, the `Storage` wrapper and the
//!   raw driver running the very statement the connector sends.
//!
//! Any backend `backends::open` knows runs; one not built in is skipped
//! with its message.

use clap::Args;
use mimir_storage::bench::{BenchConfig, run as measure};

/// Options of `bench storage`.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// postgresql, mysql, redis or filesystem.
    #[arg(long)]
    backend: String,
    /// The database URL (not needed for filesystem).
    #[arg(long, default_value = "")]
    url: String,
    /// Records of the batch store.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Records the retrieve test queries (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    retrieve_records: usize,
    /// Timed retrieves per path.
    #[arg(long, default_value_t = 2_000)]
    queries: usize,
}

/// Runs the scenario and prints its figures.
pub async fn run(args: StorageArgs) -> anyhow::Result<()> {
    let config = BenchConfig {
        backend: args.backend,
        url: args.url,
        records: args.records,
        retrieve_records: args.retrieve_records,
        queries: args.queries,
    };
    measure(config, &mut |line| println!("{line}"))
        .await
        .map_err(|e| anyhow::anyhow!("bench storage: {e}"))
}
