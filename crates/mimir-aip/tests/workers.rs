//! Work actually runs: local pool, external workers, retries, crashes of
//! workers and of the orchestrator — all through the real binary.

mod harness;

use harness::executions::Executions;
use harness::pipelines::{create_pipeline, execute, one_step, wait_for_status, wait_until_done};
use harness::{Orchestrator, bin};
use mimir_core::WorkTaskStatus;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Fast retries and short leases keep these tests quick.
const FAST: &str =
    "retry:\n  backoffBaseMs: 50\n  backoffCapMs: 200\norchestrator:\n  leaseTtlMs: 1500\n";

fn external_worker(orchestrator: &Orchestrator, id: &str) -> Child {
    harness::start_worker(&orchestrator.url, id, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_pool_runs_a_pipeline_end_to_end() {
    let orchestrator =
        Orchestrator::start_with_config(FAST, &["--max-workers", "2", "--min-workers", "1"]);
    let client = orchestrator.client();
    let steps = json!([
        {"name": "say", "plugin": "core", "action": "log", "parameters": {"message": "$.params.greeting"}},
        {"name": "write", "plugin": "file", "action": "write",
         "parameters": {"path": "$.params.path", "format": "json", "data": {"greeting": "$.params.greeting"}}},
        {"name": "read", "plugin": "file", "action": "read", "parameters": {"path": "$.params.path"}, "output": {"doc": "$.result"}},
        {"name": "shout", "plugin": "transform", "action": "jq", "parameters": {"program": ".data.greeting | ascii_upcase", "input": "$.read.doc"}}
    ]);
    let pipeline = create_pipeline(&client, steps).await;
    // A relative path lands in the default file root, `files/` under the
    // data directory, which `serve` made.
    let task = execute(
        &client,
        &pipeline,
        json!({"greeting": "hello", "path": "out/greeting.json"}),
    )
    .await;
    let path = orchestrator.dir.path().join("data/files/out/greeting.json");
    let done = wait_until_done(&client, task.worktask_id, Duration::from_secs(60)).await;
    assert_eq!(done.status, WorkTaskStatus::Completed, "{done:?}");
    let result = done.result.expect("a result");
    let steps: Vec<&str> = result["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert_eq!(steps, ["completed"; 4]);
    assert_eq!(result["context"]["shout"], "HELLO");
    assert!(path.exists());
    let workers: Value = client
        .call(Method::GET, "/api/workers", None)
        .await
        .expect("workers");
    let done_by_workers: u64 = workers["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["tasks_completed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(done_by_workers, 1);
    assert!(workers["workers"][0]["last_heartbeat_age_ms"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_read_of_proc_self_environ_is_refused_by_local_workers() {
    // The worker token is in every local worker's environment.
    let config = format!("{FAST}  workerAuthToken: w0rker-t0ken\napi:\n  token: api-t0ken\n");
    let orchestrator = Orchestrator::start_with_config(&config, &["--max-workers", "1"]);
    let client = orchestrator
        .client()
        .with_token(Some("api-t0ken".to_string()));
    let steps = json!([
        {"name": "peek", "plugin": "file", "action": "read",
         "parameters": {"path": "$.params.path", "format": "text"}}
    ]);
    let pipeline = create_pipeline(&client, steps).await;
    for path in [
        "/proc/self/environ",
        "../../../../../../../../proc/self/environ",
    ] {
        let task = execute(&client, &pipeline, json!({"path": path})).await;
        let done = wait_until_done(&client, task.worktask_id, Duration::from_secs(60)).await;
        assert_eq!(done.status, WorkTaskStatus::Failed, "{done:?}");
        let roots = orchestrator.dir.path().join("data/files");
        let expected = format!(
            "path \"{path}\" is outside the file roots ({})",
            std::path::absolute(&roots).expect("absolute").display()
        );
        assert!(
            done.error_message.contains(&expected),
            "{}",
            done.error_message
        );
        let everything = serde_json::to_string(&done).expect("task JSON");
        assert!(!everything.contains("t0ken"), "{everything}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_confinement_settings_reach_local_workers() {
    let config = format!(
        "{FAST}pipelines:\n  fileRoots: [shared]\n  http:\n    deny: [127.0.0.0/8, '::1']\n"
    );
    let orchestrator = Orchestrator::start_with_config(&config, &["--max-workers", "1"]);
    let client = orchestrator.client();
    let shared = orchestrator.dir.path().join("shared");
    assert!(shared.is_dir(), "serve creates the configured root");
    let steps = json!([
        {"name": "save", "plugin": "file", "action": "write",
         "parameters": {"path": "note.txt", "format": "text", "data": "kept"}},
        {"name": "call", "plugin": "http", "action": "request",
         "parameters": {"url": "$.params.url", "timeout_ms": 2000}}
    ]);
    let pipeline = create_pipeline(&client, steps).await;
    let url = format!("{}/health", orchestrator.url);
    let task = execute(&client, &pipeline, json!({"url": url})).await;
    let done = wait_until_done(&client, task.worktask_id, Duration::from_secs(60)).await;
    assert_eq!(done.status, WorkTaskStatus::Failed, "{done:?}");
    assert_eq!(
        std::fs::read_to_string(shared.join("note.txt")).expect("written in the configured root"),
        "kept"
    );
    assert!(
        done.error_message
            .contains("refused: 127.0.0.1 is denied by \"127.0.0.0/8\""),
        "{}",
        done.error_message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_fails_twice_completes_on_the_third_attempt() {
    let orchestrator = Orchestrator::start_with_config(FAST, &["--max-workers", "1"]);
    let client = orchestrator.client();
    let steps = json!([{"name": "flaky", "plugin": "core", "action": "fail", "parameters": {"message": "not yet", "times": 2}}]);
    let pipeline = create_pipeline(&client, steps).await;
    let task = execute(&client, &pipeline, json!({})).await;
    let done = wait_until_done(&client, task.worktask_id, Duration::from_secs(60)).await;
    assert_eq!(
        (done.status, done.retry_count),
        (WorkTaskStatus::Completed, 2),
        "{done:?}"
    );
    assert!(
        done.retry_reason.contains("not yet"),
        "{}",
        done.retry_reason
    );
    assert_eq!(done.attempt, 3);

    let always = one_step(&client, "broken", "core.fail", json!({"message": "nope"})).await;
    let task = execute(&client, &always, json!({})).await;
    let failed = wait_until_done(&client, task.worktask_id, Duration::from_secs(60)).await;
    assert_eq!(
        (failed.status, failed.retry_count),
        (WorkTaskStatus::Failed, 3)
    );
    assert!(
        failed.error_message.contains("broken"),
        "names the failing step: {}",
        failed.error_message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_mid_task_retries_the_task_once() {
    let orchestrator = Orchestrator::start_with_config(FAST, &["--max-workers", "0"]);
    let client = orchestrator.client();
    let pipeline = one_step(&client, "nap", "core.sleep", json!({"ms": 1500})).await;
    let task = execute(&client, &pipeline, json!({})).await;
    let mut doomed = external_worker(&orchestrator, "doomed");
    wait_for_status(&client, task.worktask_id, WorkTaskStatus::Executing).await;
    doomed.kill().expect("kill -9");
    doomed.wait().expect("reap");
    let mut survivor = external_worker(&orchestrator, "survivor");
    let done = wait_until_done(&client, task.worktask_id, Duration::from_secs(60)).await;
    survivor.kill().expect("kill");
    let _ = survivor.wait();
    assert_eq!(
        (done.status, done.retry_count, done.worker_id.as_str()),
        (WorkTaskStatus::Completed, 1, "survivor"),
        "{done:?}"
    );
    assert!(
        done.retry_reason.contains("doomed"),
        "{}",
        done.retry_reason
    );
    // Two attempts and no more: the killed one, then the one that completed.
    let attempts: Value = client
        .call(
            Method::GET,
            &format!("/api/worktasks/{}/attempts", task.worktask_id),
            None,
        )
        .await
        .expect("attempts");
    let ended: Vec<(&str, &str)> = attempts["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (
                a["worker_id"].as_str().unwrap_or_default(),
                a["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        ended,
        [("doomed", "lease_expired"), ("survivor", "completed")],
        "{attempts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_running_task_stops_on_its_worker() {
    let orchestrator = Orchestrator::start_with_config(FAST, &["--max-workers", "1"]);
    let client = orchestrator.client();
    let pipeline = one_step(&client, "long", "core.sleep", json!({"ms": 60000})).await;
    let task = execute(&client, &pipeline, json!({})).await;
    wait_for_status(&client, task.worktask_id, WorkTaskStatus::Executing).await;
    let cancelled = client.cancel(task.worktask_id).await.expect("cancel");
    assert_eq!(cancelled.status, WorkTaskStatus::Cancelled);
    // The worker hears of it on its next heartbeat and is free for new work.
    let quick = one_step(&client, "hi", "core.log", json!({"message": "hi"})).await;
    let next = execute(&client, &quick, json!({})).await;
    let done = wait_until_done(&client, next.worktask_id, Duration::from_secs(30)).await;
    assert_eq!(done.status, WorkTaskStatus::Completed);
    assert_eq!(
        client.get(task.worktask_id).await.expect("get").status,
        WorkTaskStatus::Cancelled
    );
}

/// The ids of every completed task, read page by page.
async fn completed_ids(client: &mimir_client::Client) -> HashSet<Uuid> {
    let mut ids = HashSet::new();
    let mut cursor = String::new();
    loop {
        let page: Value = client
            .call(
                Method::GET,
                &format!("/api/worktasks?status=completed&limit=1000&cursor={cursor}"),
                None,
            )
            .await
            .expect("list completed");
        for task in page["worktasks"].as_array().expect("worktasks") {
            ids.insert(
                task["worktask_id"]
                    .as_str()
                    .expect("id")
                    .parse()
                    .expect("uuid"),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_the_orchestrator_with_2000_tasks_and_every_task_completes_once() {
    const TASKS: u32 = 2000;
    let executions = Executions::default();
    let base = executions.serve().await;
    let mut orchestrator =
        Orchestrator::start_with_config(FAST, &["--max-workers", "2", "--min-workers", "2"]);
    let client = orchestrator.client();
    let pipeline = one_step(
        &client,
        "call",
        "http.request",
        json!({"method": "POST", "url": "$.params.url", "fail_on_status": true}),
    )
    .await;
    let mut ids = Vec::new();
    for batch in 0..TASKS / 100 {
        let batch: Vec<Value> = (batch * 100..(batch + 1) * 100)
            .map(|n| json!({"type": "pipeline_execution", "project_id": "crash",
                            "task_spec": {"pipeline_id": pipeline, "parameters": {"url": format!("{base}/run/{n}")}}}))
            .collect();
        ids.extend(
            client
                .submit_batch(&batch)
                .await
                .expect("batch")
                .into_iter()
                .map(|t| t.worktask_id),
        );
    }
    // Let some finish, then crash in the middle of the work.
    let started = Instant::now();
    loop {
        let summary: Value = client
            .call(Method::GET, "/api/metrics", None)
            .await
            .expect("summary");
        if summary["tasks_by_status"]["completed"]
            .as_u64()
            .unwrap_or(0)
            >= 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress: {summary}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What the store has already completed must never run again; what it has
    // not may have been leased in the commit the crash cut short, which the
    // worker runs while the store puts it back in the queue.
    let completed_before = completed_ids(&client).await;
    orchestrator.kill9();
    let ran_before_the_crash = executions.counts().len();
    orchestrator.restart();
    let client = orchestrator.client();
    let started = Instant::now();
    loop {
        let summary: Value = client
            .call(Method::GET, "/api/metrics", None)
            .await
            .expect("summary");
        if summary["tasks_by_status"]["completed"].as_u64() == Some(u64::from(TASKS)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not all completed: {summary}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        let task = client.get(*id).await.expect("get");
        assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
        let attempts: Value = client
            .call(Method::GET, &format!("/api/worktasks/{id}/attempts"), None)
            .await
            .expect("attempts");
        // A lease that ran out while the orchestrator was down may add an
        // ended attempt; only one attempt completes.
        let completing = attempts["attempts"]
            .as_array()
            .expect("attempts")
            .iter()
            .filter(|a| a["outcome"] == "completed")
            .count();
        assert_eq!(completing, 1, "one attempt completed: {attempts}");
    }
    let summary: Value = client
        .call(Method::GET, "/api/metrics", None)
        .await
        .expect("summary");
    assert_eq!(summary["tasks_by_status"]["failed"], 0, "{summary}");
    assert_eq!(summary["queue"]["length"], 0);

    // Every task ran: a run lost in the crash shows as a missing count. A
    // task completed before the crash ran exactly once; only one whose lease
    // the crash lost may have run a second time, never more.
    let counts = executions.counts();
    let missing: Vec<u32> = (0..TASKS).filter(|n| !counts.contains_key(n)).collect();
    assert!(missing.is_empty(), "tasks never run: {missing:?}");
    let mut repeated = Vec::new();
    for (n, runs) in counts {
        let id = ids[n as usize];
        if completed_before.contains(&id) {
            assert_eq!(
                runs, 1,
                "task {n} ({id}) completed before the crash, then ran again"
            );
        } else {
            assert!(runs <= 2, "task {n} ({id}) ran {runs} times");
        }
        if runs > 1 {
            repeated.push(n);
        }
    }
    eprintln!(
        "executions: {TASKS} tasks, {} completed and {ran_before_the_crash} run before the crash, \
         {} run twice (leased in the commit the crash cut short): {repeated:?}",
        completed_before.len(),
        repeated.len()
    );
    assert!(
        completed_before.len() >= 200,
        "the crash came after 200 completions"
    );
    // The workers left by the killed orchestrator came back to the new one.
    let workers: Value = client
        .call(Method::GET, "/api/workers", None)
        .await
        .expect("workers");
    assert!(!workers["workers"].as_array().expect("workers").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pipelines_and_worker_calls_are_refused() {
    let orchestrator = Orchestrator::start_with_config(
        "orchestrator:\n  workerAuthToken: s3cret\n",
        &["--max-workers", "0"],
    );
    let client = orchestrator.client();
    let bad = json!({"project_id": "p", "name": "x", "steps": [
        {"name": "a", "plugin": "core", "action": "log", "parameters": {"message": "$.b.x"}},
        {"name": "b", "plugin": "core", "action": "log", "parameters": {"message": "hi"}}
    ]});
    let refused = client
        .call::<Value>(Method::POST, "/api/pipelines", Some(&bad))
        .await
        .expect_err("later step");
    let refused = refused.to_string();
    assert!(
        refused.contains("$.b.x") && refused.contains("runs later (steps[1])"),
        "names the reference and the later step: {refused}"
    );
    let unknown = json!({"project_id": "p", "name": "x", "steps": [{"name": "a", "plugin": "core", "action": "nap"}]});
    let refused = client
        .call::<Value>(Method::POST, "/api/pipelines", Some(&unknown))
        .await
        .expect_err("unknown action");
    assert!(refused.to_string().contains("nap"), "{refused}");
    let anonymous = client
        .call::<Value>(Method::POST, "/api/workers/register", Some(&json!({})))
        .await
        .expect_err("no token");
    assert!(anonymous.to_string().contains("401"), "{anonymous}");
    let with_token = mimir_client::Client::new(&orchestrator.url).with_token(Some("s3cret".into()));
    let registered: Value = with_token
        .call(Method::POST, "/api/workers/register", Some(&json!({})))
        .await
        .expect("register");
    assert!(registered["worker_id"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_task_worker_runs_exactly_its_task_and_exits() {
    let orchestrator = Orchestrator::start_with_config(FAST, &["--max-workers", "0"]);
    let client = orchestrator.client();
    let pipeline = one_step(&client, "hi", "core.log", json!({"message": "hi"})).await;
    let urgent = execute(&client, &pipeline, json!({})).await;
    let mine = execute(&client, &pipeline, json!({})).await;
    let url = orchestrator.url.clone();
    let run_one = move |id: Uuid| {
        Command::new(bin())
            .args(["worker", "--orchestrator", &url])
            .env("WORKTASK_ID", id.to_string())
            .env("WORKTASK_TYPE", "pipeline_execution")
            .output()
            .expect("run a one-task worker")
    };
    let first = run_one.clone();
    let id = mine.worktask_id;
    let output = tokio::task::spawn_blocking(move || first(id))
        .await
        .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        client.get(mine.worktask_id).await.expect("get").status,
        WorkTaskStatus::Completed
    );
    assert_eq!(
        client.get(urgent.worktask_id).await.expect("get").status,
        WorkTaskStatus::Queued,
        "only the named task ran"
    );
    let again = tokio::task::spawn_blocking(move || run_one(mine.worktask_id))
        .await
        .expect("join");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("completed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

async fn workers(client: &mimir_client::Client) -> Vec<Value> {
    let list: Value = client
        .call(Method::GET, "/api/workers", None)
        .await
        .expect("workers");
    list["workers"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_replaces_a_crashed_worker_and_scales_with_the_queue() {
    // One task at a time per worker, so two tasks at once take two workers.
    let orchestrator = Orchestrator::start_with_config(
        &format!("{FAST}  workerConcurrency: 1\n"),
        &[
            "--max-workers",
            "2",
            "--min-workers",
            "1",
            "--queue-threshold",
            "1",
        ],
    );
    let client = orchestrator.client();
    let started = Instant::now();
    let first = loop {
        if let Some(worker) = workers(&client).await.first().cloned() {
            break worker;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no worker started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pid = first["pid"].as_u64().expect("pid").to_string();
    Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill -9 the worker");
    let started = Instant::now();
    loop {
        let now = workers(&client).await;
        if now
            .iter()
            .any(|w| w["worker_id"] != first["worker_id"] && w["state"] != "lost")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the crashed worker was not replaced: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Three long tasks: one runs, two wait; with a threshold of one, the
    // queue calls for ceil(2 / 1) = 2 workers, the maximum.
    let pipeline = one_step(&client, "nap", "core.sleep", json!({"ms": 1500})).await;
    let a = execute(&client, &pipeline, json!({})).await;
    let b = execute(&client, &pipeline, json!({})).await;
    let c = execute(&client, &pipeline, json!({})).await;

    wait_for_status(&client, a.worktask_id, WorkTaskStatus::Executing).await;
    wait_for_status(&client, b.worktask_id, WorkTaskStatus::Executing).await;
    let busy: Vec<Value> = workers(&client)
        .await
        .into_iter()
        .filter(|w| w["state"] == "busy")
        .collect();
    assert_eq!(
        busy.len(),
        2,
        "both tasks run at once on two workers: {busy:?}"
    );
    assert_eq!(
        wait_until_done(&client, a.worktask_id, Duration::from_secs(30))
            .await
            .status,
        WorkTaskStatus::Completed
    );
    assert_eq!(
        wait_until_done(&client, b.worktask_id, Duration::from_secs(30))
            .await
            .status,
        WorkTaskStatus::Completed
    );
    assert_eq!(
        wait_until_done(&client, c.worktask_id, Duration::from_secs(30))
            .await
            .status,
        WorkTaskStatus::Completed
    );
    let log = orchestrator.log();
    assert!(
        log.contains("worker died"),
        "the crash is logged and counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_worker_finish_its_task_then_exit() {
    let orchestrator = Orchestrator::start_with_config(FAST, &["--max-workers", "0"]);
    let client = orchestrator.client();
    let pipeline = one_step(&client, "nap", "core.sleep", json!({"ms": 800})).await;
    let task = execute(&client, &pipeline, json!({})).await;
    let mut worker = external_worker(&orchestrator, "polite");
    wait_for_status(&client, task.worktask_id, WorkTaskStatus::Executing).await;
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("SIGTERM");
    let status = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "{status}");
    let done = client.get(task.worktask_id).await.expect("get");
    assert_eq!(
        (done.status, done.retry_count),
        (WorkTaskStatus::Completed, 0),
        "finished before exiting: {done:?}"
    );
    assert!(workers(&client).await.is_empty(), "it left the registry");
}

/// A local worker stopped by SIGTERM (an operator's `kill`, a service
/// manager) says goodbye before it exits: that is a clean exit, not a death,
/// and the lines it writes carry the worker's log target, not the
/// orchestrator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_worker_stopped_by_sigterm_exits_cleanly_and_logs_as_a_worker() {
    let orchestrator =
        Orchestrator::start_with_config(FAST, &["--max-workers", "1", "--min-workers", "1"]);
    let client = orchestrator.client();
    let started = Instant::now();
    let first = loop {
        if let Some(worker) = workers(&client).await.first().cloned() {
            break worker;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no worker started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let failed_before = harness::sample(
        &harness::scrape_text(&orchestrator.url).await,
        "mimir_workers_failed_total",
    );
    assert_eq!(failed_before, Some(0.0));
    let id = first["worker_id"].as_str().expect("worker id").to_string();
    let pid = first["pid"].as_u64().expect("pid").to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("SIGTERM the worker");
    // The pool collects its exit (and starts a replacement, min 1).
    let reaped = format!("\"worker_id\":\"{id}\"");
    let started = Instant::now();
    let exit_line = loop {
        let log = orchestrator.log();
        let found = log
            .lines()
            .filter(|line| line.contains(&reaped))
            .find(|line| line.contains("mimir_server::workers::pool") && !line.contains("spawned"))
            .map(str::to_string);
        if let Some(line) = found {
            break line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker's exit was never collected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        exit_line.contains("exited cleanly after deregistering") && exit_line.contains("\"INFO\""),
        "a clean exit, not a death: {exit_line}"
    );
    assert_eq!(
        harness::sample(
            &harness::scrape_text(&orchestrator.url).await,
            "mimir_workers_failed_total",
        ),
        Some(0.0),
        "not counted as failed"
    );
    // What the worker process wrote: its own target, never the orchestrator's.
    let log = orchestrator.log();
    let signal_line = log
        .lines()
        .find(|line| line.contains("stop signal received"))
        .unwrap_or_else(|| panic!("the worker logs the signal: {log}"));
    assert!(
        signal_line.contains("\"target\":\"mimir_worker\""),
        "{signal_line}"
    );
    assert!(
        !log.lines().any(|line| line.contains("shutdown requested")),
        "the worker's signal does not read as the orchestrator shutting down: {log}"
    );
    let confined = log
        .lines()
        .find(|line| line.contains("pipeline steps confined"))
        .expect("the worker's start-up line");
    assert!(
        confined.contains("\"target\":\"mimir_worker\""),
        "{confined}"
    );
}

/// Today any holder of the worker token could set the result of any leased
/// task, and the real worker's result was then dropped: a result from
/// anyone but the lease holder is now refused, and the real worker's lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_forged_with_the_worker_token_is_refused_and_the_real_worker_completes() {
    let orchestrator = Orchestrator::start_with_config(FAST, &["--max-workers", "0"]);
    let client = orchestrator.client();
    let pipeline = one_step(&client, "nap", "core.sleep", json!({"ms": 1500})).await;
    let mut worker = external_worker(&orchestrator, "real");
    let task = execute(&client, &pipeline, json!({})).await;
    wait_for_status(&client, task.worktask_id, WorkTaskStatus::Executing).await;
    let running = client.get(task.worktask_id).await.expect("get");
    assert_eq!(running.worker_id, "real");

    let intruder: Value = client
        .call(
            Method::POST,
            "/api/workers/register",
            Some(&json!({"worker_id": "intruder"})),
        )
        .await
        .expect("register");
    assert_eq!(intruder["worker_id"], "intruder");
    let id = task.worktask_id;
    let forged = [
        (
            "/api/worktasks/{id}".replace("{id}", &id.to_string()),
            json!({"worktask_id": id, "status": "failed", "error_message": "forged"}),
        ),
        (
            "/api/worktasks/{id}".replace("{id}", &id.to_string()),
            json!({"worktask_id": id, "status": "completed", "worker_id": "intruder", "attempt": running.attempt}),
        ),
        (
            "/api/workers/intruder/results".to_string(),
            json!({"results": [{"worktask_id": id, "status": "failed", "attempt": running.attempt}]}),
        ),
    ];
    for (path, body) in forged {
        let refused = client
            .call::<Value>(Method::POST, &path, Some(&body))
            .await
            .expect_err("forged result");
        assert!(
            matches!(&refused, mimir_client::ClientError::Api { status, code, .. }
                if *status == reqwest::StatusCode::CONFLICT && code == "not_lease_holder"),
            "{path}: {refused}"
        );
    }
    let after = client.get(id).await.expect("get");
    assert_eq!(
        (
            after.status,
            after.attempt,
            after.retry_count,
            after.result.is_some()
        ),
        (WorkTaskStatus::Executing, running.attempt, 0, false),
        "the forged results changed nothing"
    );
    let done = wait_until_done(&client, id, Duration::from_secs(30)).await;
    assert_eq!(done.status, WorkTaskStatus::Completed, "{done:?}");
    assert_eq!(
        done.attempt, running.attempt,
        "the real worker's attempt completed it"
    );
    let _ = worker.kill();
    let _ = worker.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_stops_at_once_on_sigint() {
    let orchestrator = Orchestrator::start_with_config(FAST, &["--max-workers", "0"]);
    let client = orchestrator.client();
    let mut worker = external_worker(&orchestrator, "idle");
    // Wait until its lease call waits for work (a 10 s long poll).
    let started = Instant::now();
    while !workers(&client)
        .await
        .iter()
        .any(|w| w["waiting_slots"].as_u64().is_some_and(|n| n > 0))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never waited for work"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Command::new("kill")
        .args(["-INT", &worker.id().to_string()])
        .status()
        .expect("SIGINT");
    let asked = Instant::now();
    let status = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .expect("join")
        .expect("wait");
    // It does not wait out its long poll for work.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    assert!(status.success(), "{status}");
    assert!(workers(&client).await.is_empty(), "it left the registry");
}
