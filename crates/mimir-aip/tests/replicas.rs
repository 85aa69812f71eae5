//! Several orchestrator replicas on one PostgreSQL database (this machine's
//! real server, a fresh schema per test) behind a TCP load balancer, with
//! real worker processes that reach whichever replica the balancer picks.

mod harness;

use harness::Orchestrator;
use harness::balancer::Balancer;
use harness::executions::Executions;
use harness::pipelines::one_step;
use harness::postgres::Schema;
use reqwest::Method;
use serde_json::{Value, json};
use std::process::Child;
use std::time::{Duration, Instant};

/// Fast retries keep the run quick. The lease outlasts a replica's death
/// with room to spare (a worker moves to another replica within a second
/// or two, on a loaded machine): a lease that runs out while its worker
/// still runs the task is the one way a task may run twice.
const REPLICA: &str =
    "retry:\n  backoffBaseMs: 50\n  backoffCapMs: 200\norchestrator:\n  leaseTtlMs: 10000\n";

/// A worker process reaching the replicas through `url`.
struct Worker(Child);

impl Worker {
    fn start(url: &str, id: &str) -> Worker {
        Worker(harness::start_worker(url, id, &["--concurrency", "16"]))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` replicas on `schema`, with no local workers.
fn replicas(schema: &Schema, n: usize) -> Vec<Orchestrator> {
    (0..n)
        .map(|_| Orchestrator::start_replica(schema, REPLICA, &["--max-workers", "0"]))
        .collect()
}

/// Whether the replica at `url` says it leads (`/ready`'s `checks.leader`).
async fn leads(url: &str) -> bool {
    let Ok(answer) = reqwest::get(format!("{url}/ready")).await else {
        return false;
    };
    let body: Value = answer.json().await.unwrap_or_default();
    body["checks"]["leader"] == true
}

/// The index of the replica that leads, waiting up to `within`.
async fn leader(replicas: &[Orchestrator], alive: &[bool], within: Duration) -> usize {
    let started = Instant::now();
    loop {
        for (i, replica) in replicas.iter().enumerate() {
            if alive[i] && leads(&replica.url).await {
                return i;
            }
        }
        assert!(
            started.elapsed() < within,
            "no replica leads after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Submits `tasks` executions of `pipeline` through `client`, 500 a
/// request, task `n` calling `{base}/run/{n}`.
async fn submit(client: &mimir_client::Client, pipeline: &str, base: &str, tasks: u32) {
    for batch in 0..tasks.div_ceil(500) {
        let batch: Vec<Value> = (batch * 500..((batch + 1) * 500).min(tasks))
            .map(|n| json!({"type": "pipeline_execution", "project_id": "replicas",
                            "task_spec": {"pipeline_id": pipeline, "parameters": {"url": format!("{base}/run/{n}")}}}))
            .collect();
        client.submit_batch(&batch).await.expect("batch");
    }
}

/// Waits until the database holds `tasks` completed tasks.
async fn all_completed(schema: &Schema, tasks: u64, within: Duration) {
    let started = Instant::now();
    loop {
        let completed = schema.count_status("completed");
        if completed == tasks {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{completed} of {tasks} completed after {within:?}; the others:\n{}",
            schema.unfinished()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every task ran exactly once, counted outside the orchestrators.
fn ran_exactly_once(schema: &Schema, executions: &Executions, tasks: u32) {
    let counts = executions.counts();
    let missing: Vec<u32> = (0..tasks).filter(|n| !counts.contains_key(n)).collect();
    assert!(missing.is_empty(), "tasks never run: {missing:?}");
    let repeated: Vec<(u32, u32)> = counts.into_iter().filter(|(_, runs)| *runs > 1).collect();
    // Their attempt histories, to tell why.
    let histories: Vec<String> = repeated
        .iter()
        .take(5)
        .map(|(n, _)| {
            harness::postgres::psql(&format!(
                "SELECT attempt, retry_count, attempts FROM {}.worktasks \
                 WHERE task_spec LIKE '%/run/{n}\"%'",
                schema.name
            ))
        })
        .collect();
    assert!(
        repeated.is_empty(),
        "tasks run more than once: {repeated:?}\n{}",
        histories.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_tasks_through_three_replicas_run_exactly_once_though_the_leader_then_a_follower_is_killed()
 {
    const TASKS: u32 = 10_000;
    let executions = Executions::default();
    let base = executions.serve().await;
    let schema = Schema::new();
    let mut replicas = replicas(&schema, 3);
    let mut alive = vec![true; 3];
    let balancer = Balancer::start(replicas.iter().map(|r| r.port).collect()).await;
    let client = mimir_client::Client::new(&balancer.url);
    let pipeline = one_step(
        &client,
        "call",
        "http.request",
        json!({"method": "POST", "url": "$.params.url", "fail_on_status": true}),
    )
    .await;
    let _workers: Vec<Worker> = (0..3)
        .map(|i| Worker::start(&balancer.url, &format!("replicas-{i}")))
        .collect();
    submit(&client, &pipeline, &base, TASKS).await;

    // Some work done, then the leader dies.
    let started = Instant::now();
    while schema.count_status("completed") < 2_000 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = leader(&replicas, &alive, Duration::from_secs(10)).await;
    replicas[first].kill9();
    alive[first] = false;
    let killed = Instant::now();
    let next = leader(&replicas, &alive, Duration::from_secs(15)).await;
    let failover = killed.elapsed();
    assert_ne!(next, first);
    eprintln!("leadership moved from replica {first} to {next} in {failover:?} after kill -9");

    // Later a follower dies too; the last replica carries on alone.
    while schema.count_status("completed") < 6_000 {
        assert!(started.elapsed() < Duration::from_secs(240), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let follower = (0..3).find(|&i| alive[i] && i != next).expect("a follower");
    replicas[follower].kill9();
    alive[follower] = false;

    all_completed(&schema, u64::from(TASKS), Duration::from_secs(300)).await;
    ran_exactly_once(&schema, &executions, TASKS);
    assert_eq!(schema.count_status("failed"), 0);

    // Every live replica agrees with the database.
    for (i, replica) in replicas.iter().enumerate().filter(|(i, _)| alive[*i]) {
        let summary: Value = replica
            .client()
            .call(Method::GET, "/api/metrics", None)
            .await
            .expect("summary");
        assert_eq!(
            summary["tasks_by_status"]["completed"],
            u64::from(TASKS),
            "replica {i}: {summary}"
        );
        assert_eq!(summary["queue"]["length"], 0, "replica {i}: {summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_another_takes_over_when_it_stops() {
    let schema = Schema::new();
    let mut replicas = replicas(&schema, 2);
    let alive = [true, true];
    let first = leader(&replicas, &alive, Duration::from_secs(10)).await;
    let other = 1 - first;
    assert!(!leads(&replicas[other].url).await, "two leaders at once");
    // A clean stop resigns: the other takes over without waiting out the lease.
    let stopped = Instant::now();
    assert!(replicas[first].terminate().success());
    let now_leads = leader(
        &replicas,
        &[first != 0, first != 1],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(now_leads, other);
    eprintln!(
        "leadership moved after a clean stop in {:?}",
        stopped.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_reaches_a_replica_other_than_the_one_that_leased() {
    let schema = Schema::new();
    let replicas = replicas(&schema, 2);
    let (a, b) = (replicas[0].client(), replicas[1].client());
    let pipeline = harness::pipelines::noop(&a).await;
    let task: Value = a
        .call(
            Method::POST,
            "/api/worktasks",
            Some(
                &json!({"type": "pipeline_execution", "project_id": "replicas",
                         "task_spec": {"pipeline_id": pipeline}}),
            ),
        )
        .await
        .expect("submit");
    let id = task["worktask_id"].as_str().expect("id").to_string();
    let register = json!({"worker_id": "hand", "types": ["pipeline_execution"]});
    for client in [&a, &b] {
        let _: Value = client
            .call(Method::POST, "/api/workers/register", Some(&register))
            .await
            .expect("register");
    }
    let leased: Value = a
        .call(
            Method::POST,
            "/api/workers/hand/lease",
            Some(&json!({"max": 1, "wait_ms": 2000})),
        )
        .await
        .expect("lease");
    assert_eq!(leased["worktasks"][0]["worktask_id"], id.as_str());
    let attempt = leased["worktasks"][0]["attempt"].as_u64().expect("attempt");
    // The heartbeat and the result go to the other replica.
    let beat: Value = b
        .call(
            Method::POST,
            "/api/workers/hand/heartbeat",
            Some(&json!({"tasks": [{"worktask_id": id, "attempt": attempt}]})),
        )
        .await
        .expect("heartbeat");
    assert_eq!(beat["lost"], json!([]), "{beat}");
    let stranger: Result<Value, _> = b
        .call(
            Method::POST,
            &format!("/api/worktasks/{id}"),
            Some(&json!({"worktask_id": id, "status": "completed", "worker_id": "someone-else", "attempt": attempt})),
        )
        .await;
    assert!(
        matches!(&stranger, Err(mimir_client::ClientError::Api { code, .. }) if code == "not_lease_holder"),
        "a worker without the lease is refused: {stranger:?}"
    );
    let _: Value = b
        .call(
            Method::POST,
            &format!("/api/worktasks/{id}"),
            Some(&json!({"worktask_id": id, "status": "completed", "worker_id": "hand", "attempt": attempt})),
        )
        .await
        .expect("result through the other replica");
    let done: Value = a
        .call(Method::GET, &format!("/api/worktasks/{id}"), None)
        .await
        .expect("get");
    assert_eq!(done["status"], "completed", "{done}");
}
