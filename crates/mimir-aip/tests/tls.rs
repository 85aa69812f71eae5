//! TLS on every port, checked with real clients: curl, the CLI, workers
//! (local and external, with and without client certificates), a real
//! Prometheus and a headless Chromium. The certificates are made here: a CA,
//! a server certificate for 127.0.0.1 and localhost, client certificates.

mod harness;

use harness::{Orchestrator, bin, free_port, pipelines};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A CA that issues certificates into a directory.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM file).
    cert: PathBuf,
    dir: PathBuf,
}

/// A certificate and its key, as files.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    /// base64 of the SHA-256 of the key's SubjectPublicKeyInfo (what
    /// Chromium's --ignore-certificate-errors-spki-list takes).
    spki_sha256: String,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Mimir test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        let path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&path, cert.pem()).expect("write CA");
        Ca {
            issuer: Issuer::new(params, key),
            cert: path,
            dir: dir.to_path_buf(),
        }
    }

    /// A certificate for 127.0.0.1 and localhost, for servers and clients.
    fn issue(&self, name: &str) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let leaf = Leaf {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
            spki_sha256: {
                use base64::Engine;
                let digest =
                    ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info());
                base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
            },
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write certificate");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// An orchestrator serving HTTPS with `server`'s certificate, plus `yaml`.
fn https_orchestrator(server: &Leaf, yaml: &str, extra: &[&str]) -> Orchestrator {
    let config = format!(
        "tls:\n  certFile: {}\n  keyFile: {}\n{yaml}",
        path(&server.cert),
        path(&server.key)
    );
    let mut orchestrator = Orchestrator::start_with_config(&config, extra);
    orchestrator.url = format!("https://127.0.0.1:{}", orchestrator.port);
    orchestrator
}

/// curl with `args`; the output.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (Debian package curl)")
}

/// The HTTP status curl saw, or why it failed.
fn curl_status(args: &[&str]) -> Result<(u16, String), String> {
    let output = curl(&[args, &["--write-out", "\n%{http_code}"]].concat());
    if !output.status.success() {
        return Err(format!(
            "curl exit {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    Ok((code.trim().parse().expect("status"), body.to_string()))
}

/// A process stopped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit within `within`; its status and stderr.
fn exits_within(mut child: Child, within: Duration) -> (std::process::ExitStatus, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            return (status, stderr);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "still running after {within:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An external worker of `orchestrator` with `args`.
fn worker(orchestrator: &Orchestrator, args: &[&str]) -> Child {
    Command::new(bin())
        .args(["worker", "--orchestrator", &orchestrator.url])
        .args(args)
        .env_remove("MIMIR_CA_CERT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a worker")
}

/// `GET /api/workers` over curl trusting `ca`.
fn workers(orchestrator: &Orchestrator, ca: &Path, client: Option<&Leaf>) -> Vec<Value> {
    let url = format!("{}/api/workers", orchestrator.url);
    let mut args = vec!["--cacert".to_string(), path(ca), url];
    if let Some(leaf) = client {
        args.extend([
            "--cert".into(),
            path(&leaf.cert),
            "--key".into(),
            path(&leaf.key),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, body) = curl_status(&args).expect("list workers");
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    body["workers"].as_array().cloned().unwrap_or_default()
}

#[test]
fn curl_with_the_ca_gets_health_and_tasks_over_https_and_plain_http_is_not_served() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let server = ca.issue("server");
    let orchestrator = https_orchestrator(&server, "", &["--max-workers", "0"]);
    let ca_file = path(&ca.cert);
    let (status, body) = curl_status(&[
        "--cacert",
        &ca_file,
        &format!("{}/health", orchestrator.url),
    ])
    .expect("health over https");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"healthy"}"#));
    let (status, body) = curl_status(&[
        "--cacert",
        &ca_file,
        &format!("{}/api/worktasks", orchestrator.url),
    ])
    .expect("tasks over https");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"worktasks\""), "{body}");

    // Without the CA, curl does not trust the certificate (exit 60).
    let output = curl(&[&format!("{}/health", orchestrator.url)]);
    assert_eq!(output.status.code(), Some(60), "{output:?}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = curl_status(&[&format!("http://127.0.0.1:{}/health", orchestrator.port)]);
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|(s, _)| *s == 0 || *s >= 400),
        "{plain:?}"
    );
}

#[test]
fn the_cli_verifies_the_orchestrator_with_its_ca_and_names_the_certificate_problem() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let server = ca.issue("server");
    let orchestrator = https_orchestrator(&server, "", &["--max-workers", "0"]);
    let ca_file = path(&ca.cert);
    let output = orchestrator.cli(&["queue", "length", "--ca-cert", &ca_file]);
    assert_eq!(harness::stdout_ok(&output).trim(), "0");
    // A write through the CLI, too.
    let definition = orchestrator.dir.path().join("hello.yaml");
    std::fs::write(
        &definition,
        "project_id: p1\nname: hello\nsteps:\n  - {name: say, plugin: core, action: log, parameters: {message: hi}}\n",
    )
    .expect("write the pipeline");
    let created = orchestrator.cli(&[
        "pipeline",
        "create",
        "-f",
        &definition.display().to_string(),
        "--ca-cert",
        &ca_file,
        "--output",
        "json",
    ]);
    harness::stdout_ok(&created);

    // Another CA: refused, naming the certificate problem and the flag.
    let other = Ca::new(pki.path(), "other");
    let output = orchestrator.cli(&["queue", "length", "--ca-cert", &path(&other.cert)]);
    let stderr = harness::stderr_failed(&output);
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(stderr.contains("--ca-cert"), "{stderr}");
    // A CA file that is not one is named.
    let output = orchestrator.cli(&["queue", "length", "--ca-cert", &path(&server.key)]);
    let stderr = harness::stderr_failed(&output);
    assert!(
        stderr.contains("server.key") && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}

#[test]
fn a_worker_refuses_a_server_whose_certificate_does_not_verify() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let other = Ca::new(pki.path(), "other");
    let server = ca.issue("server");
    let orchestrator = https_orchestrator(&server, "", &["--max-workers", "0"]);

    let refused = worker(&orchestrator, &["--ca-cert", &path(&other.cert)]);
    let (status, stderr) = exits_within(refused, Duration::from_secs(20));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("certificate") && stderr.contains("UnknownIssuer"),
        "the reason names the certificate problem: {stderr}"
    );
    assert!(
        workers(&orchestrator, &ca.cert, None).is_empty(),
        "nothing registered"
    );

    // With the right CA it registers.
    let _accepted = Reaped(worker(&orchestrator, &["--ca-cert", &path(&ca.cert)]));
    let started = Instant::now();
    while workers(&orchestrator, &ca.cert, None).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never registered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_workers_reach_the_orchestrator_over_https_and_run_tasks() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let clients = Ca::new(pki.path(), "clients");
    let server = ca.issue("server");
    let local = clients.issue("local-workers");
    let user = clients.issue("user");
    // caFile: the CA local workers are given to trust; with client
    // certificates required, they present workerCertFile.
    let orchestrator = https_orchestrator(
        &server,
        &format!(
            "  caFile: {}\n  clientCaFile: {}\n  workerCertFile: {}\n  workerKeyFile: {}\n",
            path(&ca.cert),
            path(&clients.cert),
            path(&local.cert),
            path(&local.key)
        ),
        &["--min-workers", "1", "--max-workers", "1"],
    );
    let client = mimir_client::Client::with_tls(
        &orchestrator.url,
        &mimir_client::TlsOptions {
            ca_cert: Some(ca.cert.clone()),
            client_cert: Some(user.cert.clone()),
            client_key: Some(user.key.clone()),
        },
    )
    .expect("client");
    let pipeline = pipelines::one_step(&client, "say", "core.log", json!({"message": "hi"})).await;
    let task = pipelines::execute(&client, &pipeline, json!({})).await;
    let done = pipelines::wait_until_done(&client, task.worktask_id, Duration::from_secs(30)).await;
    assert_eq!(done.status.as_str(), "completed", "{done:?}");
    let local_workers = workers(&orchestrator, &ca.cert, Some(&user));
    assert!(
        local_workers.iter().any(|w| w["local"] == json!(true)),
        "{local_workers:?}"
    );
}

#[test]
fn with_client_certificates_local_workers_need_one() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let server = ca.issue("server");
    let config = harness::config_file(
        pki.path(),
        &format!(
            "tls:\n  certFile: {}\n  keyFile: {}\n  caFile: {}\n  clientCaFile: {}\n",
            path(&server.cert),
            path(&server.key),
            path(&ca.cert),
            path(&ca.cert)
        ),
    );
    let serve = |max_workers: &str| {
        harness::cli_in(
            pki.path(),
            &[
                "serve",
                "--config",
                &config,
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "data",
                "--max-workers",
                max_workers,
            ],
        )
    };
    let stderr = harness::stderr_failed(&serve("1"));
    assert!(stderr.contains("tls.workerCertFile"), "{stderr}");
}

#[test]
fn a_replaced_certificate_is_served_to_new_connections_and_a_bad_one_is_not() {
    let pki = tempfile::tempdir().expect("tempdir");
    let first = Ca::new(pki.path(), "first");
    let second = Ca::new(pki.path(), "second");
    let server = first.issue("server");
    let orchestrator = https_orchestrator(&server, "", &["--max-workers", "0"]);
    let health = format!("{}/health", orchestrator.url);
    let trusts = |ca: &Ca| curl_status(&["--cacert", &path(&ca.cert), &health]).is_ok();
    assert!(trusts(&first));
    assert!(!trusts(&second));

    // A certificate of the second CA with the old key: a bad pair, not served.
    let replacement = second.issue("replacement");
    std::fs::copy(&replacement.cert, &server.cert).expect("replace the certificate");
    let started = Instant::now();
    while !orchestrator
        .log()
        .contains("cannot load the changed TLS certificate")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no error logged"
        );
        assert!(trusts(&first), "the previous certificate is still served");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(trusts(&first));

    // Now its key too: new connections get the new certificate.
    std::fs::copy(&replacement.key, &server.key).expect("replace the key");
    let started = Instant::now();
    while !trusts(&second) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new certificate was never served\n{}",
            orchestrator.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!trusts(&first));
    assert!(orchestrator.log().contains("TLS certificate reloaded"));
}

#[test]
fn with_required_client_certificates_a_worker_without_one_is_refused() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let clients = Ca::new(pki.path(), "clients");
    let server = ca.issue("server");
    let good = clients.issue("worker");
    let stranger = ca.issue("stranger");
    let orchestrator = https_orchestrator(
        &server,
        &format!("  clientCaFile: {}\n", path(&clients.cert)),
        &["--max-workers", "0"],
    );
    let ca_file = path(&ca.cert);

    let refused = worker(&orchestrator, &["--ca-cert", &ca_file]);
    let (status, stderr) = exits_within(refused, Duration::from_secs(20));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("CertificateRequired") && stderr.contains("--client-cert"),
        "{stderr}"
    );
    // A certificate of another CA is refused too.
    let refused = worker(
        &orchestrator,
        &[
            "--ca-cert",
            &ca_file,
            "--client-cert",
            &path(&stranger.cert),
            "--client-key",
            &path(&stranger.key),
        ],
    );
    let (status, stderr) = exits_within(refused, Duration::from_secs(20));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    // curl without a certificate gets nothing either.
    assert!(
        curl_status(&[
            "--cacert",
            &ca_file,
            &format!("{}/health", orchestrator.url)
        ])
        .is_err()
    );
    assert!(workers(&orchestrator, &ca.cert, Some(&good)).is_empty());

    let _accepted = Reaped(worker(
        &orchestrator,
        &[
            "--ca-cert",
            &ca_file,
            "--client-cert",
            &path(&good.cert),
            "--client-key",
            &path(&good.key),
        ],
    ));
    let started = Instant::now();
    while workers(&orchestrator, &ca.cert, Some(&good)).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never registered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn with_optional_client_certificates_users_are_served_and_the_worker_protocol_needs_one() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let server = ca.issue("server");
    let good = ca.issue("worker");
    let orchestrator = https_orchestrator(
        &server,
        &format!(
            "  clientCaFile: {}\n  clientAuth: optional\n",
            path(&ca.cert)
        ),
        &["--max-workers", "0"],
    );
    let ca_file = path(&ca.cert);
    let (status, _) = curl_status(&[
        "--cacert",
        &ca_file,
        &format!("{}/health", orchestrator.url),
    ])
    .expect("served without a certificate");
    assert_eq!(status, 200);
    let register = format!("{}/api/workers/register", orchestrator.url);
    let (status, body) = curl_status(&[
        "--cacert",
        &ca_file,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"worker_id":"w1"}"#,
        &register,
    ])
    .expect("answered");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("client_certificate_required"), "{body}");
    assert!(
        workers(&orchestrator, &ca.cert, None).is_empty(),
        "nothing registered"
    );

    let (status, body) = curl_status(&[
        "--cacert",
        &ca_file,
        "--cert",
        &path(&good.cert),
        "--key",
        &path(&good.key),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"worker_id":"w1"}"#,
        &register,
    ])
    .expect("answered");
    assert!((200..300).contains(&status), "{status} {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_orchestrator_and_a_worker_over_tls() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let server = ca.issue("server");
    let worker_cert = ca.issue("worker-metrics");
    let orchestrator = https_orchestrator(
        &server,
        &format!(
            "  caFile: {}\nmetrics:\n  bearerToken: s3cret\n",
            path(&ca.cert)
        ),
        &["--max-workers", "0"],
    );
    let config = orchestrator.dir.path().join("mimir.yaml");

    // An external worker serving its metrics over TLS.
    let worker_port = free_port();
    let _worker = Reaped(worker(
        &orchestrator,
        &[
            "--ca-cert",
            &path(&ca.cert),
            "--metrics-listen",
            &format!("127.0.0.1:{worker_port}"),
            "--tls-cert",
            &path(&worker_cert.cert),
            "--tls-key",
            &path(&worker_cert.key),
        ],
    ));
    let worker_metrics = format!("https://127.0.0.1:{worker_port}/metrics");
    let started = Instant::now();
    while curl_status(&["--cacert", &path(&ca.cert), &worker_metrics]).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "worker metrics never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // `metrics install` reads TLS from the config: an https job with the CA.
    let stack = tempfile::tempdir().expect("tempdir");
    let dir = stack.path().join("monitoring");
    let installed = harness::cli_in(
        stack.path(),
        &[
            "metrics",
            "install",
            "--dir",
            &path(&dir),
            "--config",
            &path(&config),
            "--orchestrator",
            &orchestrator.url,
            "--worker",
            &format!("127.0.0.1:{worker_port}"),
            "--worker-ca-cert",
            &path(&ca.cert),
            "--scrape-interval",
            "1s",
        ],
    );
    harness::stdout_ok(&installed);
    let prometheus_yml = std::fs::read_to_string(dir.join("prometheus.yml")).expect("config");
    assert!(
        prometheus_yml.contains("ca_file: \"tls/orchestrator-ca.pem\""),
        "{prometheus_yml}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("tls/orchestrator-ca.pem")).expect("CA copied"),
        std::fs::read_to_string(&ca.cert).expect("CA")
    );
    let tools = stack.path().join("bin");
    std::fs::create_dir_all(&tools).expect("mkdir");
    let prometheus_bin = which("prometheus");
    std::os::unix::fs::symlink(&prometheus_bin, tools.join("prometheus")).expect("symlink");
    let prometheus_port = free_port();
    let view = Command::new(bin())
        .args([
            "metrics",
            "view",
            "--dir",
            &path(&dir),
            "--prometheus-port",
            &prometheus_port.to_string(),
            "--grafana-port",
            &free_port().to_string(),
        ])
        .env("PATH", &tools)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run metrics view");
    let _view = Stopped(Some(view), path(&dir));

    // Both targets up, and samples of each.
    let prometheus = format!("http://127.0.0.1:{prometheus_port}");
    let started = Instant::now();
    loop {
        let targets = targets(&prometheus).await;
        let up: Vec<(String, String, String)> = targets
            .iter()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or_default().to_string(),
                    t["health"].as_str().unwrap_or_default().to_string(),
                    t["lastError"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let healthy = |job: &str| up.iter().any(|(j, h, _)| j == job && h == "up");
        if healthy("mimir-orchestrator") && healthy("mimir-workers") {
            assert!(
                targets.iter().all(|t| t["scrapeUrl"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("https://"))),
                "{targets:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "targets not up over TLS: {up:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prometheus's active targets.
async fn targets(prometheus: &str) -> Vec<Value> {
    let Ok(response) = reqwest::get(format!("{prometheus}/api/v1/targets")).await else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `metrics view`, stopped with SIGINT (so it stops Prometheus) when dropped.
struct Stopped(Option<Child>, String);

impl Drop for Stopped {
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
        for pid in harness::processes_mentioning(&self.1) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// A program on PATH.
fn which(program: &str) -> PathBuf {
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("sh");
    let found = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        !found.is_empty(),
        "{program} is not installed (./scripts/test installs it)"
    );
    PathBuf::from(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_loads_the_dashboard_over_https_with_the_test_certificate_trusted() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let server = ca.issue("server");
    let orchestrator = https_orchestrator(&server, "", &["--max-workers", "0"]);
    let browser = harness::browser::Browser::start_with(
        1280,
        800,
        &[format!(
            "--ignore-certificate-errors-spki-list={}",
            server.spki_sha256
        )],
    )
    .await;
    browser
        .client
        .goto(&format!("{}/", orchestrator.url))
        .await
        .expect("open the dashboard");
    // The page loaded over https and its live data arrived.
    let protocol = browser.eval("location.protocol").await;
    assert_eq!(protocol, json!("https:"));
    browser
        .until("document.getElementById('live').dataset.state === 'live'")
        .await;
    let data = browser
        .eval("fetch('/api/dashboard/overview').then(r => r.status)")
        .await;
    assert_eq!(data, json!(200));
    browser.screenshot("tls-overview").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.quit().await;
}

#[test]
fn serve_refuses_a_certificate_its_local_workers_would_not_trust() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "main");
    let other = Ca::new(pki.path(), "other");
    let server = ca.issue("server");
    let config = harness::config_file(
        pki.path(),
        &format!(
            "tls:\n  certFile: {}\n  keyFile: {}\n  caFile: {}\n",
            path(&server.cert),
            path(&server.key),
            path(&other.cert)
        ),
    );
    let output = harness::cli_in(
        pki.path(),
        &[
            "serve",
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "data",
            "--max-workers",
            "1",
        ],
    );
    let stderr = harness::stderr_failed(&output);
    assert!(
        stderr.contains("tls.caFile") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
}
