//! Runs the installed stack on loopback: Prometheus always, and Grafana,
//! Loki and Tempo when they are installed, each with its data under
//! `DIR/data/` and its output in `DIR/data/<tool>.log`.

use crate::MonitoringError;
use crate::manifest::Manifest;
use crate::tools::{self, Found, Tool};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Defaults to 9090.
pub const DEFAULT_PROMETHEUS_PORT: u16 = 9090;
/// Defaults to 3000.
pub const DEFAULT_GRAFANA_PORT: u16 = 3000;
/// Loki's ports, fixed in `loki/loki.yml`: HTTP and gRPC.
const LOKI_PORTS: [u16; 2] = [3100, 9096];
/// Tempo's ports, fixed in `tempo/tempo.yml`: HTTP, OTLP gRPC and HTTP, gRPC.
const TEMPO_PORTS: [u16; 4] = [3200, 4317, 4318, 9095];
/// How long a tool may take to answer after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a tool may take to stop before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// The install directory.
    pub dir: PathBuf,
    /// Prometheus listens on 127.0.0.1 at this port.
    pub prometheus_port: u16,
    /// Grafana listens on 127.0.0.1 at this port.
    pub grafana_port: u16,
    /// Where to look for the tools (a `PATH` value).
    pub path: OsString,
}

impl ViewOptions {
    /// Defaults for `dir`, searching this process's `PATH`.
    pub fn new(dir: impl Into<PathBuf>) -> ViewOptions {
        ViewOptions {
            dir: dir.into(),
            prometheus_port: DEFAULT_PROMETHEUS_PORT,
            grafana_port: DEFAULT_GRAFANA_PORT,
            path: std::env::var_os("PATH").unwrap_or_default(),
        }
    }
}

/// One running tool.
#[derive(Debug)]
struct Running {
    tool: Tool,
    child: Child,
    log: PathBuf,
}

/// The running tools; dropping it stops them.
#[derive(Debug)]
pub struct Stack {
    running: Vec<Running>,
    /// What to print: links, and notes about tools that are not running.
    pub report: String,
}

/// The orchestrator's built-in dashboard, for when a tool is missing.
fn builtin_dashboard(manifest: &Manifest) -> String {
    format!("{}/", manifest.orchestrator.trim_end_matches('/'))
}

/// Starts the tools; returns once Prometheus answers.
pub fn start(options: &ViewOptions) -> Result<Stack, MonitoringError> {
    let dir = std::fs::canonicalize(&options.dir)
        .map_err(|_| MonitoringError::NotInstalled(options.dir.clone()))?;
    let manifest =
        Manifest::read(&dir)?.ok_or_else(|| MonitoringError::NotInstalled(options.dir.clone()))?;
    if let Some(remote_write) = &manifest.remote_write {
        return start_agent(options, &dir, remote_write);
    }
    let dashboard = builtin_dashboard(&manifest);
    let prometheus = tools::find(Tool::Prometheus, &options.path).map_err(|why| {
        MonitoringError::MissingTool(format!(
            "{why}.\nUntil then, the orchestrator's built-in dashboard is at {dashboard}, \
             or run the whole stack in containers: `docker compose up -d` in {}",
            dir.display()
        ))
    })?;
    let prometheus_url = format!("http://127.0.0.1:{}", options.prometheus_port);
    let grafana_url = format!("http://127.0.0.1:{}", options.grafana_port);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(MonitoringError::io(&data))?;
    let mut stack = Stack {
        running: Vec::new(),
        report: String::new(),
    };
    let mut links = vec![(
        "Prometheus",
        format!("{prometheus_url}   (alerts: {prometheus_url}/alerts)"),
    )];
    let mut notes = Vec::new();

    ensure_free(Tool::Prometheus, &[options.prometheus_port]).map_err(|why| {
        MonitoringError::Tool(format!("{why} (choose another with --prometheus-port)"))
    })?;
    let mut command = tool_command(&prometheus);
    command.args([
        format!("--config.file={}", dir.join("prometheus.yml").display()),
        format!("--storage.tsdb.path={}", data.join("prometheus").display()),
        format!("--web.listen-address=127.0.0.1:{}", options.prometheus_port),
        "--web.enable-lifecycle".into(),
        "--enable-feature=exemplar-storage".into(),
    ]);
    stack.spawn(Tool::Prometheus, command, &data)?;

    let loki_url = format!("http://127.0.0.1:{}", LOKI_PORTS[0]);
    let tempo_url = format!("http://127.0.0.1:{}", TEMPO_PORTS[0]);
    for (tool, ports, config, url, hint) in [
        (
            Tool::Loki,
            &LOKI_PORTS[..],
            "loki/loki.yml",
            &loki_url,
            format!("send logs with `logging.loki.url: {loki_url}`"),
        ),
        (
            Tool::Tempo,
            &TEMPO_PORTS[..],
            "tempo/tempo.yml",
            &tempo_url,
            "send traces with `tracing.endpoint: http://127.0.0.1:4318`".to_string(),
        ),
    ] {
        let found = match tools::find(tool, &options.path) {
            Ok(found) => found,
            Err(why) => {
                notes.push(format!("{} is not running: {why}", tool.name()));
                continue;
            }
        };
        if let Err(why) = ensure_free(tool, ports) {
            notes.push(format!("{} is not running: {why}", tool.name()));
            continue;
        }
        let mut command = tool_command(&found);
        command
            .arg(format!("-config.file={}", dir.join(config).display()))
            .arg("-config.expand-env=true")
            .env("MIMIR_MONITORING_DATA", &data);
        stack.spawn(tool, command, &data)?;
        links.push((tool.name(), format!("{url}   ({hint})")));
    }

    match tools::find(Tool::Grafana, &options.path) {
        Err(why) => notes.push(format!(
            "Grafana is not running: {why}. The dashboards are in {} meanwhile; the built-in dashboard is at {dashboard}",
            dir.join("grafana/dashboards").display()
        )),
        Ok(grafana) => match ensure_free(Tool::Grafana, &[options.grafana_port]) {
            Err(why) => notes.push(format!(
                "Grafana is not running: {why} (choose another with --grafana-port)"
            )),
            Ok(()) => {
                let mut command = tool_command(&grafana);
                command
                    .arg(format!(
                        "--homepath={}",
                        grafana.home.as_deref().unwrap_or(Path::new(".")).display()
                    ))
                    .arg(format!("--config={}", dir.join("grafana/grafana.ini").display()))
                    .envs(grafana_env(&dir, options.grafana_port, &prometheus_url));
                stack.spawn(Tool::Grafana, command, &data)?;
                links.push((
                    "Grafana",
                    format!(
                        "{grafana_url}/d/mimir-overview   (dashboards: Overview, Pipelines, Storage, Operator health, Models; log in as admin/admin to edit)"
                    ),
                ));
            }
        },
    }

    stack.wait_ready(Tool::Prometheus, options.prometheus_port, "/-/ready")?;
    let mut report = format!("Mimir AIP monitoring, from {}:\n", dir.display());
    for (name, link) in &links {
        report.push_str(&format!("  {name:<11} {link}\n"));
    }
    report.push_str(&format!(
        "  {:<11} {dashboard}   (built into the orchestrator)\n",
        "Mimir AIP"
    ));
    for note in &notes {
        report.push_str(&format!("note: {note}\n"));
    }
    report.push_str(&format!(
        "Logs of the tools are in {}. Press Ctrl-C to stop them.\n",
        data.display()
    ));
    stack.report = report;
    Ok(stack)
}

/// The arguments that run `prometheus` as the agent installed in `dir`,
/// `agent_flag` being what [`tools::agent_flag`] found.
pub fn agent_args(dir: &Path, agent_flag: &str, port: u16) -> Vec<String> {
    vec![
        agent_flag.to_string(),
        format!("--config.file={}", dir.join("prometheus.yml").display()),
        format!(
            "--storage.agent.path={}",
            dir.join(crate::agent::AGENT_DATA).display()
        ),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--web.enable-lifecycle".into(),
    ]
}

/// Runs an agent install: Prometheus alone, in agent mode.
fn start_agent(
    options: &ViewOptions,
    dir: &Path,
    remote_write: &str,
) -> Result<Stack, MonitoringError> {
    let prometheus = tools::find(Tool::Prometheus, &options.path).map_err(|why| {
        MonitoringError::MissingTool(format!("{why}; the agent needs it on this host"))
    })?;
    let flag = tools::agent_flag(&prometheus.program).ok_or_else(|| {
        MonitoringError::Tool(format!(
            "cannot tell how to run {} in agent mode (Prometheus 2.32 or later has it)",
            prometheus.program.display()
        ))
    })?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(MonitoringError::io(&data))?;
    ensure_free(Tool::Prometheus, &[options.prometheus_port]).map_err(|why| {
        MonitoringError::Tool(format!("{why} (choose another with --prometheus-port)"))
    })?;
    let mut stack = Stack {
        running: Vec::new(),
        report: String::new(),
    };
    let mut command = tool_command(&prometheus);
    command.args(agent_args(dir, flag, options.prometheus_port));
    stack.spawn(Tool::Prometheus, command, &data)?;
    stack.wait_ready(Tool::Prometheus, options.prometheus_port, "/-/ready")?;
    stack.report = format!(
        "Mimir AIP monitoring agent, from {}:\n  Prometheus  http://127.0.0.1:{}/agent   \
         (agent mode: scrapes the workers of {}, remote-writes to {remote_write})\n\
         Its log is in {}. Press Ctrl-C to stop it.\n",
        dir.display(),
        options.prometheus_port,
        dir.join(crate::agent::TARGETS_FILE).display(),
        data.display()
    );
    Ok(stack)
}

/// Grafana's environment: its paths under `dir`, its loopback address, and
/// the variables the installed provisioning files read.
pub fn grafana_env(dir: &Path, port: u16, prometheus_url: &str) -> Vec<(&'static str, OsString)> {
    let data = dir.join("data/grafana");
    vec![
        ("GF_PATHS_DATA", data.clone().into()),
        ("GF_PATHS_LOGS", data.join("log").into()),
        ("GF_PATHS_PLUGINS", data.join("plugins").into()),
        (
            "GF_PATHS_PROVISIONING",
            dir.join("grafana/provisioning").into(),
        ),
        ("GF_SERVER_HTTP_ADDR", "127.0.0.1".into()),
        ("GF_SERVER_HTTP_PORT", port.to_string().into()),
        (
            "MIMIR_GRAFANA_DASHBOARDS",
            dir.join("grafana/dashboards").into(),
        ),
        ("MIMIR_PROMETHEUS_URL", prometheus_url.into()),
        (
            "MIMIR_LOKI_URL",
            format!("http://127.0.0.1:{}", LOKI_PORTS[0]).into(),
        ),
        (
            "MIMIR_TEMPO_URL",
            format!("http://127.0.0.1:{}", TEMPO_PORTS[0]).into(),
        ),
    ]
}

/// The command for a found tool, in its own process group so that a
/// terminal's Ctrl-C reaches `view` alone, which then stops each tool in turn.
fn tool_command(found: &Found) -> Command {
    let mut command = Command::new(&found.program);
    if let Some(subcommand) = found.subcommand {
        command.arg(subcommand);
    }
    command.stdin(Stdio::null()).process_group(0);
    command
}

/// Fails naming the first port in use.
fn ensure_free(tool: Tool, ports: &[u16]) -> Result<(), String> {
    for port in ports {
        if TcpListener::bind(("127.0.0.1", *port)).is_err() {
            return Err(format!(
                "127.0.0.1:{port}, which {} needs, is in use",
                tool.name()
            ));
        }
    }
    Ok(())
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200.
fn answers_ok(port: u16, path: &str) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// The last lines of a log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Stack {
    fn spawn(
        &mut self,
        tool: Tool,
        mut command: Command,
        data: &Path,
    ) -> Result<(), MonitoringError> {
        let log = data.join(format!("{}.log", tool.name().to_lowercase()));
        let file = std::fs::File::create(&log).map_err(MonitoringError::io(&log))?;
        let err = file.try_clone().map_err(MonitoringError::io(&log))?;
        let child = command
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| MonitoringError::Tool(format!("cannot start {}: {e}", tool.name())))?;
        self.running.push(Running { tool, child, log });
        Ok(())
    }

    fn wait_ready(&mut self, tool: Tool, port: u16, path: &str) -> Result<(), MonitoringError> {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(stopped) = self.exited() {
                return Err(MonitoringError::Tool(stopped));
            }
            if answers_ok(port, path) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(MonitoringError::Tool(format!(
            "{} did not answer on 127.0.0.1:{port} within {}s",
            tool.name(),
            READY_TIMEOUT.as_secs()
        )))
    }

    /// A tool that stopped on its own, described with its log's last lines.
    pub fn exited(&mut self) -> Option<String> {
        for running in &mut self.running {
            if let Ok(Some(status)) = running.child.try_wait() {
                return Some(format!(
                    "{} stopped ({status}); the end of {}:\n{}",
                    running.tool.name(),
                    running.log.display(),
                    tail(&running.log)
                ));
            }
        }
        None
    }

    /// Stops every tool: SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        for running in &self.running {
            if let Some(pid) = Pid::from_raw(running.child.id() as i32) {
                let _ = kill_process(pid, Signal::TERM);
            }
        }
        let started = Instant::now();
        for running in &mut self.running {
            loop {
                match running.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if started.elapsed() < STOP_TIMEOUT => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Ok(None) => {
                        let _ = running.child.kill();
                        let _ = running.child.wait();
                        break;
                    }
                }
            }
        }
        self.running.clear();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}
