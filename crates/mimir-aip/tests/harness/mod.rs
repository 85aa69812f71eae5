//! Runs the real `mimir-aip` binary in a fresh temporary directory. When a test
//! fails, the orchestrator's command, directory and log are printed.

#![allow(dead_code)]

pub mod balancer;
pub mod browser;
pub mod executions;
pub mod pipelines;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mimir-aip")
}

/// A free loopback port (the small race with other processes is acceptable in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An orchestrator process with its own data directory.
pub struct Orchestrator {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
    /// Arguments beyond the listen address and data directory.
    extra: Vec<String>,
    /// Environment variables set for it (and so for its local workers).
    env: Vec<(String, String)>,
    /// Where its store lives beyond the data directory: PostgreSQL flags.
    store: Vec<String>,
    /// The schema it owns when the suite runs on PostgreSQL
    /// (`MIMIR_TEST_STORE=postgres`); dropped with it.
    own_schema: Option<postgres::Schema>,
}

impl Orchestrator {
    /// Starts `serve` on a fresh directory and waits until it listens.
    pub fn start(extra: &[&str]) -> Orchestrator {
        Orchestrator::start_with_config("", extra)
    }

    /// Starts `serve` with a config file holding `yaml`.
    pub fn start_with_config(yaml: &str, extra: &[&str]) -> Orchestrator {
        Orchestrator::start_on(free_port(), yaml, extra)
    }

    /// Starts `serve` on `port` with a config file holding `yaml` (for
    /// configs that must name the orchestrator's own URL).
    pub fn start_on(port: u16, yaml: &str, extra: &[&str]) -> Orchestrator {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut extra: Vec<&str> = extra.to_vec();
        let config;
        if !yaml.is_empty() {
            config = config_file(dir.path(), yaml);
            extra.extend(["--config", config.as_str()]);
        }
        let log = dir.path().join("orchestrator.log");
        let mut orchestrator = Orchestrator {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child: None,
            args: Vec::new(),
            log,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            store: Vec::new(),
            own_schema: None,
        };
        orchestrator.spawn();
        orchestrator
    }

    /// Starts a replica of `serve` with its store in `schema` (PostgreSQL),
    /// a config file holding `yaml` and its own data directory.
    pub fn start_replica(schema: &postgres::Schema, yaml: &str, extra: &[&str]) -> Orchestrator {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !yaml.is_empty() {
            extra.extend(["--config".into(), config_file(dir.path(), yaml)]);
        }
        let mut orchestrator = Orchestrator {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child: None,
            args: Vec::new(),
            log: dir.path().join("orchestrator.log"),
            dir,
            extra,
            env: Vec::new(),
            store: schema.serve_args(),
            own_schema: None,
        };
        orchestrator.spawn();
        orchestrator
    }

    /// Starts `serve` with `env` set in its environment, which its local
    /// workers inherit.
    pub fn start_with_env(env: &[(&str, &str)], extra: &[&str]) -> Orchestrator {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut orchestrator = Orchestrator {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child: None,
            args: Vec::new(),
            log: dir.path().join("orchestrator.log"),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            store: Vec::new(),
            own_schema: None,
        };
        orchestrator.spawn();
        orchestrator
    }

    /// Starts `serve` after `prepare` has put files into its empty data
    /// directory (a store to restore, for instance).
    pub fn start_with_data(prepare: impl FnOnce(&Path), extra: &[&str]) -> Orchestrator {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        prepare(&data);
        let port = free_port();
        let mut orchestrator = Orchestrator {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child: None,
            args: Vec::new(),
            log: dir.path().join("orchestrator.log"),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            store: Vec::new(),
            own_schema: None,
        };
        orchestrator.spawn();
        orchestrator
    }

    /// Its data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        if self.store.is_empty() && postgres::selected() {
            let schema = postgres::Schema::new();
            self.store = schema.serve_args();
            self.own_schema = Some(schema);
        }
        let extra = self.extra.clone();
        let data = self.dir.path().join("data");
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
            "--data-dir".into(),
            data.display().to_string(),
            "--log-format".into(),
            "json".into(),
        ];
        args.extend(extra);
        args.extend(self.store.iter().cloned());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(bin())
            .args(&args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the orchestrator");
        self.args = args;
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the orchestrator exited with {status}\n{}", self.describe());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the orchestrator did not listen within 30s\n{}",
            self.describe()
        );
    }

    /// `kill -9`, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as a service manager stops it; waits for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the orchestrator runs");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().expect("wait for the orchestrator")
    }

    /// Starts it again on the same directory, port and arguments.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!(
            "command: {} {}\ndirectory: {}\nlog:\n{}",
            bin(),
            self.args.join(" "),
            self.dir.path().display(),
            self.log()
        )
    }

    /// Runs a CLI command against this orchestrator.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_in(
            self.dir.path(),
            &[args, &["--orchestrator", &self.url]].concat(),
        )
    }

    /// A typed API client of this orchestrator.
    pub fn client(&self) -> mimir_client::Client {
        mimir_client::Client::new(&self.url)
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
        self.kill9();
        // Local workers outlive a killed orchestrator by design; end them too.
        for pid in processes_mentioning(&self.url) {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A `mimir-aip worker` process for the orchestrator at `url`, named `id`,
/// with `extra` flags; its output is dropped.
pub fn start_worker(url: &str, id: &str, extra: &[&str]) -> Child {
    Command::new(bin())
        .args(["worker", "--orchestrator", url, "--worker-id", id])
        .args(["--log-format", "json"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a worker")
}

/// Processes whose command line holds `needle` (e.g. workers of one orchestrator).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(needle)
            && pid != std::process::id()
        {
            pids.push(pid);
        }
    }
    pids
}

/// The value of one sample line of a text exposition, e.g.
/// `mimir_tasks_total{status="completed",type="pipeline_execution"}`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// `GET {url}/metrics` as text (no credentials).
pub async fn scrape_text(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}

/// Writes a config file into the orchestrator's directory and returns its path.
pub fn config_file(dir: &Path, yaml: &str) -> String {
    let path = dir.join("mimir.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path.display().to_string()
}

/// Runs the binary with `args` in `dir`.
pub fn cli_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run mimir-aip")
}

/// Stdout of a command that must succeed.
pub fn stdout_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr of a command that must fail.
pub fn stderr_failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "command unexpectedly succeeded\nstdout:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}
