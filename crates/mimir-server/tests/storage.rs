//! `/api/storage` through `app()` with `oneshot`, over a real SQLite store
//! and a real filesystem storage root in a temp dir: configs (CRUD,
//! redaction, validation, the 409 while a pipeline uses one), operations
//! (store, retrieve, update, delete, schema, health, metadata) and their
//! refusals, the worker protocol's unredacted read, and `mimir_storage_up`.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

/// A secret no answer may ever show.
const SECRET: &str = "hunter2-s3cr3t";

struct Api {
    app: Router,
    state: AppState,
    store: Arc<SqliteStore>,
    dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).expect("open"));
        let mut state = AppState::new(store.clone());
        state.storage = Arc::new(mimir_storage::Connectors::new(
            mimir_storage::Secrets::from_env(),
            dir.path().join("storage"),
            Arc::new(mimir_storage::MetricsObserver::new(state.metrics.clone())),
        ));
        state.max_body_bytes = 1024 * 1024;
        let api = Api {
            app: api::app(state.clone()),
            state,
            store,
            dir,
        };
        let (status, body) = api
            .post("/api/projects", json!({"id": "p", "name": "P"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        api
    }

    async fn send(&self, method: &str, uri: &str, body: Option<String>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(SECRET),
            "{method} {uri} answered a secret: {text}"
        );
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(text.into_owned()))
        };
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send("GET", uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send("POST", uri, Some(body.to_string())).await
    }

    async fn post_text(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.send("POST", uri, Some(body.to_string())).await
    }

    /// Creates a filesystem config of project `p` holding a credential; its id.
    async fn filesystem(&self, base_path: &str) -> String {
        let (status, config) = self
            .post(
                "/api/storage/configs",
                json!({"project_id": "p", "plugin_type": "filesystem",
                       "config": {"credentials": {"token": SECRET},
                                  "options": {"base_path": base_path}}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{config}");
        config["id"].as_str().expect("id").to_string()
    }

    async fn retrieve(&self, storage_id: &str, query: Value) -> Vec<Value> {
        let (status, docs) = self
            .post(
                "/api/storage/retrieve",
                json!({"storage_id": storage_id, "query": query}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{docs}");
        docs.as_array().expect("array").clone()
    }

    async fn metrics(&self) -> String {
        let request = Request::get("/metrics")
            .body(Body::empty())
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn error_of(body: &Value) -> (&str, &str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["field"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

fn users(rows: &[(i64, &str, i64)]) -> Value {
    let data: Vec<Value> = rows
        .iter()
        .map(|(id, name, age)| json!({"id": id, "name": name, "age": age}))
        .collect();
    json!({"version": "1.0", "source": {"type": "api", "parameters": {"entity_type": "users"}}, "data": data})
}

#[tokio::test]
async fn configs_round_trip_with_credentials_redacted_and_kept() {
    let api = Api::new().await;
    let (status, created) = api
        .post(
            "/api/storage/configs",
            json!({"project_id": "p", "plugin_type": "postgresql",
                   "config": {"connection_string": format!("postgres://app:{SECRET}@db:5432/x"),
                              "credentials": {"password": SECRET, "token": "${env:PG_TOKEN}"},
                              "options": {"timeout_ms": 500}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["plugin_type"], "postgresql");
    assert_eq!(created["active"], true);
    assert_eq!(created["config"]["credentials"]["password"], "[redacted]");
    assert_eq!(
        created["config"]["credentials"]["token"], "${env:PG_TOKEN}",
        "references are not secrets"
    );
    assert_eq!(
        created["config"]["connection_string"],
        "postgres://app:[redacted]@db:5432/x"
    );
    let (status, got) = api.get(&format!("/api/storage/configs/{id}")).await;
    assert_eq!((status, &got), (StatusCode::OK, &created));
    let fs = api.filesystem("one").await;
    let (_, listed) = api.get("/api/storage/configs?project_id=p").await;
    let ids: Vec<&str> = listed["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str(), fs.as_str()]);
    let (_, all) = api.get("/api/storage/configs").await;
    assert_eq!(all["configs"].as_array().map(Vec::len), Some(2));
    let (_, none) = api.get("/api/storage/configs?project_id=other").await;
    assert_eq!(none["configs"], json!([]));

    // A client sends back what it read, with one option changed.
    let mut settings = got["config"].clone();
    settings["options"]["timeout_ms"] = json!(900);
    let (status, updated) = api
        .send(
            "PUT",
            &format!("/api/storage/configs/{id}"),
            Some(json!({"config": settings, "active": false}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["active"], false);
    assert_eq!(updated["config"]["options"]["timeout_ms"], 900);
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_ne!(updated["updated_at"], created["updated_at"]);
    let stored = api
        .store
        .get_storage_config(&id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.config.credentials["password"], json!(SECRET));
    assert_eq!(
        stored.config.connection_string,
        format!("postgres://app:{SECRET}@db:5432/x"),
        "the secrets sent back redacted are kept"
    );

    let (status, _) = api
        .send("DELETE", &format!("/api/storage/configs/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.get(&format!("/api/storage/configs/{id}")).await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = api
        .send("DELETE", &format!("/api/storage/configs/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_configs_are_refused_naming_the_field_and_nothing_is_stored() {
    let api = Api::new().await;
    let fs = |options: Value| json!({"project_id": "p", "plugin_type": "filesystem", "config": {"options": options}});
    for (body, code, field) in [
        (
            json!({"project_id": "p", "plugin_type": "sqlite", "config": {}}),
            "invalid_plugin_type",
            "plugin_type",
        ),
        (
            json!({"project_id": "p", "config": {}}),
            "missing_field",
            "plugin_type",
        ),
        (
            json!({"plugin_type": "filesystem"}),
            "missing_field",
            "project_id",
        ),
        (
            fs(json!({})),
            "invalid_storage_config",
            "config.options.base_path",
        ),
        (
            fs(json!({"base_path": "../escape"})),
            "invalid_storage_config",
            "config.options.base_path",
        ),
        (
            fs(json!({"base_path": "a", "timeout_ms": 0})),
            "invalid_storage_config",
            "config.options.timeout_ms",
        ),
        (
            json!({"project_id": "p", "plugin_type": "filesystem",
                   "config": {"options": {"base_path": "a"}, "credentials": {"k": 5}}}),
            "invalid_storage_config",
            "config.credentials.k",
        ),
        (
            json!({"project_id": "bad\u{7}id", "plugin_type": "filesystem",
                   "config": {"options": {"base_path": "a"}}}),
            "invalid_value",
            "project_id",
        ),
        (
            json!({"project_id": "p", "plugin_type": "filesystem",
                   "config": {"options": {"base_path": "a"}, "secret": 1}}),
            "unknown_field",
            "config.secret",
        ),
        (
            json!({"project_id": "p", "plugin_type": "filesystem", "extra": 1}),
            "unknown_field",
            "extra",
        ),
    ] {
        let (status, answer) = api.post("/api/storage/configs", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let (got_code, got_field, message) = error_of(&answer);
        assert_eq!((got_code, got_field), (code, field), "{body}: {message}");
    }
    for text in ["{", "[]", "", "{\"project_id\": 5}"] {
        let (status, answer) = api.post_text("/api/storage/configs", text).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}: {answer}");
    }
    let (_, all) = api.get("/api/storage/configs").await;
    assert_eq!(all["configs"], json!([]), "nothing refused was stored");
    let (status, body) = api.get("/api/storage/configs?projectid=p").await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::BAD_REQUEST, "unknown_parameter")
    );
    // A project used only by a pipeline is known.
    let now = chrono::Utc::now();
    api.store
        .put_pipeline(
            mimir_core::Pipeline {
                id: "pl".into(),
                project_id: "used".into(),
                name: "x".into(),
                pipeline_type: mimir_core::PipelineType::Processing,
                description: String::new(),
                steps: vec![json!({"name": "a", "plugin": "core", "action": "log"})],
                created_at: now,
                updated_at: now,
                step_timeout_ms: None,
                trigger_config: Default::default(),
            },
            true,
        )
        .await
        .expect("pipeline");
    let (status, body) = api
        .post(
            "/api/storage/configs",
            json!({"project_id": "used", "plugin_type": "redis",
                   "config": {"connection_string": "redis://127.0.0.1:6379"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_batch_is_stored_then_retrieved_updated_and_deleted_by_filters() {
    let api = Api::new().await;
    let id = api.filesystem("ops").await;
    let (status, result) = api
        .post(
            "/api/storage/store",
            json!({"project_id": "p", "storage_id": id,
                   "cir_data": users(&[(1, "ann", 31), (2, "bob", 25), (3, "cy", 40), (4, "di", 25)])}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(
        result,
        json!({"success": true, "affected_items": 4, "error": null})
    );
    let docs = api
        .retrieve(
            &id,
            json!({"entity_type": "users",
                   "filters": [{"attribute": "age", "operator": "gte", "value": 25}],
                   "order_by": [{"attribute": "age", "direction": "desc"}, {"attribute": "id"}],
                   "limit": 3, "offset": 0}),
        )
        .await;
    let ids: Vec<&Value> = docs.iter().map(|d| &d["data"]["id"]).collect();
    assert_eq!(ids, [&json!(3), &json!(1), &json!(2)]);
    assert_eq!(docs[0]["version"], "1.0");
    assert_eq!(docs[0]["source"]["parameters"]["entity_type"], "users");
    let liked = api
        .retrieve(
            &id,
            json!({"entity_type": "users",
                   "filters": [{"attribute": "name", "operator": "in", "value": ["ann", "di"]}]}),
        )
        .await;
    assert_eq!(liked.len(), 2);

    let (status, result) = api
        .post(
            "/api/storage/update",
            json!({"storage_id": id,
                   "query": {"entity_type": "users", "filters": [{"attribute": "age", "operator": "eq", "value": 25}]},
                   "updates": {"age": 26}}),
        )
        .await;
    assert_eq!(
        (status, result["affected_items"].clone()),
        (StatusCode::OK, json!(2))
    );
    // No filter means every record: refused unless `all` says so.
    for (path, body) in [
        (
            "/api/storage/update",
            json!({"storage_id": id, "query": {"entity_type": "users"}, "updates": {"age": 1}}),
        ),
        (
            "/api/storage/delete",
            json!({"storage_id": id, "query": {"entity_type": "users"}}),
        ),
    ] {
        let (status, answer) = api.post(path, body).await;
        let (code, field, message) = error_of(&answer);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(
            (code, field),
            ("invalid_storage_request", "query"),
            "{path}"
        );
        assert!(message.contains("\"all\": true"), "{message}");
    }
    let ages: Vec<Value> = api
        .retrieve(
            &id,
            json!({"entity_type": "users", "order_by": [{"attribute": "id"}]}),
        )
        .await
        .iter()
        .map(|d| d["data"]["age"].clone())
        .collect();
    assert_eq!(
        ages,
        [json!(31), json!(26), json!(40), json!(26)],
        "the refusals changed nothing"
    );
    let (status, result) = api
        .post(
            "/api/storage/delete",
            json!({"storage_id": id,
                   "query": {"entity_type": "users", "filters": [{"attribute": "age", "operator": "lt", "value": 30}]}}),
        )
        .await;
    assert_eq!(
        (status, result["affected_items"].clone()),
        (StatusCode::OK, json!(2))
    );
    let (status, result) = api
        .post(
            "/api/storage/update",
            json!({"storage_id": id, "query": {"entity_type": "users"}, "updates": {"seen": true}, "all": true}),
        )
        .await;
    assert_eq!(
        (status, result["affected_items"].clone()),
        (StatusCode::OK, json!(2))
    );
    let (status, result) = api
        .post(
            "/api/storage/delete",
            json!({"storage_id": id, "query": {"entity_type": "users"}, "all": true}),
        )
        .await;
    assert_eq!(
        (status, result["affected_items"].clone()),
        (StatusCode::OK, json!(2))
    );
    assert!(
        api.retrieve(&id, json!({"entity_type": "users"}))
            .await
            .is_empty()
    );
    let text = api.metrics().await;
    assert!(
        text.contains(
            "mimir_storage_operations_total{operation=\"store\",backend=\"filesystem\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("mimir_storage_records_total{operation=\"store\",backend=\"filesystem\"} 4"),
        "{text}"
    );
}

#[tokio::test]
async fn hostile_operations_are_refused_and_store_nothing() {
    let api = Api::new().await;
    let id = api.filesystem("hostile").await;
    let store = |cir: Value| json!({"storage_id": id, "cir_data": cir});
    for (path, body, code, field) in [
        (
            "/api/storage/store",
            store(
                json!({"version": "1.0", "source": {"parameters": {"entity_type": "x; DROP TABLE y"}}, "data": {"a": 1}}),
            ),
            "invalid_storage_request",
            "cir_data",
        ),
        (
            "/api/storage/store",
            store(json!({"version": "1.0", "data": [{"a": 1}, {"b\"; DROP TABLE y; --": 2}]})),
            "invalid_storage_request",
            "cir_data",
        ),
        (
            "/api/storage/store",
            store(
                json!({"version": "1.0", "source": {"parameters": {"entity_type": "../../etc"}}, "data": {"a": 1}}),
            ),
            "invalid_storage_request",
            "cir_data",
        ),
        (
            "/api/storage/store",
            json!({"storage_id": id}),
            "missing_field",
            "cir_data",
        ),
        (
            "/api/storage/retrieve",
            json!({"storage_id": id, "query": {"entity_type": "x; DROP TABLE y"}}),
            "invalid_storage_request",
            "query",
        ),
        (
            "/api/storage/retrieve",
            json!({"storage_id": id, "query": {"filters": [{"attribute": "a' OR '1'='1", "operator": "eq", "value": 1}]}}),
            "invalid_storage_request",
            "query",
        ),
        (
            "/api/storage/retrieve",
            json!({"storage_id": id, "query": {"filters": [{"attribute": "a", "operator": "regex", "value": ".*"}]}}),
            "invalid_storage_request",
            "query",
        ),
        (
            "/api/storage/retrieve",
            json!({"storage_id": id, "query": {"limit": 10_001}}),
            "invalid_storage_request",
            "query",
        ),
        (
            "/api/storage/retrieve",
            json!({"storage_id": id, "query": {"entity": "users"}}),
            "unknown_field",
            "query.entity",
        ),
        (
            "/api/storage/update",
            json!({"storage_id": id, "query": {"filters": [{"attribute": "a", "operator": "eq", "value": 1}]},
                   "updates": {"x = 1; DROP TABLE y": 2}}),
            "invalid_storage_request",
            "updates",
        ),
        (
            "/api/storage/update",
            json!({"storage_id": id, "query": {"filters": [{"attribute": "a", "operator": "eq", "value": 1}]}}),
            "missing_field",
            "updates",
        ),
        (
            "/api/storage/schema",
            json!({"storage_id": id, "entities": [{"name": "t; DROP TABLE y", "attributes": [{"name": "a", "type": "string"}]}]}),
            "invalid_value",
            "entities[0].name",
        ),
        (
            "/api/storage/store",
            json!({"cir_data": {"data": {}}}),
            "missing_field",
            "storage_id",
        ),
        (
            "/api/storage/store",
            json!({"storage_id": id, "cir_data": {"data": {}}, "extra": 1}),
            "unknown_field",
            "extra",
        ),
        (
            "/api/storage/store",
            json!({"project_id": "other", "storage_id": id, "cir_data": {"data": {"a": 1}}}),
            "wrong_project",
            "project_id",
        ),
    ] {
        let (status, answer) = api.post(path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        let (got_code, got_field, _) = error_of(&answer);
        assert_eq!(
            (got_code, got_field),
            (code, field),
            "{path} {body}: {answer}"
        );
    }
    for (path, text) in [
        ("/api/storage/store", "{\"storage_id\": "),
        ("/api/storage/retrieve", "[1]"),
        ("/api/storage/delete", "not json"),
    ] {
        let (status, answer) = api.post_text(path, text).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {text}: {answer}");
        assert_eq!(error_of(&answer).0, "invalid_json");
    }
    // Unknown ids are 404; an inactive config is 409.
    let (status, answer) = api
        .post(
            "/api/storage/store",
            json!({"storage_id": "no-such", "cir_data": {"data": {"a": 1}}}),
        )
        .await;
    assert_eq!(
        (status, error_of(&answer).1),
        (StatusCode::NOT_FOUND, "storage_id")
    );
    let (status, _) = api
        .send(
            "PUT",
            &format!("/api/storage/configs/{id}"),
            Some(json!({"active": false}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = api
        .post(
            "/api/storage/store",
            json!({"storage_id": id, "cir_data": {"data": {"a": 1}}}),
        )
        .await;
    let (code, _, message) = error_of(&answer);
    assert_eq!(
        (status, code),
        (StatusCode::CONFLICT, "storage_inactive"),
        "{answer}"
    );
    assert!(message.contains("inactive"), "{message}");
    let (status, _) = api
        .send(
            "PUT",
            &format!("/api/storage/configs/{id}"),
            Some(json!({"active": true}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Nothing reached the disk: no entity folder was made.
    let base = api.dir.path().join("storage/hostile");
    let entries: Vec<_> = std::fs::read_dir(&base)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "{entries:?}");
    assert!(api.retrieve(&id, json!({})).await.is_empty());
}

#[tokio::test]
async fn a_config_a_pipeline_uses_cannot_be_deleted() {
    let api = Api::new().await;
    let id = api.filesystem("used").await;
    let now = chrono::Utc::now();
    let mut pipeline = mimir_core::Pipeline {
        id: "nightly-id".into(),
        project_id: "p".into(),
        name: "nightly".into(),
        pipeline_type: mimir_core::PipelineType::Ingestion,
        description: String::new(),
        steps: vec![
            json!({"name": "log", "plugin": "core", "action": "log", "parameters": {"message": id}}),
            json!({"name": "save", "plugin": "storage", "action": "store",
                   "parameters": {"storage_id": id, "cir_data": "$.load"}}),
        ],
        created_at: now,
        updated_at: now,
        step_timeout_ms: None,
        trigger_config: Default::default(),
    };
    api.store
        .put_pipeline(pipeline.clone(), true)
        .await
        .expect("pipeline");
    let (status, answer) = api
        .send("DELETE", &format!("/api/storage/configs/{id}"), None)
        .await;
    let (code, _, message) = error_of(&answer);
    assert_eq!(
        (status, code),
        (StatusCode::CONFLICT, "storage_in_use"),
        "{answer}"
    );
    assert!(message.contains("nightly"), "{message}");
    // Inside a nested step list too.
    pipeline.steps = vec![json!({"name": "each", "plugin": "core", "action": "log",
        "parameters": {"steps": [{"name": "inner", "parameters": {"storage_id": id}}]}})];
    api.store
        .put_pipeline(pipeline.clone(), false)
        .await
        .expect("pipeline");
    let (status, _) = api
        .send("DELETE", &format!("/api/storage/configs/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    api.store
        .delete_pipeline(&pipeline.id)
        .await
        .expect("delete pipeline");
    let (status, _) = api
        .send("DELETE", &format!("/api/storage/configs/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn deleting_a_project_keeps_its_configs_as_it_keeps_its_pipelines() {
    let api = Api::new().await;
    let id = api.filesystem("kept").await;
    let (status, _) = api.send("DELETE", "/api/projects/p", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, config) = api.get(&format!("/api/storage/configs/{id}")).await;
    assert_eq!(
        (status, config["project_id"].clone()),
        (StatusCode::OK, json!("p"))
    );
    let (status, _) = api
        .post(
            "/api/storage/store",
            json!({"project_id": "p", "storage_id": id, "cir_data": {"data": {"a": 1}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "its configs still work");
    let (_, projects) = api.get("/api/projects").await;
    assert_eq!(
        projects["projects"][0]["id"], "p",
        "the project is still listed, as one its configs use: {projects}"
    );
    // And it is still known, so more configs can be made for it.
    api.filesystem("kept2").await;
}

#[tokio::test]
async fn schemas_health_and_metadata() {
    let api = Api::new().await;
    let id = api.filesystem("typed").await;
    let (status, result) = api
        .post(
            "/api/storage/schema",
            json!({"storage_id": id, "entities": [{"name": "orders", "attributes": [
                {"name": "order_id", "type": "string", "indexed": true, "required": true},
                {"name": "total", "type": "number"}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["affected_items"], 1);
    let (status, answer) = api
        .post(
            "/api/storage/store",
            json!({"storage_id": id, "cir_data": {"source": {"parameters": {"entity_type": "orders"}},
                   "data": [{"order_id": "a", "total": 1.5}, {"order_id": "b", "total": "lots"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        api.retrieve(&id, json!({"entity_type": "orders"}))
            .await
            .is_empty(),
        "all or none"
    );
    let (status, answer) = api
        .post(
            "/api/storage/schema",
            json!({"storage_id": id, "entities": []}),
        )
        .await;
    assert_eq!(
        (status, error_of(&answer).1),
        (StatusCode::BAD_REQUEST, "entities")
    );

    let (status, health) = api
        .get(&format!("/api/storage/health?config_id={id}"))
        .await;
    assert_eq!((status, health), (StatusCode::OK, json!({"healthy": true})));
    let (status, metadata) = api
        .get(&format!("/api/storage/metadata?config_id={id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{metadata}");
    assert_eq!(metadata["storage_type"], "filesystem");
    assert!(
        metadata["capabilities"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("store")))
    );
    for uri in [
        "/api/storage/health",
        "/api/storage/metadata",
        "/api/storage/health?config=x",
    ] {
        let (status, _) = api.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
    }
    let (status, _) = api.get("/api/storage/health?config_id=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A backend this build cannot open is unhealthy, answered with 200.
    let (_, redis) = api
        .post(
            "/api/storage/configs",
            json!({"project_id": "p", "plugin_type": "redis",
                   "config": {"connection_string": format!("redis://:{SECRET}@127.0.0.1:1")}}),
        )
        .await;
    let redis = redis["id"].as_str().expect("id");
    let (status, health) = api
        .get(&format!("/api/storage/health?config_id={redis}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["healthy"], false);
    assert!(
        health["error"].as_str().is_some_and(|e| e.contains(redis)),
        "{health}"
    );
}

#[tokio::test]
async fn storage_up_follows_health_checks_and_goes_with_the_config() {
    let api = Api::new().await;
    let id = api.filesystem("up").await;
    mimir_server::telemetry::storage_up::check_once(&api.state).await;
    let series = format!("mimir_storage_up{{storage_id=\"{id}\",backend=\"filesystem\"}}");
    let text = api.metrics().await;
    assert!(text.contains(&format!("{series} 1")), "{text}");
    assert!(
        text.contains("mimir_storage_pool_connections_max"),
        "pool gauges are set at scrape time"
    );
    // The folder becomes a file: the backend is down.
    let base = api.dir.path().join("storage/up");
    std::fs::remove_dir_all(&base).expect("remove");
    std::fs::write(&base, b"not a folder").expect("file");
    mimir_server::telemetry::storage_up::check_once(&api.state).await;
    let text = api.metrics().await;
    let up_or_down = text.contains(&format!("{series} 0"));
    std::fs::remove_file(&base).expect("remove");
    let (status, _) = api
        .send("DELETE", &format!("/api/storage/configs/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let text = api.metrics().await;
    assert!(
        !text.contains(&series),
        "a deleted config's series goes: {text}"
    );
    assert!(up_or_down, "a storage whose folder is gone reads 0");
}

#[tokio::test]
async fn registered_workers_read_a_projects_configs_with_credentials() {
    let api = Api::new().await;
    let id = api.filesystem("w").await;
    let (status, answer) = api
        .get("/api/workers/ghost/storage-configs?project_id=p")
        .await;
    assert_eq!(
        (status, error_of(&answer).0),
        (StatusCode::NOT_FOUND, "unknown_worker")
    );
    let (status, _) = api
        .post("/api/workers/register", json!({"worker_id": "w1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = api.get("/api/workers/w1/storage-configs").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "project_id is required");
    let request = Request::get("/api/workers/w1/storage-configs?project_id=p")
        .body(Body::empty())
        .expect("request");
    let response = api.app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(answer["configs"][0]["id"], json!(id));
    assert_eq!(
        answer["configs"][0]["config"]["credentials"]["token"],
        json!(SECRET)
    );
    let (status, _) = api.send("DELETE", "/api/workers/w1", None).await;
    assert!(status.is_success(), "{status}");
    let (status, _) = api
        .get("/api/workers/w1/storage-configs?project_id=p")
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a worker that left gets nothing"
    );
}

#[tokio::test]
async fn the_worker_read_needs_the_worker_token_when_one_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).expect("open"));
    let mut state = AppState::new(store);
    state.worker_token = Some("worker-secret".into());
    state.workers.register(mimir_server::workers::Registration {
        worker_id: "w1".into(),
        ..Default::default()
    });
    let app = api::app(state);
    for (token, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("wrong"), StatusCode::UNAUTHORIZED),
        (Some("worker-secret"), StatusCode::OK),
    ] {
        let mut request = Request::get("/api/workers/w1/storage-configs?project_id=p");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(response.status(), expected, "{token:?}");
    }
}
