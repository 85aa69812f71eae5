//! Runs the `bench storage` measurements without the CLI:
//! `cargo run --release -p mimir-storage --example bench_storage -- <backend> <url> [records] [retrieve_records] [queries]`.

#[tokio::main]
async fn main() -> Result<(), mimir_storage::bench::BenchError> {
    let args: Vec<String> = std::env::args().collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let config = mimir_storage::bench::BenchConfig {
        backend: args.get(1).cloned().unwrap_or_else(|| "postgresql".into()),
        url: args.get(2).cloned().unwrap_or_default(),
        records: number(3, 100_000),
        retrieve_records: number(4, 1_000_000),
        queries: number(5, 2_000),
    };
    mimir_storage::bench::run(config, &mut |line| println!("{line}")).await
}
