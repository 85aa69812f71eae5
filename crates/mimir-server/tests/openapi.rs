//! The OpenAPI document against the router: every route served is
//! documented, every documented operation is served, and `/openapi.json`
//! serves the document.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use tower::ServiceExt;

fn state() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("open");
    (AppState::new(Arc::new(store)), dir)
}

/// `(METHOD, path)` of every operation in the document.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

fn document() -> Value {
    api::openapi::document_json()
}

#[tokio::test]
async fn every_route_is_documented_and_every_operation_is_served() {
    let (state, _dir) = state();
    let served: BTreeSet<(String, String)> = api::routes(&state)
        .served()
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let documented = documented(&document());
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes served but missing from the OpenAPI document (add #[utoipa::path] and list \
         the handler in api/openapi.rs): {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "operations in the OpenAPI document that no route serves: {unserved:?}"
    );
}

/// The route table is what the router really serves: each documented
/// operation reaches a handler, not the fallbacks for unknown paths and
/// methods.
#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let (state, _dir) = state();
    let app = api::app(state);
    for (method, path) in documented(&document()) {
        if path == "/api/dashboard/stream" {
            // An endless stream; its route is checked by the table above.
            continue;
        }
        let uri = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{worker_id}", "w-none");
        let uri = if path == "/api/dashboard/metrics" {
            format!("{uri}?family=mimir_queue_length")
        } else {
            uri
        };
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(&uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(if method == "GET" || method == "DELETE" {
                ""
            } else {
                "{}"
            }))
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {text}"
        );
        assert!(
            !text.contains("no such endpoint"),
            "{method} {uri} fell through to the unknown-path answer: {text}"
        );
        assert!(!status.is_server_error(), "{method} {uri}: {status} {text}");
    }
}

#[tokio::test]
async fn openapi_json_serves_the_document() {
    let (state, _dir) = state();
    let app = api::app(state);
    let request = Request::get("/openapi.json")
        .body(Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/json",
        "content type"
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let served: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(served, document());
    assert!(
        served["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        served["openapi"]
    );
}

/// A pipeline step's schema has one alternative per action, with that
/// action's parameters; the pipeline bodies use it.
#[test]
fn pipeline_steps_are_described_per_action() {
    let document = document();
    let schemas = &document["components"]["schemas"];
    let step = &schemas["PipelineStep"];
    let alternatives = step["oneOf"].as_array().expect("oneOf");
    let sleep = alternatives
        .iter()
        .find(|a| a["title"] == "core.sleep")
        .expect("core.sleep");
    assert_eq!(
        sleep["properties"]["plugin"]["enum"],
        serde_json::json!(["core"])
    );
    assert_eq!(
        sleep["properties"]["parameters"]["required"],
        serde_json::json!(["ms"])
    );
    assert!(sleep["properties"]["parameters"]["properties"]["ms"].is_object());
    let registry = mimir_pipeline::Registry::confined(&mimir_pipeline::Confinement::default())
        .expect("registry")
        .with_storage();
    // One per action, and the for_each loop.
    assert_eq!(alternatives.len(), registry.names().len() + 1);
    let for_each = alternatives
        .iter()
        .find(|a| a["title"] == "for_each")
        .expect("for_each");
    assert_eq!(
        for_each["properties"]["for_each"]["properties"]["steps"]["items"]["$ref"],
        "#/components/schemas/PipelineStep"
    );
    assert!(sleep["properties"]["when"].is_object());
    for (schema, field) in [
        ("PipelineBody", "project_id"),
        ("PipelineBody", "name"),
        ("ProjectBody", "name"),
        ("Submission", "project_id"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["pattern"],
            mimir_core::LABEL_PATTERN,
            "{schema}.{field}"
        );
    }
    assert_eq!(
        sleep["properties"]["name"]["pattern"],
        mimir_core::LABEL_PATTERN
    );
    for holder in ["PipelineBody", "Pipeline"] {
        assert_eq!(
            schemas[holder]["properties"]["steps"]["items"]["$ref"],
            "#/components/schemas/PipelineStep",
            "{holder}"
        );
    }
}

/// Operation ids are unique, and every link names an operation that exists
/// and a parameter it takes.
#[test]
fn operation_ids_are_unique_and_links_lead_somewhere() {
    let document = document();
    let mut ids = BTreeSet::new();
    let mut parameters = std::collections::BTreeMap::new();
    for item in document["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("item").values() {
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            let names: Vec<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["name"].as_str().expect("name").to_string())
                .collect();
            parameters.insert(id.to_string(), names);
        }
    }
    let mut links = 0;
    for item in document["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("item").values() {
            for response in operation["responses"]
                .as_object()
                .expect("responses")
                .values()
            {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|l| l.1)
                {
                    links += 1;
                    let target = link["operationId"].as_str().expect("operationId");
                    let takes = parameters.get(target).unwrap_or_else(|| panic!("{target}"));
                    for name in link["parameters"].as_object().expect("parameters").keys() {
                        assert!(takes.contains(name), "{target} takes no {name}");
                    }
                }
            }
        }
    }
    assert!(links > 0, "no links");
}

/// Every error a route can answer is documented with the one error body, so
/// clients parse every error the same way.
#[test]
fn every_error_answer_is_documented_with_the_error_body() {
    let document = document();
    // Answers whose error statuses carry more than the error body, by design.
    let richer = [
        ("get", "/ready", "503"),
        ("post", "/api/workers/{worker_id}/heartbeat", "409"),
        ("post", "/api/workers/{worker_id}/results", "409"),
    ];
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let responses = operation["responses"].as_object().expect("responses");
            for status in ["403", "500"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
            if method == "post" || method == "put" {
                for status in ["400", "413", "415"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
            }
            for (status, response) in responses {
                if status.starts_with('2') || richer.contains(&(method, path, status)) {
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{method} {path} {status}: {response}"
                );
            }
        }
    }
    let error = &document["components"]["schemas"]["ErrorDetail"];
    assert_eq!(error["required"], serde_json::json!(["code", "message"]));
}

/// The execute body may be left out, and is otherwise an object.
#[test]
fn the_execute_body_is_optional_but_never_null() {
    let document = document();
    let body = &document["paths"]["/api/pipelines/{id}/execute"]["post"]["requestBody"];
    assert_eq!(body["required"], false, "{body}");
    assert_eq!(
        body["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ExecuteBody",
        "{body}"
    );
}

/// Each operation names the credentials it takes, all optional (`{}`)
/// since each is needed only when configured.
#[test]
fn each_operation_names_the_token_it_takes() {
    let document = document();
    let security = |method: &str, path: &str| document["paths"][path][method]["security"].clone();
    assert!(security("get", "/health").is_null());
    assert!(security("get", "/openapi.json").is_null());
    assert_eq!(
        security("get", "/api/worktasks"),
        serde_json::json!([{}, {"apiToken": []}])
    );
    assert_eq!(
        security("post", "/api/workers/{worker_id}/lease"),
        serde_json::json!([{}, {"workerToken": []}])
    );
    assert_eq!(
        security("get", "/api/pipelines/{id}"),
        serde_json::json!([{}, {"apiToken": []}, {"workerToken": []}])
    );
    assert_eq!(
        security("get", "/metrics"),
        serde_json::json!([{}, {"metricsToken": []}, {"metricsBasic": []}])
    );
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["apiToken"]["scheme"], "bearer");
    assert_eq!(schemes["metricsBasic"]["scheme"], "basic");
}

/// A method a path does not serve is 405 with `Allow`, whatever the body's
/// content type; a served one still needs JSON.
#[tokio::test]
async fn an_unserved_method_is_405_even_without_json() {
    let (state, _dir) = state();
    let app = api::app(state);
    for (method, uri) in [
        ("PUT", "/health"),
        ("PUT", "/api/worktasks/queue/length"),
        ("PATCH", "/api/plugins"),
        ("POST", "/api/workers"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("x"))
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("response");
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert!(
            response.headers().contains_key(header::ALLOW),
            "{method} {uri}"
        );
    }
    let request = Request::post("/api/projects")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"name":"x"}"#))
        .expect("request");
    let response = app.oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
