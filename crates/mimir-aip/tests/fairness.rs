//! Fair on default settings: a task a busy worker leased ahead does not wait
//! there while another worker sits idle, and "waiting" means one thing to
//! the API, the metrics and the autoscaler. Real orchestrator, real workers.

mod harness;

use chrono::{DateTime, Utc};
use harness::Orchestrator;
use harness::pipelines::{noop, one_step, wait_until_done};
use mimir_core::{Attempt, AttemptEnd, WorkTaskStatus};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

async fn wait_for_workers(client: &mimir_client::Client, n: usize) {
    let started = Instant::now();
    loop {
        let list: Value = client
            .call(Method::GET, "/api/workers", None)
            .await
            .expect("workers");
        if list["workers"].as_array().map_or(0, Vec::len) >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{n} workers never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Submits `n` tasks of `pipeline` at once; their ids.
async fn submit(client: &mimir_client::Client, pipeline: &str, n: usize) -> Vec<uuid::Uuid> {
    let task = json!({"type": "pipeline_execution", "project_id": "fair", "task_spec": {"pipeline_id": pipeline}});
    client
        .submit_batch(&vec![task; n])
        .await
        .expect("submit")
        .into_iter()
        .map(|t| t.worktask_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_tasks_run_on_both_workers_after_fast_tasks_taught_them_to_lease_ahead() {
    // One task at a time per worker: a second task a worker holds can only
    // be one it leased ahead.
    let orchestrator = Orchestrator::start_with_config(
        "orchestrator:\n  minWorkers: 2\n  maxWorkers: 2\n  workerConcurrency: 1\n",
        &[],
    );
    let client = orchestrator.client();
    wait_for_workers(&client, 2).await;
    // Both workers learn that tasks here are short, so they lease ahead.
    let fast = noop(&client).await;
    for id in submit(&client, &fast, 300).await {
        wait_until_done(&client, id, Duration::from_secs(60)).await;
    }
    let slow = one_step(&client, "nap", "core.sleep", json!({"ms": 1500})).await;
    let ids = submit(&client, &slow, 5).await;
    let mut runs: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for id in ids {
        let task = wait_until_done(&client, id, Duration::from_secs(60)).await;
        assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
        assert_eq!(task.retry_count, 0, "given back, not retried: {task:?}");
        let answer: Value = client
            .call(Method::GET, &format!("/api/worktasks/{id}/attempts"), None)
            .await
            .expect("attempts");
        let attempts: Vec<Attempt> =
            serde_json::from_value(answer["attempts"].clone()).expect("attempts");
        let ran: Vec<&Attempt> = attempts
            .iter()
            .filter(|a| a.outcome == AttemptEnd::Completed)
            .collect();
        assert_eq!(ran.len(), 1, "ran exactly once: {attempts:?}");
        let run = ran[0];
        runs.push((
            run.worker_id.clone(),
            run.started_at.expect("started"),
            run.ended_at,
        ));
    }
    // Before the first slow task ended, both workers had one running: none
    // waited leased on one worker while the other idled.
    let first_end = runs.iter().map(|r| r.2).min().expect("runs");
    let busy_before: HashSet<&str> = runs
        .iter()
        .filter(|r| r.1 < first_end)
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(busy_before.len(), 2, "{runs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_length_counts_leased_tasks_that_have_not_started() {
    // No local workers: this test leases by hand.
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let client = orchestrator.client();
    let pipeline = noop(&client).await;
    submit(&client, &pipeline, 3).await;
    let registered: Value = client
        .call(
            Method::POST,
            "/api/workers/register",
            Some(&json!({"worker_id": "hand"})),
        )
        .await
        .expect("register");
    assert_eq!(registered["worker_id"], "hand");
    let leased: Value = client
        .call(
            Method::POST,
            "/api/workers/hand/lease",
            Some(&json!({"max": 2})),
        )
        .await
        .expect("lease");
    assert_eq!(leased["worktasks"].as_array().map(Vec::len), Some(2));
    // Leased, not started: still waiting, for every reader.
    assert_eq!(client.queue_length().await.expect("length"), 3);
    let summary: Value = client
        .call(Method::GET, "/api/metrics", None)
        .await
        .expect("summary");
    assert_eq!(summary["queue"]["length"], 3);
    let text = harness::scrape_text(&orchestrator.url).await;
    assert_eq!(harness::sample(&text, "mimir_queue_length"), Some(3.0));
    // Started: no longer waiting.
    let first = &leased["worktasks"][0];
    let _: Value = client
        .call(
            Method::POST,
            "/api/workers/hand/heartbeat",
            Some(&json!({"tasks": [{"worktask_id": first["worktask_id"], "attempt": first["attempt"], "started_at": Utc::now()}]})),
        )
        .await
        .expect("heartbeat");
    assert_eq!(client.queue_length().await.expect("length"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_worker_puts_back_what_it_leased_but_never_started() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let client = orchestrator.client();
    let pipeline = noop(&client).await;
    let ids = submit(&client, &pipeline, 2).await;
    let _: Value = client
        .call(
            Method::POST,
            "/api/workers/register",
            Some(&json!({"worker_id": "leaver"})),
        )
        .await
        .expect("register");
    let leased: Value = client
        .call(
            Method::POST,
            "/api/workers/leaver/lease",
            Some(&json!({"max": 2})),
        )
        .await
        .expect("lease");
    assert_eq!(leased["worktasks"].as_array().map(Vec::len), Some(2));
    // It leaves without a word about them, as a worker does whose lease
    // answer was lost while it stopped.
    let left = reqwest::Client::new()
        .delete(format!("{}/api/workers/leaver", orchestrator.url))
        .send()
        .await
        .expect("deregister");
    assert_eq!(left.status(), reqwest::StatusCode::NO_CONTENT);
    for id in ids {
        let task = client.get(id).await.expect("get");
        assert_eq!(
            (task.status, task.retry_count, task.worker_id.as_str()),
            (WorkTaskStatus::Queued, 0, ""),
            "back in the queue at no cost: {task:?}"
        );
    }
    assert_eq!(client.queue_length().await.expect("length"), 2);
}
