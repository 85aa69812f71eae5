//! Storage in pipelines end to end through the real binary: a storage
//! config made with `POST /api/storage/configs`, a pipeline reading a CSV
//! file, storing it and retrieving with a filter on a local worker, the
//! config's credentials (one a `${env:…}` reference resolved in the worker,
//! one literal) nowhere in the task, its results, its attempts or the logs,
//! and the worker's storage operations in the orchestrator's `/metrics`.

mod harness;

use harness::Orchestrator;
use harness::pipelines::{create_pipeline, execute, wait_until_done};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_stores_and_retrieves_a_csv_without_its_secrets_leaking() {
    let env_secret = format!("env-secret-{}", uuid::Uuid::new_v4().simple());
    let literal_secret = format!("literal-secret-{}", uuid::Uuid::new_v4().simple());
    let orchestrator = Orchestrator::start_with_env(
        &[("E2E_STORAGE_PASSWORD", env_secret.as_str())],
        &["--max-workers", "1", "--log-level", "debug"],
    );
    let client = orchestrator.client();
    let files = orchestrator.data_dir().join("files");
    std::fs::create_dir_all(&files).expect("file root");
    std::fs::write(files.join("people.csv"), "name,team\nada,a\nbob,b\ncy,a\n").expect("csv");

    let config: Value = client
        .call(
            Method::POST,
            "/api/storage/configs",
            Some(&json!({
                "project_id": "e2e",
                "plugin_type": "filesystem",
                "config": {
                    "options": {"base_path": "people-store"},
                    "credentials": {"password": "${env:E2E_STORAGE_PASSWORD}", "api_key": literal_secret},
                },
            })),
        )
        .await
        .expect("create a storage config");
    let storage_id = config["id"].as_str().expect("id").to_string();

    let pipeline = create_pipeline(
        &client,
        json!([
            {"name": "read", "plugin": "file", "action": "read",
             "parameters": {"path": "people.csv", "format": "csv"}},
            {"name": "store", "plugin": "storage", "action": "store",
             "parameters": {"storage_id": storage_id, "cir_data": "$.read", "entity_type": "people"}},
            {"name": "find", "plugin": "storage", "action": "retrieve",
             "parameters": {"storage_id": storage_id, "query": {"entity_type": "people",
                "filters": [{"attribute": "team", "operator": "eq", "value": "a"}],
                "order_by": [{"attribute": "name"}]}}},
        ]),
    )
    .await;
    let task = execute(&client, &pipeline, json!({})).await;
    let done = wait_until_done(&client, task.worktask_id, Duration::from_secs(60)).await;
    let done = serde_json::to_value(&done).expect("task JSON");
    assert_eq!(done["status"], "completed", "{done}");
    let context = &done["result"]["context"];
    assert_eq!(
        context["store"],
        json!({"success": true, "affected_items": 3}),
        "{done}"
    );
    assert_eq!(context["find"]["metadata"]["record_count"], 2, "{done}");
    assert_eq!(
        context["find"]["data"],
        json!([{"name": "ada", "team": "a"}, {"name": "cy", "team": "a"}])
    );
    // The worker wrote where the orchestrator's own storage API reads.
    assert!(
        orchestrator
            .data_dir()
            .join("storage/people-store/people")
            .is_dir(),
        "records under <data_dir>/storage"
    );

    // The worker's operations reach the orchestrator's one scrape target.
    let started = Instant::now();
    loop {
        let text = harness::scrape_text(&orchestrator.url).await;
        let count = |operation: &str| {
            harness::sample(
                &text,
                &format!(
                    "mimir_storage_operations_total{{operation=\"{operation}\",backend=\"filesystem\"}}"
                ),
            )
            .unwrap_or(0.0)
        };
        if count("store") >= 1.0 && count("retrieve") >= 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no worker storage operations in /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Neither secret anywhere a user or a step can see.
    let attempts: Value = client
        .call(
            Method::GET,
            &format!("/api/worktasks/{}/attempts", task.worktask_id),
            None,
        )
        .await
        .expect("attempts");
    let shown: Value = client
        .call(
            Method::GET,
            &format!("/api/storage/configs/{storage_id}"),
            None,
        )
        .await
        .expect("config");
    let pipeline_json: Value = client
        .call(Method::GET, &format!("/api/pipelines/{pipeline}"), None)
        .await
        .expect("pipeline");
    let metrics = harness::scrape_text(&orchestrator.url).await;
    let log = orchestrator.log();
    for (what, text) in [
        ("task", done.to_string()),
        ("attempts", attempts.to_string()),
        ("config", shown.to_string()),
        ("pipeline", pipeline_json.to_string()),
        ("metrics", metrics),
        ("log", log),
    ] {
        assert!(
            !text.contains(&env_secret),
            "the env secret is in the {what}:\n{text}"
        );
        assert!(
            !text.contains(&literal_secret),
            "the literal secret is in the {what}:\n{text}"
        );
    }
}
