//! The Kubernetes backend's figures, against the stand-in API server
//! (`mimir-kube-standin`: a stand-in for tests that speaks the real
//! Kubernetes REST and watch protocol; no real cluster runs here).
//!
//! `cargo bench -p mimir-aip --bench kubernetes` runs three scenarios on the
//! release binary and prints their figures:
//! - Job creation throughput: 5,000 tasks submitted in one batch, Jobs
//!   created per second (pods are not run);
//! - latency at light load: one task at a time, from the task's
//!   `submitted_at` to its Job's creation in the API server, p50/p99;
//! - caps and overflow: 1,000 tasks of 2 s, a primary cluster of `maxWorkers` 50 and
//!   an additional one of 30, each pod a real `mimir-aip worker` process:
//!   the most Jobs each cluster ran at once, how many Jobs the additional
//!   cluster got while the primary had room (sampled), and whether every
//!   task completed once;
//! - a pool against a Job per task: 2,000 short tasks, `maxWorkers` 20, real
//!   worker processes, run once with a Job per task and once with
//!   `poolTypes: [pipeline_execution]`: tasks per second and Jobs created.
//!
//! Set `MIMIR_BENCH_K8S_TASKS` to change the throughput scenario's size and
//! `MIMIR_BENCH_K8S_TASK_MS` the caps scenario's task length (2,000 ms).

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::{Orchestrator, bin, free_port};
use mimir_kube_standin::{StandIn, StandInConfig, WorkerProgram};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

fn orchestrator(dir: &Path, clusters: &[(&StandIn, &str, u32)]) -> Orchestrator {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (primary, _, max) = clusters[0];
    let primary_path = dir.join("primary.kubeconfig");
    primary
        .write_kubeconfig(&primary_path, "jobs")
        .expect("kubeconfig");
    let mut yaml = format!(
        "logLevel: warn\norchestrator:\n  workerBackend: kubernetes\n  kubeconfig: {}\n  workerNamespace: jobs\n  maxWorkers: {max}\n  kubernetes:\n    orchestratorURL: {url}\n",
        primary_path.display()
    );
    if clusters.len() > 1 {
        yaml.push_str("  additionalClusters:\n");
        for (standin, name, max) in &clusters[1..] {
            let path = dir.join(format!("{name}.kubeconfig"));
            standin.write_kubeconfig(&path, "jobs").expect("kubeconfig");
            yaml.push_str(&format!(
                "    - {{name: {name}, kubeconfig: {}, namespace: jobs, orchestratorURL: \"{url}\", maxWorkers: {max}}}\n",
                path.display()
            ));
        }
    }
    Orchestrator::start_on(port, &yaml, &[])
}

async fn pipeline(orchestrator: &Orchestrator, action: &str, parameters: Value) -> String {
    let (plugin, action) = action.split_once('.').expect("plugin.action");
    let body = json!({"project_id": "bench", "name": "bench", "type": "processing",
        "steps": [{"name": "s", "plugin": plugin, "action": action, "parameters": parameters}]});
    let created: Value = orchestrator
        .client()
        .call(Method::POST, "/api/pipelines", Some(&body))
        .await
        .expect("pipeline");
    created["id"].as_str().expect("id").to_string()
}

async fn submit_batch(orchestrator: &Orchestrator, pipeline: &str, n: usize) -> Vec<Value> {
    let mut tasks = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let worktasks: Vec<Value> = chunk
            .iter()
            .map(|_| json!({"type": "pipeline_execution", "project_id": "bench", "task_spec": {"pipeline_id": pipeline}}))
            .collect();
        let answer: Value = orchestrator
            .client()
            .call(
                Method::POST,
                "/api/worktasks/batch",
                Some(&json!({ "worktasks": worktasks })),
            )
            .await
            .expect("batch");
        tasks.extend(answer["worktasks"].as_array().expect("worktasks").clone());
    }
    tasks
}

/// Waits until `n` tasks have completed or failed, at most 15 minutes from
/// `started`.
async fn all_ended(orchestrator: &Orchestrator, n: usize, started: Instant) {
    let client = orchestrator.client();
    loop {
        let counts: Value = client
            .call(Method::GET, "/api/metrics", None)
            .await
            .expect("metrics");
        let done = counts["tasks_by_status"]["completed"].as_u64().unwrap_or(0)
            + counts["tasks_by_status"]["failed"].as_u64().unwrap_or(0);
        if done as usize >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "not done: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn throughput(n: usize) {
    let standin = StandIn::start(StandInConfig::default())
        .await
        .expect("stand-in");
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(dir.path(), &[(&standin, "primary", 1_000_000)]);
    let pipeline = pipeline(&orchestrator, "core.log", json!({"message": "x"})).await;
    let started = Instant::now();
    submit_batch(&orchestrator, &pipeline, n).await;
    let submitted = started.elapsed();
    while (standin.stats().jobs_created as usize) < n {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "Jobs missing: {:?}",
            standin.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = started.elapsed();
    let mut created: Vec<SystemTime> = standin.jobs().iter().map(|j| j.created_at).collect();
    created.sort();
    let span = created[created.len() - 1]
        .duration_since(created[0])
        .unwrap_or_default();
    println!(
        "throughput: {n} tasks (batch submit {:.2} s); all Jobs created {:.2} s after the submit began: {:.0} Jobs/s overall, {:.0} Jobs/s between the first and last create",
        submitted.as_secs_f64(),
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        n as f64 / span.as_secs_f64().max(1e-9),
    );
    drop(orchestrator);
    standin.shutdown().await;
}

async fn latency(n: usize) {
    let standin = StandIn::start(StandInConfig::default())
        .await
        .expect("stand-in");
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(dir.path(), &[(&standin, "primary", 1_000_000)]);
    let pipeline = pipeline(&orchestrator, "core.log", json!({"message": "x"})).await;
    let client = orchestrator.client();
    let mut millis = Vec::with_capacity(n);
    for _ in 0..n {
        let task: Value = client
            .call(
                Method::POST,
                "/api/worktasks",
                Some(&json!({"type": "pipeline_execution", "project_id": "bench", "task_spec": {"pipeline_id": pipeline}})),
            )
            .await
            .expect("submit");
        let id = task["worktask_id"].as_str().expect("id").to_string();
        let submitted: chrono::DateTime<chrono::Utc> = task["submitted_at"]
            .as_str()
            .expect("submitted_at")
            .parse()
            .expect("time");
        let created = loop {
            if let Some(job) = standin
                .jobs()
                .into_iter()
                .find(|j| j.labels.get("worktask-id") == Some(&id))
            {
                break job.created_at;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        let created: chrono::DateTime<chrono::Utc> = created.into();
        millis.push((created - submitted).num_microseconds().unwrap_or_default() as f64 / 1000.0);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    millis.sort_by(f64::total_cmp);
    println!(
        "latency: {n} tasks one at a time, queued -> Job created: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&millis, 0.5),
        percentile(&millis, 0.99),
        millis[millis.len() - 1]
    );
    drop(orchestrator);
    standin.shutdown().await;
}

async fn caps_and_overflow(n: usize, task_ms: u64) {
    let worker = || StandInConfig {
        worker: Some(WorkerProgram {
            program: bin().into(),
            args: vec!["worker".into(), "--log-level".into(), "error".into()],
            env: Vec::new(),
        }),
        ..StandInConfig::default()
    };
    let primary = StandIn::start(worker()).await.expect("stand-in");
    let site_b = StandIn::start(worker()).await.expect("stand-in");
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(
        dir.path(),
        &[(&primary, "primary", 50), (&site_b, "site-b", 30)],
    );
    let pipeline = pipeline(&orchestrator, "core.sleep", json!({ "ms": task_ms })).await;
    let started = Instant::now();
    let tasks = submit_batch(&orchestrator, &pipeline, n).await;
    let ids: Vec<String> = tasks
        .iter()
        .map(|t| t["worktask_id"].as_str().expect("id").to_string())
        .collect();
    let client = orchestrator.client();
    all_ended(&orchestrator, n, started).await;
    let wall = started.elapsed();
    let mut once = 0;
    for id in &ids {
        let task = client.get(id.parse().expect("uuid")).await.expect("get");
        if task.status == mimir_core::WorkTaskStatus::Completed && task.attempt == 1 {
            once += 1;
        }
    }
    // Overflow against the stand-in's own clock: how many Jobs the primary
    // ran at each instant site-b got one.
    let spans: Vec<(SystemTime, Option<SystemTime>)> = primary
        .jobs()
        .iter()
        .map(|j| (j.created_at, j.finished_at))
        .collect();
    let active_at = |t: SystemTime| {
        spans
            .iter()
            .filter(|(created, finished)| *created <= t && finished.is_none_or(|f| f > t))
            .count()
    };
    let (mut while_full, mut slot_free, mut free_long) = (0, 0, 0);
    for job in site_b.jobs() {
        let t = job.created_at;
        if active_at(t) >= 50 {
            while_full += 1;
        } else {
            slot_free += 1;
            let earlier = t.checked_sub(Duration::from_millis(25)).unwrap_or(t);
            if active_at(earlier) < 50 {
                free_long += 1;
            }
        }
    }
    let (p, b) = (primary.stats(), site_b.stats());
    println!(
        "caps: {n} tasks of {task_ms} ms, primary maxWorkers 50, site-b 30, real worker processes: done in {:.1} s; most Jobs at once: primary {} (cap 50), site-b {} (cap 30); Jobs created: primary {}, site-b {}, total {}; site-b Jobs created while the primary ran 50: {while_full}, while a primary Job had just ended (not yet seen by the watch): {slot_free}, of which the slot had been free 25 ms or more: {free_long}; completed once: {once}/{n}",
        wall.as_secs_f64(),
        p.max_active,
        b.max_active,
        p.jobs_created,
        b.jobs_created,
        p.jobs_created + b.jobs_created,
    );
    drop(orchestrator);
    primary.shutdown().await;
    site_b.shutdown().await;
}

/// Runs `n` short tasks on real worker processes in one cluster of
/// `maxWorkers` 20, with a Job per task or on the pool; returns tasks/s and
/// the Jobs created.
async fn short_tasks(n: usize, pool: bool) -> (f64, u64) {
    let standin = StandIn::start(StandInConfig {
        worker: Some(WorkerProgram {
            program: bin().into(),
            args: vec!["worker".into(), "--log-level".into(), "error".into()],
            env: Vec::new(),
        }),
        ..StandInConfig::default()
    })
    .await
    .expect("stand-in");
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = if pool {
        orchestrator_pool(dir.path(), &standin)
    } else {
        orchestrator(dir.path(), &[(&standin, "primary", 20)])
    };
    let pipeline = pipeline(&orchestrator, "core.log", json!({"message": "x"})).await;
    let started = Instant::now();
    submit_batch(&orchestrator, &pipeline, n).await;
    all_ended(&orchestrator, n, started).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let created = standin.stats().jobs_created;
    drop(orchestrator);
    standin.shutdown().await;
    (rate, created)
}

/// An orchestrator running `pipeline_execution` tasks on a pool of at most
/// 20 worker Jobs in `standin`, one per 50 waiting tasks.
fn orchestrator_pool(dir: &Path, standin: &StandIn) -> Orchestrator {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let path = dir.join("primary.kubeconfig");
    standin.write_kubeconfig(&path, "jobs").expect("kubeconfig");
    let yaml = format!(
        "logLevel: warn\norchestrator:\n  workerBackend: kubernetes\n  kubeconfig: {}\n  workerNamespace: jobs\n  maxWorkers: 20\n  minWorkers: 0\n  queueThreshold: 50\n  kubernetes:\n    poolTypes: [pipeline_execution]\n    orchestratorURL: {url}\n",
        path.display()
    );
    Orchestrator::start_on(port, &yaml, &[])
}

fn main() {
    // `cargo bench` passes `--bench`; a filter, if given, picks scenarios.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let n = std::env::var("MIMIR_BENCH_K8S_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if wants("throughput") {
            throughput(n).await;
        }
        if wants("latency") {
            latency(200).await;
        }
        if wants("caps") {
            // 80 real worker processes starting every 200 ms would need more
            // than this machine's 2 cores; 2 s tasks keep it under load, not
            // starved.
            let task_ms = std::env::var("MIMIR_BENCH_K8S_TASK_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2_000);
            caps_and_overflow(1_000, task_ms).await;
        }
        if wants("pool") {
            let n = 2_000;
            let (per_task, per_task_jobs) = short_tasks(n, false).await;
            let (pooled, pool_jobs) = short_tasks(n, true).await;
            println!(
                "pool: {n} core.log tasks, maxWorkers 20, real worker processes: a Job per task {per_task:.0} tasks/s ({per_task_jobs} Jobs); a pool {pooled:.0} tasks/s ({pool_jobs} Jobs)"
            );
        }
    });
}
