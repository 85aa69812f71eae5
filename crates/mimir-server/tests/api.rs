//! The HTTP API through `app()` with `oneshot`, over a real SQLite file.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct Api {
    app: Router,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Api {
        Api::with(|_| {}).await
    }

    /// An API whose state `adjust` changes first.
    async fn with(adjust: impl FnOnce(&mut AppState)) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("open");
        support::put_noop(&store, "p").await;
        let mut state = AppState::new(Arc::new(store));
        adjust(&mut state);
        state.max_body_bytes = 64 * 1024;
        Api {
            app: api::app(state),
            _dir: dir,
        }
    }

    async fn send(&self, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let response = self.raw(request).await;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (status, value)
    }

    /// Sends `request` as built; the whole response (headers, non-JSON bodies).
    async fn raw(&self, request: Request<Body>) -> axum::response::Response {
        self.app.clone().oneshot(request).await.expect("response")
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send("GET", uri, None).await
    }

    async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.send("POST", uri, Some(body)).await
    }

    async fn submit(&self, body: Value) -> Value {
        let (status, task) = self.post("/api/worktasks", &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        task
    }

    async fn total_tasks(&self) -> u64 {
        let (_, summary) = self.get("/api/metrics").await;
        summary["tasks_by_status"]
            .as_object()
            .expect("counts")
            .values()
            .map(|v| v.as_u64().expect("n"))
            .sum()
    }
}

fn assert_error(
    status: StatusCode,
    body: &Value,
    want_status: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    match field {
        Some(field) => assert_eq!(body["error"]["field"], field, "{body}"),
        None => assert!(body["error"].get("field").is_none(), "{body}"),
    }
}

#[tokio::test]
async fn the_seed_example_submits_and_reads_back() {
    let api = Api::new().await;
    let task = api
        .submit(
            json!({"type":"pipeline_execution","project_id":"p1","task_spec":{"pipeline_id":"noop"},"priority":10,"max_retries":3}),
        )
        .await;
    assert_eq!(task["status"], "queued");
    assert_eq!(task["priority"], 10);
    assert_eq!(task["max_retries"], 3);
    assert_eq!(task["retry_count"], 0);
    assert_eq!(task["type"], "pipeline_execution");
    assert_eq!(task["project_id"], "p1");
    assert_eq!(task["task_spec"]["project_id"], "p1");
    assert_eq!(
        task["resource_requirements"],
        json!({"cpu":"500m","memory":"1Gi","gpu":false})
    );
    assert_eq!(task["started_at"], Value::Null);
    let id = task["worktask_id"].as_str().expect("id");
    let (status, got) = api.get(&format!("/api/worktasks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, task);
    let (_, length) = api.get("/api/worktasks/queue/length").await;
    assert_eq!(length, json!({"queue_length": 1}));
}

#[tokio::test]
async fn bad_submissions_are_refused_and_change_nothing() {
    let api = Api::new().await;
    api.submit(json!({"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"}}))
        .await;
    let cases: &[(&str, StatusCode, &str, Option<&str>)] = &[
        ("{not json", StatusCode::BAD_REQUEST, "invalid_json", None),
        ("", StatusCode::BAD_REQUEST, "invalid_json", None),
        ("[1,2]", StatusCode::BAD_REQUEST, "invalid_json", None),
        (
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"}} trailing"#,
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"},"prority":3}"#,
            StatusCode::BAD_REQUEST,
            "unknown_field",
            Some("prority"),
        ),
        (
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop","pipeline":"x"}}"#,
            StatusCode::BAD_REQUEST,
            "unknown_field",
            Some("task_spec.pipeline"),
        ),
        (
            r#"{"type":"ml_cooking","project_id":"p"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_type",
            Some("type"),
        ),
        (
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"},"priority":0}"#,
            StatusCode::BAD_REQUEST,
            "invalid_priority",
            Some("priority"),
        ),
        (
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"},"priority":11}"#,
            StatusCode::BAD_REQUEST,
            "invalid_priority",
            Some("priority"),
        ),
        (
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"},"priority":"high"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some("priority"),
        ),
        (
            r#"{"type":"ml_training"}"#,
            StatusCode::BAD_REQUEST,
            "missing_field",
            Some("project_id"),
        ),
        (
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"},"max_retries":-1}"#,
            StatusCode::BAD_REQUEST,
            "invalid_max_retries",
            Some("max_retries"),
        ),
        (
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"},"max_retries":99999999999}"#,
            StatusCode::BAD_REQUEST,
            "invalid_max_retries",
            Some("max_retries"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (got_status, got) = api.post("/api/worktasks", body).await;
        assert_error(got_status, &got, *status, code, *field);
    }
    let huge = json!({"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop","parameters":{"blob":"x".repeat(70_000)}}});
    let (status, body) = api.post("/api/worktasks", &huge.to_string()).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );
    assert_eq!(
        api.total_tasks().await,
        1,
        "no invalid request stored anything"
    );
}

#[tokio::test]
async fn a_batch_commits_whole_or_not_at_all() {
    let api = Api::new().await;
    let batch = json!({"worktasks": [
        {"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"},"priority":2},
        {"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"},"priority":9},
        {"type":"pipeline_execution","project_id":"q","task_spec":{"pipeline_id":"noop"}},
    ]});
    let (status, body) = api.post("/api/worktasks/batch", &batch.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let types: Vec<&str> = body["worktasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["ml_inference", "ml_training", "pipeline_execution"]);

    let bad = json!({"worktasks": [
        {"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"}},
        {"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"}},
        {"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"}},
        {"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"},"priority":42},
    ]});
    let (status, body) = api.post("/api/worktasks/batch", &bad.to_string()).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_priority",
        Some("worktasks[3].priority"),
    );
    let typo = json!({"worktasks": [{"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"}}, {"type":"ml_inference","projectid":"p"}]});
    let (status, body) = api.post("/api/worktasks/batch", &typo.to_string()).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "unknown_field",
        Some("worktasks[1].projectid"),
    );
    let (status, body) = api
        .post("/api/worktasks/batch", r#"{"worktasks":[]}"#)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "empty_batch",
        Some("worktasks"),
    );
    assert_eq!(api.total_tasks().await, 3);
}

#[tokio::test]
async fn listing_filters_and_pages_with_a_cursor() {
    let api = Api::new().await;
    for i in 0..7 {
        let project = if i % 2 == 0 { "even" } else { "odd" };
        api.submit(json!({"type":"ml_inference","project_id":project,"task_spec":{"pipeline_id":"noop"},"priority":1 + i}))
            .await;
    }
    let (status, page) = api
        .get("/api/worktasks?status=&type=&project_id=even&limit=3")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["worktasks"].as_array().expect("tasks").len(), 3);
    assert_eq!(page["queue_length"], 7);
    let priorities = |page: &Value| -> Vec<u64> {
        page["worktasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|t| t["priority"].as_u64().expect("p"))
            .collect()
    };
    assert_eq!(priorities(&page), [7, 5, 3], "newest first");
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let (_, next) = api
        .get(&format!(
            "/api/worktasks?project_id=even&limit=3&cursor={cursor}"
        ))
        .await;
    assert_eq!(priorities(&next), [1]);
    assert_eq!(next["next_cursor"], Value::Null);

    let (status, body) = api.get("/api/worktasks?cursor=garbage").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
        Some("cursor"),
    );
    let (status, body) = api.get("/api/worktasks?stauts=queued").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "unknown_parameter",
        Some("stauts"),
    );
    let (status, body) = api.get("/api/worktasks?status=done").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_status",
        Some("status"),
    );
    let (status, body) = api.get("/api/worktasks?limit=0").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_limit",
        Some("limit"),
    );
    let (status, body) = api.get("/api/worktasks?limit=1001").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_limit",
        Some("limit"),
    );
}

#[tokio::test]
async fn listing_filters_by_priority_and_submission_time() {
    let api = Api::new().await;
    for priority in [2, 9, 5, 10] {
        api.submit(json!({"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"},"priority":priority}))
            .await;
    }
    let priorities = |page: &Value| -> Vec<u64> {
        page["worktasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|t| t["priority"].as_u64().expect("p"))
            .collect()
    };
    let (status, page) = api.get("/api/worktasks?min_priority=5").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(priorities(&page), [10, 5, 9]);
    let (_, page) = api
        .get("/api/worktasks?min_priority=3&max_priority=9")
        .await;
    assert_eq!(priorities(&page), [5, 9]);
    let (_, page) = api
        .get("/api/worktasks?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00%2B02:00")
        .await;
    assert_eq!(priorities(&page).len(), 4);
    let (_, page) = api.get("/api/worktasks?until=2000-01-01T00:00:00Z").await;
    assert!(priorities(&page).is_empty());

    for (query, code, field) in [
        (
            "min_priority=6&max_priority=5",
            "invalid_priority",
            "min_priority",
        ),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "invalid_time",
            "since",
        ),
        ("min_priority=0", "invalid_priority", "min_priority"),
        ("max_priority=eleven", "invalid_priority", "max_priority"),
        ("since=yesterday", "invalid_time", "since"),
        ("until=2026-13-01T00:00:00Z", "invalid_time", "until"),
    ] {
        let (status, body) = api.get(&format!("/api/worktasks?{query}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, code, Some(field));
    }
}

#[tokio::test]
async fn attempts_of_a_task() {
    let api = Api::new().await;
    let task = api
        .submit(json!({"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"}}))
        .await;
    let id = task["worktask_id"].as_str().expect("id");
    let (status, body) = api.get(&format!("/api/worktasks/{id}/attempts")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["worktask_id"], id);
    assert_eq!(body["attempts"], json!([]), "not leased yet");
    let (status, body) = api
        .get("/api/worktasks/01890a5d-ac96-774b-bcce-b302099a8057/attempts")
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found", None);
    let (status, body) = api.get("/api/worktasks/nope/attempts").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_id",
        Some("worktask_id"),
    );
}

#[tokio::test]
async fn the_api_token_guards_user_endpoints_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("open");
    let mut state = AppState::new(Arc::new(store));
    state.api_token = Some("s3cret".into());
    state.worker_token = Some("w0rker".into());
    let app = api::app(state);
    let call = |uri: &str, token: Option<&str>| {
        let mut request = Request::get(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Body::empty()).expect("request");
        let app = app.clone();
        async move { app.oneshot(request).await.expect("response").status() }
    };
    for uri in [
        "/api/worktasks",
        "/api/metrics",
        "/api/workers",
        "/api/pipelines",
        "/api/dashboard/overview",
        "/api/dashboard/summary",
    ] {
        assert_eq!(call(uri, None).await, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(
            call(uri, Some("wrong")).await,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(call(uri, Some("s3cret")).await, StatusCode::OK, "{uri}");
    }
    for uri in ["/health", "/ready", "/metrics", "/", "/dashboard/app.js"] {
        assert_eq!(call(uri, None).await, StatusCode::OK, "{uri} stays open");
    }
    let write = Request::post("/api/worktasks")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"}}"#,
        ))
        .expect("request");
    let refused = app.clone().oneshot(write).await.expect("response");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "writes too");
    assert_eq!(
        call("/api/pipelines/01890a5d-ac96-774b-bcce-b302099a8057", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(
            "/api/pipelines/01890a5d-ac96-774b-bcce-b302099a8057",
            Some("s3cret")
        )
        .await,
        StatusCode::NOT_FOUND,
        "pipeline definitions with the API token"
    );
    assert_eq!(
        call(
            "/api/pipelines/01890a5d-ac96-774b-bcce-b302099a8057",
            Some("w0rker")
        )
        .await,
        StatusCode::NOT_FOUND,
        "and with the worker token: workers run pipelines"
    );
    assert_eq!(
        call("/api/worktasks", Some("w0rker")).await,
        StatusCode::UNAUTHORIZED,
        "the worker token is no API token"
    );
}

#[tokio::test]
async fn metrics_and_the_api_read_the_authorization_scheme_alike() {
    let api = Api::with(|state| {
        state.api_token = Some("s3cret".into());
        state.scrape_auth = mimir_server::telemetry::ScrapeAuth {
            bearer_token: Some("scr4pe".into()),
            basic: Some(("prom".into(), "pw".into())),
        };
    })
    .await;
    let call = |uri: &str, authorization: &str| {
        let request = Request::get(uri)
            .header(header::AUTHORIZATION, authorization)
            .body(Body::empty())
            .expect("request");
        async { api.raw(request).await.status() }
    };
    // base64("prom:pw")
    let basic = "cHJvbTpwdw==";
    for scheme in ["Bearer", "bearer", "BEARER"] {
        assert_eq!(
            call("/api/worktasks", &format!("{scheme} s3cret")).await,
            StatusCode::OK,
            "the API with {scheme}"
        );
        assert_eq!(
            call("/metrics", &format!("{scheme} scr4pe")).await,
            StatusCode::OK,
            "/metrics with {scheme}"
        );
        assert_eq!(
            call("/metrics", &format!("{scheme} s3cret")).await,
            StatusCode::UNAUTHORIZED,
            "/metrics takes its own token, not the API's"
        );
    }
    for scheme in ["Basic", "basic"] {
        assert_eq!(
            call("/metrics", &format!("{scheme} {basic}")).await,
            StatusCode::OK,
            "/metrics with {scheme}"
        );
    }
    let request = Request::get("/metrics")
        .header(header::AUTHORIZATION, "bearer wrong")
        .body(Body::empty())
        .expect("request");
    let refused = api.raw(request).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let bytes = refused
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
    assert_error(
        StatusCode::UNAUTHORIZED,
        &body,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
}

#[tokio::test]
async fn an_open_api_refuses_changes_from_other_web_sites() {
    let api = Api::new().await;
    let task = api
        .submit(json!({"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"}}))
        .await;
    let cancel = format!(
        "/api/worktasks/{}/cancel",
        task["worktask_id"].as_str().expect("id")
    );
    let from = |origin: &str| {
        Request::post(cancel.as_str())
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::empty())
            .expect("request")
    };
    let response = api.raw(from("https://evil.example")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        api.get("/api/metrics").await.1["tasks_by_status"]["queued"],
        1,
        "nothing changed"
    );
    let response = api.raw(from("http://127.0.0.1:8080")).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the dashboard's own origin"
    );
}

#[tokio::test]
async fn dashboard_page_and_data() {
    let api = Api::new().await;
    let response = api
        .raw(Request::get("/").body(Body::empty()).expect("request"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let etag = headers[header::ETAG].clone();
    let again = api
        .raw(
            Request::get("/dashboard/charts.js")
                .header(header::IF_NONE_MATCH, etag)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let (status, body) = api.get("/dashboard/nothing.js").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found", None);

    api.submit(json!({"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"noop"}}))
        .await;
    let (status, overview) = api.get("/api/dashboard/overview").await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["queue_length"], 1);
    assert_eq!(overview["tasks_by_status"]["queued"], 1);
    assert!(overview["timeline"].is_object());
    let (status, summary) = api.get("/api/dashboard/summary?from=10&to=20").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(
        (summary["from"].clone(), summary["seconds"].clone()),
        (json!(10), json!(0))
    );
    let (status, body) = api.get("/api/dashboard/summary?from=20&to=10").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_time",
        Some("from"),
    );
    let (status, body) = api.get("/api/dashboard/overview?since=yesterday").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_time",
        Some("since"),
    );
    let (status, body) = api
        .get("/api/dashboard/summary?to=-9223372036854775808")
        .await;
    assert_eq!(status, StatusCode::OK, "no overflow at the edge: {body}");
    let (status, body) = api.get("/api/dashboard/summary?from=soon").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_time",
        Some("from"),
    );
    let (status, body) = api.get("/api/dashboard/metrics?family=process_cpu").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_family",
        Some("family"),
    );

    let response = api
        .raw(
            Request::get("/api/dashboard/metrics?family=mimir_queue_length,mimir_tasks")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    assert!(text.contains("mimir_queue_length 1"), "{text}");
    assert!(text.contains("# TYPE mimir_tasks_total counter"), "{text}");
    assert!(
        !text.contains("mimir_task_duration"),
        "only the families asked for: {text}"
    );
}

#[tokio::test]
async fn high_priority_lists_the_most_urgent_first() {
    let api = Api::new().await;
    for priority in [3, 9, 5, 10, 9] {
        api.submit(json!({"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"},"priority":priority}))
            .await;
    }
    let (status, body) = api.get("/api/worktasks/high-priority?min_priority=5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let priorities: Vec<u64> = body["worktasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["priority"].as_u64().expect("p"))
        .collect();
    assert_eq!(priorities, [10, 9, 9, 5]);
    assert_eq!(body["count"], 4);
    for bad in ["0", "11", "urgent"] {
        let (status, body) = api
            .get(&format!("/api/worktasks/high-priority?min_priority={bad}"))
            .await;
        assert_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_priority",
            Some("min_priority"),
        );
    }
}

#[tokio::test]
async fn cancelling_a_queued_task() {
    let api = Api::new().await;
    let task = api
        .submit(json!({"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"}}))
        .await;
    let id = task["worktask_id"].as_str().expect("id");
    let (status, cancelled) = api.post(&format!("/api/worktasks/{id}/cancel"), "").await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["completed_at"].is_string());
    let (status, body) = api.post(&format!("/api/worktasks/{id}/cancel"), "").await;
    assert_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "invalid_transition",
        None,
    );
    let (status, body) = api
        .post(
            "/api/worktasks/0191d1a4-0000-7000-8000-000000000000/cancel",
            "",
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found", None);
    let (status, body) = api.get("/api/worktasks/not-a-uuid").await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_id",
        Some("worktask_id"),
    );
    let (_, length) = api.get("/api/worktasks/queue/length").await;
    assert_eq!(length["queue_length"], 0);
}

#[tokio::test]
async fn health_readiness_summary_and_unknown_routes() {
    let api = Api::new().await;
    api.submit(json!({"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"noop"}}))
        .await;
    assert_eq!(
        api.get("/health").await,
        (StatusCode::OK, json!({"status":"healthy"}))
    );
    let (status, ready) = api.get("/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["checks"],
        // No campaign runs in this in-process state: it does not lead.
        json!({"store": "ok", "migrations": "applied", "autoscaler": "off", "leader": false})
    );
    let (status, summary) = api.get("/api/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["queue"]["length"], 1);
    assert_eq!(summary["tasks_by_status"]["queued"], 1);
    assert_eq!(summary["tasks_by_status"]["completed"], 0);
    assert_eq!(summary["tasks_by_type"]["ml_training"], 1);
    assert!(summary["timestamp"].is_string());
    let (status, body) = api.get("/api/nothing-here").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found", None);
    let (status, body) = api.send("DELETE", "/api/worktasks", None).await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
}

#[tokio::test]
async fn listing_by_status_groups_running_and_waiting() {
    let api = Api::new().await;
    let submit = || {
        api.submit(json!({"type":"pipeline_execution","project_id":"p","task_spec":{"pipeline_id":"noop"}}))
    };
    let (first, second, third) = (submit().await, submit().await, submit().await);
    let (status, body) = api
        .post("/api/workers/register", r#"{"worker_id":"w"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The oldest task is leased (scheduled); the two others stay queued.
    let (status, body) = api.post("/api/workers/w/lease", r#"{"max":1}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["worktasks"][0]["worktask_id"], first["worktask_id"]);
    let leased = format!(
        "/api/worktasks/{}",
        first["worktask_id"].as_str().expect("id")
    );
    // A lease is answered before its commit is durable: wait until it reads back.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while api.get(&leased).await.1["status"] == "queued" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never landed"
        );
        tokio::task::yield_now().await;
    }
    let ids = |page: &Value| -> Vec<Value> {
        page["worktasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|t| t["worktask_id"].clone())
            .collect()
    };
    let listed = |filter: &'static str| {
        let api = &api;
        async move {
            let (status, page) = api.get(&format!("/api/worktasks?status={filter}")).await;
            assert_eq!(status, StatusCode::OK, "{filter}: {page}");
            ids(&page)
        }
    };
    let (one, two, three) = (
        first["worktask_id"].clone(),
        second["worktask_id"].clone(),
        third["worktask_id"].clone(),
    );
    assert_eq!(listed("running").await, std::slice::from_ref(&one));
    assert_eq!(listed("scheduled").await, std::slice::from_ref(&one));
    assert_eq!(listed("queued").await, [three.clone(), two.clone()]);
    assert_eq!(
        listed("waiting").await,
        [three.clone(), two.clone(), one.clone()]
    );
    assert_eq!(listed("queued,completed").await, [three, two]);
    assert_eq!(listed("executing,spawned").await, Vec::<Value>::new());
    for bad in [
        "runing",
        "running,",
        "queued,,failed",
        "Running",
        "queued;failed",
    ] {
        let (status, body) = api
            .get(&format!(
                "/api/worktasks?status={}",
                bad.replace(';', "%3B")
            ))
            .await;
        assert_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_status",
            Some("status"),
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("running (scheduled, spawned, executing)")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn projects_lists_every_project_in_use_with_counts() {
    // `Api::new` stores the noop pipeline in project "p".
    let api = Api::new().await;
    for project in ["p1", "p2", "p2", "p3", "p3", "p3"] {
        api.submit(json!({"type":"pipeline_execution","project_id":project,"task_spec":{"pipeline_id":"noop"}}))
            .await;
    }
    let (status, page) = api.get("/api/projects").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let rows = |page: &Value| -> Vec<(String, bool, u64, u64)> {
        page["projects"]
            .as_array()
            .expect("projects")
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().expect("id").to_string(),
                    p["registered"].as_bool().expect("registered"),
                    p["tasks"].as_u64().expect("tasks"),
                    p["pipelines"].as_u64().expect("pipelines"),
                )
            })
            .collect()
    };
    let unregistered = |id: &str, tasks, pipelines| (id.to_string(), false, tasks, pipelines);
    assert_eq!(
        rows(&page),
        [
            unregistered("p", 0, 1),
            unregistered("p1", 1, 0),
            unregistered("p2", 2, 0),
            unregistered("p3", 3, 0),
        ],
        "oldest first: {page}"
    );
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(page["projects"][1]["name"], "");

    // Registered projects keep their name and description and their counts.
    let (status, body) = api
        .post(
            "/api/projects",
            r#"{"id":"p2","name":"Vision","description":"image models"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, page) = api.get("/api/projects").await;
    let p2 = &page["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|p| p["id"] == "p2")
        .expect("p2 listed")
        .clone();
    assert_eq!(
        (
            &p2["name"],
            &p2["description"],
            &p2["registered"],
            &p2["tasks"]
        ),
        (
            &json!("Vision"),
            &json!("image models"),
            &json!(true),
            &json!(2)
        ),
        "{page}"
    );

    // Pages of two, each project once.
    let mut seen = Vec::new();
    let mut uri = "/api/projects?limit=2".to_string();
    loop {
        let (status, page) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids = rows(&page);
        assert!(ids.len() <= 2);
        seen.extend(ids.into_iter().map(|(id, ..)| id));
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/projects?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["p", "p1", "p2", "p3"]);

    for (uri, code, field) in [
        ("/api/projects?limit=0", "invalid_limit", "limit"),
        ("/api/projects?cursor=junk", "invalid_cursor", "cursor"),
        ("/api/projects?project=p1", "unknown_parameter", "project"),
    ] {
        let (status, body) = api.get(uri).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, code, Some(field));
    }
}
