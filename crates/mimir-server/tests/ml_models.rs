//! `/api/ml-models` through `app()` with `oneshot`, over a real SQLite file
//! and a real artifact dir in a temp dir, with the store's task events
//! followed as the orchestrator follows them: the registry round trip,
//! every refusal the API can decide (each checked to store nothing), the
//! worker's version upload and its lease check, artifact checksums, the end
//! of ML tasks (a failed training marks the model, a completed inference
//! counts its items) and the model gauges.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use mimir_core::{ModelChange, ModelVersion, PerformanceMetrics};
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore, Store, conformance};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Api {
    app: Router,
    state: AppState,
    store: Arc<SqliteStore>,
    dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    bytes: Vec<u8>,
}

impl Api {
    async fn new() -> Api {
        Api::with(|_| {}).await
    }

    /// An API whose state `adjust` changed before the router is built.
    async fn with(adjust: impl FnOnce(&mut AppState)) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ends, ended) = mimir_server::ml::MlTaskEnds::new(None);
        let options = SqliteOptions {
            retry: conformance::TEST_RETRY,
            events: Some(ends as _),
            ..SqliteOptions::default()
        };
        let store = Arc::new(SqliteStore::open(dir.path(), options).expect("open"));
        let mut state = AppState::new(store.clone());
        state.storage = Arc::new(mimir_storage::Connectors::new(
            mimir_storage::Secrets::from_env(),
            dir.path().join("storage"),
            Arc::new(mimir_storage::Unobserved),
        ));
        state.artifacts = Arc::new(mimir_server::ml::ArtifactStore::new(dir.path()));
        state.max_body_bytes = 1024 * 1024;
        adjust(&mut state);
        tokio::spawn(mimir_server::ml::task_ends::run(
            state.store.clone(),
            state.metrics.clone(),
            ended,
        ));
        Api {
            app: api::app(state.clone()),
            state,
            store,
            dir,
        }
    }

    async fn raw(&self, method: &str, uri: &str, body: Option<String>) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            bytes,
        }
    }

    async fn send(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let answer = self.raw(method, uri, body.map(|b| b.to_string())).await;
        let value = if answer.bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&answer.bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer.bytes).into()))
        };
        (answer.status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send("GET", uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send("POST", uri, Some(body)).await
    }

    async fn model(&self, id: &str) -> Value {
        let (status, model) = self.get(&format!("/api/ml-models/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{model}");
        model
    }

    /// Creates a `model_type` model of project `p`; its id.
    async fn create(&self, model_type: &str, training_config: Value) -> String {
        let (status, model) = self
            .post(
                "/api/ml-models",
                json!({"project_id": "p", "name": format!("{model_type} model"),
                       "type": model_type, "training_config": training_config}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{model}");
        model["id"].as_str().expect("id").to_string()
    }

    /// Creates a filesystem storage config of `project`; its id.
    async fn storage(&self, project: &str) -> String {
        let (status, config) = self
            .post(
                "/api/storage/configs",
                json!({"project_id": project, "plugin_type": "filesystem",
                       "config": {"options": {"base_path": project}}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{config}");
        config["id"].as_str().expect("id").to_string()
    }

    /// Every stored task.
    async fn tasks(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/worktasks?limit=1000").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["worktasks"].as_array().cloned().unwrap_or_default()
    }

    /// Files under the artifact dir.
    fn artifact_files(&self) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        let Ok(models) = std::fs::read_dir(self.dir.path().join("models")) else {
            return files;
        };
        for model in models.flatten() {
            for file in std::fs::read_dir(model.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                files.push(file.path());
            }
        }
        files
    }

    /// Adds a version to `id` as a finished training would, its artifact
    /// `bytes` written to the artifact dir; the model after.
    async fn add_version(&self, id: &str, bytes: &[u8], accuracy: f64) -> mimir_core::MlModel {
        let checksum = self
            .state
            .artifacts
            .write(id, bytes.to_vec())
            .await
            .expect("write artifact");
        let version = ModelVersion {
            version: 0,
            checksum,
            size_bytes: bytes.len() as u64,
            artifact_store: "data".into(),
            feature_columns: vec!["a".into(), "b".into()],
            label_column: "y".into(),
            performance_metrics: PerformanceMetrics {
                accuracy: Some(accuracy),
                ..Default::default()
            },
            training_config: Default::default(),
            training_task_id: None,
            training_duration_ms: Some(1200),
            created_at: chrono::Utc::now(),
        };
        self.store
            .change_model(
                id,
                ModelChange::AddVersion {
                    version: Box::new(version),
                },
            )
            .await
            .expect("add version")
    }

    async fn register(&self, worker_id: &str) {
        let (status, body) = self
            .post("/api/workers/register", json!({"worker_id": worker_id}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// `worker_id` leases one task; its id and attempt, once the lease is
    /// readable.
    async fn lease(&self, worker_id: &str) -> (String, u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self
                .post(
                    &format!("/api/workers/{worker_id}/lease"),
                    json!({"max": 1, "wait_ms": 200}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if let Some(task) = body["worktasks"].get(0) {
                let id = task["worktask_id"].as_str().expect("id").to_string();
                let attempt = task["attempt"].as_u64().expect("attempt");
                self.wait_for_task(&id, |t| t["status"] != "queued").await;
                return (id, attempt);
            }
            assert!(tokio::time::Instant::now() < deadline, "nothing to lease");
        }
    }

    async fn wait_for_task(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, task) = self.get(&format!("/api/worktasks/{id}")).await;
            if done(&task) {
                return task;
            }
            assert!(tokio::time::Instant::now() < deadline, "task {id}: {task}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_for_model(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let model = self.model(id).await;
            if done(&model) {
                return model;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "model {id}: {model}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn metrics(&self) -> String {
        let answer = self.raw("GET", "/metrics", None).await;
        String::from_utf8_lossy(&answer.bytes).into_owned()
    }
}

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["field"].as_str().unwrap_or_default(),
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn labelled() -> Value {
    json!({"label_column": "y", "random_seed": 7})
}

#[tokio::test]
async fn models_round_trip_and_delete_removes_versions_and_artifacts() {
    let api = Api::new().await;
    let (status, created) = api
        .post(
            "/api/ml-models",
            json!({"project_id": "p", "name": "churn", "type": "random_forest",
                   "training_config": {"label_column": "churned", "hyperparameters": {"n_trees": 50}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["status"], "draft");
    assert_eq!(created["type"], "random_forest");
    assert_eq!(created["versions"], json!([]));
    assert_eq!(api.model(&id).await, created);
    let other = api.create("kmeans", json!({})).await;
    let (_, listed) = api.get("/api/ml-models?project_id=p").await;
    let ids: Vec<&str> = listed["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str(), other.as_str()]);
    let (_, none) = api.get("/api/ml-models?project_id=q").await;
    assert_eq!(none["models"], json!([]));

    let (status, updated) = api
        .send(
            "PUT",
            &format!("/api/ml-models/{id}"),
            Some(json!({"name": "churn v2", "training_config": {"label_column": "left"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "churn v2");
    assert_eq!(updated["training_config"]["label_column"], "left");
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_eq!(api.model(&id).await, updated);

    api.add_version(&id, b"artifact one", 0.9).await;
    api.add_version(&id, b"artifact two", 0.8).await;
    let model = api.model(&id).await;
    assert_eq!(model["status"], "trained");
    assert_eq!(model["versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(api.artifact_files().len(), 2);

    let (status, _) = api
        .send("DELETE", &format!("/api/ml-models/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.get(&format!("/api/ml-models/{id}")).await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(
        api.artifact_files().is_empty(),
        "artifacts go with the model"
    );
    assert!(!api.dir.path().join("models").join(&id).exists());
    assert_eq!(
        api.store.get_model(&id).await.expect("get"),
        None,
        "versions went too"
    );
    let (status, _) = api
        .send("DELETE", &format!("/api/ml-models/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn create_refuses_bad_input_and_stores_nothing() {
    let api = Api::new().await;
    let cases = [
        (
            json!({"project_id": "p", "name": "m", "type": "svm"}),
            "invalid_model_type",
            "type",
        ),
        (
            json!({"project_id": "p", "name": "m"}),
            "missing_field",
            "type",
        ),
        (
            json!({"project_id": "p", "name": "m", "type": "onnx"}),
            "invalid_model_type",
            "type",
        ),
        (
            json!({"project_id": "p", "name": "", "type": "kmeans"}),
            "missing_field",
            "name",
        ),
        (
            json!({"project_id": "p", "name": "a\u{7}b", "type": "kmeans"}),
            "invalid_name",
            "name",
        ),
        (
            json!({"name": "m", "type": "kmeans"}),
            "missing_field",
            "project_id",
        ),
        (
            json!({"project_id": "p", "name": "m", "type": "decision_tree",
                   "training_config": {"train_test_split": 1.5}}),
            "invalid_training_config",
            "training_config.train_test_split",
        ),
        (
            json!({"project_id": "p", "name": "m", "type": "decision_tree",
                   "training_config": {"label_column": "y", "feature_columns": ["a", "y"]}}),
            "invalid_training_config",
            "training_config.feature_columns",
        ),
    ];
    for (body, code, field) in cases {
        let (status, answer) = api.post("/api/ml-models", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        assert_eq!(error_of(&answer), (code, field), "{body} -> {answer}");
    }
    // An unknown training config field is refused by the parser.
    let (status, answer) = api
        .post(
            "/api/ml-models",
            json!({"project_id": "p", "name": "m", "type": "kmeans", "training_config": {"k": 3}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (_, listed) = api.get("/api/ml-models").await;
    assert_eq!(listed["models"], json!([]), "nothing stored");
}

#[tokio::test]
async fn train_refuses_bad_input_and_stores_nothing() {
    let api = Api::new().await;
    let unlabelled = api.create("random_forest", json!({})).await;
    let labelled_model = api.create("logistic_regression", labelled()).await;
    let mine = api.storage("p").await;
    let theirs = api.storage("q").await;
    let before = [
        api.model(&unlabelled).await,
        api.model(&labelled_model).await,
    ];
    let cases = [
        (
            json!({"model_id": unlabelled, "input_datasets": [mine]}),
            StatusCode::BAD_REQUEST,
            ("invalid_training_config", "training_config.label_column"),
        ),
        (
            json!({"model_id": labelled_model, "input_datasets": [mine],
                   "training_config": {"train_test_split": 0.0}}),
            StatusCode::BAD_REQUEST,
            (
                "invalid_training_config",
                "training_config.train_test_split",
            ),
        ),
        (
            json!({"model_id": labelled_model, "input_datasets": [mine],
                   "training_config": {"learning_rate": -1.0}}),
            StatusCode::BAD_REQUEST,
            ("invalid_training_config", "training_config.learning_rate"),
        ),
        (
            json!({"model_id": labelled_model, "input_datasets": [theirs]}),
            StatusCode::BAD_REQUEST,
            ("wrong_project", "input_datasets"),
        ),
        (
            json!({"model_id": labelled_model, "input_datasets": ["0190d5c8-0000-7000-8000-000000000000"]}),
            StatusCode::BAD_REQUEST,
            ("unknown_storage", "input_datasets"),
        ),
        (
            json!({"model_id": labelled_model, "input_datasets": []}),
            StatusCode::BAD_REQUEST,
            ("invalid_input_datasets", "input_datasets"),
        ),
        (
            json!({"model_id": labelled_model, "input_datasets": [mine],
                   "query": {"entity_type": "rows", "limit": 5}}),
            StatusCode::BAD_REQUEST,
            ("invalid_query", "query"),
        ),
        (
            json!({"model_id": labelled_model, "input_datasets": [mine], "priority": 11}),
            StatusCode::BAD_REQUEST,
            ("invalid_priority", "priority"),
        ),
        (
            json!({"model_id": labelled_model, "input_datasets": [mine], "max_records": 0}),
            StatusCode::BAD_REQUEST,
            ("invalid_value", "max_records"),
        ),
        (
            json!({"model_id": "0190d5c8-0000-7000-8000-000000000001", "input_datasets": [mine]}),
            StatusCode::NOT_FOUND,
            ("not_found", ""),
        ),
    ];
    for (body, want_status, want) in cases {
        let (status, answer) = api.post("/api/ml-models/train", body.clone()).await;
        assert_eq!(status, want_status, "{body} -> {answer}");
        assert_eq!(error_of(&answer), want, "{body} -> {answer}");
    }
    assert!(api.tasks().await.is_empty(), "no task stored");
    assert_eq!(
        [
            api.model(&unlabelled).await,
            api.model(&labelled_model).await
        ],
        before,
        "the models are unchanged"
    );
}

#[tokio::test]
async fn a_second_training_is_refused_while_one_runs_and_nothing_is_stored() {
    let api = Api::new().await;
    let id = api.create("decision_tree", labelled()).await;
    let storage = api.storage("p").await;
    let (status, task) = api
        .post(
            "/api/ml-models/train",
            json!({"model_id": id, "input_datasets": [storage],
                   "query": {"entity_type": "rows", "filters": [{"attribute": "x", "operator": "gt", "value": 1}]},
                   "training_config": {"max_iterations": 20}, "priority": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["type"], "ml_training");
    assert_eq!(task["priority"], 7);
    assert_eq!(task["project_id"], "p");
    assert_eq!(task["task_spec"]["model_id"], id.as_str());
    assert_eq!(task["data_access"]["input_datasets"], json!([storage]));
    let parameters = &task["task_spec"]["parameters"];
    assert_eq!(parameters["training_config"]["label_column"], "y");
    assert_eq!(parameters["training_config"]["random_seed"], 7);
    assert_eq!(parameters["training_config"]["max_iterations"], 20);
    assert_eq!(parameters["query"]["entity_type"], "rows");
    assert_eq!(parameters["max_records"], 1_000_000);
    let training = api.model(&id).await;
    assert_eq!(training["status"], "training");
    assert_eq!(training["training_task_id"], task["worktask_id"]);

    let (status, answer) = api
        .post(
            "/api/ml-models/train",
            json!({"model_id": id, "input_datasets": [storage]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(error_of(&answer).0, "model_conflict");
    let (status, answer) = api
        .send(
            "PUT",
            &format!("/api/ml-models/{id}"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        (status, error_of(&answer).0),
        (StatusCode::CONFLICT, "model_conflict")
    );
    let (status, answer) = api
        .send("DELETE", &format!("/api/ml-models/{id}"), None)
        .await;
    assert_eq!(
        (status, error_of(&answer).0),
        (StatusCode::CONFLICT, "model_conflict")
    );
    assert_eq!(
        api.tasks().await.len(),
        1,
        "the refused training stored no task"
    );
    assert_eq!(api.model(&id).await, training, "nor changed the model");
}

#[tokio::test]
async fn a_cancelled_training_marks_the_model_failed() {
    let api = Api::new().await;
    let id = api.create("kmeans", json!({})).await;
    let storage = api.storage("p").await;
    let (status, task) = api
        .post(
            "/api/ml-models/train",
            json!({"model_id": id, "input_datasets": [storage]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_id = task["worktask_id"].as_str().expect("id");
    let (status, body) = api
        .post(&format!("/api/worktasks/{task_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let model = api.wait_for_model(&id, |m| m["status"] == "failed").await;
    assert!(
        model["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cancelled"),
        "{model}"
    );
    // It can be trained again.
    let (status, body) = api
        .post(
            "/api/ml-models/train",
            json!({"model_id": id, "input_datasets": [storage]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_training_failing_after_its_retries_marks_the_model_failed() {
    let api = Api::new().await;
    let id = api.create("linear_regression", labelled()).await;
    let storage = api.storage("p").await;
    let (status, task) = api
        .post(
            "/api/ml-models/train",
            json!({"model_id": id, "input_datasets": [storage]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_id = task["worktask_id"].as_str().expect("id").to_string();
    api.register("w").await;
    // ml_training allows 2 retries: three failed attempts end it.
    for _ in 0..3 {
        assert_eq!(api.model(&id).await["status"], "training");
        let (leased, attempt) = api.lease("w").await;
        assert_eq!(leased, task_id);
        let (status, body) = api
            .post(
                &format!("/api/worktasks/{task_id}"),
                json!({"worktask_id": task_id, "status": "failed", "worker_id": "w",
                       "attempt": attempt, "error_message": "the column \"y\" is missing"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    api.wait_for_task(&task_id, |t| t["status"] == "failed")
        .await;
    let model = api.wait_for_model(&id, |m| m["status"] == "failed").await;
    let reason = model["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("is missing"),
        "the last attempt's error: {model}"
    );
}

#[tokio::test]
async fn infer_checks_everything_before_storing_a_task() {
    let api = Api::new().await;
    let id = api.create("random_forest", labelled()).await;
    let mine = api.storage("p").await;
    let theirs = api.storage("q").await;
    let records = json!([{"id": 1, "a": 1.0, "b": 2.0}, {"id": 2, "a": 0.5, "b": 1.0}]);
    let (status, answer) = api
        .post(
            &format!("/api/ml-models/{id}/infer"),
            json!({"input": {"records": records}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(error_of(&answer).0, "model_not_trained");

    api.add_version(&id, b"the model", 0.9).await;
    let cases = [
        (
            json!({"version": 2, "input": {"records": records}}),
            StatusCode::NOT_FOUND,
            ("not_found", "version"),
        ),
        (
            json!({"input": {"records": [{"id": 1, "a": 1.0}]}}),
            StatusCode::BAD_REQUEST,
            ("missing_feature", "input.records[0]"),
        ),
        (
            json!({"input": {"records": [1, 2]}}),
            StatusCode::BAD_REQUEST,
            ("invalid_input", "input.records[0]"),
        ),
        (
            json!({"input": {"records": []}}),
            StatusCode::BAD_REQUEST,
            ("invalid_input", "input.records"),
        ),
        (
            json!({}),
            StatusCode::BAD_REQUEST,
            ("missing_field", "input"),
        ),
        (
            json!({"input": {"storage_id": mine, "records": records}}),
            StatusCode::BAD_REQUEST,
            ("invalid_input", "input"),
        ),
        (
            json!({"input": {"storage_id": mine, "query": {"entity_type": "rows"}}}),
            StatusCode::BAD_REQUEST,
            ("missing_field", "output"),
        ),
        (
            json!({"input": {"storage_id": theirs, "query": {"entity_type": "rows"}},
                   "output": {"storage_id": mine, "entity_type": "predictions"}}),
            StatusCode::BAD_REQUEST,
            ("wrong_project", "input.storage_id"),
        ),
        (
            json!({"input": {"records": records},
                   "output": {"storage_id": theirs, "entity_type": "predictions"}}),
            StatusCode::BAD_REQUEST,
            ("wrong_project", "output.storage_id"),
        ),
        (
            json!({"input": {"records": records},
                   "output": {"storage_id": mine, "entity_type": "bad name!"}}),
            StatusCode::BAD_REQUEST,
            ("invalid_output", "output.entity_type"),
        ),
        (
            json!({"input": {"records": records}, "batch_size": 0}),
            StatusCode::BAD_REQUEST,
            ("invalid_value", "batch_size"),
        ),
        (
            json!({"input": {"records": records}, "batch_size": 10_001}),
            StatusCode::BAD_REQUEST,
            ("invalid_value", "batch_size"),
        ),
    ];
    for (body, want_status, want) in cases {
        let (status, answer) = api
            .post(&format!("/api/ml-models/{id}/infer"), body.clone())
            .await;
        assert_eq!(status, want_status, "{body} -> {answer}");
        assert_eq!(error_of(&answer), want, "{body} -> {answer}");
    }
    assert!(api.tasks().await.is_empty(), "no task stored");

    let (status, task) = api
        .post(
            &format!("/api/ml-models/{id}/infer"),
            json!({"input": {"storage_id": mine, "query": {"entity_type": "rows"}},
                   "output": {"storage_id": mine, "entity_type": "predictions"},
                   "batch_size": 500}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["type"], "ml_inference");
    let parameters = &task["task_spec"]["parameters"];
    assert_eq!(
        parameters["version"], 1,
        "the latest version, fixed at submission"
    );
    assert_eq!(parameters["input"]["storage_id"], mine.as_str());
    assert_eq!(parameters["input"]["query"]["entity_type"], "rows");
    assert_eq!(
        parameters["output"],
        json!({"storage_id": mine, "entity_type": "predictions"})
    );
    assert_eq!(parameters["batch_size"], 500);
    let (status, task) = api
        .post(
            &format!("/api/ml-models/{id}/infer"),
            json!({"input": {"records": records}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["task_spec"]["parameters"]["input"]["records"], records);
    assert_eq!(task["task_spec"]["parameters"]["batch_size"], 1000);
}

#[tokio::test]
async fn import_refuses_invalid_base64_and_invalid_onnx_and_stores_nothing() {
    let api = Api::new().await;
    let base = json!({"project_id": "p", "name": "imported", "format": "onnx",
                      "feature_columns": ["a", "b"]});
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        body
    };
    let cases = [
        (
            with(json!({"artifact_base64": "not base64!!"})),
            ("invalid_base64", "artifact_base64"),
        ),
        (
            with(json!({"artifact_base64": b64(b"this is not an ONNX model")})),
            ("invalid_model", "artifact_base64"),
        ),
        (with(json!({})), ("missing_field", "artifact_base64")),
        (
            with(json!({"format": "pmml", "artifact_base64": b64(b"x")})),
            ("invalid_format", "format"),
        ),
        (
            with(json!({"feature_columns": [], "artifact_base64": b64(b"x")})),
            ("missing_field", "feature_columns"),
        ),
        (
            with(json!({"feature_columns": ["a", "a"], "artifact_base64": b64(b"x")})),
            ("invalid_feature_columns", "feature_columns"),
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = api.post("/api/ml-models/import", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        assert_eq!(error_of(&answer), want, "{body} -> {answer}");
    }
    let (_, listed) = api.get("/api/ml-models").await;
    assert_eq!(listed["models"], json!([]), "no model stored");
    assert!(api.artifact_files().is_empty(), "no artifact written");
}

#[tokio::test]
async fn a_version_upload_needs_the_training_lease_and_stores_nothing_otherwise() {
    let api = Api::new().await;
    let id = api.create("decision_tree", labelled()).await;
    let other = api.create("decision_tree", labelled()).await;
    let storage = api.storage("p").await;
    let (status, task) = api
        .post(
            "/api/ml-models/train",
            json!({"model_id": id, "input_datasets": [storage]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_id = task["worktask_id"].as_str().expect("id").to_string();
    api.register("w").await;
    api.register("intruder").await;
    let (leased, attempt) = api.lease("w").await;
    assert_eq!(leased, task_id);
    let upload = |attempt: u64, artifact: &[u8]| {
        json!({"worktask_id": task_id, "attempt": attempt, "feature_columns": ["a", "b"],
               "label_column": "y", "performance_metrics": {"accuracy": 0.9},
               "training_config": {"label_column": "y"}, "training_duration_ms": 1500,
               "artifact_base64": b64(artifact)})
    };
    let cases = [
        (
            format!("/api/workers/intruder/ml-models/{id}/versions"),
            upload(attempt, b"model"),
            StatusCode::CONFLICT,
            "not_lease_holder",
        ),
        (
            format!("/api/workers/w/ml-models/{id}/versions"),
            upload(attempt + 1, b"model"),
            StatusCode::CONFLICT,
            "not_lease_holder",
        ),
        (
            format!("/api/workers/w/ml-models/{other}/versions"),
            upload(attempt, b"model"),
            StatusCode::CONFLICT,
            "wrong_task",
        ),
        (
            format!("/api/workers/nobody/ml-models/{id}/versions"),
            upload(attempt, b"model"),
            StatusCode::NOT_FOUND,
            "unknown_worker",
        ),
        (
            format!("/api/workers/w/ml-models/{id}/versions"),
            upload(attempt, b"not a model artifact"),
            StatusCode::BAD_REQUEST,
            "invalid_model",
        ),
    ];
    for (uri, body, want_status, want_code) in cases {
        let (status, answer) = api.post(&uri, body).await;
        assert_eq!(status, want_status, "{uri} -> {answer}");
        assert_eq!(error_of(&answer).0, want_code, "{uri} -> {answer}");
    }
    for model in [&id, &other] {
        assert_eq!(
            api.model(model).await["versions"],
            json!([]),
            "no version stored"
        );
    }
    assert!(api.artifact_files().is_empty(), "no artifact written");
}

#[tokio::test]
async fn an_artifact_download_is_verified_against_its_checksum() {
    let api = Api::new().await;
    let id = api.create("random_forest", labelled()).await;
    let (status, body) = api
        .get(&format!("/api/ml-models/{id}/versions/1/artifact"))
        .await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::CONFLICT, "model_not_trained")
    );
    let model = api.add_version(&id, b"artifact bytes", 0.9).await;
    let checksum = model.versions[0].checksum.clone();
    let answer = api
        .raw(
            "GET",
            &format!("/api/ml-models/{id}/versions/1/artifact"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.bytes, b"artifact bytes");
    assert_eq!(
        answer
            .headers
            .get("x-mimir-checksum")
            .and_then(|v| v.to_str().ok()),
        Some(checksum.as_str())
    );
    assert_eq!(
        answer
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/octet-stream")
    );
    let (status, _) = api
        .get(&format!("/api/ml-models/{id}/versions/2/artifact"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Damaged on disk: refused, not served.
    let path = api.state.artifacts.path(&id, &checksum).expect("path");
    std::fs::write(&path, b"artifact bytez").expect("damage");
    let answer = api
        .raw(
            "GET",
            &format!("/api/ml-models/{id}/versions/1/artifact"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = serde_json::from_slice(&answer.bytes).expect("json");
    assert_eq!(error_of(&body).0, "artifact_damaged");
    assert!(!String::from_utf8_lossy(&answer.bytes).contains("bytez"));
}

#[tokio::test]
async fn a_completed_inference_counts_items_per_worker_and_models_show_quality() {
    let api = Api::new().await;
    let id = api.create("random_forest", labelled()).await;
    api.add_version(&id, b"the model", 0.875).await;
    let (status, task) = api
        .post(
            &format!("/api/ml-models/{id}/infer"),
            json!({"input": {"records": [{"a": 1, "b": 2}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_id = task["worktask_id"].as_str().expect("id").to_string();
    api.register("w1").await;
    let (_, attempt) = api.lease("w1").await;
    let (status, body) = api
        .post(
            &format!("/api/worktasks/{task_id}"),
            json!({"worktask_id": task_id, "status": "completed", "worker_id": "w1", "attempt": attempt,
                   "result": {"model_id": id, "model_name": "random_forest model", "version": 1,
                              "items": 30, "duration_ms": 250, "batches": [[20, 0.2], [10, 0.05]]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = api.metrics().await;
        if text
            .contains("mimir_inference_items_total{model=\"random_forest model\",worker=\"w1\"} 30")
        {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for line in [
        "mimir_inference_requests_total{model=\"random_forest model\",outcome=\"completed\"} 1",
        "mimir_inference_duration_seconds_count{model=\"random_forest model\",scope=\"batch\"} 2",
        "mimir_inference_duration_seconds_count{model=\"random_forest model\",scope=\"item\"} 2",
        "mimir_model_quality{model=\"random_forest model\",metric=\"accuracy\"} 0.875",
        "mimir_model_degraded{model=\"random_forest model\"} 0",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(!text.contains(&task_id), "never a task id as a label");

    // A cancelled inference counts as such.
    let (_, task) = api
        .post(
            &format!("/api/ml-models/{id}/infer"),
            json!({"input": {"records": [{"a": 1, "b": 2}]}}),
        )
        .await;
    let task_id = task["worktask_id"].as_str().expect("id");
    api.post(&format!("/api/worktasks/{task_id}/cancel"), json!({}))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = api.metrics().await;
        if text.contains(
            "mimir_inference_requests_total{model=\"random_forest model\",outcome=\"cancelled\"} 1",
        ) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn evaluate_refuses_bad_input() {
    let api = Api::new().await;
    let id = api.create("random_forest", labelled()).await;
    let records = json!([{"a": 1, "b": 2, "y": "yes"}]);
    let (status, body) = api
        .post(
            &format!("/api/ml-models/{id}/evaluate"),
            json!({"input": {"records": records}}),
        )
        .await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::CONFLICT, "model_not_trained")
    );
    api.add_version(&id, b"the model", 0.9).await;
    let (status, body) = api
        .post(
            &format!("/api/ml-models/{id}/evaluate"),
            json!({"input": {"records": records}, "threshold": 2.0}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), ("invalid_value", "threshold"));
    let (status, body) = api
        .post(
            &format!("/api/ml-models/{id}/evaluate"),
            json!({"version": 3, "input": {"records": records}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(api.model(&id).await["status"], "trained", "unchanged");
}

/// Trains a real classifier with `mimir_ml`, stores it as a version, and
/// checks it on records whose labels hold (restored) and on records whose
/// labels were flipped (degraded).
#[tokio::test]

async fn evaluate_degrades_on_worse_records_and_restores_on_good_ones() {
    let api = Api::new().await;
    let id = api.create("logistic_regression", labelled()).await;
    let records = rule_records(400);
    let config = mimir_core::TrainingConfig {
        label_column: "y".into(),
        feature_columns: vec!["a".into(), "b".into()],
        ..Default::default()
    };
    let trained = mimir_ml::train(
        mimir_core::ModelType::LogisticRegression,
        &config,
        &records,
        &mut |_| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("train");
    let accuracy = trained.metrics.accuracy.expect("accuracy");
    api.add_version(&id, &trained.artifact, accuracy).await;
    let good: Vec<Value> = records.iter().map(|r| Value::Object(r.clone())).collect();
    let (status, body) = api
        .post(
            &format!("/api/ml-models/{id}/evaluate"),
            json!({"input": {"records": good}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["degraded"], false, "{body}");
    let flipped: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let y = if r["y"] == "yes" { "no" } else { "yes" };
            r.insert("y".into(), json!(y));
            Value::Object(r)
        })
        .collect();
    let (status, body) = api
        .post(
            &format!("/api/ml-models/{id}/evaluate"),
            json!({"input": {"records": flipped}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["degraded"], true, "{body}");
    assert_eq!(body["metric"], "accuracy");
    assert_eq!(api.model(&id).await["status"], "degraded");
    assert!(
        api.metrics()
            .await
            .contains("mimir_model_degraded{model=\"logistic_regression model\"} 1")
    );
    let (status, body) = api
        .post(
            &format!("/api/ml-models/{id}/evaluate"),
            json!({"input": {"records": good}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.model(&id).await["status"], "trained", "restored");
}

#[tokio::test]
async fn artifact_routes_take_bodies_beyond_the_api_limit_up_to_the_artifact_limit() {
    let api = Api::with(|state| state.max_artifact_bytes = 3 * 1024 * 1024).await;
    // 2 MiB of artifact: past api.maxBodyBytes (1 MiB), within the
    // artifact limit, so the import reads it and refuses it as a model.
    let big = vec![7u8; 2 * 1024 * 1024];
    let body = json!({"project_id": "p", "name": "big", "format": "onnx",
                      "feature_columns": ["a"], "artifact_base64": b64(&big)});
    let (status, answer) = api.post("/api/ml-models/import", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(error_of(&answer), ("invalid_model", "artifact_base64"));
    // Past the artifact limit: 413, nothing stored.
    let huge = vec![7u8; 3 * 1024 * 1024 + 1];
    let body = json!({"project_id": "p", "name": "huge", "format": "onnx",
                      "feature_columns": ["a"], "artifact_base64": b64(&huge)});
    let (status, answer) = api.post("/api/ml-models/import", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    // Other routes keep the API limit.
    let records: Vec<Value> = (0..40_000)
        .map(|i| json!({"a": i, "padding": "x".repeat(20)}))
        .collect();
    let (status, _) = api
        .post(
            "/api/ml-models",
            json!({"project_id": "p", "name": "m", "type": "kmeans", "x": records}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, listed) = api.get("/api/ml-models").await;
    assert_eq!(listed["models"], json!([]));
    assert!(api.artifact_files().is_empty());
}

/// Labelled records of a simple rule (`a + b > 15`), for trainings.
fn rule_records(n: u32) -> Vec<mimir_ml::Record> {
    (0..n)
        .map(|i| {
            let a = f64::from(i % 20);
            let b = f64::from((i * 7) % 13);
            let y = if a + b > 15.0 { "yes" } else { "no" };
            json!({"id": i, "a": a, "b": b, "y": y})
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// A worker's upload of a really trained model becomes version 1: the model
/// is `trained` with its scores, the artifact downloads byte for byte with
/// its checksum, and the task's completion records the training duration.
#[tokio::test]

async fn a_worker_upload_of_a_trained_model_becomes_its_first_version() {
    let api = Api::new().await;
    let id = api.create("decision_tree", labelled()).await;
    let storage = api.storage("p").await;
    let (status, task) = api
        .post(
            "/api/ml-models/train",
            json!({"model_id": id, "input_datasets": [storage]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_id = task["worktask_id"].as_str().expect("id").to_string();
    api.register("w").await;
    let (_, attempt) = api.lease("w").await;
    let config = mimir_core::TrainingConfig {
        label_column: "y".into(),
        ..Default::default()
    };
    let trained = mimir_ml::train(
        mimir_core::ModelType::DecisionTree,
        &config,
        &rule_records(300),
        &mut |_| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("train");
    let (status, version) = api
        .post(
            &format!("/api/workers/w/ml-models/{id}/versions"),
            json!({"worktask_id": task_id, "attempt": attempt,
                   "feature_columns": trained.feature_columns, "label_column": "y",
                   "performance_metrics": trained.metrics, "training_config": config,
                   "training_duration_ms": 2500, "artifact_base64": b64(&trained.artifact)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{version}");
    assert_eq!(version["version"], 1);
    assert_eq!(version["checksum"], mimir_ml::checksum(&trained.artifact));
    let model = api.model(&id).await;
    assert_eq!(model["status"], "trained");
    assert_eq!(
        model["performance_metrics"]["accuracy"],
        json!(trained.metrics.accuracy)
    );
    let answer = api
        .raw(
            "GET",
            &format!("/api/ml-models/{id}/versions/1/artifact"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.bytes, trained.artifact);
    let (status, body) = api
        .post(
            &format!("/api/worktasks/{task_id}"),
            json!({"worktask_id": task_id, "status": "completed", "worker_id": "w", "attempt": attempt,
                   "result": {"model_id": id, "version": 1, "training_duration_ms": 2500}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = api.metrics().await;
        if text
            .contains("mimir_model_training_duration_seconds_sum{model_type=\"decision_tree\"} 2.5")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        api.model(&id).await["status"],
        "trained",
        "completion keeps it trained"
    );
}
