//! `GET /api/plugins` through `app()`, over a real SQLite file.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

async fn send(method: &str, uri: &str) -> (StatusCode, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("open");
    let app = api::app(AppState::new(Arc::new(store)));
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

fn action<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .flat_map(|p| p["actions"].as_array().expect("actions"))
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing from {list}"))
}

#[tokio::test]
async fn every_builtin_action_is_listed_with_its_parameters() {
    let (status, list) = send("GET", "/api/plugins").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let plugins: Vec<&str> = list["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        plugins,
        ["checkpoint", "core", "file", "http", "storage", "transform"]
    );
    let registry = mimir_pipeline::Registry::confined(&mimir_pipeline::Confinement::default())
        .expect("registry")
        .with_storage();
    for name in registry.names() {
        let listed = action(&list, &name);
        assert!(
            listed["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{listed}"
        );
        assert!(
            listed["returns"].as_str().is_some_and(|s| !s.is_empty()),
            "{listed}"
        );
    }
    let sleep = action(&list, "core.sleep");
    assert_eq!(sleep["name"], "sleep");
    assert_eq!(
        sleep["parameters"],
        json!([{"name": "ms", "type": "integer", "required": true, "default": null,
                "description": "How long to wait, in milliseconds."}])
    );
    let request = action(&list, "http.request");
    let timeout = request["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "timeout_ms")
        .expect("timeout_ms");
    assert_eq!(timeout["required"], false);
    assert_eq!(
        timeout["default"],
        mimir_pipeline::actions::DEFAULT_HTTP_TIMEOUT_MS.to_string()
    );
}

#[tokio::test]
async fn unknown_query_parameters_and_methods_are_refused() {
    let (status, body) = send("GET", "/api/plugins?plugin=core").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "unknown_parameter", "{body}");
    assert_eq!(body["error"]["field"], "plugin", "{body}");
    let (status, body) = send("GET", "/api/plugins?%ff=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send("DELETE", "/api/plugins").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
}
