//! Starting a private orchestrator for a benchmark run.

use super::Target;
use anyhow::{Context, bail};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The telemetry of a spawned orchestrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Telemetry {
    /// Metrics recorded; warnings and errors logged.
    Quiet,
    /// Metrics recorded; info lines (one per task start and end) logged as
    /// JSON to a file: how production runs.
    On,
    /// No metrics recorded; warnings and errors logged.
    Off,
}

/// The orchestrator a run talks to; a spawned one stops when this is dropped.
pub struct Orchestrator {
    /// Its base URL.
    pub url: String,
    child: Option<Child>,
    /// The temporary data directory (removed on drop) of a spawned one.
    data_dir_guard: Option<tempfile::TempDir>,
    /// The PostgreSQL schema it made for its store, dropped with it.
    own_schema: Option<(String, String)>,
    /// How a spawned one was started: program, arguments and its store URL,
    /// to start it again on the same data directory.
    command: Option<(std::path::PathBuf, Vec<std::ffi::OsString>, Option<String>)>,
}

impl Orchestrator {
    /// Connects to the target, starting an orchestrator first with `--spawn`.
    pub async fn start(target: &Target) -> anyhow::Result<Orchestrator> {
        let config = "orchestrator:\n  maxWorkers: 0\n  minWorkers: 0\n";
        Orchestrator::start_with(target, config, Telemetry::Quiet, false).await
    }

    /// Like [`Orchestrator::start`], with this configuration and telemetry for
    /// a spawned one. With `count_instructions`, it runs under valgrind's
    /// cachegrind (instruction counts only), its local workers too, so that
    /// [`Orchestrator::instructions`] can tell the instructions they ran.
    pub async fn start_with(
        target: &Target,
        config: &str,
        telemetry: Telemetry,
        count_instructions: bool,
    ) -> anyhow::Result<Orchestrator> {
        if !target.spawn {
            return Ok(Orchestrator {
                url: target.orchestrator.trim_end_matches('/').into(),
                child: None,
                data_dir_guard: None,
                own_schema: None,
                command: None,
            });
        }
        let data_dir = tempfile::Builder::new()
            .prefix("mimir-bench-")
            .tempdir_in(".")
            .context("cannot create a data directory")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let config_path = data_dir.path().join("bench.yaml");
        let mut config = match telemetry {
            Telemetry::Off => format!("{config}metrics:\n  enabled: false\n"),
            Telemetry::Quiet | Telemetry::On => config.to_string(),
        };
        let mut own_schema = None;
        if let Some(url) = &target.store_url {
            let schema = match &target.store_schema {
                Some(shared) => shared.clone(),
                None => {
                    let fresh = format!("bench_{}", uuid::Uuid::now_v7().simple());
                    own_schema = Some((url.clone(), fresh.clone()));
                    fresh
                }
            };
            config.push_str(&format!("store:\n  schema: {schema}\n"));
        }
        std::fs::write(&config_path, config).context("cannot write the orchestrator's config")?;
        let (level, log) = match telemetry {
            Telemetry::Quiet | Telemetry::Off => ("warn", std::process::Stdio::inherit()),
            // Info lines go to a file, as a log collector would take them.
            Telemetry::On => {
                let file = std::fs::File::create(data_dir.path().join("orchestrator.log"))
                    .context("cannot create the orchestrator's log")?;
                ("info", std::process::Stdio::from(file))
            }
        };
        let exe_path = exe.clone();
        let mut command = if count_instructions {
            let mut valgrind = Command::new("valgrind");
            valgrind
                .args([
                    "--tool=cachegrind",
                    "--cache-sim=no",
                    "--trace-children=yes",
                    "--log-file=/dev/null",
                ])
                .arg(format!(
                    "--cachegrind-out-file={}/instructions.%p",
                    data_dir.path().display()
                ))
                .arg(exe);
            valgrind
        } else {
            Command::new(exe)
        };
        let args: Vec<std::ffi::OsString> = [
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}").into(),
            "--log-level".into(),
            level.into(),
            "--log-format".into(),
            "json".into(),
            "--config".into(),
            config_path.clone().into_os_string(),
            "--data-dir".into(),
            data_dir.path().join("data").into_os_string(),
        ]
        .into();
        let child = command
            .args(&args)
            .stderr(log)
            .env_remove("MIMIR_STORE_URL")
            .envs(target.store_url.iter().map(|url| ("MIMIR_STORE_URL", url)))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                if count_instructions {
                    "cannot start valgrind (Debian package valgrind)"
                } else {
                    "cannot start the orchestrator"
                }
            })?;
        let orchestrator = Orchestrator {
            url,
            child: Some(child),
            data_dir_guard: Some(data_dir),
            own_schema,
            command: (!count_instructions).then(|| (exe_path, args, target.store_url.clone())),
        };
        orchestrator.wait_healthy(Duration::from_secs(60)).await?;
        eprintln!(
            "started an orchestrator at {} (pid {})",
            orchestrator.url,
            orchestrator.pid().unwrap_or_default()
        );
        Ok(orchestrator)
    }

    async fn wait_healthy(&self, within: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        while started.elapsed() < within {
            if let Ok(response) = client.get(format!("{}/ready", self.url)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the orchestrator at {} did not become ready within {within:?}",
            self.url
        )
    }

    /// Starts a spawned orchestrator killed by [`Orchestrator::kill9`]
    /// again, on the same data directory and port, and waits until it is
    /// ready.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let (exe, args, store_url) = self
            .command
            .clone()
            .context("only a spawned orchestrator restarts")?;
        // The killed process may still hold its port for a moment.
        let address = self.url.trim_start_matches("http://").to_string();
        let started = Instant::now();
        while tokio::net::TcpStream::connect(&address).await.is_ok() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the old orchestrator still answers at {address}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let child = Command::new(exe)
            .args(args)
            .env_remove("MIMIR_STORE_URL")
            .envs(store_url.iter().map(|url| ("MIMIR_STORE_URL", url)))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the orchestrator again")?;
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(60)).await
    }

    /// `kill -9` of a spawned orchestrator, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        self.child = None;
    }

    /// Process id of a spawned orchestrator (and of its process group).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// CPU time a spawned orchestrator and its live children (local
    /// workers) have used so far, in seconds (Linux; `USER_HZ` is 100).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let root = self.pid()?;
        let mut ticks = 0u64;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // Fields after the command name (which may hold spaces): state is
            // field 3, ppid 4, utime 14, stime 15.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let pid: u32 = head
                .split(' ')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let fields: Vec<&str> = rest.split(' ').collect();
            let ppid: u32 = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
            if pid == root || ppid == root {
                let time = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                ticks += time(11) + time(12);
            }
        }
        Some(ticks as f64 / 100.0)
    }

    /// Stops a spawned orchestrator and its workers, then sums the
    /// instructions each of those processes ran, start to exit (those started
    /// with `count_instructions`): the total, and how many processes ran them.
    pub fn instructions(mut self) -> anyhow::Result<(u64, usize)> {
        self.stop();
        let dir = self
            .data_dir_guard
            .as_ref()
            .context("only a spawned orchestrator is counted")?;
        let mut total = 0;
        let mut processes = 0;
        for entry in std::fs::read_dir(dir.path())?.flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with("instructions.")
            {
                continue;
            }
            let profile = std::fs::read_to_string(entry.path())?;
            // Cachegrind ends its profile with `summary: <Ir>`.
            let summary = profile
                .lines()
                .find_map(|l| l.strip_prefix("summary:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .with_context(|| format!("no summary in {}", entry.path().display()))?;
            total += summary;
            processes += 1;
        }
        Ok((total, processes))
    }

    /// Asks a spawned orchestrator to stop (it stops its local workers first)
    /// and waits up to 15 s for it to exit.
    fn stop(&mut self) {
        let Some(pid) = self.pid() else { return };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline
            && std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
        {
            if let Some(child) = self.child.as_mut()
                && matches!(child.try_wait(), Ok(Some(_)))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = None;
    }

    /// Resident and peak memory of a spawned orchestrator, in bytes (Linux).
    pub fn memory(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        self.stop();
        if let Some((url, schema)) = self.own_schema.take() {
            drop_schema(&url, &schema);
        }
    }
}

/// Drops a benchmark's PostgreSQL schema and everything in it (with psql).
pub fn drop_schema(url: &str, schema: &str) {
    let dropped = std::process::Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .output();
    if !dropped.is_ok_and(|o| o.status.success()) {
        eprintln!("warning: could not drop the benchmark's schema {schema}: drop it by hand");
    }
}
