//! `mimir-aip metrics install --agent`, proved with real processes: a central
//! Prometheus with its remote-write receiver on, and the agent install run by
//! `metrics view` (a real Prometheus in agent mode) scraping two workers'
//! metrics endpoints on this host; the Models dashboard's inference panels
//! then answer with data from the central Prometheus, labelled with the
//! agent's host.
//!
//! The two endpoints are small HTTP servers of this test serving the
//! exposition a worker serves on `--metrics-listen` for inference
//! (`mimir_inference_items_total{model,worker}`,
//! `mimir_inference_duration_seconds{model,scope}`, rising on every scrape):
//! they stand in for `mimir-aip worker --metrics-listen` until the ML
//! executor lands and workers run inference themselves.

mod harness;

use harness::{bin, cli_in, free_port, processes_mentioning, stderr_failed, stdout_ok};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the central Prometheus may take to show the agent's samples.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(90);

/// A worker's `/metrics` for inference, rising on every scrape: `items` items
/// of model `churn` per scrape, one batch of `items` items taking 0.3 s.
struct WorkerEndpoint {
    port: u16,
    scrapes: Arc<AtomicU64>,
}

impl WorkerEndpoint {
    fn start(worker: &'static str, items: u64) -> WorkerEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let scrapes = Arc::new(AtomicU64::new(0));
        let counter = scrapes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                // The request head only; a scrape has no body.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let body = exposition(worker, items, n);
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        WorkerEndpoint { port, scrapes }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The text exposition after `n` scrapes (the shape `mimir-telemetry` renders).
fn exposition(worker: &str, items: u64, n: u64) -> String {
    let batch_seconds = 0.3;
    let item_seconds = batch_seconds / items as f64;
    let mut text = String::new();
    text.push_str("# HELP mimir_inference_items Items predicted.\n");
    text.push_str("# TYPE mimir_inference_items_total counter\n");
    text.push_str(&format!(
        "mimir_inference_items_total{{model=\"churn\",worker=\"{worker}\"}} {}\n",
        n * items
    ));
    text.push_str(
        "# HELP mimir_inference_duration_seconds Inference time per batch and per item.\n",
    );
    text.push_str("# TYPE mimir_inference_duration_seconds histogram\n");
    let bounds = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
    for (scope, seconds) in [("batch", batch_seconds), ("item", item_seconds)] {
        for le in bounds {
            let count = if seconds <= le { n } else { 0 };
            text.push_str(&format!(
                "mimir_inference_duration_seconds_bucket{{model=\"churn\",scope=\"{scope}\",le=\"{le}\"}} {count}\n"
            ));
        }
        text.push_str(&format!(
            "mimir_inference_duration_seconds_bucket{{model=\"churn\",scope=\"{scope}\",le=\"+Inf\"}} {n}\n\
             mimir_inference_duration_seconds_sum{{model=\"churn\",scope=\"{scope}\"}} {}\n\
             mimir_inference_duration_seconds_count{{model=\"churn\",scope=\"{scope}\"}} {n}\n",
            seconds * n as f64
        ));
    }
    text.push_str("# HELP mimir_build_info Version and commit of this binary.\n");
    text.push_str("# TYPE mimir_build_info gauge\n");
    text.push_str("mimir_build_info{version=\"0.1.0\",commit=\"test\"} 1\n");
    text
}

/// A child process stopped on drop (SIGINT first, so `view` stops its
/// Prometheus), then whatever is left that names `leftovers` (a directory
/// only this test uses).
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
        for pid in processes_mentioning(&self.1) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// `prometheus` on this process's PATH.
fn prometheus_bin() -> PathBuf {
    mimir_monitoring::tools::which("prometheus", &std::env::var_os("PATH").unwrap_or_default())
        .expect(
            "prometheus is not installed; ./scripts/test installs it (apt-get install prometheus)",
        )
}

/// Whether `GET url` answers 200.
async fn ready(url: &str) -> bool {
    reqwest::get(url)
        .await
        .is_ok_and(|r| r.status().is_success())
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

/// The numbers of a result (NaN left out).
fn numbers(result: &[Value]) -> Vec<f64> {
    result
        .iter()
        .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
        .filter(|v| !v.is_nan())
        .collect()
}

/// Polls `promql` until it returns a number; the result, or why not.
async fn wait_for_data(
    prometheus: &str,
    promql: &str,
    until: Instant,
) -> Result<Vec<Value>, String> {
    loop {
        let last = match query(prometheus, promql).await {
            Ok(result) if !numbers(&result).is_empty() => return Ok(result),
            Ok(result) => format!("no number in {result:?}"),
            Err(error) if error.contains("bad_data") => return Err(error),
            Err(error) => error,
        };
        if Instant::now() > until {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every (panel title, expression) of the installed Models dashboard, with
/// the values Grafana would substitute: the workers' job picked in the `job`
/// menu, all instances, windows spanning the test.
fn models_queries() -> Vec<(String, String)> {
    let (_, text) = mimir_monitoring::assets::STATIC
        .iter()
        .find(|(path, _)| *path == "grafana/dashboards/mimir-models.json")
        .expect("the Models dashboard");
    let dashboard: Value = serde_json::from_str(text).expect("JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let expr = expr
                    .replace("$__rate_interval", "30s")
                    .replace("$__range", "5m")
                    .replace("$instance", ".+")
                    .replace("$job", "mimir-workers");
                assert!(
                    !expr.contains('$'),
                    "a variable the test does not know: {expr}"
                );
                out.push((panel["title"].as_str().unwrap_or("").to_string(), expr));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_install_remote_writes_the_workers_inference_to_a_central_prometheus_whose_models_panels_show_it()
 {
    let scratch = tempfile::tempdir().expect("tempdir");
    let prometheus = prometheus_bin();

    // The central Prometheus: no scrape jobs of its own, only what is
    // remote-written to it.
    let central_dir = scratch.path().join("central");
    std::fs::create_dir_all(&central_dir).expect("mkdir");
    std::fs::write(
        central_dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
    )
    .expect("central config");
    let central_port = free_port();
    let central_log = std::fs::File::create(central_dir.join("prometheus.log")).expect("log");
    let central = Command::new(&prometheus)
        .arg(format!(
            "--config.file={}",
            central_dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            central_dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{central_port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(Stdio::from(central_log))
        .spawn()
        .expect("start the central prometheus");
    let _central = Reaped(Some(central), central_dir.display().to_string());
    let central_url = format!("http://127.0.0.1:{central_port}");
    let started = Instant::now();
    while !ready(&format!("{central_url}/-/ready")).await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the central prometheus did not start: {}",
            std::fs::read_to_string(central_dir.join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two workers on this host, one busier than the other.
    let busy = WorkerEndpoint::start("host-w1", 100);
    let light = WorkerEndpoint::start("host-w2", 40);

    // The agent install.
    let dir = scratch.path().join("agent");
    let dir_text = dir.display().to_string();
    let remote_write = format!("{central_url}/api/v1/write");
    let printed = stdout_ok(&cli_in(
        scratch.path(),
        &[
            "metrics",
            "install",
            "--agent",
            "--dir",
            &dir_text,
            "--remote-write",
            &remote_write,
            "--scrape",
            &busy.address(),
            "--scrape",
            &light.address(),
            "--host-name",
            "gpu-host-7",
            "--scrape-interval",
            "1s",
        ],
    ));
    let mut installed: Vec<String> = std::fs::read_dir(&dir)
        .expect("installed")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    installed.sort();
    assert_eq!(
        installed,
        [mimir_monitoring::MANIFEST_FILE, "prometheus.yml", "targets"],
        "the agent's files only: no rules, no Grafana"
    );
    let check = Command::new("promtool")
        .args(["check", "config", "--agent", "prometheus.yml"])
        .current_dir(&dir)
        .output()
        .expect("promtool (installed with prometheus)");
    assert!(
        check.status.success(),
        "promtool check config --agent: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let flag =
        mimir_monitoring::tools::agent_flag(&prometheus).expect("an agent-capable prometheus");
    assert!(
        printed.contains(&format!(
            "{} {flag} --config.file={}/prometheus.yml",
            prometheus.display(),
            dir_text
        )),
        "the exact command: {printed}"
    );

    // `metrics view` runs it: Prometheus alone, in agent mode.
    let tools = scratch.path().join("bin");
    std::fs::create_dir_all(&tools).expect("mkdir");
    std::os::unix::fs::symlink(&prometheus, tools.join("prometheus")).expect("symlink");
    let agent_port = free_port();
    let mut view = Command::new(bin())
        .args([
            "metrics",
            "view",
            "--dir",
            &dir_text,
            "--prometheus-port",
            &agent_port.to_string(),
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
    let mut view = Reaped(Some(view), dir_text.clone());
    let mut lines = Vec::new();
    let started = Instant::now();
    while !lines.iter().any(|l: &String| l.contains("Press Ctrl-C")) {
        match lines_rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => lines.push(line),
            Err(_) if started.elapsed() < Duration::from_secs(60) => {}
            Err(_) => panic!(
                "view printed nothing within 60 s: {lines:#?}\n{}",
                std::fs::read_to_string(dir.join("data/prometheus.log")).unwrap_or_default()
            ),
        }
    }
    let lines = lines.join("\n");
    assert!(lines.contains("agent mode"), "{lines}");
    assert!(lines.contains(&remote_write), "{lines}");
    let agent_command =
        processes_mentioning(&format!("--web.listen-address=127.0.0.1:{agent_port}"));
    assert_eq!(agent_command.len(), 1, "one agent prometheus runs");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", agent_command[0])).expect("cmdline");
    assert!(
        String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|a| a == flag),
        "started with {flag}"
    );

    // The inference panels of the Models dashboard answer from the central
    // Prometheus, with the workers' job picked in the job menu.
    let until = Instant::now() + DELIVERY_DEADLINE;
    let queries = models_queries();
    let inference: Vec<&(String, String)> = queries
        .iter()
        .filter(|(_, e)| {
            e.contains("mimir_inference_items_total")
                || e.contains("mimir_inference_duration_seconds")
        })
        .collect();
    assert!(inference.len() >= 10, "{inference:#?}");
    let mut failures = Vec::new();
    for (title, expr) in &inference {
        if let Err(why) = wait_for_data(&central_url, expr, until).await {
            failures.push(format!("{title}: {expr}\n    {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "inference panels without data on the central prometheus:\n{}\nagent log:\n{}",
        failures.join("\n"),
        std::fs::read_to_string(dir.join("data/prometheus.log")).unwrap_or_default()
    );
    // The other panels' queries (the orchestrator's series) are valid there too.
    for (title, expr) in &queries {
        if let Err(why) = query(&central_url, expr).await {
            panic!("{title}: {expr}: {why}");
        }
    }

    // Per worker, with the busier one busier, and labelled with the host.
    let (_, per_worker) = inference
        .iter()
        .find(|(t, _)| t == "Inference items/s by worker")
        .expect("the per-worker panel");
    let result = query(&central_url, per_worker).await.expect("per worker");
    let workers: BTreeSet<&str> = result
        .iter()
        .filter_map(|r| r["metric"]["worker"].as_str())
        .collect();
    assert_eq!(
        workers,
        BTreeSet::from(["host-w1", "host-w2"]),
        "{result:?}"
    );
    let (_, spread) = inference
        .iter()
        .find(|(t, e)| t == "Spread across workers" && e.starts_with("max("))
        .expect("the spread panel");
    let busiest = numbers(&query(&central_url, spread).await.expect("max"))[0];
    let idlest = numbers(
        &query(&central_url, &spread.replacen("max(", "min(", 1))
            .await
            .expect("min"),
    )[0];
    assert!(
        busiest > idlest && idlest > 0.0,
        "max {busiest} min {idlest}"
    );
    let hosts = query(
        &central_url,
        "count by (instance_host, job) (mimir_inference_items_total)",
    )
    .await
    .expect("labels");
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0]["metric"]["instance_host"], "gpu-host-7");
    assert_eq!(hosts[0]["metric"]["job"], "mimir-workers");
    assert!(busy.scrapes.load(Ordering::SeqCst) >= 2);
    assert!(light.scrapes.load(Ordering::SeqCst) >= 2);
    eprintln!(
        "{} inference panel queries answered from the central prometheus {:.1}s after the agent started",
        inference.len(),
        (DELIVERY_DEADLINE - until.saturating_duration_since(Instant::now())).as_secs_f64()
    );

    // Ctrl-C stops view and its agent.
    let _ = Command::new("kill")
        .args(["-INT", &view_pid.to_string()])
        .status();
    let mut child = view.0.take().expect("view runs");
    let status = child.wait().expect("wait for view");
    assert!(status.success(), "view exited with {status}");
    let started = Instant::now();
    while !processes_mentioning(&format!("--web.listen-address=127.0.0.1:{agent_port}")).is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the agent outlived view"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `metrics install ARGS` in a fresh directory; its stderr, and whether
/// it left anything behind.
fn refused(args: &[&str]) -> (String, bool) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("agent");
    let dir_text = dir.display().to_string();
    let output = cli_in(
        scratch.path(),
        &[&["metrics", "install", "--dir", &dir_text], args].concat(),
    );
    let stderr = stderr_failed(&output);
    (stderr, Path::new(&dir).exists())
}

#[test]
fn bad_agent_flags_are_refused_naming_the_flag_and_nothing_is_written() {
    for (args, names) in [
        (
            &["--agent", "--remote-write", "central:9090/api/v1/write"][..],
            "--remote-write \"central:9090/api/v1/write\" has no scheme",
        ),
        (
            &["--agent", "--remote-write", "ftp://central/api/v1/write"][..],
            "--remote-write \"ftp://central/api/v1/write\" is not http or https",
        ),
        (
            &["--agent", "--remote-write", "http:///api/v1/write"][..],
            "has no host",
        ),
        (
            &[
                "--agent",
                "--remote-write",
                "http://u:secret@central/api/v1/write",
            ][..],
            "holds credentials",
        ),
        (
            &[
                "--agent",
                "--remote-write",
                "http://central:9090/api/v1/write",
                "--scrape",
                "worker-without-port",
            ][..],
            "--scrape \"worker-without-port\" is not host:port",
        ),
        (&["--agent"][..], "--remote-write <URL>"),
        (
            &["--remote-write", "http://central:9090/api/v1/write"][..],
            "--agent",
        ),
        (
            &[
                "--agent",
                "--remote-write",
                "http://central:9090/api/v1/write",
                "--orchestrator",
                "http://127.0.0.1:8080",
            ][..],
            "cannot be used with",
        ),
    ] {
        let (stderr, written) = refused(args);
        assert!(stderr.contains(names), "{args:?}: {stderr}");
        assert!(!written, "{args:?} wrote the install directory");
        assert!(
            !stderr.contains("secret"),
            "a credential was echoed: {stderr}"
        );
    }
}
