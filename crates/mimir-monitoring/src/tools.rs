//! Finding the monitoring tools on `PATH`, telling the real Grafana Loki and
//! Tempo from programs of the same name, and how to install what is missing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tool `metrics view` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Metrics and alerts.
    Prometheus,
    /// Dashboards.
    Grafana,
    /// Logs.
    Loki,
    /// Traces.
    Tempo,
}

impl Tool {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Prometheus => "Prometheus",
            Tool::Grafana => "Grafana",
            Tool::Loki => "Loki",
            Tool::Tempo => "Tempo",
        }
    }

    /// How to install it.
    pub fn install_hint(self) -> &'static str {
        match self {
            Tool::Prometheus => {
                "on Debian or Ubuntu `sudo apt-get install prometheus` (then `sudo systemctl disable --now prometheus` \
                 to free port 9090 from the system service), elsewhere https://prometheus.io/download/"
            }
            Tool::Grafana => {
                "Grafana is not in Debian's archive: add Grafana's APT repository (https://apt.grafana.com) and \
                 `sudo apt-get install grafana`, or unpack https://grafana.com/grafana/download and put its bin/ on PATH"
            }
            Tool::Loki => {
                "put Grafana Loki's `loki` binary on PATH (https://github.com/grafana/loki/releases; Debian's \
                 `loki` package is an unrelated genetics tool)"
            }
            Tool::Tempo => {
                "put Grafana Tempo's `tempo` binary on PATH (https://github.com/grafana/tempo/releases)"
            }
        }
    }
}

/// A tool found on `PATH`.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The program to run.
    pub program: PathBuf,
    /// Arguments before the tool's own (`server` for the `grafana` binary).
    pub subcommand: Option<&'static str>,
    /// Grafana's home (its `conf/defaults.ini` and `public/`), for Grafana only.
    pub home: Option<PathBuf>,
}

/// `name` in the directories of `path` (a `PATH` value).
pub fn which(name: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Finds `tool`; `Err` says why it cannot be used.
pub fn find(tool: Tool, path: &OsStr) -> Result<Found, String> {
    let missing = |what: &str| format!("{what}; to install it: {}", tool.install_hint());
    match tool {
        Tool::Prometheus => which("prometheus", path)
            .map(|program| Found {
                program,
                subcommand: None,
                home: None,
            })
            .ok_or_else(|| missing("prometheus is not on PATH")),
        Tool::Grafana => {
            let (program, subcommand) = match which("grafana", path) {
                Some(p) => (p, Some("server")),
                None => (
                    which("grafana-server", path)
                        .ok_or_else(|| missing("grafana (or grafana-server) is not on PATH"))?,
                    None,
                ),
            };
            let home = grafana_home(&program).ok_or_else(|| {
                missing(&format!(
                    "cannot find Grafana's home (conf/defaults.ini) for {}; set GF_PATHS_HOME",
                    program.display()
                ))
            })?;
            Ok(Found {
                program,
                subcommand,
                home: Some(home),
            })
        }
        Tool::Loki | Tool::Tempo => {
            let name = if tool == Tool::Loki { "loki" } else { "tempo" };
            let program =
                which(name, path).ok_or_else(|| missing(&format!("{name} is not on PATH")))?;
            let version = probe(&program, &["-version"]).unwrap_or_default();
            if !version.contains(&format!("{name}, version")) {
                return Err(missing(&format!(
                    "{} is not Grafana {}",
                    program.display(),
                    tool.name()
                )));
            }
            Ok(Found {
                program,
                subcommand: None,
                home: None,
            })
        }
    }
}

/// The flag that starts `prometheus` in agent mode: `--agent` from
/// Prometheus 3 on, `--enable-feature=agent` before (2.32 to 2.x), read from
/// its `--help`. `None` when it cannot be run.
pub fn agent_flag(prometheus: &Path) -> Option<&'static str> {
    let help = probe(prometheus, &["--help"])?;
    if help
        .lines()
        .any(|l| l.split_whitespace().next() == Some("--agent"))
    {
        Some("--agent")
    } else if help.contains("--enable-feature") {
        Some("--enable-feature=agent")
    } else {
        None
    }
}

/// Grafana's home: `GF_PATHS_HOME`, the packages' `/usr/share/grafana`, or
/// the directory above a tarball's `bin/`.
fn grafana_home(program: &Path) -> Option<PathBuf> {
    let has_defaults = |dir: &Path| dir.join("conf/defaults.ini").is_file();
    if let Some(home) = std::env::var_os("GF_PATHS_HOME").map(PathBuf::from)
        && has_defaults(&home)
    {
        return Some(home);
    }
    let real = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    let candidates = [
        real.parent().and_then(Path::parent).map(Path::to_path_buf),
        Some(PathBuf::from("/usr/share/grafana")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| has_defaults(dir))
}

/// The output of `program args`, or `None` if it fails or takes over 5 s.
fn probe(program: &Path, args: &[&str]) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let output = child.wait_with_output().ok()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn a_loki_that_is_not_grafana_loki_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().as_os_str();
        let error = find(Tool::Loki, path).expect_err("none on PATH");
        assert!(
            error.contains("not on PATH") && error.contains("releases"),
            "{error}"
        );
        script(
            dir.path(),
            "loki",
            "echo 'LOKI: linkage analysis, version 2.4.7'",
        );
        let error = find(Tool::Loki, path).expect_err("the genetics tool");
        assert!(error.contains("is not Grafana Loki"), "{error}");
        script(
            dir.path(),
            "loki",
            "echo 'loki, version 3.3.2 (branch: HEAD)'",
        );
        assert!(find(Tool::Loki, path).is_ok());
    }

    #[test]
    fn the_agent_flag_follows_the_prometheus_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        script(
            dir.path(),
            "p3",
            "echo '      --agent                    Run Prometheus in Agent mode.'",
        );
        script(
            dir.path(),
            "p2",
            "echo '      --storage.agent.path=x'; echo '      --enable-feature= ...'",
        );
        assert_eq!(agent_flag(&dir.path().join("p3")), Some("--agent"));
        assert_eq!(
            agent_flag(&dir.path().join("p2")),
            Some("--enable-feature=agent")
        );
        assert_eq!(agent_flag(&dir.path().join("none")), None);
    }

    #[test]
    fn missing_prometheus_says_how_to_install_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = find(Tool::Prometheus, dir.path().as_os_str()).expect_err("missing");
        assert!(error.contains("apt-get install prometheus"), "{error}");
    }
}
