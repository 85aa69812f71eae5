//! The files of the stack: embedded from `deploy/monitoring/` (and the
//! runbook from `docs/`), plus the few rendered for each install.

use crate::MonitoringError;

/// Files written as they are versioned: (path in the install directory,
/// contents).
pub const STATIC: &[(&str, &str)] = &[
    (
        "rules/mimir-alerts.rules.yml",
        include_str!("../../../deploy/monitoring/rules/mimir-alerts.rules.yml"),
    ),
    (
        "rules/mimir-recording.rules.yml",
        include_str!("../../../deploy/monitoring/rules/mimir-recording.rules.yml"),
    ),
    (
        "rules/tests/mimir-alerts.test.yml",
        include_str!("../../../deploy/monitoring/rules/tests/mimir-alerts.test.yml"),
    ),
    (
        "rules/tests/mimir-recording.test.yml",
        include_str!("../../../deploy/monitoring/rules/tests/mimir-recording.test.yml"),
    ),
    (
        "grafana/grafana.ini",
        include_str!("../../../deploy/monitoring/grafana/grafana.ini"),
    ),
    (
        "grafana/provisioning/datasources/mimir.yml",
        include_str!("../../../deploy/monitoring/grafana/provisioning/datasources/mimir.yml"),
    ),
    (
        "grafana/provisioning/dashboards/mimir.yml",
        include_str!("../../../deploy/monitoring/grafana/provisioning/dashboards/mimir.yml"),
    ),
    (
        "grafana/dashboards/mimir-overview.json",
        include_str!("../../../deploy/monitoring/grafana/dashboards/mimir-overview.json"),
    ),
    (
        "grafana/dashboards/mimir-pipelines.json",
        include_str!("../../../deploy/monitoring/grafana/dashboards/mimir-pipelines.json"),
    ),
    (
        "grafana/dashboards/mimir-storage.json",
        include_str!("../../../deploy/monitoring/grafana/dashboards/mimir-storage.json"),
    ),
    (
        "grafana/dashboards/mimir-operator-health.json",
        include_str!("../../../deploy/monitoring/grafana/dashboards/mimir-operator-health.json"),
    ),
    (
        "grafana/dashboards/mimir-models.json",
        include_str!("../../../deploy/monitoring/grafana/dashboards/mimir-models.json"),
    ),
    (
        "grafana/dashboards/mimir-kubernetes.json",
        include_str!("../../../deploy/monitoring/grafana/dashboards/mimir-kubernetes.json"),
    ),
    (
        "loki/loki.yml",
        include_str!("../../../deploy/monitoring/loki/loki.yml"),
    ),
    (
        "tempo/tempo.yml",
        include_str!("../../../deploy/monitoring/tempo/tempo.yml"),
    ),
    (
        "docker-compose.yml",
        include_str!("../../../deploy/monitoring/docker-compose.yml"),
    ),
    ("runbook.md", include_str!("../../../docs/runbook.md")),
];

/// `prometheus.yml`, with `{{name}}` placeholders filled per install.
pub const PROMETHEUS_TEMPLATE: &str =
    include_str!("../../../deploy/monitoring/prometheus.yml.tmpl");

/// Defaults to 15s between scrapes (and rule evaluations).
pub const DEFAULT_SCRAPE_INTERVAL: &str = "15s";
/// Where the bearer token for `/metrics` is written (mode 0600).
pub const BEARER_TOKEN_FILE: &str = "secrets/metrics-bearer-token";
/// Where the basic-auth password for `/metrics` is written (mode 0600).
pub const PASSWORD_FILE: &str = "secrets/metrics-password";

/// What varies between installs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The orchestrator's URL, e.g. `http://127.0.0.1:8080`.
    pub orchestrator: String,
    /// Credentials `/metrics` requires, if any.
    pub auth: Option<ScrapeAuth>,
    /// Prometheus duration between scrapes, e.g. `15s`.
    pub scrape_interval: String,
    /// `host:port` of workers started with `--metrics-listen`.
    pub workers: Vec<String>,
    /// How an `https` orchestrator is verified (and Prometheus's client
    /// certificate, for mutual TLS). `None` for the system's roots.
    pub tls: Option<ScrapeTls>,
    /// Scrape workers over `https` (started with `--tls-cert`), verified so.
    pub workers_tls: Option<ScrapeTls>,
}

/// Where the orchestrator's CA is written for its scrape job.
pub const ORCHESTRATOR_CA_FILE: &str = "tls/orchestrator-ca.pem";
/// Where the workers' CA is written for their scrape job.
pub const WORKERS_CA_FILE: &str = "tls/workers-ca.pem";

/// Prometheus's `tls_config` of a scrape job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeTls {
    /// PEM of the CA the target's certificate must be signed by: copied into
    /// the install (so the container of docker-compose.yml sees it too).
    pub ca_pem: Option<String>,
    /// Client certificate Prometheus presents (an absolute path).
    pub cert_file: Option<String>,
    /// Its key (an absolute path).
    pub key_file: Option<String>,
}

impl ScrapeTls {
    /// The `tls_config` block, the CA read from `ca_file` in the install.
    pub(crate) fn block(&self, ca_file: &str) -> String {
        let mut block = String::from("tls_config:\n");
        let ca_file = self.ca_pem.as_ref().map(|_| ca_file.to_string());
        for (key, value) in [
            ("ca_file", &ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            if let Some(value) = value {
                block.push_str(&format!("  {key}: {}\n", yaml_string(value)));
            }
        }
        block
    }
}

/// How Prometheus authenticates to `/metrics` (`metrics.bearerToken`, or
/// `metrics.username` and `metrics.password`).
#[derive(Clone, PartialEq)]
pub enum ScrapeAuth {
    /// `Authorization: Bearer`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for ScrapeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScrapeAuth::Bearer(_) => f.write_str("Bearer(..)"),
            ScrapeAuth::Basic { username, .. } => write!(f, "Basic({username}, ..)"),
        }
    }
}

/// One file to write.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// Path inside the install directory, `/`-separated.
    pub path: String,
    /// Contents.
    pub contents: String,
    /// Readable by its owner only (credentials).
    pub secret: bool,
}

/// The orchestrator as Prometheus addresses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// `host:port`.
    pub address: String,
}

impl Target {
    /// Parses `http(s)://host[:port][/]`.
    pub fn parse(url: &str) -> Result<Target, MonitoringError> {
        let bad = |why: &str| {
            MonitoringError::Setting(format!(
                "orchestrator URL {url:?} {why}; use one such as http://127.0.0.1:8080"
            ))
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("is not http or https"));
        }
        let address = rest.strip_suffix('/').unwrap_or(rest);
        if address.is_empty() || address.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad("must be scheme://host:port with no path"));
        }
        // `[::1]` alone ends in `]`, not in a port.
        let has_port = match address.rsplit_once(':') {
            _ if address.ends_with(']') => false,
            Some((host, port)) => {
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(bad("has a bad port"));
                }
                true
            }
            None => false,
        };
        let address = if has_port {
            address.to_string()
        } else if scheme == "https" {
            format!("{address}:443")
        } else {
            format!("{address}:80")
        };
        Ok(Target {
            scheme: scheme.to_string(),
            address,
        })
    }

    /// Back to a URL.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }
}

pub(crate) fn valid_duration(d: &str) -> bool {
    let digits = d.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &d[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
        && ["ms", "s", "m", "h"].contains(&unit)
}

pub(crate) fn valid_host_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains(['/', ' ', '@']) && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

/// A YAML scalar holding `s` exactly (JSON strings are YAML).
pub(crate) fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl Settings {
    /// Settings for the orchestrator at `url`, with defaults otherwise.
    pub fn new(orchestrator: impl Into<String>) -> Settings {
        Settings {
            orchestrator: orchestrator.into(),
            auth: None,
            scrape_interval: DEFAULT_SCRAPE_INTERVAL.into(),
            workers: Vec::new(),
            tls: None,
            workers_tls: None,
        }
    }

    /// Every file of the install, rendered, sorted by path.
    pub fn files(&self) -> Result<Vec<File>, MonitoringError> {
        let target = Target::parse(&self.orchestrator)?;
        if !valid_duration(&self.scrape_interval) {
            return Err(MonitoringError::Setting(format!(
                "scrape interval {:?} is not a duration such as 15s or 1m",
                self.scrape_interval
            )));
        }
        for worker in &self.workers {
            if !valid_host_port(worker) {
                return Err(MonitoringError::Setting(format!(
                    "worker {worker:?} is not host:port (the address given to --metrics-listen)"
                )));
            }
        }
        let mut files: Vec<File> = STATIC
            .iter()
            .map(|(path, contents)| File {
                path: (*path).to_string(),
                contents: (*contents).to_string(),
                secret: false,
            })
            .collect();
        let auth_block = match &self.auth {
            None => String::new(),
            Some(ScrapeAuth::Bearer(token)) => {
                files.push(secret(BEARER_TOKEN_FILE, token));
                format!("authorization:\n  type: Bearer\n  credentials_file: {BEARER_TOKEN_FILE}\n")
            }
            Some(ScrapeAuth::Basic { username, password }) => {
                files.push(secret(PASSWORD_FILE, password));
                format!(
                    "basic_auth:\n  username: {}\n  password_file: {PASSWORD_FILE}\n",
                    yaml_string(username)
                )
            }
        };
        let tls_block = match (&self.tls, target.scheme.as_str()) {
            (Some(tls), "https") => {
                if let Some(pem) = &tls.ca_pem {
                    files.push(plain(ORCHESTRATOR_CA_FILE, pem));
                }
                tls.block(ORCHESTRATOR_CA_FILE)
            }
            _ => String::new(),
        };
        if let Some(pem) = self.workers_tls.as_ref().and_then(|t| t.ca_pem.as_ref()) {
            files.push(plain(WORKERS_CA_FILE, pem));
        }
        let workers_scheme = if self.workers_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let workers_tls_block = self
            .workers_tls
            .as_ref()
            .map(|tls| tls.block(WORKERS_CA_FILE))
            .unwrap_or_default();
        files.push(File {
            path: "prometheus.yml".into(),
            contents: render(
                PROMETHEUS_TEMPLATE,
                &[
                    ("scrape_interval", &self.scrape_interval),
                    ("orchestrator_scheme", &target.scheme),
                    ("orchestrator_target", &target.address),
                    ("orchestrator_auth", &auth_block),
                    ("orchestrator_tls", &tls_block),
                    ("workers_scheme", workers_scheme),
                    ("workers_tls", &workers_tls_block),
                ],
            )?,
            secret: false,
        });
        files.push(File {
            path: "targets/workers.yml".into(),
            contents: workers_file(&self.workers),
            secret: false,
        });
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

pub(crate) fn plain(path: &str, value: &str) -> File {
    File {
        path: path.into(),
        contents: value.to_string(),
        secret: false,
    }
}

fn secret(path: &str, value: &str) -> File {
    File {
        path: path.into(),
        contents: value.to_string(),
        secret: true,
    }
}

/// The file-based service discovery list of worker targets.
pub(crate) fn workers_file(workers: &[String]) -> String {
    let mut text = String::from(
        "# Workers that serve /metrics (`mimir-aip worker --metrics-listen ADDR`),\n\
         # scraped as job mimir-workers. Prometheus re-reads this file when it\n\
         # changes; edit it freely (`metrics install` then leaves it alone).\n",
    );
    if workers.is_empty() {
        text.push_str("[]\n");
        return text;
    }
    let targets: Vec<String> = workers.iter().map(|w| yaml_string(w)).collect();
    text.push_str(&format!("- targets: [{}]\n", targets.join(", ")));
    text
}

/// Fills `{{name}}` placeholders. A placeholder alone on its line takes a
/// block: each of its lines indented as the placeholder was, or nothing (the
/// line goes). Unknown or unfilled placeholders are errors.
pub fn render(template: &str, values: &[(&str, &str)]) -> Result<String, MonitoringError> {
    let mut out = String::with_capacity(template.len());
    for line in template.lines() {
        let trimmed = line.trim_start();
        let block = values
            .iter()
            .find(|(name, _)| trimmed == format!("{{{{{name}}}}}"));
        if let Some((_, value)) = block {
            let indent = &line[..line.len() - trimmed.len()];
            for block_line in value.lines() {
                out.push_str(indent);
                out.push_str(block_line);
                out.push('\n');
            }
            continue;
        }
        let mut line = line.to_string();
        for (name, value) in values {
            line = line.replace(&format!("{{{{{name}}}}}"), value);
        }
        if let Some(start) = line.find("{{") {
            return Err(MonitoringError::Setting(format!(
                "template placeholder without a value: {}",
                &line[start..]
            )));
        }
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orchestrator_urls_become_scheme_and_address() {
        let t = Target::parse("http://127.0.0.1:8080/").expect("valid");
        assert_eq!(
            (t.scheme.as_str(), t.address.as_str()),
            ("http", "127.0.0.1:8080")
        );
        assert_eq!(
            Target::parse("https://mimir.example")
                .expect("valid")
                .address,
            "mimir.example:443"
        );
        assert_eq!(
            Target::parse("http://[::1]:9000").expect("valid").address,
            "[::1]:9000"
        );
        assert_eq!(
            Target::parse("http://[::1]").expect("valid").address,
            "[::1]:80"
        );
        for bad in [
            "127.0.0.1:8080",
            "ftp://x:1",
            "http://x:1/api",
            "http://x:port",
            "http://",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn block_placeholders_take_the_indent_or_vanish() {
        let template = "a: {{x}}\n  {{block}}\nb: 1\n";
        let with = render(template, &[("x", "1"), ("block", "k: v\nl: w\n")]).expect("renders");
        assert_eq!(with, "a: 1\n  k: v\n  l: w\nb: 1\n");
        let without = render(template, &[("x", "1"), ("block", "")]).expect("renders");
        assert_eq!(without, "a: 1\nb: 1\n");
        assert!(render(template, &[("x", "1")]).is_err(), "unfilled block");
    }

    #[test]
    fn credentials_go_to_owner_only_files_not_into_the_config() {
        let mut settings = Settings::new("http://127.0.0.1:8080");
        settings.auth = Some(ScrapeAuth::Bearer("s3cret".into()));
        let files = settings.files().expect("renders");
        let prometheus = files
            .iter()
            .find(|f| f.path == "prometheus.yml")
            .expect("config");
        assert!(!prometheus.contents.contains("s3cret"));
        assert!(
            prometheus
                .contents
                .contains("credentials_file: secrets/metrics-bearer-token")
        );
        let token = files
            .iter()
            .find(|f| f.path == BEARER_TOKEN_FILE)
            .expect("token file");
        assert!(token.secret);
        assert_eq!(token.contents, "s3cret");

        settings.auth = Some(ScrapeAuth::Basic {
            username: "prom: \"x\"".into(),
            password: "pw".into(),
        });
        let files = settings.files().expect("renders");
        let prometheus = files
            .iter()
            .find(|f| f.path == "prometheus.yml")
            .expect("config");
        assert!(
            prometheus
                .contents
                .contains("username: \"prom: \\\"x\\\"\""),
            "{}",
            prometheus.contents
        );
        assert!(!files.iter().any(|f| f.path == BEARER_TOKEN_FILE));
    }

    #[test]
    fn bad_settings_are_named() {
        let mut settings = Settings::new("http://127.0.0.1:8080");
        settings.scrape_interval = "fast".into();
        assert!(settings.files().unwrap_err().to_string().contains("fast"));
        settings.scrape_interval = "1s".into();
        settings.workers = vec!["nowhere".into()];
        assert!(
            settings
                .files()
                .unwrap_err()
                .to_string()
                .contains("nowhere")
        );
    }

    #[test]
    fn an_https_orchestrator_is_scraped_with_its_ca() {
        let mut settings = Settings::new("https://127.0.0.1:8443");
        settings.tls = Some(ScrapeTls {
            ca_pem: Some("ORCHESTRATOR CA".into()),
            ..ScrapeTls::default()
        });
        settings.workers_tls = Some(ScrapeTls {
            ca_pem: Some("WORKERS CA".into()),
            ..ScrapeTls::default()
        });
        let files = settings.files().expect("renders");
        let config = &files
            .iter()
            .find(|f| f.path == "prometheus.yml")
            .expect("prometheus.yml")
            .contents;
        assert!(
            config.contains(
                "scheme: https\n    tls_config:\n      ca_file: \"tls/orchestrator-ca.pem\""
            ),
            "{config}"
        );
        assert!(
            config
                .contains("scheme: https\n    tls_config:\n      ca_file: \"tls/workers-ca.pem\""),
            "{config}"
        );
        let ca = |path: &str| {
            files
                .iter()
                .find(|f| f.path == path)
                .map(|f| f.contents.clone())
        };
        assert_eq!(
            ca("tls/orchestrator-ca.pem").as_deref(),
            Some("ORCHESTRATOR CA")
        );
        assert_eq!(ca("tls/workers-ca.pem").as_deref(), Some("WORKERS CA"));
        let plain = Settings::new("http://127.0.0.1:8080")
            .files()
            .expect("renders");
        let config = &plain
            .iter()
            .find(|f| f.path == "prometheus.yml")
            .expect("file")
            .contents;
        assert!(!config.contains("tls_config"), "{config}");
        assert!(!config.contains("scheme: https"), "{config}");
    }

    #[test]
    fn worker_targets_are_listed_for_file_discovery() {
        assert!(workers_file(&[]).ends_with("[]\n"));
        assert!(
            workers_file(&["127.0.0.1:9465".into()]).ends_with("- targets: [\"127.0.0.1:9465\"]\n")
        );
    }
}
