//! `mimir-aip metrics install | view`: the monitoring stack (Prometheus,
//! alert and recording rules, Grafana dashboards, Loki, Tempo), or with
//! `install --agent` a Prometheus agent for a host running workers that
//! remote-writes to the central one.

use anyhow::Context;
use clap::{Args, Subcommand};
use mimir_monitoring::view::{self, ViewOptions};
use mimir_monitoring::{AgentSettings, Outcome, ScrapeAuth, ScrapeTls, Settings, Status};
use mimir_server::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// Defaults to `./mimir-monitoring`.
const DEFAULT_DIR: &str = "./mimir-monitoring";

/// `metrics` subcommands.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(subcommand)]
    command: MetricsCommand,
}

#[derive(Debug, Subcommand)]
enum MetricsCommand {
    /// Write the monitoring stack: Prometheus config and rules, Grafana
    /// dashboards, Loki, Tempo, docker-compose.yml. With --agent, only a
    /// Prometheus agent config for a host running workers. Never overwrites a
    /// file you changed unless --force.
    Install(Box<InstallArgs>),
    /// Run the installed Prometheus (and Grafana, Loki, Tempo when installed)
    /// on 127.0.0.1 and print their links; Ctrl-C stops them. An --agent
    /// install runs Prometheus alone, in agent mode.
    View(ViewArgs),
}

#[derive(Debug, Args)]
struct InstallArgs {
    /// Directory to write the stack into.
    #[arg(long, env = "MIMIR_MONITORING_DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Write a Prometheus agent for this host instead: it scrapes the workers
    /// given with --scrape and sends every sample to --remote-write (a
    /// central Prometheus, Grafana Mimir or Thanos Receive); no rules, no
    /// Grafana.
    #[arg(long, requires = "remote_write", conflicts_with_all = [
        "config", "orchestrator", "metrics_token", "metrics_username",
        "metrics_password", "workers", "ca_cert", "client_cert", "client_key",
    ])]
    agent: bool,
    /// With --agent: the remote-write URL, e.g.
    /// http://prometheus:9090/api/v1/write (Prometheus started with
    /// --web.enable-remote-write-receiver), .../api/v1/push (Mimir) or
    /// .../api/v1/receive (Thanos).
    #[arg(long, value_name = "URL", requires = "agent")]
    remote_write: Option<String>,
    /// With --agent: a worker on this host started with --metrics-listen
    /// HOST:PORT (repeat for several). They go to targets/workers.yml, which
    /// you can edit later; Prometheus re-reads it.
    #[arg(long = "scrape", value_name = "HOST:PORT", requires = "agent")]
    scrape: Vec<String>,
    /// With --agent: the `instance_host` label on every sample [default:
    /// this machine's host name].
    #[arg(long, requires = "agent")]
    host_name: Option<String>,
    /// The orchestrator's config file: its `listen` address and `metrics.*`
    /// credentials are the defaults of the flags below.
    #[arg(long, env = "MIMIR_CONFIG")]
    config: Option<PathBuf>,
    /// URL Prometheus scrapes the orchestrator at [default: from --config's
    /// listen, else http://127.0.0.1:8080].
    #[arg(long, env = "MIMIR_ORCHESTRATOR_URL")]
    orchestrator: Option<String>,
    /// Bearer token /metrics requires [default: metrics.bearerToken].
    #[arg(long, env = "MIMIR_METRICS_BEARER_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Basic-auth user /metrics requires [default: metrics.username].
    #[arg(long, requires = "metrics_password")]
    metrics_username: Option<String>,
    /// Basic-auth password /metrics requires [default: metrics.password].
    #[arg(long, env = "MIMIR_METRICS_PASSWORD", hide_env_values = true)]
    metrics_password: Option<String>,
    /// A worker started with --metrics-listen ADDR to scrape as well (repeat
    /// for several; edit targets/workers.yml later to add more).
    #[arg(long = "worker", value_name = "HOST:PORT")]
    workers: Vec<String>,
    /// CA an https orchestrator's certificate is signed by, copied into the
    /// install [default: tls.caFile, else tls.certFile, when --config has TLS].
    #[arg(long, env = "MIMIR_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Client certificate Prometheus presents (tls.clientCaFile with clientAuth: required).
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// Private key of --client-cert.
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Scrape the --worker targets over https, verified with this CA (workers
    /// started with --tls-cert and --tls-key).
    #[arg(long)]
    worker_ca_cert: Option<PathBuf>,
    /// Time between scrapes and rule evaluations.
    #[arg(long, default_value = mimir_monitoring::assets::DEFAULT_SCRAPE_INTERVAL)]
    scrape_interval: String,
    /// Overwrite files you changed since the last install.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ViewArgs {
    /// The directory `metrics install` wrote.
    #[arg(long, env = "MIMIR_MONITORING_DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Port of Prometheus on 127.0.0.1.
    #[arg(long, default_value_t = view::DEFAULT_PROMETHEUS_PORT)]
    prometheus_port: u16,
    /// Port of Grafana on 127.0.0.1.
    #[arg(long, default_value_t = view::DEFAULT_GRAFANA_PORT)]
    grafana_port: u16,
}

/// Runs a `metrics` subcommand.
pub async fn run(args: MetricsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        MetricsCommand::Install(args) => install(*args),
        MetricsCommand::View(args) => view(args).await,
    }
}

/// The settings: flags, else the config file, else the defaults `serve` uses.
fn settings(args: &InstallArgs) -> anyhow::Result<Settings> {
    let config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let tls = config.tls.validate()?;
    let orchestrator = match &args.orchestrator {
        Some(url) => url.clone(),
        None => {
            // Prometheus runs next to the orchestrator: an address on every
            // interface is scraped on loopback.
            let listen = config
                .listen
                .replace("0.0.0.0:", "127.0.0.1:")
                .replace("[::]:", "[::1]:");
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{listen}")
        }
    };
    let m = &config.metrics;
    let auth = if let Some(token) = args.metrics_token.clone().filter(|t| !t.is_empty()) {
        Some(ScrapeAuth::Bearer(token))
    } else if let Some(username) = &args.metrics_username {
        Some(ScrapeAuth::Basic {
            username: username.clone(),
            password: args.metrics_password.clone().unwrap_or_default(),
        })
    } else if !m.bearer_token.is_empty() {
        Some(ScrapeAuth::Bearer(m.bearer_token.clone()))
    } else if !m.username.is_empty() {
        Some(ScrapeAuth::Basic {
            username: m.username.clone(),
            password: m.password.clone(),
        })
    } else {
        None
    };
    // Prometheus may run elsewhere: paths are absolute.
    let absolute = |path: &PathBuf| -> anyhow::Result<String> {
        let path = std::path::absolute(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        Ok(path.display().to_string())
    };
    let read = |path: &PathBuf| -> anyhow::Result<String> {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        anyhow::ensure!(
            pem.contains("-----BEGIN CERTIFICATE-----"),
            "{} holds no PEM certificate",
            path.display()
        );
        Ok(pem)
    };
    let ca_pem = match (&args.ca_cert, &tls) {
        (Some(path), _) => Some(read(path)?),
        (None, Some(tls)) => Some(read(&tls.ca_file)?),
        (None, None) => None,
    };
    let scrape_tls = ScrapeTls {
        ca_pem,
        cert_file: args.client_cert.as_ref().map(absolute).transpose()?,
        key_file: args.client_key.as_ref().map(absolute).transpose()?,
    };
    let workers_tls = workers_tls(args)?;
    Ok(Settings {
        orchestrator,
        auth,
        scrape_interval: args.scrape_interval.clone(),
        workers: args.workers.clone(),
        tls: (scrape_tls != ScrapeTls::default()).then_some(scrape_tls),
        workers_tls,
    })
}

/// The CA workers' certificates are signed by, when they are scraped over https.
fn workers_tls(args: &InstallArgs) -> anyhow::Result<Option<ScrapeTls>> {
    let Some(path) = &args.worker_ca_cert else {
        return Ok(None);
    };
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
    anyhow::ensure!(
        pem.contains("-----BEGIN CERTIFICATE-----"),
        "{} holds no PEM certificate",
        path.display()
    );
    Ok(Some(ScrapeTls {
        ca_pem: Some(pem),
        ..ScrapeTls::default()
    }))
}

/// Prints each file's outcome; returns how many of the user's changes were kept.
fn report(outcomes: &[Outcome]) -> usize {
    let width = outcomes
        .iter()
        .map(|o| o.status.as_str().len())
        .max()
        .unwrap_or(0);
    let mut kept = 0;
    for outcome in outcomes {
        let note = match outcome.status {
            Status::Kept => {
                kept += 1;
                "   (changed by you; --force overwrites)"
            }
            _ => "",
        };
        println!(
            "{:<width$}  {}{note}",
            outcome.status.as_str(),
            outcome.path
        );
    }
    kept
}

fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    if args.agent {
        return install_agent(args);
    }
    let settings = settings(&args)?;
    let outcomes =
        mimir_monitoring::install(&args.dir, &settings, args.force).with_context(|| {
            format!(
                "cannot install the monitoring stack in {}",
                args.dir.display()
            )
        })?;
    let kept = report(&outcomes);
    let dir = args.dir.display();
    println!(
        "\nMonitoring stack for {} in {dir}{}.",
        settings.orchestrator,
        if kept > 0 {
            format!(" ({kept} of your changes kept)")
        } else {
            String::new()
        }
    );
    println!("  Run it:      mimir-aip metrics view --dir {dir}");
    println!("  Or:          cd {dir} && docker compose up -d");
    println!(
        "  Check it:    promtool check config {dir}/prometheus.yml && promtool test rules {dir}/rules/tests/*.yml"
    );
    println!(
        "  Logs:        logging.loki.url: http://127.0.0.1:3100   Traces: tracing.endpoint: http://127.0.0.1:4318"
    );
    Ok(ExitCode::SUCCESS)
}

fn install_agent(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let mut settings = AgentSettings::new(args.remote_write.clone().unwrap_or_default());
    settings.targets = args.scrape.clone();
    settings.scrape_interval = args.scrape_interval.clone();
    if let Some(host) = &args.host_name {
        settings.host = host.clone();
    }
    settings.workers_tls = workers_tls(&args)?;
    let outcomes =
        mimir_monitoring::install_agent(&args.dir, &settings, args.force).with_context(|| {
            format!(
                "cannot install the monitoring agent in {}",
                args.dir.display()
            )
        })?;
    let kept = report(&outcomes);
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let targets = dir.join(mimir_monitoring::agent::TARGETS_FILE);
    // The exact command for the Prometheus on PATH; Prometheus 3's flag when
    // there is none to ask.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = mimir_monitoring::tools::find(mimir_monitoring::tools::Tool::Prometheus, &path);
    let (program, flag, note) = match &found {
        Ok(found) => match mimir_monitoring::tools::agent_flag(&found.program) {
            Some(flag) => (found.program.display().to_string(), flag, ""),
            None => (
                found.program.display().to_string(),
                "--agent",
                "   (this Prometheus has no agent mode: 2.32 or later is needed)",
            ),
        },
        Err(_) => (
            "prometheus".to_string(),
            "--agent",
            "   (Prometheus 2.x: --enable-feature=agent)",
        ),
    };
    let command = view::agent_args(&dir, flag, view::DEFAULT_PROMETHEUS_PORT).join(" ");
    println!(
        "\nPrometheus agent for host {} in {}{}: scrapes the {} worker(s) of {}, remote-writes to {}.",
        settings.host,
        dir.display(),
        if kept > 0 {
            format!(" ({kept} of your changes kept)")
        } else {
            String::new()
        },
        settings.targets.len(),
        targets.display(),
        settings.remote_write,
    );
    println!(
        "  Run it:      mimir-aip metrics view --dir {}",
        dir.display()
    );
    println!("  Or:          {program} {command}{note}");
    println!(
        "  Check it:    promtool check config --agent {}",
        dir.join("prometheus.yml").display()
    );
    println!(
        "  Targets:     edit {} (host:port of each worker's --metrics-listen); Prometheus re-reads it",
        targets.display()
    );
    println!(
        "  Central end: Prometheus with --web.enable-remote-write-receiver, Grafana Mimir or Thanos Receive, with the rules and dashboards of a full `metrics install`"
    );
    Ok(ExitCode::SUCCESS)
}

async fn view(args: ViewArgs) -> anyhow::Result<ExitCode> {
    let mut options = ViewOptions::new(&args.dir);
    options.prometheus_port = args.prometheus_port;
    options.grafana_port = args.grafana_port;
    let mut stack = tokio::task::spawn_blocking(move || view::start(&options))
        .await
        .context("the view task failed")??;
    print!("{}", stack.report);
    let shutdown = super::serve::shutdown_signal();
    tokio::pin!(shutdown);
    let code = loop {
        tokio::select! {
            _ = &mut shutdown => break ExitCode::SUCCESS,
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                if let Some(stopped) = stack.exited() {
                    eprintln!("error: {stopped}");
                    break ExitCode::FAILURE;
                }
            }
        }
    };
    println!("stopping the monitoring stack");
    tokio::task::spawn_blocking(move || stack.stop())
        .await
        .context("the view task failed")?;
    Ok(code)
}
