//! PostgreSQL going away under running orchestrators: `/ready` says so,
//! replicas and workers carry on by themselves once it is back, and no
//! acknowledged task is lost or run twice.
//!
//! This stops and starts this machine's real PostgreSQL server
//! (`pg_ctlcluster`), so it is a test binary of its own: cargo runs test
//! binaries one after another, so no other test loses its database.

mod harness;

use harness::Orchestrator;
use harness::balancer::Balancer;
use harness::executions::Executions;
use harness::pipelines::one_step;
use harness::postgres::Schema;
use serde_json::{Value, json};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The local PostgreSQL cluster as `pg_ctlcluster` names it: (version, name).
fn cluster() -> (String, String) {
    let output = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("pg_lsclusters (Debian's postgresql-common) lists the local cluster");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("5432"))
        .unwrap_or_else(|| panic!("no PostgreSQL cluster on port 5432: {text}"));
    let mut fields = line.split_whitespace();
    (
        fields.next().expect("version").to_string(),
        fields.next().expect("name").to_string(),
    )
}

/// `pg_ctlcluster VERSION NAME action`, waiting for it.
fn pg_ctl(action: &str) {
    let (version, name) = cluster();
    let status = Command::new("pg_ctlcluster")
        .args([&version, &name, action])
        .status()
        .expect("run pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed: {status}");
}

/// Starts PostgreSQL again if the test stops with it down.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let (version, name) = cluster();
        let _ = Command::new("pg_ctlcluster")
            .args([&version, &name, "start"])
            .status();
    }
}

/// `/ready`'s status code and body.
async fn ready(url: &str) -> (u16, Value) {
    match reqwest::get(format!("{url}/ready")).await {
        Ok(answer) => (
            answer.status().as_u16(),
            answer.json().await.unwrap_or_default(),
        ),
        Err(_) => (0, Value::Null),
    }
}

/// Polls `/ready` until it answers `status`.
async fn ready_becomes(url: &str, status: u16, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (code, body) = ready(url).await;
        if code == status {
            return body;
        }
        assert!(
            started.elapsed() < within,
            "/ready still {code} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn worker(url: &str, id: &str) -> Child {
    harness::start_worker(url, id, &["--concurrency", "8"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_mid_run_loses_no_task_and_ready_reports_the_outage() {
    const TASKS: u32 = 2_000;
    let executions = Executions::default();
    let base = executions.serve().await;
    let schema = Schema::new();
    let config = "retry:\n  backoffBaseMs: 50\n  backoffCapMs: 200\norchestrator:\n  leaseTtlMs: 5000\nstore:\n  connectTimeoutMs: 1000\n";
    let replicas: Vec<Orchestrator> = (0..2)
        .map(|_| Orchestrator::start_replica(&schema, config, &["--max-workers", "0"]))
        .collect();
    let balancer = Balancer::start(replicas.iter().map(|r| r.port).collect()).await;
    let client = mimir_client::Client::new(&balancer.url);
    let pipeline = one_step(
        &client,
        "call",
        "http.request",
        json!({"method": "POST", "url": "$.params.url", "fail_on_status": true}),
    )
    .await;
    let mut workers: Vec<Child> = (0..2)
        .map(|i| worker(&balancer.url, &format!("outage-{i}")))
        .collect();
    for batch in 0..TASKS / 500 {
        let batch: Vec<Value> = (batch * 500..(batch + 1) * 500)
            .map(|n| json!({"type": "pipeline_execution", "project_id": "outage",
                            "task_spec": {"pipeline_id": pipeline, "parameters": {"url": format!("{base}/run/{n}")}}}))
            .collect();
        client.submit_batch(&batch).await.expect("batch");
    }
    let started = Instant::now();
    while executions.counts().len() < 300 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let restore = Restore;
    pg_ctl("stop");
    let down = ready_becomes(&replicas[0].url, 503, Duration::from_secs(15)).await;
    assert_eq!(down["checks"]["store"], "failing", "{down}");
    assert!(
        down["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("store"),
        "{down}"
    );
    pg_ctl("start");
    drop(restore);
    for replica in &replicas {
        ready_becomes(&replica.url, 200, Duration::from_secs(30)).await;
    }

    let started = Instant::now();
    while schema.count_status("completed") < u64::from(TASKS) {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{} of {TASKS} completed",
            schema.count_status("completed")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let counts = executions.counts();
    let missing: Vec<u32> = (0..TASKS).filter(|n| !counts.contains_key(n)).collect();
    assert!(missing.is_empty(), "tasks never run: {missing:?}");
    let repeated: Vec<(u32, u32)> = counts.into_iter().filter(|(_, runs)| *runs > 1).collect();
    assert!(
        repeated.is_empty(),
        "tasks run more than once: {repeated:?}"
    );
    for worker in &mut workers {
        assert!(
            worker.try_wait().expect("wait").is_none(),
            "a worker gave up during the outage"
        );
        let _ = worker.kill();
        let _ = worker.wait();
    }
}
