//! `GET /api/dashboard/storage` through `app()`: the Storage page's figures
//! are those of real connector operations (a filesystem storage in a temp
//! dir), read from the process's metric families, behind the API token.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mimir_core::{ConnectionSettings, PluginType, StorageConfig};
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

async fn get(app: &axum::Router, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn filesystem_config(id: &str) -> StorageConfig {
    let now = chrono::Utc::now();
    let mut options = serde_json::Map::new();
    options.insert("base_path".into(), json!(id));
    StorageConfig {
        id: id.into(),
        project_id: "p".into(),
        plugin_type: PluginType::Filesystem,
        config: ConnectionSettings {
            connection_string: String::new(),
            credentials: serde_json::Map::new(),
            options,
        },
        active: true,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn storage_figures_count_real_connector_operations_and_need_the_token() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(root.path(), SqliteOptions::default()).expect("store"));
    let mut state = AppState::new(store);
    state.storage = Arc::new(mimir_storage::Connectors::new(
        mimir_storage::Secrets::from_env(),
        root.path(),
        Arc::new(mimir_storage::MetricsObserver::new(state.metrics.clone())),
    ));
    state.api_token = Some("s3cret".into());
    let connectors = state.storage.clone();
    let app = api::app(state);

    // Before any operation: nothing to show, and no pool open.
    let (status, empty) = get(&app, "/api/dashboard/storage", Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["operations"], json!([]), "{empty}");
    assert_eq!(empty["pools"], json!([]), "{empty}");
    assert!(empty["now"].as_f64().is_some_and(|t| t > 1.0e9), "{empty}");

    let storage = connectors
        .get(&filesystem_config("orders-fs"))
        .await
        .expect("open");
    let document = json!({
        "version": "1.0",
        "source": {"type": "api", "uri": "test", "timestamp": "2026-01-01T00:00:00Z", "format": "json",
                   "parameters": {"entity_type": "orders"}},
        "data": [{"n": 1}, {"n": 2}, {"n": 3}],
    });
    assert_eq!(storage.store_document(document).await.expect("store"), 3);
    let query: mimir_storage::QueryRequest =
        serde_json::from_value(json!({"entity_type": "orders"})).expect("query");
    assert_eq!(
        storage
            .retrieve_documents(&query)
            .await
            .expect("retrieve")
            .len(),
        3
    );

    let (status, _) = get(&app, "/api/dashboard/storage", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, view) = get(&app, "/api/dashboard/storage", Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let rows = view["operations"].as_array().expect("operations");
    let row = |operation: &str| {
        rows.iter()
            .find(|r| r["backend"] == "filesystem" && r["operation"] == operation)
            .unwrap_or_else(|| panic!("no filesystem {operation} in {view}"))
    };
    for operation in ["store", "retrieve"] {
        let r = row(operation);
        assert_eq!(r["operations"], json!(1.0), "{r}");
        assert_eq!(r["records"], json!(3.0), "{r}");
        assert_eq!(r["errors"], json!(0.0), "{r}");
        let p50 = r["p50"].as_f64().expect("a median");
        let p99 = r["p99"].as_f64().expect("a p99");
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= 10.0, "{r}");
        assert!(r["seconds"].as_f64().is_some_and(|s| s > 0.0), "{r}");
    }
    assert_eq!(rows.len(), 2, "only the pairs that ran: {view}");
    assert_eq!(view["pools"], json!([]), "the filesystem keeps no pool");
}
