//! The monitoring stack `mimir-aip metrics install` writes, proved against
//! the real tools: promtool checks the configuration and runs the rule unit
//! tests; `metrics view` runs a real Prometheus on the installed files against
//! an orchestrator under a known workload, and every PromQL expression of every
//! shipped dashboard is evaluated through Prometheus's HTTP API; `kubectl
//! kustomize` renders the Kubernetes manifests. (The test command installs
//! prometheus and kubectl when missing.)

mod harness;

use harness::pipelines::{create_pipeline, one_step, post_task, wait_until_done};
use harness::{Orchestrator, bin, cli_in, free_port, processes_mentioning, stdout_ok};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a tool, or fails saying the test command installs it.
fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program} ({e}); ./scripts/test installs it"))
}

fn succeeded(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `metrics install --dir DIR ARGS`, from a scratch directory.
fn install(dir: &Path, args: &[&str]) -> String {
    let dir = dir.display().to_string();
    stdout_ok(&cli_in(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        &[&["metrics", "install", "--dir", &dir], args].concat(),
    ))
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every (dashboard file, panel title, expression) of the shipped dashboards.
fn dashboard_expressions(dir: &Path) -> Vec<(String, String, String)> {
    fn walk(value: &Value, title: &str, file: &str, out: &mut Vec<(String, String, String)>) {
        match value {
            Value::Object(map) => {
                let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    out.push((file.to_string(), title.to_string(), expr.to_string()));
                }
                for v in map.values() {
                    walk(v, title, file, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, title, file, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (file, dashboard) in dashboards(dir) {
        walk(&dashboard["panels"], "", &file, &mut out);
    }
    out
}

/// The dashboards' JSON by file name.
fn dashboards(dir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("grafana/dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        out.insert(
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
            json,
        );
    }
    out
}

/// What Grafana substitutes before sending a query: the test's choices for
/// the built-in interval variables (windows that span the whole workload, so
/// a slow machine cannot age its events out) and the dashboards' "All" values.
fn substitute(expr: &str) -> String {
    let expr = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$instance", ".+")
        .replace("$pipeline", ".*")
        .replace("$backend", ".+")
        .replace("$cluster", ".+")
        .replace("$worker_job", "mimir-workers")
        .replace("$job", "mimir-orchestrator");
    assert!(
        !expr.contains('$'),
        "a variable the test does not know: {expr}"
    );
    expr
}

/// Dashboards of the Kubernetes worker backend: their series exist only on an
/// orchestrator with `workerBackend: kubernetes`, which the live test's is not.
/// There their queries must parse and run; their data is proved where the
/// backend runs against a Kubernetes API.
const BACKEND_ONLY_DASHBOARDS: &[&str] = &["mimir-kubernetes.json"];

/// The alert and recording rules of an install.
fn rules(dir: &Path, file: &str) -> Vec<Value> {
    let rules = yaml(&dir.join("rules").join(file));
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn promtool_accepts_every_variant_of_the_installed_files_and_their_rule_tests_pass() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let variants: [(&str, &[&str]); 4] = [
        ("defaults", &[]),
        (
            "bearer",
            &["--metrics-token", "s3cret", "--worker", "127.0.0.1:9465"],
        ),
        (
            "basic",
            &[
                "--metrics-username",
                "prom",
                "--metrics-password",
                "pw",
                "--orchestrator",
                "https://mimir.example:8443",
                "--scrape-interval",
                "30s",
            ],
        ),
        (
            "workers",
            &["--worker", "10.0.0.7:9465", "--worker", "10.0.0.8:9465"],
        ),
    ];
    for (name, args) in variants {
        let dir = scratch.path().join(name);
        install(&dir, args);
        let check = run("promtool", &["check", "config", "prometheus.yml"], &dir);
        let out = succeeded(&check, &format!("promtool check config ({name})"));
        assert!(out.contains("SUCCESS: 2 rule files found"), "{out}");
        let targets = yaml(&dir.join("targets/workers.yml"));
        assert!(targets.is_array(), "file_sd targets of {name}: {targets:?}");
    }
    let dir = scratch.path().join("defaults");
    let check = run(
        "promtool",
        &[
            "check",
            "rules",
            "rules/mimir-alerts.rules.yml",
            "rules/mimir-recording.rules.yml",
        ],
        &dir,
    );
    succeeded(&check, "promtool check rules");
    let test = run(
        "promtool",
        &[
            "test",
            "rules",
            "rules/tests/mimir-alerts.test.yml",
            "rules/tests/mimir-recording.test.yml",
        ],
        &dir,
    );
    let out = succeeded(&test, "promtool test rules");
    assert_eq!(out.matches("SUCCESS").count(), 2, "{out}");

    // Credentials: in owner-only files, referenced from the config.
    let bearer = scratch.path().join("bearer");
    let config = std::fs::read_to_string(bearer.join("prometheus.yml")).expect("config");
    assert!(!config.contains("s3cret"));
    assert!(config.contains("credentials_file: secrets/metrics-bearer-token"));
    let basic =
        std::fs::read_to_string(scratch.path().join("basic/prometheus.yml")).expect("config");
    assert!(basic.contains("scheme: https") && basic.contains("'mimir.example:8443'"));
    assert!(basic.contains("password_file: secrets/metrics-password"));
}

/// Every file below `dir`, relative, `/`-separated.
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("inside");
                files.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files
}

#[test]
fn install_writes_exactly_the_versioned_files() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("stack");
    install(&dir, &[]);
    let deploy = repo().join("deploy/monitoring");
    let mut expected: BTreeSet<String> = tree(&deploy)
        .into_iter()
        // The template is rendered; the kustomization is for Kubernetes only.
        .filter(|f| f != "prometheus.yml.tmpl" && f != "kustomization.yaml")
        .collect();
    for rendered in [
        "prometheus.yml",
        "targets/workers.yml",
        "runbook.md",
        mimir_monitoring::MANIFEST_FILE,
    ] {
        expected.insert(rendered.to_string());
    }
    assert_eq!(
        tree(&dir),
        expected,
        "install writes every versioned file, and only those"
    );
    for file in tree(&deploy) {
        if file.ends_with(".tmpl") || file == "kustomization.yaml" {
            continue;
        }
        let versioned = std::fs::read(deploy.join(&file)).expect("read");
        assert!(
            std::fs::read(dir.join(&file)).expect("installed") == versioned,
            "{file} is installed exactly as versioned"
        );
    }
    let runbook = std::fs::read(repo().join("docs/runbook.md")).expect("runbook");
    assert!(std::fs::read(dir.join("runbook.md")).expect("installed") == runbook);
}

#[test]
fn every_alert_fires_and_stays_quiet_in_the_unit_tests_and_has_a_runbook_section() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path();
    install(dir, &[]);
    let alerts = rules(dir, "mimir-alerts.rules.yml");
    let runbook = std::fs::read_to_string(dir.join("runbook.md")).expect("runbook");
    let headings: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let tests = yaml(&dir.join("rules/tests/mimir-alerts.test.yml"));
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_string();
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                fired.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    assert!(alerts.len() >= 9, "the issue's alerts: {}", alerts.len());
    for alert in &alerts {
        let name = alert["alert"].as_str().expect("an alert rule");
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                alert["annotations"][key]
                    .as_str()
                    .is_some_and(|v| !v.is_empty()),
                "{name} has no {key}"
            );
        }
        assert!(
            ["critical", "warning"].contains(&alert["labels"]["severity"].as_str().unwrap_or("")),
            "{name} has a severity"
        );
        let url = alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        let anchor = url.rsplit_once("#").map(|(_, a)| a).unwrap_or_default();
        assert!(url.contains("docs/runbook.md#"), "{name}: {url}");
        assert_eq!(
            anchor,
            name.to_lowercase(),
            "{name}'s link names its section"
        );
        assert!(headings.contains(anchor), "no runbook section for {name}");
        assert!(fired.contains(name), "no unit test fires {name}");
        assert!(quiet.contains(name), "no unit test keeps {name} quiet");
    }
    // Every recording rule has its own expression test.
    let recording_tests = yaml(&dir.join("rules/tests/mimir-recording.test.yml"));
    let tested: BTreeSet<String> = recording_tests["tests"][0]["promql_expr_test"]
        .as_array()
        .expect("expression tests")
        .iter()
        .filter_map(|t| t["expr"].as_str())
        .map(|e| e.split('{').next().unwrap_or(e).to_string())
        .collect();
    for rule in rules(dir, "mimir-recording.rules.yml") {
        let record = rule["record"].as_str().expect("a recording rule");
        assert!(tested.contains(record), "no test for {record}");
    }
}

#[test]
fn install_reports_each_file_and_keeps_user_changes_unless_forced() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("stack");
    let first = install(&dir, &[]);
    assert!(
        first.lines().any(|l| l == "written  prometheus.yml"),
        "{first}"
    );
    let again = install(&dir, &[]);
    let statuses: BTreeSet<&str> = again
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(statuses, BTreeSet::from(["unchanged"]), "{again}");

    let dashboard = dir.join("grafana/dashboards/mimir-overview.json");
    std::fs::write(&dashboard, "{}\n").expect("edit");
    let kept = install(&dir, &["--orchestrator", "http://127.0.0.1:9999"]);
    assert!(
        kept.contains("kept       grafana/dashboards/mimir-overview.json   (changed by you; --force overwrites)"),
        "{kept}"
    );
    assert!(kept.contains("updated    prometheus.yml"), "{kept}");
    assert_eq!(std::fs::read_to_string(&dashboard).expect("read"), "{}\n");
    let forced = install(
        &dir,
        &["--orchestrator", "http://127.0.0.1:9999", "--force"],
    );
    assert!(
        forced.contains("overwritten  grafana/dashboards/mimir-overview.json"),
        "{forced}"
    );
    assert_ne!(std::fs::read_to_string(&dashboard).expect("read"), "{}\n");

    // Settings that cannot work are refused, naming the value.
    let bad = cli_in(
        scratch.path(),
        &[
            "metrics",
            "install",
            "--dir",
            "x",
            "--orchestrator",
            "localhost:8080",
        ],
    );
    let stderr = harness::stderr_failed(&bad);
    assert!(stderr.contains("localhost:8080"), "{stderr}");
}

#[test]
fn view_without_prometheus_says_how_to_install_it_and_points_at_the_builtin_dashboard() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("stack");
    install(&dir, &["--orchestrator", "http://127.0.0.1:8123"]);
    let empty = scratch.path().join("empty-bin");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let output = Command::new(bin())
        .args(["metrics", "view", "--dir", &dir.display().to_string()])
        .env("PATH", &empty)
        .output()
        .expect("run view");
    let stderr = harness::stderr_failed(&output);
    assert!(stderr.contains("prometheus is not on PATH"), "{stderr}");
    assert!(stderr.contains("apt-get install prometheus"), "{stderr}");
    assert!(
        stderr.contains("http://127.0.0.1:8123/"),
        "the built-in dashboard: {stderr}"
    );

    let nowhere = cli_in(
        scratch.path(),
        &["metrics", "view", "--dir", "nothing-here"],
    );
    let stderr = harness::stderr_failed(&nowhere);
    assert!(
        stderr.contains("metrics install --dir nothing-here"),
        "{stderr}"
    );
}

#[test]
fn grafana_provisioning_dashboards_and_compose_fit_together() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path();
    install(dir, &[]);
    let datasources = yaml(&dir.join("grafana/provisioning/datasources/mimir.yml"));
    let uids: BTreeMap<String, Value> = datasources["datasources"]
        .as_array()
        .expect("datasources")
        .iter()
        .map(|d| (d["uid"].as_str().expect("uid").to_string(), d.clone()))
        .collect();
    assert_eq!(
        uids.keys().map(String::as_str).collect::<Vec<_>>(),
        ["mimir-loki", "mimir-prometheus", "mimir-tempo"]
    );
    let tempo = &uids["mimir-tempo"]["jsonData"];
    assert_eq!(
        tempo["tracesToLogsV2"]["datasourceUid"], "mimir-loki",
        "trace to logs"
    );
    assert_eq!(
        uids["mimir-loki"]["jsonData"]["derivedFields"][0]["datasourceUid"],
        "mimir-tempo"
    );
    assert_eq!(
        uids["mimir-prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"],
        "mimir-tempo"
    );

    // Every variable the provisioning reads is set by `view` and by compose.
    let mut referenced = BTreeSet::new();
    for file in [
        "grafana/provisioning/datasources/mimir.yml",
        "grafana/provisioning/dashboards/mimir.yml",
        "grafana/grafana.ini",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("read");
        for part in text.split("MIMIR_").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            referenced.insert(format!("MIMIR_{name}"));
        }
    }
    let view_env: BTreeSet<String> =
        mimir_monitoring::view::grafana_env(dir, 3000, "http://127.0.0.1:9090")
            .into_iter()
            .map(|(k, _)| k.to_string())
            .collect();
    let compose = yaml(&dir.join("docker-compose.yml"));
    let compose_env: BTreeSet<String> = compose["services"]["grafana"]["environment"]
        .as_object()
        .expect("grafana environment")
        .keys()
        .cloned()
        .collect();
    assert!(!referenced.is_empty());
    for name in &referenced {
        assert!(view_env.contains(name), "view does not set {name}");
        assert!(
            compose_env.contains(name),
            "docker-compose.yml does not set {name}"
        );
    }

    // Compose mounts this directory and names only files that exist in it.
    for (service, spec) in compose["services"].as_object().expect("services") {
        let volumes = spec["volumes"].as_array().expect("volumes");
        assert!(
            volumes
                .iter()
                .any(|v| v.as_str() == Some(".:/etc/mimir-monitoring:ro")),
            "{service:?} mounts the install directory"
        );
        let text = serde_json::to_string(spec).expect("json");
        for part in text.split("/etc/mimir-monitoring/").skip(1) {
            let path: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/._-".contains(*c))
                .collect();
            assert!(
                dir.join(&path).exists(),
                "{service:?} names {path}, which install does not write"
            );
        }
    }

    // Dashboards: unique uids, the data source variable, the issue's panels.
    let mut titles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut dashboard_uids = BTreeSet::new();
    for (file, dashboard) in dashboards(dir) {
        assert!(dashboard_uids.insert(dashboard["uid"].as_str().expect("uid").to_string()));
        let variables = dashboard["templating"]["list"]
            .as_array()
            .expect("variables");
        assert!(
            variables
                .iter()
                .any(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        );
        let panels = dashboard["panels"].as_array().expect("panels");
        for panel in panels {
            if panel["type"] != "row" {
                assert_eq!(
                    panel["datasource"]["uid"], "${datasource}",
                    "{file}: {}",
                    panel["title"]
                );
            }
        }
        titles.insert(
            file,
            panels
                .iter()
                .filter_map(|p| p["title"].as_str().map(str::to_string))
                .collect(),
        );
    }
    for (file, wanted) in [
        (
            "mimir-overview.json",
            &[
                "Queue depth",
                "Active workers",
                "Task completion rate",
                "Task failure rate",
                "Local worker CPU",
            ][..],
        ),
        (
            "mimir-pipelines.json",
            &[
                "Execution time by pipeline (p95)",
                "Step time (mean) by step",
                "Plugin comparison (p95)",
                "Error rate by pipeline",
            ][..],
        ),
        (
            "mimir-storage.json",
            &[
                "Health by storage config",
                "Latency by operation",
                "Latency by backend (p50, p95, p99)",
                "Throughput",
                "Records per second",
                "Errors",
                "Error ratio by operation and backend",
                "Retries",
                "Pool utilization",
                "Store calls by method",
                "Store errors by method",
            ][..],
        ),
        (
            "mimir-operator-health.json",
            &[
                "HTTP P99 by route and method",
                "Store P99 by method",
                "Autoscaler decisions",
                "Lease expiries",
                "Per-worker load",
            ][..],
        ),
        (
            "mimir-kubernetes.json",
            &[
                "Cluster up",
                "Workers and maxWorkers by cluster",
                "Queue length",
                "Job failures by reason and cluster",
                "API latency p50 by verb and cluster",
                "API latency p99 by verb and cluster",
            ][..],
        ),
    ] {
        for title in wanted {
            assert!(
                titles[file].contains(*title),
                "{file} has no panel {title:?}"
            );
        }
    }
    let home = std::fs::read_to_string(dir.join("grafana/grafana.ini")).expect("ini");
    assert!(home.contains("$__env{MIMIR_GRAFANA_DASHBOARDS}/mimir-overview.json"));
    assert!(dir.join("grafana/dashboards/mimir-overview.json").exists());
}

/// Stops a child on drop (SIGINT first, so it can stop its own children).
struct Reaped(Option<Child>, String);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Whatever is left of the tools started for this directory.
        for pid in processes_mentioning(&self.1) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// The result vector of an instant query, or the error Prometheus gave.
async fn query(prometheus: &str, promql: &str) -> Result<Vec<Value>, String> {
    let response: Value = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if response["status"] != "success" {
        return Err(format!("{}: {}", response["errorType"], response["error"]));
    }
    Ok(response["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Whether a result holds a sample that is a number (not NaN).
fn has_a_number(result: &[Value]) -> bool {
    result.iter().any(|r| {
        r["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| !v.is_nan())
    })
}

/// Polls `promql` until it returns a number, for up to `within`.
async fn wait_for_data(prometheus: &str, promql: &str, within: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let last = match query(prometheus, promql).await {
            Ok(result) if has_a_number(&result) => return Ok(()),
            Ok(result) => format!("no number in {result:?}"),
            // A parse error does not go away by waiting.
            Err(error) if error.contains("bad_data") => return Err(error),
            Err(error) => error,
        };
        if started.elapsed() > within {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus_scraping_a_known_workload() {
    // An orchestrator whose /metrics needs a token, short leases (a killed
    // worker's lease expires quickly) and fast retries.
    let orchestrator = Orchestrator::start_with_config(
        "metrics:\n  bearerToken: s3cret\norchestrator:\n  leaseTtlMs: 2000\nretry:\n  backoffBaseMs: 20\n  backoffCapMs: 50\n",
        &["--min-workers", "1", "--max-workers", "2"],
    );
    let client = orchestrator.client();
    let config = orchestrator.dir.path().join("mimir.yaml");

    // An external worker serving its own metrics (job mimir-workers), for
    // ml_inference only, so the local pool runs everything else.
    let worker_port = free_port();
    let worker = Command::new(bin())
        .args([
            "worker",
            "--orchestrator",
            &orchestrator.url,
            "--worker-id",
            "external-1",
            "--types",
            "ml_inference",
            "--metrics-listen",
            &format!("127.0.0.1:{worker_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a worker");
    let _worker = Reaped(
        Some(worker),
        format!("--metrics-listen 127.0.0.1:{worker_port}"),
    );

    // Install against the orchestrator's own config file (its token), scraping
    // every second so the test is short; run it with `metrics view` on a PATH
    // that holds prometheus only.
    let stack = tempfile::tempdir().expect("tempdir");
    let dir = stack.path().join("monitoring");
    install(
        &dir,
        &[
            "--config",
            &config.display().to_string(),
            "--orchestrator",
            &orchestrator.url,
            "--worker",
            &format!("127.0.0.1:{worker_port}"),
            "--scrape-interval",
            "1s",
        ],
    );
    let tools = stack.path().join("bin");
    std::fs::create_dir_all(&tools).expect("mkdir");
    let prometheus_bin = harness_which("prometheus");
    std::os::unix::fs::symlink(&prometheus_bin, tools.join("prometheus")).expect("symlink");
    let prometheus_port = free_port();
    let mut view = Command::new(bin())
        .args([
            "metrics",
            "view",
            "--dir",
            &dir.display().to_string(),
            "--prometheus-port",
            &prometheus_port.to_string(),
            "--grafana-port",
            &free_port().to_string(),
        ])
        .env("PATH", &tools)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run metrics view");
    let stdout = view.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let view_pid = view.id();
    let mut view = Reaped(Some(view), dir.display().to_string());
    let mut printed = Vec::new();
    let started = Instant::now();
    while !printed.iter().any(|l: &String| l.contains("Press Ctrl-C")) {
        match lines_rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => printed.push(line),
            Err(_) if started.elapsed() < Duration::from_secs(60) => {}
            Err(_) => panic!("view printed no links within 60 s: {printed:#?}"),
        }
    }
    let printed = printed.join("\n");
    let prometheus = format!("http://127.0.0.1:{prometheus_port}");
    assert!(
        printed.contains(&format!("Prometheus  {prometheus}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("{}/", orchestrator.url)),
        "built-in dashboard: {printed}"
    );
    for missing in [
        "Grafana is not running",
        "Loki is not running",
        "Tempo is not running",
    ] {
        assert!(printed.contains(missing), "{missing}: {printed}");
    }
    assert!(
        printed.contains("apt.grafana.com"),
        "how to install Grafana: {printed}"
    );

    // Both targets are scraped: the orchestrator with the token from its
    // config, the worker from targets/workers.yml.
    for target in [
        "up{job=\"mimir-orchestrator\"} == 1",
        "up{job=\"mimir-workers\"} == 1",
    ] {
        wait_for_data(&prometheus, target, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}\n{}", orchestrator.log()));
    }

    // The workload: a worker killed in the middle of a task (lease expiry,
    // failed worker), pipelines that complete, one that fails and is retried,
    // a three-step pipeline over three plugins, ml_inference tasks for the
    // external worker.
    let greet = one_step(&client, "greet", "core.log", json!({"message": "hello"})).await;
    let boom = one_step(&client, "boom", "core.fail", json!({"message": "broken"})).await;
    let etl = create_pipeline(
        &client,
        json!([
            {"name": "note", "plugin": "core", "action": "log", "parameters": {"message": "etl"}},
            {"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": 20}},
            {"name": "shape", "plugin": "transform", "action": "jq", "parameters": {"program": "{n: 1}", "input": "$.params"}}
        ]),
    )
    .await;
    let sleeper = one_step(&client, "long", "core.sleep", json!({"ms": 60000})).await;
    let doomed = post_task(
        &client,
        "/api/worktasks",
        json!({"type": "ml_training", "project_id": "e2e", "max_retries": 0, "task_spec": {"pipeline_id": sleeper}}),
    )
    .await;
    let holder = loop {
        let workers: Value = client
            .call(Method::GET, "/api/workers", None)
            .await
            .expect("workers");
        let held = workers["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["current_task"].as_str() == Some(doomed.to_string().as_str()));
        if let Some(w) = held {
            break w["pid"].as_u64().expect("pid");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the long task never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = Command::new("kill")
        .args(["-9", &holder.to_string()])
        .status();

    let mut ids = vec![doomed];
    for round in 0..8 {
        for _ in 0..5 {
            ids.push(
                harness::pipelines::execute(&client, &greet, json!({}))
                    .await
                    .worktask_id,
            );
        }
        for _ in 0..2 {
            ids.push(
                harness::pipelines::execute(&client, &etl, json!({"round": round}))
                    .await
                    .worktask_id,
            );
        }
        ids.push(
            post_task(
                &client,
                &format!("/api/pipelines/{boom}/execute"),
                json!({"max_retries": 1}),
            )
            .await,
        );
        for _ in 0..2 {
            ids.push(
                post_task(
                    &client,
                    "/api/worktasks",
                    json!({"type": "ml_inference", "project_id": "e2e", "task_spec": {"pipeline_id": greet}}),
                )
                .await,
            );
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    for id in &ids {
        wait_until_done(&client, *id, Duration::from_secs(90)).await;
    }
    let doomed = client.get(doomed).await.expect("get");
    assert_eq!(
        doomed.status.as_str(),
        "failed",
        "the killed attempt ended the task: {doomed:?}"
    );

    // Storage connector operations: a filesystem storage and a PostgreSQL
    // one (the server on 127.0.0.1:5432, so a pool opens), each storing,
    // retrieving, updating and deleting records through the API.
    let project: Value = client
        .call(
            Method::POST,
            "/api/projects",
            Some(&json!({"name": "monitoring e2e"})),
        )
        .await
        .expect("project");
    let project = project["id"].as_str().expect("project id").to_string();
    let schema = format!("mon_{}", std::process::id());
    let mut storages = Vec::new();
    for (plugin, config) in [
        (
            "filesystem",
            json!({"options": {"base_path": "monitoring"}}),
        ),
        (
            "postgresql",
            json!({"connection_string": "postgres://postgres@127.0.0.1:5432/test", "options": {"schema": schema}}),
        ),
    ] {
        let created: Value = client
            .call(
                Method::POST,
                "/api/storage/configs",
                Some(&json!({"project_id": project, "plugin_type": plugin, "config": config})),
            )
            .await
            .unwrap_or_else(|e| panic!("{plugin} storage config: {e}"));
        storages.push(created["id"].as_str().expect("storage id").to_string());
    }
    for storage in &storages {
        for round in 0..5 {
            let body = json!({"project_id": project, "storage_id": storage, "cir_data": {
                "version": "1.0",
                "source": {"type": "api", "uri": "e2e", "timestamp": "2026-01-01T00:00:00Z", "format": "json", "parameters": {"entity_type": "orders"}},
                "data": [{"n": round, "status": "new"}, {"n": round + 100, "status": "new"}]}});
            let _: Value = client
                .call(Method::POST, "/api/storage/store", Some(&body))
                .await
                .expect("store");
            let query = json!({"entity_type": "orders", "filters": [{"attribute": "n", "operator": "eq", "value": round}]});
            let _: Value = client
                .call(
                    Method::POST,
                    "/api/storage/retrieve",
                    Some(&json!({"project_id": project, "storage_id": storage, "query": query})),
                )
                .await
                .expect("retrieve");
            let _: Value = client.call(Method::POST, "/api/storage/update", Some(&json!({"project_id": project, "storage_id": storage, "query": query, "updates": {"status": "seen"}}))).await.expect("update");
            let _: Value = client
                .call(
                    Method::POST,
                    "/api/storage/delete",
                    Some(&json!({"project_id": project, "storage_id": storage, "query": query})),
                )
                .await
                .expect("delete");
        }
    }
    let _drop_schema = DropSchema(schema.clone());

    // Models: one trained on the filesystem storage's records by the local
    // pool, then inline inferences, some for the external worker (its own
    // /metrics counts them too), one refused by the worker for a missing
    // feature (a failed request).
    let records: Vec<Value> = (0..120)
        .map(|i| json!({"x": i % 10, "y": (i * 7) % 13, "label": if i % 10 > 4 { "big" } else { "small" }}))
        .collect();
    let _: Value = client
        .call(Method::POST, "/api/storage/store", Some(&json!({"project_id": project, "storage_id": storages[0],
            "cir_data": {"version": "1.0", "source": {"type": "api", "uri": "e2e", "timestamp": "2026-01-01T00:00:00Z",
                "format": "json", "parameters": {"entity_type": "labelled"}}, "data": records}})))
        .await
        .expect("store training records");
    let model: Value = client
        .call(
            Method::POST,
            "/api/ml-models",
            Some(&json!({"project_id": project, "name": "e2e-model",
            "type": "decision_tree", "training_config": {"label_column": "label"}})),
        )
        .await
        .expect("create a model");
    let model = model["id"].as_str().expect("model id").to_string();
    // Two trainings, a scrape apart: the second is the duration histogram's
    // first increase Prometheus sees.
    for _ in 0..2 {
        let training: Value = client
            .call(
                Method::POST,
                "/api/ml-models/train",
                Some(&json!({"model_id": model, "input_datasets": [storages[0]],
                    "query": {"entity_type": "labelled"}})),
            )
            .await
            .expect("train");
        let training = training["worktask_id"]
            .as_str()
            .expect("task")
            .parse()
            .expect("uuid");
        let trained = wait_until_done(&client, training, Duration::from_secs(90)).await;
        assert_eq!(trained.status.as_str(), "completed", "{trained:?}");
        // The trained model's inference series start at zero; once scraped,
        // the inferences below are increases.
        wait_for_data(
            &prometheus,
            "mimir_model_training_duration_seconds_count{model_type=\"decision_tree\"}",
            Duration::from_secs(30),
        )
        .await
        .expect("training duration scraped");
        wait_for_data(
            &prometheus,
            "mimir_inference_items_total{model=\"e2e-model\"}",
            Duration::from_secs(30),
        )
        .await
        .expect("inference series scraped at zero");
    }
    let mut inferences = Vec::new();
    for round in 0..6 {
        let body =
            json!({"input": {"records": records[round * 10..round * 10 + 10]}, "batch_size": 4});
        let answer: Value = client
            .call(
                Method::POST,
                &format!("/api/ml-models/{model}/infer"),
                Some(&body),
            )
            .await
            .expect("infer");
        inferences.push(
            answer["worktask_id"]
                .as_str()
                .expect("task")
                .parse()
                .expect("uuid"),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _: Value = client
        .call(Method::POST, "/api/storage/store", Some(&json!({"project_id": project, "storage_id": storages[0],
            "cir_data": {"version": "1.0", "source": {"type": "api", "uri": "e2e", "timestamp": "2026-01-01T00:00:00Z",
                "format": "json", "parameters": {"entity_type": "partial"}}, "data": [{"x": 1}]}})))
        .await
        .expect("store partial records");
    let answer: Value = client
        .call(
            Method::POST,
            &format!("/api/ml-models/{model}/infer"),
            Some(&json!({
            "input": {"storage_id": storages[0], "query": {"entity_type": "partial"}},
            "output": {"storage_id": storages[0], "entity_type": "scored"}})),
        )
        .await
        .expect("infer partial records");
    inferences.push(
        answer["worktask_id"]
            .as_str()
            .expect("task")
            .parse()
            .expect("uuid"),
    );
    for id in inferences {
        wait_until_done(&client, id, Duration::from_secs(90)).await;
    }
    // A schedule firing every second (fires and lag) and a webhook called
    // once signed and once not: the schedule and webhook panels' series.
    let _: Value = client
        .call(
            Method::POST,
            "/api/schedules",
            Some(&json!({"name": "every-second", "pipeline_id": greet, "cron": "* * * * * *"})),
        )
        .await
        .expect("create a schedule");
    let secret = "monitoring-stack-secret";
    let hooked: Value = client
        .call(
            Method::POST,
            "/api/pipelines",
            Some(&json!({"project_id": "e2e", "name": "hooked",
                "trigger_config": {"webhook": {"enabled": true, "secret": secret}},
                "steps": [{"name": "say", "plugin": "core", "action": "log", "parameters": {"message": "hook"}}]})),
        )
        .await
        .expect("create a webhook pipeline");
    let hook_url = format!(
        "{}/api/pipelines/{}/webhook",
        orchestrator.url,
        hooked["id"].as_str().expect("id")
    );
    let body = r#"{"event": "monitoring"}"#;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature: String = ring::hmac::sign(&key, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let http = reqwest::Client::new();
    for signature in [Some(format!("sha256={signature}")), None] {
        let mut request = http
            .post(&hook_url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-mimir-signature", signature);
        }
        request.send().await.expect("webhook call");
    }

    // Every rule group loaded and evaluates without error.
    let rules: Value = reqwest::get(format!("{prometheus}/api/v1/rules"))
        .await
        .expect("rules")
        .json()
        .await
        .expect("json");
    let mut counts = BTreeMap::new();
    for group in rules["data"]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            *counts
                .entry(rule["type"].as_str().unwrap_or("?").to_string())
                .or_insert(0) += 1;
            assert_eq!(rule["health"], "ok", "{rule}");
        }
    }
    let alerts = self::rules(&dir, "mimir-alerts.rules.yml").len();
    let recordings = self::rules(&dir, "mimir-recording.rules.yml");
    assert_eq!(counts.get("alerting"), Some(&alerts));
    assert_eq!(counts.get("recording"), Some(&recordings.len()));

    // Every expression of every panel, and every recorded series, parses and
    // returns data.
    let expressions = dashboard_expressions(&dir);
    let mut failures = Vec::new();
    for (file, title, expr) in &expressions {
        let promql = substitute(expr);
        if BACKEND_ONLY_DASHBOARDS.contains(&file.as_str()) {
            if let Err(why) = query(&prometheus, &promql).await {
                failures.push(format!("{file} / {title}: {promql}\n    {why}"));
            }
            continue;
        }
        if let Err(why) = wait_for_data(&prometheus, &promql, Duration::from_secs(30)).await {
            failures.push(format!("{file} / {title}: {promql}\n    {why}"));
        }
    }
    for rule in &recordings {
        let record = rule["record"].as_str().expect("record");
        if let Err(why) = wait_for_data(&prometheus, record, Duration::from_secs(30)).await {
            failures.push(format!("recording rule {record}\n    {why}"));
        }
    }
    // The dashboards' variables list values.
    for (file, dashboard) in dashboards(&dir) {
        for variable in dashboard["templating"]["list"]
            .as_array()
            .expect("variables")
        {
            let Some(definition) = variable["definition"].as_str() else {
                continue;
            };
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|d| d.strip_suffix(')'))
                .expect("label_values(selector, label)");
            let (selector, label) = inner.rsplit_once(',').expect("selector, label");
            let values: Value = reqwest::Client::new()
                .get(format!("{prometheus}/api/v1/label/{}/values", label.trim()))
                .query(&[("match[]", substitute(selector.trim()))])
                .send()
                .await
                .expect("label values")
                .json()
                .await
                .expect("json");
            if BACKEND_ONLY_DASHBOARDS.contains(&file.as_str()) {
                if values["status"] != "success" {
                    failures.push(format!(
                        "{file} variable {}: {definition} fails: {values}",
                        variable["name"]
                    ));
                }
                continue;
            }
            if values["data"].as_array().is_none_or(|v| v.is_empty()) {
                failures.push(format!(
                    "{file} variable {}: {definition} lists nothing",
                    variable["name"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dashboard expressions and recorded series returned no data:\n{}",
        failures.len(),
        expressions.len() + recordings.len(),
        failures.join("\n")
    );
    assert!(expressions.len() >= 40, "{} expressions", expressions.len());
    eprintln!(
        "evaluated {} panel expressions and {} recorded series through Prometheus",
        expressions.len(),
        recordings.len()
    );

    // Ctrl-C stops view and the Prometheus it started.
    let _ = Command::new("kill")
        .args(["-INT", &view_pid.to_string()])
        .status();
    let mut child = view.0.take().expect("view runs");
    let status = child.wait().expect("wait for view");
    assert!(status.success(), "view exited with {status}");
    let started = Instant::now();
    while !processes_mentioning(&format!("--storage.tsdb.path={}", dir.display())).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "prometheus outlived view"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `program` on this process's PATH.
fn harness_which(program: &str) -> PathBuf {
    mimir_monitoring::tools::which(program, &std::env::var_os("PATH").unwrap_or_default())
        .unwrap_or_else(|| panic!("{program} is not installed; ./scripts/test installs it"))
}

#[test]
fn kubectl_kustomize_renders_the_manifests_and_the_servicemonitor_scrapes_the_metrics_port() {
    let base = repo().join("deploy/kubernetes/base");
    let rendered = run(
        "kubectl",
        &["kustomize", &base.display().to_string()],
        &repo(),
    );
    let text = succeeded(&rendered, "kubectl kustomize");
    let mut objects: BTreeMap<(String, String), Value> = BTreeMap::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let object: Value = serde::Deserialize::deserialize(document).expect("a manifest");
        let kind = object["kind"].as_str().expect("kind").to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        assert_eq!(
            object["metadata"]["namespace"]
                .as_str()
                .or(object["metadata"]["name"]
                    .as_str()
                    .filter(|_| kind == "Namespace")),
            Some("mimir-aip"),
            "{kind} {name} is in the namespace"
        );
        objects.insert((kind, name), object);
    }
    let get = |kind: &str, name: &str| -> &Value {
        objects
            .get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {name} in:\n{text}"))
    };
    for (kind, name) in [
        ("Deployment", "mimir-orchestrator"),
        ("ServiceAccount", "mimir-orchestrator"),
        ("Role", "mimir-orchestrator"),
        ("RoleBinding", "mimir-orchestrator"),
    ] {
        get(kind, name);
    }

    // ServiceMonitor -> Service port -> container port of the orchestrator,
    // whose configured listen address serves /metrics.
    let monitor = get("ServiceMonitor", "mimir-orchestrator");
    let service = get("Service", "mimir-orchestrator");
    let deployment = get("Deployment", "mimir-orchestrator");
    let service_labels = service["metadata"]["labels"].as_object().expect("labels");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(
            service_labels.get(key),
            Some(value),
            "the ServiceMonitor selects the Service"
        );
    }
    let endpoints = monitor["spec"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["path"], "/metrics");
    let port_name = endpoints[0]["port"].as_str().expect("a named port");
    let service_port = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == port_name)
        .unwrap_or_else(|| panic!("the Service has no port {port_name}"));
    let pod = &deployment["spec"]["template"];
    for (key, value) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(
            pod["metadata"]["labels"][key], *value,
            "the Service selects the pods"
        );
    }
    let container = &pod["spec"]["containers"][0];
    let container_port = container["ports"]
        .as_array()
        .expect("container ports")
        .iter()
        .find(|p| match &service_port["targetPort"] {
            Value::String(name) => p["name"] == *name,
            number => p["containerPort"] == *number,
        })
        .expect("the Service's targetPort is a container port");
    let config_text = get("ConfigMap", "mimir-orchestrator")["data"]["mimir.yaml"]
        .as_str()
        .expect("mimir.yaml");
    let config = mimir_server::config::Config::from_yaml(config_text).expect("the binary reads it");
    let valid = config.validate().expect("and accepts it");
    assert_eq!(
        Some(u64::from(valid.listen.port())),
        container_port["containerPort"].as_u64(),
        "the orchestrator listens (and serves /metrics) on the port the ServiceMonitor scrapes"
    );
    assert!(
        valid.listen.ip().is_unspecified(),
        "reachable from Prometheus: {}",
        valid.listen
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, ["serve", "--config", "/etc/mimir/mimir.yaml"]);
    assert_eq!(
        service["metadata"]["name"], "mimir-orchestrator",
        "the Service's name becomes the job label the alerts select"
    );

    // The PrometheusRule holds exactly the rule files `metrics install` writes.
    let rules_dir = repo().join("deploy/monitoring/rules");
    let mut groups = Vec::new();
    for file in ["mimir-recording.rules.yml", "mimir-alerts.rules.yml"] {
        groups.extend(
            yaml(&rules_dir.join(file))["groups"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    let golden = base.join("prometheusrule.yaml");
    if std::env::var_os("MIMIR_BLESS").is_some() {
        let rule = json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "mimir-aip", "labels": {"app.kubernetes.io/name": "mimir-aip"}},
            "spec": {"groups": groups}
        });
        let header = std::fs::read_to_string(&golden)
            .unwrap_or_default()
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        let body = serde_yaml_ng::to_string(&rule).expect("yaml");
        std::fs::write(&golden, format!("{header}{body}")).expect("bless");
    }
    let prometheus_rule = get("PrometheusRule", "mimir-aip");
    assert_eq!(
        prometheus_rule["spec"]["groups"],
        Value::Array(groups),
        "deploy/kubernetes/base/prometheusrule.yaml differs from deploy/monitoring/rules: \
         run this test with MIMIR_BLESS=1"
    );

    // The dashboards as ConfigMaps, byte for byte the shipped JSON.
    let shipped = repo().join("deploy/monitoring/grafana/dashboards");
    let mut found = 0;
    for ((kind, _), object) in &objects {
        if kind != "ConfigMap" || object["metadata"]["labels"]["grafana_dashboard"] != "1" {
            continue;
        }
        for (file, contents) in object["data"].as_object().expect("data") {
            let original =
                std::fs::read_to_string(shipped.join(file)).expect("a shipped dashboard");
            assert_eq!(contents.as_str(), Some(original.as_str()), "{file}");
            found += 1;
        }
    }
    assert_eq!(
        found,
        std::fs::read_dir(&shipped).expect("dashboards").count()
    );
}

/// Drops a PostgreSQL schema the test's storage config made, when the test ends.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-q",
                "-c",
            ])
            .arg(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Objects of a rendered kustomization, by (kind, name).
type Objects = BTreeMap<(String, String), Value>;

/// `kubectl kustomize` of a directory of the repository.
fn kustomize(dir: &str) -> Objects {
    let path = repo().join(dir);
    let rendered = run(
        "kubectl",
        &["kustomize", &path.display().to_string()],
        &repo(),
    );
    let text = succeeded(&rendered, &format!("kubectl kustomize {dir}"));
    let mut objects = Objects::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let object: Value = serde::Deserialize::deserialize(document).expect("a manifest");
        let kind = object["kind"].as_str().expect("kind").to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        objects.insert((kind, name), object);
    }
    objects
}

fn object<'a>(objects: &'a Objects, kind: &str, name: &str) -> &'a Value {
    objects
        .get(&(kind.to_string(), name.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "no {kind} {name} among {:?}",
                objects.keys().collect::<Vec<_>>()
            )
        })
}

/// One key of a Secret, decoded.
fn secret_value(secret: &Value, key: &str) -> String {
    use base64::Engine;
    let encoded = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("the Secret has no key {key}: {secret}"));
    // kubectl wraps long values over several lines.
    let encoded: String = encoded.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    String::from_utf8(bytes).expect("UTF-8")
}

/// Fails unless `role` lets its holder run worker Jobs, watch their pods and
/// read their logs, and nothing more.
fn assert_job_and_pod_rights(role: &Value) {
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().expect("rules") {
        let verbs: Vec<String> = rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for group in rule["apiGroups"].as_array().expect("apiGroups") {
            for resource in rule["resources"].as_array().expect("resources") {
                let key = format!(
                    "{}/{}",
                    group.as_str().unwrap_or_default(),
                    resource.as_str().unwrap_or_default()
                );
                granted.entry(key).or_default().extend(verbs.clone());
            }
        }
    }
    // Exactly these rights: the least the backend needs.
    let wanted: BTreeMap<String, BTreeSet<String>> = [
        (
            "batch/jobs",
            &["create", "get", "list", "watch", "delete"][..],
        ),
        ("/pods", &["get", "list", "watch"][..]),
        ("/pods/log", &["get"][..]),
    ]
    .into_iter()
    .map(|(resource, verbs)| {
        (
            resource.to_string(),
            verbs.iter().map(|v| v.to_string()).collect(),
        )
    })
    .collect();
    assert_eq!(
        granted, wanted,
        "{} grants other rights than the backend needs",
        role["metadata"]["name"]
    );
}

/// Fails when anything but a Secret holds `value` (a token).
fn assert_only_secrets_hold(objects: &Objects, value: &str) {
    assert!(value.len() >= 8, "a token worth looking for: {value:?}");
    for ((kind, name), object) in objects {
        if kind == "Secret" {
            continue;
        }
        let text = serde_json::to_string(object).expect("json");
        assert!(
            !text.contains(value),
            "{kind} {name} holds the token {value:?} inline"
        );
    }
}

/// The Role bound to a service account, checked to be bound to it.
fn role_of<'a>(objects: &'a Objects, binding: &str, account: &str) -> &'a Value {
    let binding = object(objects, "RoleBinding", binding);
    assert!(
        binding["subjects"]
            .as_array()
            .expect("subjects")
            .iter()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == account),
        "{binding} does not bind {account}"
    );
    object(objects, "ServiceAccount", account);
    assert_eq!(binding["roleRef"]["kind"], "Role");
    object(
        objects,
        "Role",
        binding["roleRef"]["name"].as_str().expect("role"),
    )
}

/// The orchestrator's configuration file as the overlay ships it.
fn orchestrator_config(objects: &Objects) -> (String, Value) {
    let text = object(objects, "ConfigMap", "mimir-orchestrator")["data"]["mimir.yaml"]
        .as_str()
        .expect("mimir.yaml")
        .to_string();
    let config = serde_yaml_ng::from_str(&text).expect("YAML");
    (text, config)
}

/// Runs the orchestrator pod's init container script, as its container
/// would, on a scratch copy of /etc/mimir: the ConfigMap's file as the
/// template, `token` as the Secret's value.
fn run_config_init(pod: &Value, template: &str, token: &str) -> (Output, tempfile::TempDir) {
    let init = &pod["initContainers"][0];
    let command: Vec<&str> = init["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command, ["/bin/sh", "-c"]);
    let scratch = tempfile::tempdir().expect("tempdir");
    let root = scratch.path().join("etc");
    std::fs::create_dir_all(root.join("mimir-template")).expect("mkdir");
    std::fs::create_dir_all(root.join("mimir")).expect("mkdir");
    std::fs::write(root.join("mimir-template/mimir.yaml"), template).expect("write");
    let script = init["args"][0]
        .as_str()
        .expect("script")
        .replace("/etc/mimir", &root.join("mimir").display().to_string());
    let output = Command::new("/bin/sh")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MIMIR_WORKER_TOKEN", token)
        .output()
        .expect("run sh");
    (output, scratch)
}

#[test]
fn kubernetes_workers_overlay_runs_jobs_with_job_rights_and_the_token_only_in_its_secret() {
    let objects = kustomize("deploy/kubernetes/overlays/kubernetes-workers");
    let deployment = object(&objects, "Deployment", "mimir-orchestrator");
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .expect("namespace");
    let pod = &deployment["spec"]["template"]["spec"];

    // The orchestrator's service account may run Jobs and watch their pods
    // in its namespace.
    let account = pod["serviceAccountName"].as_str().expect("service account");
    assert_job_and_pod_rights(role_of(&objects, "mimir-orchestrator", account));

    // The backend's keys, consistent with the objects beside them.
    let (text, config) = orchestrator_config(&objects);
    let o = &config["orchestrator"];
    assert_eq!(o["workerBackend"], "kubernetes");
    assert_eq!(o["workerNamespace"], namespace);
    let worker_account = object(
        &objects,
        "ServiceAccount",
        o["workerServiceAccount"]
            .as_str()
            .expect("workerServiceAccount"),
    );
    assert_eq!(worker_account["automountServiceAccountToken"], false);
    let orchestrator = &pod["containers"][0];
    assert_eq!(
        o["workerImage"], orchestrator["image"],
        "Jobs run the orchestrator's own image"
    );
    for init in pod["initContainers"].as_array().expect("init containers") {
        assert_eq!(init["image"], orchestrator["image"]);
    }
    let service = object(&objects, "Service", "mimir-orchestrator");
    assert_eq!(
        o["kubernetes"]["orchestratorURL"].as_str(),
        Some(
            format!(
                "http://{}.{namespace}.svc:{}",
                service["metadata"]["name"].as_str().expect("name"),
                service["spec"]["ports"][0]["port"]
            )
            .as_str()
        ),
        "worker pods reach the orchestrator through its Service"
    );
    for (key, value) in [
        ("clusterName", json!("primary")),
        ("imagePullPolicy", json!("IfNotPresent")),
        ("imagePullGraceMs", json!(60000)),
        ("oomMemoryFactor", json!(1.5)),
        ("oomMemoryCap", json!("64Gi")),
        ("ttlSecondsAfterFinished", json!(300)),
        ("apiTimeoutMs", json!(10000)),
        ("circuitFailures", json!(5)),
        ("circuitCooldownMs", json!(30000)),
    ] {
        assert_eq!(o["kubernetes"][key], value, "orchestrator.kubernetes.{key}");
    }
    for task_type in ["pipeline_execution", "ml_training", "ml_inference"] {
        assert!(
            o["resources"][task_type]["requests"]["memory"].is_string(),
            "resources.{task_type}"
        );
    }

    // The token: in the Secret that Jobs and the orchestrator read, nowhere
    // else.
    let token_secret = &o["kubernetes"]["tokenSecret"];
    let (secret_name, secret_key) = (
        token_secret["name"].as_str().expect("tokenSecret.name"),
        token_secret["key"].as_str().expect("tokenSecret.key"),
    );
    assert_eq!(
        (secret_name, secret_key),
        ("mimir-aip-worker-token", "token")
    );
    let shipped_token = secret_value(object(&objects, "Secret", secret_name), secret_key);
    assert_only_secrets_hold(&objects, &shipped_token);
    assert_eq!(o["workerAuthToken"], "${MIMIR_WORKER_TOKEN}");
    let init = &pod["initContainers"][0];
    let from = &init["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "MIMIR_WORKER_TOKEN")
        .expect("MIMIR_WORKER_TOKEN")["valueFrom"]["secretKeyRef"];
    assert_eq!(
        (from["name"].as_str(), from["key"].as_str()),
        (Some(secret_name), Some(secret_key))
    );

    // The orchestrator reads /etc/mimir/mimir.yaml from a volume in memory
    // that the init container fills from the ConfigMap.
    let args: Vec<&str> = orchestrator["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, ["serve", "--config", "/etc/mimir/mimir.yaml"]);
    let volume_at = |container: &Value, path: &str| -> Value {
        let mount = container["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("{} mounts nothing at {path}", container["name"]))
            .clone();
        pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume")
            .clone()
    };
    let config_volume = volume_at(orchestrator, "/etc/mimir");
    assert_eq!(config_volume["emptyDir"]["medium"], "Memory");
    assert!(config_volume.get("configMap").is_none(), "{config_volume}");
    assert_eq!(volume_at(init, "/etc/mimir"), config_volume);
    assert_eq!(
        volume_at(init, "/etc/mimir-template")["configMap"]["name"],
        "mimir-orchestrator"
    );

    // Run the init container's script: it writes the token in, and refuses
    // the shipped placeholder and tokens that would break the file.
    let token = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let (output, scratch) = run_config_init(pod, &text, token);
    succeeded(&output, "the config init script");
    let rendered = yaml(&scratch.path().join("etc/mimir/mimir.yaml"));
    assert_eq!(rendered["orchestrator"]["workerAuthToken"], token);
    let mut expected = config.clone();
    expected["orchestrator"]["workerAuthToken"] = json!(token);
    assert_eq!(rendered, expected, "only the token differs");
    assert!(scratch.path().join("etc/mimir/kubeconfigs").is_dir());
    for refused in [shipped_token.as_str(), "", "two words", "a|b", "quote\"d"] {
        let (output, scratch) = run_config_init(pod, &text, refused);
        let stderr = harness::stderr_failed(&output);
        assert!(stderr.contains("worker token"), "{refused:?}: {stderr}");
        assert!(!scratch.path().join("etc/mimir/mimir.yaml").exists());
    }
}

#[test]
fn additional_cluster_overlays_give_the_remote_identity_job_rights_and_mount_its_kubeconfig() {
    // In the further cluster: the namespace, the workers' account, the token
    // Secret and the orchestrator's identity with the rights it has at home.
    let remote = kustomize("deploy/kubernetes/overlays/additional-cluster");
    let namespace = object(&remote, "Namespace", "mimir-aip")["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    for ((kind, name), item) in &remote {
        if kind != "Namespace" {
            assert_eq!(item["metadata"]["namespace"], namespace, "{kind} {name}");
        }
    }
    let role = role_of(
        &remote,
        "mimir-orchestrator-remote",
        "mimir-orchestrator-remote",
    );
    assert_job_and_pod_rights(role);
    let base = kustomize("deploy/kubernetes/base");
    assert_eq!(
        role["rules"],
        object(&base, "Role", "mimir-orchestrator")["rules"],
        "the same rights as in the orchestrator's own cluster"
    );
    let identity_token = object(&remote, "Secret", "mimir-orchestrator-remote-token");
    assert_eq!(
        identity_token["type"],
        "kubernetes.io/service-account-token"
    );
    assert_eq!(
        identity_token["metadata"]["annotations"]["kubernetes.io/service-account.name"],
        "mimir-orchestrator-remote"
    );
    let remote_token = secret_value(object(&remote, "Secret", "mimir-aip-worker-token"), "token");
    assert_only_secrets_hold(&remote, &remote_token);

    // On the orchestrator's side: the kubeconfigs from their Secret under
    // /etc/mimir/kubeconfigs/, and one additionalClusters entry per file.
    let home = kustomize("deploy/kubernetes/overlays/additional-cluster/orchestrator");
    let (text, config) = orchestrator_config(&home);
    let o = &config["orchestrator"];
    assert_eq!(o["workerBackend"], "kubernetes");
    let kubeconfigs = object(&home, "Secret", "mimir-aip-cluster-kubeconfigs");
    let pod = &object(&home, "Deployment", "mimir-orchestrator")["spec"]["template"]["spec"];
    let orchestrator = &pod["containers"][0];
    let mount = orchestrator["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == "/etc/mimir/kubeconfigs")
        .expect("the kubeconfigs are mounted");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert_eq!(
        volume["secret"]["secretName"],
        "mimir-aip-cluster-kubeconfigs"
    );
    // The mount point exists in the in-memory /etc/mimir before the
    // orchestrator starts.
    let (output, scratch) = run_config_init(pod, &text, &"a".repeat(64));
    succeeded(&output, "the config init script");
    assert!(scratch.path().join("etc/mimir/kubeconfigs").is_dir());

    let clusters = o["additionalClusters"]
        .as_array()
        .expect("additionalClusters");
    assert!(!clusters.is_empty());
    let files = kubeconfigs["data"].as_object().expect("kubeconfig files");
    assert_eq!(files.len(), clusters.len(), "one kubeconfig per cluster");
    for cluster in clusters {
        let name = cluster["name"].as_str().expect("name");
        assert_ne!(
            name,
            o["kubernetes"]["clusterName"].as_str().unwrap_or("primary")
        );
        let path = cluster["kubeconfig"].as_str().expect("kubeconfig");
        let file = path
            .strip_prefix("/etc/mimir/kubeconfigs/")
            .unwrap_or_else(|| panic!("{name}'s kubeconfig {path} is not in the mount"));
        assert!(files.contains_key(file), "no {file} in the Secret");
        let kubeconfig: Value =
            serde_yaml_ng::from_str(&secret_value(kubeconfigs, file)).expect("a kubeconfig");
        assert_eq!(kubeconfig["kind"], "Config");
        let user_token = kubeconfig["users"][0]["user"]["token"]
            .as_str()
            .expect("a token");
        assert_only_secrets_hold(&home, user_token);
        assert_eq!(
            kubeconfig["contexts"][0]["context"]["namespace"],
            cluster["namespace"]
        );
        assert_eq!(cluster["namespace"], namespace.as_str(), "{name}");
        let account = cluster["serviceAccount"].as_str().expect("serviceAccount");
        assert_eq!(
            object(&remote, "ServiceAccount", account)["automountServiceAccountToken"],
            false
        );
        assert!(
            cluster["maxWorkers"].as_u64().is_some_and(|n| n > 0),
            "{name}"
        );
        assert!(
            cluster["orchestratorURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://")),
            "{name}: pods of another cluster reach the orchestrator over TLS"
        );
    }
    let token_secret = &o["kubernetes"]["tokenSecret"];
    object(
        &remote,
        "Secret",
        token_secret["name"].as_str().expect("tokenSecret.name"),
    )["data"][token_secret["key"].as_str().expect("tokenSecret.key")]
    .as_str()
    .expect("the further cluster has the worker token Secret Jobs read");
    let home_token = secret_value(object(&home, "Secret", "mimir-aip-worker-token"), "token");
    assert_only_secrets_hold(&home, &home_token);
}

#[test]
fn kubernetes_dashboard_and_alerts_query_the_backend_metrics_by_their_names() {
    // The live Prometheus of the dashboard test has no Kubernetes series, so
    // the names are held to the metric contract here.
    let backend: BTreeSet<&str> = [
        "mimir_cluster_workers",
        "mimir_cluster_max_workers",
        "mimir_cluster_up",
        "mimir_kubernetes_job_failures_total",
        "mimir_kubernetes_api_request_duration_seconds_bucket",
        "mimir_kubernetes_api_request_duration_seconds_count",
    ]
    .into();
    let reasons: BTreeSet<&str> = [
        "oom_killed",
        "evicted",
        "image_pull",
        "unschedulable",
        "deadline_exceeded",
        "deleted",
        "node_lost",
        "create_failed",
        "failed",
    ]
    .into();
    fn metrics(expr: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (i, _) in expr.match_indices("mimir_") {
            if i > 0
                && expr[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let name: String = expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
        out
    }
    let deploy = repo().join("deploy/monitoring");
    let mut used = BTreeSet::new();
    for (file, title, expr) in dashboard_expressions(&deploy) {
        if !BACKEND_ONLY_DASHBOARDS.contains(&file.as_str()) {
            continue;
        }
        for name in metrics(&expr) {
            assert!(
                backend.contains(name.as_str()) || name == "mimir_queue_length",
                "{file} / {title}: {name} is not a metric of the backend"
            );
            if backend.contains(name.as_str()) {
                assert!(
                    expr.contains("cluster=~\"$cluster\""),
                    "{file} / {title} follows the cluster variable: {expr}"
                );
            }
            used.insert(name);
        }
    }
    for name in &backend {
        if !name.ends_with("_count") {
            assert!(used.contains(*name), "the dashboard shows no {name}");
        }
    }
    let dashboard = &dashboards(&deploy)["mimir-kubernetes.json"];
    assert_eq!(dashboard["uid"], "mimir-kubernetes");
    assert_eq!(dashboard["tags"], json!(["mimir-aip"]));

    let alerts = yaml(&deploy.join("rules/mimir-alerts.rules.yml"));
    let mut found = BTreeSet::new();
    for rule in alerts["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
    {
        let name = rule["alert"].as_str().unwrap_or_default().to_string();
        let expr = rule["expr"].as_str().unwrap_or_default();
        let names = metrics(expr);
        if !names.iter().any(|n| backend.contains(n.as_str())) {
            continue;
        }
        for metric in &names {
            assert!(
                backend.contains(metric.as_str()) || metric == "mimir_queue_length",
                "{name}: {metric}"
            );
        }
        for part in expr.split("reason=\"").skip(1) {
            let reason = part.split('"').next().unwrap_or_default();
            assert!(reasons.contains(reason), "{name}: reason {reason}");
        }
        found.insert(name);
    }
    assert_eq!(
        found,
        BTreeSet::from([
            "MimirClusterAtCapacity".to_string(),
            "MimirClusterUnreachable".to_string(),
            "MimirImagePullsFailing".to_string(),
            "MimirOomKillsRising".to_string(),
        ])
    );
}
