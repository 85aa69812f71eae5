//! Storage steps in the real executor process, as a worker drives it: the
//! job carries its project's resolved storage configs, the executor keeps
//! its connectors from job to job, lets a job reach only the configs it
//! carries, and reports the storage operations each job ran.

mod harness;

use chrono::Utc;
use mimir_core::{ConnectionSettings, PluginType, StorageConfig, StorageOperation};
use mimir_pipeline::{CancellationToken, Step, StepStatus};
use mimir_worker::sandbox::protocol::Job;
use mimir_worker::sandbox::{Ended, SandboxConfig, Sandboxes};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn sandboxes(storage_root: &Path) -> Sandboxes {
    Sandboxes::new(SandboxConfig {
        program: harness::bin().into(),
        args: vec![
            "executor".into(),
            "--log-level=warn".into(),
            "--confinement={}".into(),
            format!("--storage-root={}", storage_root.display()),
        ],
        env: SandboxConfig::inherited_env(),
        max_idle: 1,
    })
}

/// A `filesystem` config whose password, already resolved by the worker,
/// happens to look like a reference: resolving it again would fail.
fn config(id: &str, project: &str) -> StorageConfig {
    StorageConfig {
        id: id.into(),
        project_id: project.into(),
        plugin_type: PluginType::Filesystem,
        config: ConnectionSettings {
            connection_string: String::new(),
            credentials: object(json!({"password": "x${env:SURELY_NOT_SET_ANYWHERE_42}y"})),
            options: object(json!({"base_path": format!("{project}/{id}")})),
        },
        active: true,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn job(project: &str, steps: Value, configs: Vec<StorageConfig>) -> Job<'static> {
    let steps: Vec<Step> = serde_json::from_value(steps).expect("steps");
    Job {
        worktask_id: "t".into(),
        pipeline_id: "p".into(),
        attempt: 0,
        traceparent: None,
        steps: Cow::Owned(steps),
        parameters: Cow::Owned(Map::new()),
        step_timeout_ms: None,
        remaining_ms: Some(30_000),
        project_id: project.into(),
        storage_configs: configs,
        storage_unavailable: BTreeMap::new(),
        checkpoints: None,
    }
}

async fn run(sandboxes: &Sandboxes, job: &Job<'_>) -> Ended {
    sandboxes
        .run(job, None, &CancellationToken::new(), &mut |_| {})
        .await
}

fn store_and_find() -> Value {
    json!([
        {"name": "store", "plugin": "storage", "action": "store", "parameters": {
            "storage_id": "fs",
            "cir_data": {"version": "1.0", "source": {"type": "api", "parameters": {"entity_type": "people"}},
                         "data": [{"name": "ada", "team": "a"}, {"name": "bob", "team": "b"}, {"name": "cy", "team": "a"}]}}},
        {"name": "find", "plugin": "storage", "action": "retrieve", "parameters": {
            "storage_id": "fs",
            "query": {"entity_type": "people", "filters": [{"attribute": "team", "operator": "eq", "value": "b"}]}}}
    ])
}

#[tokio::test]
async fn an_executor_runs_storage_steps_on_resolved_configs_and_reports_their_operations() {
    let root = tempfile::tempdir().expect("tempdir");
    let sandboxes = sandboxes(root.path());
    let ended = run(
        &sandboxes,
        &job("p1", store_and_find(), vec![config("fs", "p1")]),
    )
    .await;
    assert_eq!(ended.error, None, "{ended:?}");
    assert_eq!(
        ended.context["store"],
        json!({"success": true, "affected_items": 3})
    );
    assert_eq!(
        ended.context["find"]["data"],
        json!([{"name": "bob", "team": "b"}])
    );
    assert_eq!(ended.context["find"]["metadata"]["record_count"], 1);
    let operations: Vec<(StorageOperation, u64, bool)> = ended
        .storage_operations
        .iter()
        .map(|e| (e.operation, e.records, e.failed))
        .collect();
    assert_eq!(
        operations,
        [
            (StorageOperation::Store, 3, false),
            (StorageOperation::Retrieve, 1, false)
        ]
    );
    assert!(
        ended
            .storage_operations
            .iter()
            .all(|e| e.backend == PluginType::Filesystem && e.count == 1)
    );
    // The records are in the worker's storage root, under the config's base_path.
    assert!(root.path().join("p1/fs/people").is_dir());
    // The secret reaches neither the context nor the step records.
    let text = serde_json::to_string(&(&ended.context, &ended.steps)).unwrap_or_default();
    assert!(!text.contains("SURELY_NOT_SET"), "{text}");
    sandboxes.close().await;
}

#[tokio::test]
async fn a_job_reaches_only_the_configs_it_carries() {
    let root = tempfile::tempdir().expect("tempdir");
    let sandboxes = sandboxes(root.path());
    let first = run(
        &sandboxes,
        &job("p1", store_and_find(), vec![config("fs", "p1")]),
    )
    .await;
    assert_eq!(first.error, None, "{first:?}");
    // The same executor, the next job of another project: `fs` was open,
    // but it is not this job's to use; nor is a config of another project
    // slipped into the job.
    let other = run(
        &sandboxes,
        &job("p2", store_and_find(), vec![config("fs", "p1")]),
    )
    .await;
    let error = other.error.unwrap_or_default();
    assert!(
        error.contains("not a storage config of project \"p2\""),
        "{error}"
    );
    assert_eq!(other.steps[0].status, StepStatus::Failed);
    assert_eq!(other.steps[1].status, StepStatus::Skipped);
    assert!(
        other.storage_operations.is_empty(),
        "{:?}",
        other.storage_operations
    );
    // A config the worker could not resolve fails the step that names it, with the reason.
    let mut unresolved = job("p3", store_and_find(), Vec::new());
    unresolved.storage_unavailable.insert(
        "fs".into(),
        "${env:PGPASS} is not set where the connector runs".into(),
    );
    let ended = run(&sandboxes, &unresolved).await;
    let error = ended.error.unwrap_or_default();
    assert!(
        error.contains("storage fs: ${env:PGPASS} is not set"),
        "{error}"
    );
    sandboxes.close().await;
}

#[tokio::test]
async fn a_failed_storage_operation_is_reported_as_failed() {
    let root = tempfile::tempdir().expect("tempdir");
    let sandboxes = sandboxes(root.path());
    let mut inactive = config("fs", "p1");
    inactive.active = false;
    let ended = run(&sandboxes, &job("p1", store_and_find(), vec![inactive])).await;
    let error = ended.error.unwrap_or_default();
    assert!(error.contains("inactive"), "{error}");
    // A file where the entity's folder should be makes the store itself fail.
    std::fs::create_dir_all(root.path().join("p1/broken")).expect("dir");
    std::fs::write(root.path().join("p1/broken/people"), "not a folder").expect("file");
    let steps = json!([{"name": "store", "plugin": "storage", "action": "store", "parameters": {
        "storage_id": "broken",
        "cir_data": {"version": "1.0", "source": {"type": "api", "parameters": {"entity_type": "people"}}, "data": {"a": 1}}}}]);
    let ended = run(&sandboxes, &job("p1", steps, vec![config("broken", "p1")])).await;
    assert!(ended.error.is_some(), "{ended:?}");
    assert_eq!(
        ended.storage_operations.len(),
        1,
        "{:?}",
        ended.storage_operations
    );
    assert!(ended.storage_operations[0].failed);
    sandboxes.close().await;
}
