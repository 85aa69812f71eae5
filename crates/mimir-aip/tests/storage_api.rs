//! The storage API through the real `mimir-aip serve` binary: a filesystem
//! config under the data dir, a batch of 1,000 records stored in one
//! request, then retrieved with filters, order and limit, updated and
//! deleted; the operations counted on `/metrics`, logged once each, and no
//! credential in any answer or in the log.

mod harness;

use harness::Orchestrator;
use serde_json::{Value, json};

/// A secret that must appear in no answer and no log line.
const SECRET: &str = "pa55-w0rd-never-shown";

struct Http {
    client: reqwest::Client,
    url: String,
}

impl Http {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert!(!text.contains(SECRET), "{path} answered a secret: {text}");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_records_go_through_the_storage_api_of_the_real_binary() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let http = Http {
        client: reqwest::Client::new(),
        url: orchestrator.url.clone(),
    };
    let (status, _) = http
        .post("/api/projects", json!({"id": "shop", "name": "Shop"}))
        .await;
    assert_eq!(status, 201);
    let (status, config) = http
        .post(
            "/api/storage/configs",
            json!({"project_id": "shop", "plugin_type": "filesystem",
                   "config": {"credentials": {"token": SECRET}, "options": {"base_path": "shop"}}}),
        )
        .await;
    assert_eq!(status, 201, "{config}");
    let id = config["id"].as_str().expect("id").to_string();
    let (status, other) = http
        .post(
            "/api/storage/configs",
            json!({"project_id": "shop", "plugin_type": "postgresql",
                   "config": {"connection_string": format!("postgres://app:{SECRET}@127.0.0.1:5432/test"),
                              "credentials": {"password": SECRET}}}),
        )
        .await;
    assert_eq!(status, 201, "{other}");

    let records: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"id": i, "group": i % 10, "score": f64::from(i) * 0.5,
                   "name": format!("user-{i:04}"), "tags": ["a", i % 3]})
        })
        .collect();
    let started = std::time::Instant::now();
    let (status, result) = http
        .post(
            "/api/storage/store",
            json!({"project_id": "shop", "storage_id": id, "cir_data": {
                "version": "1.0",
                "source": {"type": "api", "format": "json", "parameters": {"entity_type": "users"}},
                "data": records}}),
        )
        .await;
    let store_ms = started.elapsed().as_millis();
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result,
        json!({"success": true, "affected_items": 1000, "error": null})
    );

    let (status, docs) = http
        .post(
            "/api/storage/retrieve",
            json!({"storage_id": id, "query": {"entity_type": "users",
                "filters": [{"attribute": "group", "operator": "eq", "value": 3},
                            {"attribute": "score", "operator": "gte", "value": 100}],
                "order_by": [{"attribute": "score", "direction": "desc"}],
                "limit": 5}}),
        )
        .await;
    assert_eq!(status, 200, "{docs}");
    let ids: Vec<i64> = docs
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["data"]["id"].as_i64())
        .collect();
    assert_eq!(ids, [993, 983, 973, 963, 953]);
    let (_, page) = http
        .post(
            "/api/storage/retrieve",
            json!({"storage_id": id, "query": {"entity_type": "users",
                "filters": [{"attribute": "name", "operator": "like", "value": "user-00_5"}],
                "order_by": [{"attribute": "id"}], "limit": 3, "offset": 2}}),
        )
        .await;
    let names: Vec<&str> = page
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["data"]["name"].as_str())
        .collect();
    assert_eq!(names, ["user-0025", "user-0035", "user-0045"]);

    let (status, result) = http
        .post(
            "/api/storage/update",
            json!({"storage_id": id, "query": {"entity_type": "users",
                   "filters": [{"attribute": "group", "operator": "eq", "value": 3}]},
                   "updates": {"flagged": true}}),
        )
        .await;
    assert_eq!(
        (status, result["affected_items"].as_u64()),
        (200, Some(100))
    );
    let (_, flagged) = http
        .post(
            "/api/storage/retrieve",
            json!({"storage_id": id, "query": {"entity_type": "users",
                   "filters": [{"attribute": "flagged", "operator": "eq", "value": true}]}}),
        )
        .await;
    assert_eq!(flagged.as_array().map(Vec::len), Some(100));
    let (status, refused) = http
        .post(
            "/api/storage/delete",
            json!({"storage_id": id, "query": {"entity_type": "users"}}),
        )
        .await;
    assert_eq!(status, 400, "no filter without all: {refused}");
    let (status, result) = http
        .post(
            "/api/storage/delete",
            json!({"storage_id": id, "query": {"entity_type": "users",
                   "filters": [{"attribute": "group", "operator": "in", "value": [0, 1]}]}}),
        )
        .await;
    assert_eq!(
        (status, result["affected_items"].as_u64()),
        (200, Some(200))
    );
    let (_, rest) = http
        .post(
            "/api/storage/retrieve",
            json!({"storage_id": id, "query": {"entity_type": "users", "limit": 10000}}),
        )
        .await;
    assert_eq!(rest.as_array().map(Vec::len), Some(800));

    let (status, health) = http
        .get(&format!("/api/storage/health?config_id={id}"))
        .await;
    assert_eq!((status, health), (200, json!({"healthy": true})));
    let (status, metadata) = http
        .get(&format!("/api/storage/metadata?config_id={id}"))
        .await;
    assert_eq!(
        (status, metadata["storage_type"].clone()),
        (200, json!("filesystem"))
    );
    let (_, listed) = http.get("/api/storage/configs?project_id=shop").await;
    assert_eq!(listed["configs"].as_array().map(Vec::len), Some(2));

    let metrics = reqwest::get(format!("{}/metrics", orchestrator.url))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    for line in [
        "mimir_storage_operations_total{operation=\"store\",backend=\"filesystem\"} 1",
        "mimir_storage_records_total{operation=\"store\",backend=\"filesystem\"} 1000",
        "mimir_storage_records_total{operation=\"delete\",backend=\"filesystem\"} 200",
        "mimir_storage_operations_total{operation=\"retrieve\",backend=\"filesystem\"} 4",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert!(!metrics.contains(SECRET));

    let (status, _) = http
        .send(
            reqwest::Method::DELETE,
            &format!("/api/storage/configs/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let log = orchestrator.log();
    assert!(!log.contains(SECRET), "the log holds a secret:\n{log}");
    let stored: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"storage operation\"") && l.contains("\"operation\":\"store\""))
        .collect();
    assert_eq!(stored.len(), 1, "one log line per operation:\n{log}");
    assert!(
        stored[0].contains(&id) && stored[0].contains("\"records\":1000"),
        "{}",
        stored[0]
    );
    eprintln!("stored 1,000 records in one request in {store_ms} ms");
}
