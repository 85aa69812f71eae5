//! ML end to end through the real binary: an orchestrator with local worker
//! processes, training data in a storage config (the filesystem connector
//! under the data dir, and the real PostgreSQL on 127.0.0.1:5432), models
//! trained and served by `ml_training` / `ml_inference` tasks, versions in
//! the registry, predictions in storage, and the inference series in
//! `/metrics`.

mod harness;

use harness::Orchestrator;
use harness::pipelines::wait_until_done;
use mimir_core::{WorkTask, WorkTaskStatus};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `n` records of a rule a model can learn: `churn` is "yes" exactly when
/// `usage + 0.5 * tenure` is over 1, plus a categorical and a boolean column.
fn churn_records(n: usize, seed: u64) -> Vec<Value> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64) / ((1u64 << 31) as f64)
    };
    (0..n)
        .map(|i| {
            let usage = next() * 1.5;
            let tenure = next() * 1.5;
            let plan = ["basic", "pro", "team"][(next() * 3.0) as usize % 3];
            json!({
                "id": format!("c{i}"),
                "usage": usage,
                "tenure": tenure,
                "plan": plan,
                "paperless": next() > 0.5,
                "churn": if usage + 0.5 * tenure > 1.0 { "yes" } else { "no" },
            })
        })
        .collect()
}

async fn call(client: &mimir_client::Client, method: Method, path: &str, body: Value) -> Value {
    client
        .call(method, path, Some(&body))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A filesystem storage config of project `project` holding `records` as
/// entity type `customers`.
async fn storage_with(
    client: &mimir_client::Client,
    project: &str,
    base_path: &str,
    records: &[Value],
) -> String {
    let config = call(
        client,
        Method::POST,
        "/api/storage/configs",
        json!({"project_id": project, "plugin_type": "filesystem",
               "config": {"options": {"base_path": base_path}}}),
    )
    .await;
    let id = config["id"].as_str().expect("id").to_string();
    if !records.is_empty() {
        store(client, project, &id, "customers", records).await;
    }
    id
}

async fn store(
    client: &mimir_client::Client,
    project: &str,
    storage_id: &str,
    entity: &str,
    records: &[Value],
) {
    call(
        client,
        Method::POST,
        "/api/storage/store",
        json!({"project_id": project, "storage_id": storage_id, "cir_data": {
            "version": "1.0",
            "source": {"type": "api", "format": "json", "parameters": {"entity_type": entity}},
            "data": records}}),
    )
    .await;
}

/// Registers a model of `project`; its id.
async fn create_model(
    client: &mimir_client::Client,
    project: &str,
    name: &str,
    model_type: &str,
    training_config: Value,
) -> String {
    let model = call(
        client,
        Method::POST,
        "/api/ml-models",
        json!({"project_id": project, "name": name, "type": model_type,
               "training_config": training_config}),
    )
    .await;
    assert_eq!(model["status"], "draft", "{model}");
    model["id"].as_str().expect("model id").to_string()
}

/// Submits a training of model `id` on the `customers` records of `data`;
/// the task's answer.
async fn train(client: &mimir_client::Client, id: &str, data: &str) -> Value {
    call(
        client,
        Method::POST,
        "/api/ml-models/train",
        json!({"model_id": id, "input_datasets": [data], "query": {"entity_type": "customers"}}),
    )
    .await
}

async fn model_of(client: &mimir_client::Client, id: &str) -> Value {
    call(
        client,
        Method::GET,
        &format!("/api/ml-models/{id}"),
        Value::Null,
    )
    .await
}

async fn task_of(answer: &Value) -> uuid::Uuid {
    answer["id"]
        .as_str()
        .or(answer["worktask_id"].as_str())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no task id in {answer}"))
}

async fn finished(client: &mimir_client::Client, answer: &Value) -> WorkTask {
    let id = task_of(answer).await;
    wait_until_done(client, id, Duration::from_secs(180)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forest_trained_from_storage_predicts_into_storage_and_is_counted_per_worker() {
    let orchestrator = Orchestrator::start(&["--max-workers", "2"]);
    let client = orchestrator.client();
    let data = storage_with(&client, "ml", "customers", &churn_records(600, 7)).await;
    let out = storage_with(&client, "ml", "predictions", &[]).await;

    let id = create_model(
        &client,
        "ml",
        "churn",
        "random_forest",
        json!({"label_column": "churn", "random_seed": 3,
                                   "hyperparameters": {"n_trees": 20}}),
    )
    .await;

    let training = train(&client, &id, &data).await;
    let trained = finished(&client, &training).await;
    assert_eq!(trained.status, WorkTaskStatus::Completed, "{trained:?}");
    assert_eq!(trained.task_spec.model_id, id);
    let result = trained.result.as_ref().expect("result");
    assert_eq!(result["version"], 1, "{result:?}");

    let model = model_of(&client, &id).await;
    assert_eq!(model["status"], "trained", "{model}");
    let accuracy = model["performance_metrics"]["accuracy"]
        .as_f64()
        .expect("accuracy");
    assert!(accuracy > 0.85, "held-out accuracy {accuracy}: {model}");
    let version = &model["versions"][0];
    assert_eq!(version["version"], 1);
    assert_eq!(version["training_task_id"], json!(trained.worktask_id));
    let mut features: Vec<&str> = version["feature_columns"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    features.sort();
    assert_eq!(
        features,
        ["paperless", "plan", "tenure", "usage"],
        "{version}"
    );

    // The artifact downloaded is the one the registry's checksum names.
    let bytes = client
        .call_bytes(
            Method::GET,
            &format!("/api/ml-models/{id}/versions/1/artifact"),
        )
        .await
        .expect("artifact");
    assert_eq!(
        mimir_ml::checksum(&bytes),
        version["checksum"].as_str().expect("checksum")
    );

    // Batch inference over fresh records, written to another storage.
    let fresh = churn_records(300, 99);
    store(&client, "ml", &data, "fresh", &fresh).await;
    let inference = call(
        &client,
        Method::POST,
        &format!("/api/ml-models/{id}/infer"),
        json!({"input": {"storage_id": data, "query": {"entity_type": "fresh"}},
               "output": {"storage_id": out, "entity_type": "scored"},
               "batch_size": 100}),
    )
    .await;
    let inferred = finished(&client, &inference).await;
    assert_eq!(inferred.status, WorkTaskStatus::Completed, "{inferred:?}");
    let summary = inferred.result.as_ref().expect("result");
    assert_eq!(summary["items"], 300, "{summary}");
    assert_eq!(summary["output"]["stored"], 300, "{summary}");
    assert_eq!(
        summary["batches"].as_array().map(Vec::len),
        Some(3),
        "{summary}"
    );

    let scored: Value = call(
        &client,
        Method::POST,
        "/api/storage/retrieve",
        json!({"storage_id": out, "query": {"entity_type": "scored", "limit": 1000}}),
    )
    .await;
    // The retrieve answers one CIR document per record.
    let scored: Vec<Value> = scored
        .as_array()
        .expect("documents")
        .iter()
        .map(|doc| doc["data"].clone())
        .collect();
    assert_eq!(scored.len(), 300);
    let truth: std::collections::HashMap<&str, &str> = fresh
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["churn"].as_str().unwrap()))
        .collect();
    let right = scored
        .iter()
        .filter(|p| {
            let input = p["input_id"].as_str().expect("input_id");
            let truth = truth.get(input).copied().expect("a known input");
            p["prediction"].as_str() == Some(truth)
        })
        .count();
    assert!(right > 250, "{right} of 300 predictions right");
    assert!(
        scored.iter().all(|p| {
            p["confidence"]
                .as_f64()
                .is_some_and(|c| (0.0..=1.0).contains(&c))
        }),
        "{:?}",
        &scored[..3]
    );

    // The orchestrator counts the items under the worker that predicted them.
    let worker = inferred.worker_id.clone();
    let text = harness::scrape_text(&orchestrator.url).await;
    let items = harness::sample(
        &text,
        &format!("mimir_inference_items_total{{model=\"churn\",worker=\"{worker}\"}}"),
    );
    assert_eq!(items, Some(300.0), "{text}");
    assert!(
        text.contains("mimir_inference_requests_total{model=\"churn\",outcome=\"completed\"} 1")
    );
    assert!(
        text.contains(
            "mimir_model_training_duration_seconds_count{model_type=\"random_forest\"} 1"
        )
    );
    assert!(text.contains("mimir_model_quality{model=\"churn\",metric=\"accuracy\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_and_data_train_the_same_model_twice() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let client = orchestrator.client();
    let data = storage_with(&client, "det", "det", &churn_records(400, 1)).await;
    let id = create_model(
        &client,
        "det",
        "det",
        "logistic_regression",
        json!({"label_column": "churn", "random_seed": 11}),
    )
    .await;
    for _ in 0..2 {
        let training = train(&client, &id, &data).await;
        let task = finished(&client, &training).await;
        assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    }
    let model = model_of(&client, &id).await;
    let versions = model["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{model}");
    assert_eq!(versions[0]["checksum"], versions[1]["checksum"], "{model}");
    assert_eq!(
        versions[0]["performance_metrics"],
        versions[1]["performance_metrics"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_without_a_feature_fails_once_naming_it() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let client = orchestrator.client();
    let data = storage_with(&client, "miss", "miss", &churn_records(200, 5)).await;
    let id = create_model(
        &client,
        "miss",
        "miss",
        "decision_tree",
        json!({"label_column": "churn"}),
    )
    .await;
    let training = train(&client, &id, &data).await;
    assert_eq!(
        finished(&client, &training).await.status,
        WorkTaskStatus::Completed
    );

    let records: Vec<Value> = churn_records(5, 8)
        .into_iter()
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("tenure");
            r
        })
        .collect();
    // Inline records are checked at the door: 400 naming the feature, and
    // no task.
    let before = client
        .list(&Default::default())
        .await
        .expect("list")
        .worktasks
        .len();
    let refused = client
        .call::<Value>(
            Method::POST,
            &format!("/api/ml-models/{id}/infer"),
            Some(&json!({"input": {"records": records}})),
        )
        .await
        .expect_err("refused");
    let refused = refused.to_string();
    assert!(refused.contains("tenure"), "{refused}");
    let after = client
        .list(&Default::default())
        .await
        .expect("list")
        .worktasks
        .len();
    assert_eq!(before, after, "a refused inference stores no task");

    // Records read from storage are checked by the worker before any
    // prediction: the task fails once, naming the feature, without retries.
    store(&client, "miss", &data, "partial", &records).await;
    let out = storage_with(&client, "miss", "miss-out", &[]).await;
    let inference = call(
        &client,
        Method::POST,
        &format!("/api/ml-models/{id}/infer"),
        json!({"input": {"storage_id": data, "query": {"entity_type": "partial"}},
               "output": {"storage_id": out, "entity_type": "scored"}}),
    )
    .await;
    let task = finished(&client, &inference).await;
    assert_eq!(task.status, WorkTaskStatus::Failed, "{task:?}");
    assert!(
        task.error_message.contains("tenure"),
        "{}",
        task.error_message
    );
    assert_eq!(
        task.retry_count, 0,
        "a missing feature is not retried: {task:?}"
    );
    let attempts: Value = call(
        &client,
        Method::GET,
        &format!("/api/worktasks/{}/attempts", task.worktask_id),
        Value::Null,
    )
    .await;
    assert_eq!(
        attempts["attempts"].as_array().map(Vec::len),
        Some(1),
        "{attempts}"
    );

    // Inline records with every feature come back in the result, in order.
    let inference = call(
        &client,
        Method::POST,
        &format!("/api/ml-models/{id}/infer"),
        json!({"input": {"records": churn_records(4, 8)}}),
    )
    .await;
    let task = finished(&client, &inference).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    let predictions = &task.result.as_ref().expect("result")["predictions"];
    let indexes: Vec<u64> = predictions
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_training_stops_and_leaves_no_version() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let client = orchestrator.client();
    let data = storage_with(&client, "stop", "stop", &churn_records(3000, 2)).await;
    let id = create_model(
        &client,
        "stop",
        "slow",
        "neural_network",
        json!({"label_column": "churn", "max_iterations": 1000000,
                                   "batch_size": 1, "early_stopping_rounds": 1000000,
                                   "hyperparameters": {"hidden_layers": [64, 64]}}),
    )
    .await;
    let training = train(&client, &id, &data).await;
    let task_id = task_of(&training).await;
    // Wait until it reports progress: training has begun.
    let started = Instant::now();
    loop {
        let task: Value = call(
            &client,
            Method::GET,
            &format!("/api/worktasks/{task_id}"),
            Value::Null,
        )
        .await;
        if task.to_string().contains("\"epochs\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress: {task}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.cancel(task_id).await.expect("cancel");
    let task = wait_until_done(&client, task_id, Duration::from_secs(30)).await;
    assert_eq!(task.status, WorkTaskStatus::Cancelled);
    // The model leaves `training` once the orchestrator has handled the
    // task's end, just after the task's status changed.
    let started = Instant::now();
    let model = loop {
        let model = model_of(&client, &id).await;
        if model["status"] != "training" {
            break model;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still training: {model}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(model["versions"], json!([]), "{model}");
    assert_eq!(model["status"], "failed", "{model}");
}
