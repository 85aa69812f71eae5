//! Pipelines and tasks through the API, for end-to-end tests.

use mimir_core::WorkTask;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Creates a pipeline of `steps`; returns its id.
pub async fn create_pipeline(client: &mimir_client::Client, steps: Value) -> String {
    let body = json!({"project_id": "e2e", "name": "test", "type": "processing", "steps": steps});
    let pipeline: Value = client
        .call(Method::POST, "/api/pipelines", Some(&body))
        .await
        .expect("create pipeline");
    pipeline["id"].as_str().expect("id").to_string()
}

/// A pipeline of one step that logs a line at debug level: what tests run
/// when the work does not matter (every task names an existing pipeline).
pub async fn noop(client: &mimir_client::Client) -> String {
    one_step(
        client,
        "noop",
        "core.log",
        json!({"message": "noop", "level": "debug"}),
    )
    .await
}

/// A pipeline of one step `name` running `plugin_action` (e.g. `core.sleep`).
pub async fn one_step(
    client: &mimir_client::Client,
    name: &str,
    plugin_action: &str,
    parameters: Value,
) -> String {
    let (plugin, action) = plugin_action.split_once('.').expect("plugin.action");
    create_pipeline(
        client,
        json!([{"name": name, "plugin": plugin, "action": action, "parameters": parameters}]),
    )
    .await
}

pub async fn execute(client: &mimir_client::Client, pipeline: &str, parameters: Value) -> WorkTask {
    let path = format!("/api/pipelines/{pipeline}/execute");
    client
        .call(
            Method::POST,
            &path,
            Some(&json!({ "parameters": parameters })),
        )
        .await
        .expect("execute")
}

/// `POST path` with `body` (a submission or an execution); the new task's id.
pub async fn post_task(client: &mimir_client::Client, path: &str, body: Value) -> Uuid {
    let task: Value = client
        .call(Method::POST, path, Some(&body))
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    task["worktask_id"]
        .as_str()
        .expect("worktask_id")
        .parse()
        .expect("uuid")
}

/// Executes `pipeline` continuing the trace `trace_id` (a `traceparent`
/// header); the task as the API answered it.
pub async fn execute_traced(orchestrator_url: &str, pipeline: &str, trace_id: &str) -> Value {
    reqwest::Client::new()
        .post(format!(
            "{orchestrator_url}/api/pipelines/{pipeline}/execute"
        ))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({}))
        .send()
        .await
        .expect("execute")
        .json()
        .await
        .expect("task")
}

pub async fn wait_until_done(
    client: &mimir_client::Client,
    id: Uuid,
    within: Duration,
) -> WorkTask {
    let started = Instant::now();
    loop {
        let task = client.get(id).await.expect("get");
        if task.status.is_terminal() {
            return task;
        }
        assert!(
            started.elapsed() < within,
            "task {id} still {} after {within:?}",
            task.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until task `id` is `status` (30 s at most).
pub async fn wait_for_status(
    client: &mimir_client::Client,
    id: Uuid,
    status: mimir_core::WorkTaskStatus,
) {
    let started = Instant::now();
    while client.get(id).await.expect("get").status != status {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "task {id} never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
