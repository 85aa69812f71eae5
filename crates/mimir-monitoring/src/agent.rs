//! The per-host install (`metrics install --agent`): a Prometheus in agent
//! mode next to the workers of one host, scraping them and remote-writing
//! every sample to a central Prometheus, Grafana Mimir or Thanos Receive.
//! Hosts that run workers then need no inbound scrape port open to the
//! central end, and the central end keeps the rules and dashboards. Only the
//! agent's files are written: no rules, no Grafana, no Loki or Tempo.

use crate::MonitoringError;
use crate::assets::{
    DEFAULT_SCRAPE_INTERVAL, File, ScrapeTls, WORKERS_CA_FILE, plain, render, valid_duration,
    valid_host_port, workers_file, yaml_string,
};

/// `prometheus.yml` of an agent, with `{{name}}` placeholders.
pub const AGENT_TEMPLATE: &str = include_str!("../assets/prometheus-agent.yml.tmpl");

/// The worker targets, for file-based discovery: `--scrape` fills it, and it
/// can be edited later (Prometheus re-reads it; `install` keeps the edits).
pub const TARGETS_FILE: &str = "targets/workers.yml";

/// Where `metrics view` keeps an agent's write-ahead log, under the install.
pub const AGENT_DATA: &str = "data/prometheus-agent";

/// What varies between agent installs.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// Where samples are sent: `http(s)://host[:port]/path`, e.g.
    /// `http://prometheus:9090/api/v1/write`.
    pub remote_write: String,
    /// `host:port` of the workers on this host (their `--metrics-listen`).
    pub targets: Vec<String>,
    /// This host's name, sent as the `instance_host` label on every sample.
    pub host: String,
    /// Prometheus duration between scrapes.
    pub scrape_interval: String,
    /// Scrape the workers over `https` (started with `--tls-cert`).
    pub workers_tls: Option<ScrapeTls>,
}

impl AgentSettings {
    /// Settings sending to `remote_write`, this host's name, no targets yet.
    pub fn new(remote_write: impl Into<String>) -> AgentSettings {
        AgentSettings {
            remote_write: remote_write.into(),
            targets: Vec::new(),
            host: hostname(),
            scrape_interval: DEFAULT_SCRAPE_INTERVAL.into(),
            workers_tls: None,
        }
    }

    /// Every file of the agent install, rendered, sorted by path.
    pub fn files(&self) -> Result<Vec<File>, MonitoringError> {
        let url = remote_write_url(&self.remote_write)?;
        if !valid_duration(&self.scrape_interval) {
            return Err(MonitoringError::Setting(format!(
                "--scrape-interval {:?} is not a duration such as 15s or 1m",
                self.scrape_interval
            )));
        }
        for target in &self.targets {
            if !valid_host_port(target) {
                return Err(MonitoringError::Setting(format!(
                    "--scrape {target:?} is not host:port (the address a worker was given with --metrics-listen)"
                )));
            }
        }
        if self.host.is_empty()
            || self.host.len() > 253
            || self.host.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(MonitoringError::Setting(format!(
                "--host-name {:?} is not a host name",
                self.host
            )));
        }
        let mut files = Vec::new();
        if let Some(pem) = self.workers_tls.as_ref().and_then(|t| t.ca_pem.as_ref()) {
            files.push(plain(WORKERS_CA_FILE, pem));
        }
        let (scheme, tls_block) = match &self.workers_tls {
            Some(tls) => ("https", tls.block(WORKERS_CA_FILE)),
            None => ("http", String::new()),
        };
        files.push(File {
            path: "prometheus.yml".into(),
            contents: render(
                AGENT_TEMPLATE,
                &[
                    ("scrape_interval", &self.scrape_interval),
                    ("host", &yaml_string(&self.host)),
                    ("workers_scheme", scheme),
                    ("workers_tls", &tls_block),
                    ("remote_write", &yaml_string(&url)),
                ],
            )?,
            secret: false,
        });
        files.push(plain(TARGETS_FILE, &workers_file(&self.targets)));
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

/// Checks a remote-write URL: `http` or `https`, a host, an optional port and
/// path. Credentials, queries and fragments are refused: they would sit in
/// `prometheus.yml` and in what `install` prints.
pub fn remote_write_url(url: &str) -> Result<String, MonitoringError> {
    // Errors show the URL without what stands before an `@`: a password.
    let shown = match url.split_once('@') {
        Some((before, after)) => match before.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…@{after}"),
            None => format!("…@{after}"),
        },
        None => url.to_string(),
    };
    let bad = |why: &str| {
        MonitoringError::Setting(format!(
            "--remote-write {shown:?} {why}; use one such as http://prometheus.example:9090/api/v1/write"
        ))
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    if scheme != "http" && scheme != "https" {
        return Err(bad("is not http or https"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("holds a space or control character"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("has a query or fragment"));
    }
    let (authority, _path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(bad(
            "holds credentials, which would be stored in prometheus.yml",
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("has a bad IPv6 host"))?;
            if !after.is_empty() && !after.starts_with(':') {
                return Err(bad("has a bad IPv6 host"));
            }
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("has a bad IPv6 host"));
            }
            check_port(after.strip_prefix(':')).map_err(|()| bad("has a bad port"))?;
            host
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            check_port(port).map_err(|()| bad("has a bad port"))?;
            host
        }
    };
    let host_ok = !host.is_empty()
        && (host.contains(':')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    if !host_ok {
        return Err(bad("has no host"));
    }
    Ok(url.to_string())
}

/// A port after `:`, when there is one: 1 to 65535.
fn check_port(port: Option<&str>) -> Result<(), ()> {
    match port {
        None => Ok(()),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Ok(()),
            _ => Err(()),
        },
    }
}

/// This machine's host name (the kernel's), else `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_write_urls_need_http_and_a_host() {
        for good in [
            "http://127.0.0.1:9090/api/v1/write",
            "https://mimir.example/api/v1/push",
            "http://[::1]:10908/api/v1/receive",
            "http://central",
        ] {
            assert_eq!(remote_write_url(good).expect(good), good);
        }
        for (bad, why) in [
            ("127.0.0.1:9090/api/v1/write", "no scheme"),
            ("ftp://central/api/v1/write", "not http or https"),
            ("http:///api/v1/write", "no host"),
            ("http://:9090/api/v1/write", "no host"),
            ("http://central:99999/api/v1/write", "bad port"),
            ("http://central:0/", "bad port"),
            ("http://user:pw@central/api/v1/write", "credentials"),
            ("http://central/api/v1/write?token=x", "query"),
            ("http://cen tral/", "space"),
            ("http://[nothost]/", "IPv6"),
        ] {
            let error = remote_write_url(bad).expect_err(bad).to_string();
            assert!(
                error.contains("--remote-write") && error.contains(why),
                "{bad}: {error}"
            );
            assert!(!error.contains("pw@"), "the password is shown: {error}");
        }
    }

    #[test]
    fn the_agent_config_scrapes_the_targets_and_writes_to_the_url() {
        let mut settings = AgentSettings::new("http://central:9090/api/v1/write");
        settings.host = "worker-host-1".into();
        settings.targets = vec!["127.0.0.1:9465".into(), "127.0.0.1:9466".into()];
        let files = settings.files().expect("renders");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["prometheus.yml", TARGETS_FILE]);
        let config = &files[0].contents;
        for wanted in [
            "instance_host: \"worker-host-1\"",
            "- url: \"http://central:9090/api/v1/write\"",
            "job_name: mimir-workers",
            "scheme: http\n",
            "files: ['targets/workers.yml']",
            "max_shards: 10",
        ] {
            assert!(config.contains(wanted), "{wanted} in:\n{config}");
        }
        for absent in ["rule_files", "alerting", "{{"] {
            assert!(!config.contains(absent), "{absent} in:\n{config}");
        }
        assert!(
            files[1]
                .contents
                .ends_with("- targets: [\"127.0.0.1:9465\", \"127.0.0.1:9466\"]\n")
        );
    }

    #[test]
    fn bad_agent_settings_name_their_flag() {
        let mut settings = AgentSettings::new("http://central:9090/api/v1/write");
        settings.targets = vec!["nowhere".into()];
        let error = settings.files().unwrap_err().to_string();
        assert!(error.contains("--scrape \"nowhere\""), "{error}");
        settings.targets.clear();
        settings.scrape_interval = "often".into();
        let error = settings.files().unwrap_err().to_string();
        assert!(error.contains("--scrape-interval"), "{error}");
        settings.scrape_interval = "1s".into();
        settings.host = "a b".into();
        let error = settings.files().unwrap_err().to_string();
        assert!(error.contains("--host-name"), "{error}");
    }

    #[test]
    fn workers_over_tls_are_scraped_with_their_ca() {
        let mut settings = AgentSettings::new("https://central/api/v1/write");
        settings.workers_tls = Some(ScrapeTls {
            ca_pem: Some("WORKERS CA".into()),
            ..ScrapeTls::default()
        });
        let files = settings.files().expect("renders");
        let config = &files
            .iter()
            .find(|f| f.path == "prometheus.yml")
            .expect("config")
            .contents;
        assert!(
            config
                .contains("scheme: https\n    tls_config:\n      ca_file: \"tls/workers-ca.pem\""),
            "{config}"
        );
        assert!(files.iter().any(|f| f.path == WORKERS_CA_FILE));
    }
}
