//! `mimir-kube-standin`: runs the stand-in Kubernetes API server (a test tool, not
//! Kubernetes) until Ctrl-C, for trying the Kubernetes worker backend by hand.
//!
//! Usage: `mimir-kube-standin KUBECONFIG_PATH [NAMESPACE] [-- PROGRAM ARGS...]`
//! Writes a kubeconfig pointing at it; with a program, each Job's pod runs it.
//! Env: `MIMIR_STANDIN_AUTO_SUCCEED_SECS` (pods without a program succeed after that long).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use mimir_kube_standin::{StandIn, StandInConfig, WorkerProgram};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (own, program) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (&args[..], &[][..]),
    };
    let Some(kubeconfig) = own.first() else {
        anyhow::bail!("usage: mimir-kube-standin KUBECONFIG_PATH [NAMESPACE] [-- PROGRAM ARGS...]");
    };
    let namespace = own.get(1).map_or("default", String::as_str);
    let auto_succeed_after = match std::env::var("MIMIR_STANDIN_AUTO_SUCCEED_SECS") {
        Ok(secs) => Some(Duration::from_secs(secs.parse().context(
            "MIMIR_STANDIN_AUTO_SUCCEED_SECS must be a whole number of seconds",
        )?)),
        Err(_) => None,
    };
    let worker = program.split_first().map(|(program, args)| WorkerProgram {
        program: PathBuf::from(program),
        args: args.to_vec(),
        env: Vec::new(),
    });
    let standin = StandIn::start(StandInConfig {
        worker,
        auto_succeed_after,
        ..StandInConfig::default()
    })
    .await?;
    standin.write_kubeconfig(kubeconfig.as_ref(), namespace)?;
    println!("{}", standin.url());
    eprintln!(
        "stand-in Kubernetes API (for tests) at {}; kubeconfig written to {kubeconfig}",
        standin.url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    standin.shutdown().await;
    Ok(())
}
