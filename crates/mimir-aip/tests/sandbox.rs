//! A runaway step cannot hurt its worker: every attempt runs in a supervised
//! executor process, stopped at its deadline or on cancel, under the task's
//! memory limit — through the real binary, its workers and their executors.

mod harness;

use harness::pipelines::{create_pipeline, post_task, wait_for_status, wait_until_done};
use harness::{Orchestrator, bin, processes_mentioning};
use mimir_core::WorkTaskStatus;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Fast retries keep these tests quick.
const FAST: &str = "retry:\n  backoffBaseMs: 50\n  backoffCapMs: 200\n";

/// A jq program that never ends and never allocates.
const FOREVER: &str = "def f: f; f";

/// The executor processes of `orchestrator`'s workers, with their CPU time
/// so far (user + system, in clock ticks).
fn executors(orchestrator: &Orchestrator) -> Vec<(u32, u64)> {
    let workers = processes_mentioning(&orchestrator.url);
    let mut found = Vec::new();
    for pid in processes_mentioning(" executor ") {
        let Some((parent, ticks)) = stat(pid) else {
            continue;
        };
        if workers.contains(&parent) {
            found.push((pid, ticks));
        }
    }
    found
}

/// A process's parent and CPU ticks, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces: fields start after its closing parenthesis.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((parent, user + system))
}

/// CPU ticks `orchestrator`'s executors spend over `window`.
fn executor_ticks_over(orchestrator: &Orchestrator, window: Duration) -> u64 {
    let before: u64 = executors(orchestrator).iter().map(|(_, t)| t).sum();
    let alive_before: Vec<u32> = executors(orchestrator).iter().map(|(p, _)| *p).collect();
    std::thread::sleep(window);
    let after = executors(orchestrator);
    // Only processes alive at both ends count; a new executor starts at 0.
    let kept: u64 = after
        .iter()
        .filter(|(p, _)| alive_before.contains(p))
        .map(|(_, t)| t)
        .sum();
    kept.saturating_sub(before.min(kept))
}

async fn submit(client: &mimir_client::Client, body: Value) -> Uuid {
    post_task(client, "/api/worktasks", body).await
}

/// Runs a one-step pipeline that succeeds; the task once done.
async fn run_a_task_that_succeeds(client: &mimir_client::Client) -> (Uuid, mimir_core::WorkTask) {
    let ok = create_pipeline(
        client,
        json!([{"name": "hi", "plugin": "core", "action": "log", "parameters": {"message": "hi"}}]),
    )
    .await;
    let id = submit(
        client,
        json!({"type": "pipeline_execution", "project_id": "e2e", "task_spec": {"pipeline_id": ok}}),
    )
    .await;
    (
        id,
        wait_until_done(client, id, Duration::from_secs(30)).await,
    )
}

async fn attempts(client: &mimir_client::Client, id: Uuid) -> Vec<Value> {
    let answer: Value = client
        .call(Method::GET, &format!("/api/worktasks/{id}/attempts"), None)
        .await
        .expect("attempts");
    answer["attempts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jq_program_that_never_ends_is_stopped_at_its_step_timeout() {
    let orchestrator =
        Orchestrator::start_with_config(FAST, &["--max-workers", "1", "--min-workers", "1"]);
    let client = orchestrator.client();
    for program in [FOREVER, "last(range(1e12))"] {
        let pipeline = create_pipeline(
            &client,
            json!([{"name": "spin", "plugin": "transform", "action": "jq", "timeout_ms": 300,
                    "parameters": {"program": program, "input": {}}}]),
        )
        .await;
        let id = submit(
            &client,
            json!({"type": "pipeline_execution", "project_id": "e2e", "max_retries": 0,
                   "task_spec": {"pipeline_id": pipeline}}),
        )
        .await;
        let task = wait_until_done(&client, id, Duration::from_secs(30)).await;
        assert_eq!(task.status, WorkTaskStatus::Timeout, "{program}: {task:?}");
        assert!(
            task.error_message.contains("timed out after 300 ms"),
            "{program}: {}",
            task.error_message
        );
        let tried = attempts(&client, id).await;
        assert_eq!(tried[0]["outcome"], "timeout", "{tried:?}");
        assert_eq!(tried[0]["error_class"], "transient", "{tried:?}");
        // Nothing keeps spinning after the attempt ended.
        let spent = executor_ticks_over(&orchestrator, Duration::from_millis(1000));
        assert!(
            spent < 30,
            "{program}: executors kept burning CPU after the timeout: {spent} ticks in 1 s"
        );
    }
    // The worker carries on.
    let (_, task) = run_a_task_that_succeeds(&client).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_step_within_one_second() {
    let orchestrator =
        Orchestrator::start_with_config(FAST, &["--max-workers", "1", "--min-workers", "1"]);
    let client = orchestrator.client();
    let pipeline = create_pipeline(
        &client,
        json!([{"name": "spin", "plugin": "transform", "action": "jq",
                "parameters": {"program": FOREVER, "input": {}}}]),
    )
    .await;
    let id = submit(
        &client,
        json!({"type": "pipeline_execution", "project_id": "e2e", "task_spec": {"pipeline_id": pipeline}}),
    )
    .await;
    wait_for_status(&client, id, WorkTaskStatus::Executing).await;
    // The spinning executor: the one burning CPU.
    let started = Instant::now();
    let spinning = loop {
        let first = executors(&orchestrator);
        std::thread::sleep(Duration::from_millis(200));
        let second = executors(&orchestrator);
        if let Some((pid, _)) = second.iter().find(|(pid, ticks)| {
            first
                .iter()
                .any(|(p, before)| p == pid && ticks.saturating_sub(*before) > 5)
        }) {
            break *pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no executor runs the step: {second:?}"
        );
    };
    let _: Value = client
        .call(Method::POST, &format!("/api/worktasks/{id}/cancel"), None)
        .await
        .expect("cancel");
    let cancelled = Instant::now();
    while stat(spinning).is_some() {
        assert!(
            cancelled.elapsed() < Duration::from_secs(5),
            "the cancelled step still runs after {:?}",
            cancelled.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = cancelled.elapsed();
    eprintln!("cancel stopped the step after {took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "the cancelled step ran on for {took:?}"
    );
    assert_eq!(
        client.get(id).await.expect("get").status,
        WorkTaskStatus::Cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_over_its_memory_limit_fails_that_attempt_and_the_worker_survives() {
    let orchestrator =
        Orchestrator::start_with_config(FAST, &["--max-workers", "1", "--min-workers", "1"]);
    let client = orchestrator.client();
    let hog = create_pipeline(
        &client,
        json!([{"name": "hog", "plugin": "transform", "action": "jq",
                "parameters": {"program": "[range(1e12)]", "input": {}}}]),
    )
    .await;
    let id = submit(
        &client,
        json!({"type": "pipeline_execution", "project_id": "e2e", "max_retries": 3,
               "resource_requirements": {"memory": "256Mi"},
               "task_spec": {"pipeline_id": hog}}),
    )
    .await;
    let task = wait_until_done(&client, id, Duration::from_secs(60)).await;
    assert!(
        task.error_message.contains("memory limit exceeded"),
        "{}",
        task.error_message
    );
    // The same input would exceed the same limit: no retry.
    assert_eq!(task.retry_count, 0, "{task:?}");
    let tried = attempts(&client, id).await;
    assert_eq!(tried.len(), 1, "{tried:?}");
    assert_eq!(tried[0]["error_class"], "permanent", "{tried:?}");

    // The same worker takes the next task.
    let (next, done) = run_a_task_that_succeeds(&client).await;
    assert_eq!(done.status, WorkTaskStatus::Completed, "{done:?}");
    // The attempt that hit the limit and the next one ran on the same worker.
    let next_tried = attempts(&client, next).await;
    assert_eq!(
        tried[0]["worker_id"], next_tried[0]["worker_id"],
        "the worker was replaced: {tried:?} then {next_tried:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_timeout_ends_the_attempt_as_timeout() {
    let orchestrator =
        Orchestrator::start_with_config(FAST, &["--max-workers", "1", "--min-workers", "1"]);
    let client = orchestrator.client();
    let pipeline = create_pipeline(
        &client,
        json!([
            {"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": 100}},
            {"name": "long", "plugin": "core", "action": "sleep", "parameters": {"ms": 60000}}
        ]),
    )
    .await;
    let id = submit(
        &client,
        json!({"type": "pipeline_execution", "project_id": "e2e", "max_retries": 1,
               "task_spec": {"pipeline_id": pipeline, "timeout_ms": 700}}),
    )
    .await;
    let task = wait_until_done(&client, id, Duration::from_secs(30)).await;
    assert_eq!(task.status, WorkTaskStatus::Timeout, "{task:?}");
    assert_eq!(task.retry_count, 1, "a timeout is retried: {task:?}");
    assert!(
        task.error_message.contains("step \"long\""),
        "{}",
        task.error_message
    );
    let steps = task.result.as_ref().expect("result")["steps"].clone();
    assert_eq!(steps[0]["status"], "completed", "{steps}");
    assert_eq!(steps[1]["status"], "failed", "{steps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_fail_at_once_and_transient_ones_are_retried() {
    let orchestrator =
        Orchestrator::start_with_config(FAST, &["--max-workers", "1", "--min-workers", "1"]);
    let client = orchestrator.client();
    let cases = [
        // A reference to a key an earlier step does not have.
        (
            json!([
                {"name": "a", "plugin": "core", "action": "log", "parameters": {"message": "hi"}},
                {"name": "b", "plugin": "core", "action": "log", "parameters": {"message": "$.a.missing"}}
            ]),
            "permanent",
            0,
        ),
        (
            json!([{"name": "a", "plugin": "core", "action": "fail", "parameters": {"permanent": true}}]),
            "permanent",
            0,
        ),
        (
            json!([{"name": "a", "plugin": "transform", "action": "jq", "parameters": {"program": "error(\"no\")", "input": {}}}]),
            "permanent",
            0,
        ),
        // Nothing listens on port 1: the connection is refused.
        (
            json!([{"name": "a", "plugin": "http", "action": "request", "parameters": {"url": "http://127.0.0.1:1/"}}]),
            "transient",
            2,
        ),
        (
            json!([{"name": "a", "plugin": "core", "action": "fail", "parameters": {}}]),
            "transient",
            2,
        ),
    ];
    for (steps, class, retries) in cases {
        let pipeline = create_pipeline(&client, steps.clone()).await;
        let id = submit(
            &client,
            json!({"type": "pipeline_execution", "project_id": "e2e", "max_retries": 2,
                   "task_spec": {"pipeline_id": pipeline}}),
        )
        .await;
        let task = wait_until_done(&client, id, Duration::from_secs(30)).await;
        assert_eq!(task.status, WorkTaskStatus::Failed, "{steps}: {task:?}");
        assert_eq!(task.retry_count, retries, "{steps}: {task:?}");
        let tried = attempts(&client, id).await;
        assert_eq!(tried.len() as u32, retries + 1, "{steps}: {tried:?}");
        assert!(
            tried.iter().all(|a| a["error_class"] == class),
            "{steps}: {tried:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_without_the_worker_token_in_their_environment() {
    let orchestrator = Orchestrator::start_with_config(
        "orchestrator:\n  workerAuthToken: sekret-worker-token-1234\n",
        &["--max-workers", "1", "--min-workers", "1"],
    );
    let client = orchestrator.client();
    let pipeline = create_pipeline(
        &client,
        json!([{"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": 60000}}]),
    )
    .await;
    let id = submit(
        &client,
        json!({"type": "pipeline_execution", "project_id": "e2e", "task_spec": {"pipeline_id": pipeline}}),
    )
    .await;
    wait_for_status(&client, id, WorkTaskStatus::Executing).await;
    let running = executors(&orchestrator);
    assert!(!running.is_empty(), "no executor found");
    for (pid, _) in running {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            !environ.contains("sekret-worker-token-1234"),
            "the executor's environment holds the worker token"
        );
    }
    // The worker itself has it, so the test would see it if it leaked.
    let worker = processes_mentioning(&orchestrator.url)[0];
    let environ = std::fs::read(format!("/proc/{worker}/environ")).expect("environ");
    assert!(String::from_utf8_lossy(&environ).contains("sekret-worker-token-1234"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stops_on_sigterm_even_with_a_runaway_step() {
    let orchestrator = Orchestrator::start_with_config(FAST, &["--max-workers", "0"]);
    let client = orchestrator.client();
    let pipeline = create_pipeline(
        &client,
        json!([{"name": "spin", "plugin": "transform", "action": "jq",
                "parameters": {"program": FOREVER, "input": {}}}]),
    )
    .await;
    let id = submit(
        &client,
        json!({"type": "pipeline_execution", "project_id": "e2e", "task_spec": {"pipeline_id": pipeline}}),
    )
    .await;
    let mut worker = std::process::Command::new(bin())
        .args([
            "worker",
            "--orchestrator",
            &orchestrator.url,
            "--shutdown-grace",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start a worker");
    wait_for_status(&client, id, WorkTaskStatus::Executing).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = worker.try_wait().expect("wait") {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(15),
            "the worker ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    // The stopped attempt is handed back to be retried, not lost.
    let task = client.get(id).await.expect("get");
    assert_eq!(task.status, WorkTaskStatus::Queued, "{task:?}");
    assert_eq!(task.retry_count, 1, "{task:?}");
    assert!(
        task.retry_reason.contains("worker stopped"),
        "{}",
        task.retry_reason
    );
    assert!(executors(&orchestrator).is_empty());
}
