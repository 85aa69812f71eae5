//! The worker protocol answers only the worker holding a lease, the API
//! refuses hostile input with the JSON error body, and tasks that cannot
//! succeed are refused at submission. Through `app()` with `oneshot`, over a
//! real SQLite file; every refusal checks that nothing changed.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Api {
    app: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

/// What a call answered.
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Api {
    async fn new() -> Api {
        Api::with(SqliteOptions::default(), |_| {}).await
    }

    async fn with(options: SqliteOptions, adjust: impl FnOnce(&mut AppState)) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), options).expect("open");
        let mut state = AppState::new(Arc::new(store));
        state.max_body_bytes = 1024 * 1024;
        adjust(&mut state);
        Api {
            app: api::app(state.clone()),
            state,
            _dir: dir,
        }
    }

    async fn raw(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(format!("NOT JSON: {}", String::from_utf8_lossy(&bytes)))
            })
        };
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn send(&self, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let answer = self.raw(request).await;
        (answer.status, answer.body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send("GET", uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send("POST", uri, Some(&body.to_string())).await
    }

    /// A pipeline of one logging step whose message is `message`.
    async fn pipeline(&self, message: &str) -> String {
        let (status, pipeline) = self
            .post(
                "/api/pipelines",
                json!({"project_id": "p", "name": "say", "steps": [
                    {"name": "say", "plugin": "core", "action": "log", "parameters": {"message": message}}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{pipeline}");
        pipeline["id"].as_str().expect("id").to_string()
    }

    async fn submit(&self, pipeline: &str) -> String {
        let (status, task) = self
            .post(
                "/api/worktasks",
                json!({"type": "pipeline_execution", "project_id": "p", "task_spec": {"pipeline_id": pipeline}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        task["worktask_id"].as_str().expect("id").to_string()
    }

    async fn register(&self, worker_id: &str) {
        let (status, body) = self
            .post("/api/workers/register", json!({"worker_id": worker_id}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// `worker_id` leases one task; its attempt number.
    async fn lease(&self, worker_id: &str) -> (String, u64) {
        let (status, body) = self
            .post(
                &format!("/api/workers/{worker_id}/lease"),
                json!({"max": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let task = &body["worktasks"][0];
        let id = task["worktask_id"].as_str().expect("leased").to_string();
        // A lease is answered before its commit is durable: wait until it reads back.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.task(&id).await["status"] == "queued" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lease never landed"
            );
            tokio::task::yield_now().await;
        }
        (id, task["attempt"].as_u64().expect("attempt"))
    }

    async fn task(&self, id: &str) -> Value {
        let (status, task) = self.get(&format!("/api/worktasks/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{task}");
        task
    }

    async fn attempts(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/worktasks/{id}/attempts")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["attempts"].clone()
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

/// Tasks queued and not leased by anyone.
async fn queued(api: &Api) -> u64 {
    api.state
        .store
        .counts()
        .await
        .expect("counts")
        .by_status()
        .get(&mimir_core::WorkTaskStatus::Queued)
        .copied()
        .unwrap_or(0)
}

/// Projects registered through `/api/projects` (the listing also shows the
/// ones tasks and pipelines merely use).
async fn registered_projects(api: &Api) -> Vec<Value> {
    let (_, projects) = api.get("/api/projects").await;
    projects["projects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["registered"] == true)
        .cloned()
        .collect()
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// The parts of a task a forged report could change.
fn leased_state(task: &Value) -> Value {
    json!([
        task["status"],
        task["attempt"],
        task["worker_id"],
        task["result"],
        task["retry_count"],
        task["error_message"],
        task["started_at"]
    ])
}

#[tokio::test]
async fn a_result_from_anyone_but_the_lease_holder_is_refused_and_changes_nothing() {
    let api = Api::new().await;
    let pipeline = api.pipeline("hi").await;
    let id = api.submit(&pipeline).await;
    api.register("real").await;
    api.register("intruder").await;
    let (leased, attempt) = api.lease("real").await;
    assert_eq!(leased, id);
    let before = leased_state(&api.task(&id).await);

    let forged = [
        // Today's hole: a result that names no worker at all.
        json!({"worktask_id": id, "status": "failed", "error_message": "forged", "attempt": attempt}),
        json!({"worktask_id": id, "status": "completed"}),
        // Another worker, the right attempt.
        json!({"worktask_id": id, "status": "completed", "worker_id": "intruder", "attempt": attempt}),
        // The right worker, another attempt.
        json!({"worktask_id": id, "status": "completed", "worker_id": "real", "attempt": attempt + 1}),
        // The right worker, no attempt.
        json!({"worktask_id": id, "status": "completed", "worker_id": "real"}),
    ];
    for body in forged {
        let (status, answer) = api
            .post(&format!("/api/worktasks/{id}"), body.clone())
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body} -> {answer}");
        assert!(
            ["not_lease_holder", "stale_attempt"]
                .contains(&answer["error"]["code"].as_str().unwrap_or("")),
            "{answer}"
        );
    }
    // The batch route of another worker, with and without an attempt.
    for result in [
        json!({"worktask_id": id, "status": "failed", "attempt": attempt}),
        json!({"worktask_id": id, "status": "failed"}),
        json!({"worktask_id": id, "status": "failed", "attempt": attempt, "worker_id": "real"}),
    ] {
        let (status, answer) = api
            .post(
                "/api/workers/intruder/results",
                json!({"results": [result]}),
            )
            .await;
        assert_error(status, &answer, StatusCode::CONFLICT, "not_lease_holder");
        assert_eq!(answer["results"][0]["accepted"], false, "{answer}");
    }
    // The holder's own batch route, but an attempt it does not hold.
    let (status, answer) = api
        .post(
            "/api/workers/real/results",
            json!({"results": [{"worktask_id": id, "status": "failed", "attempt": attempt + 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");

    assert_eq!(
        leased_state(&api.task(&id).await),
        before,
        "the task is unchanged"
    );
    assert_eq!(api.attempts(&id).await, json!([]), "no attempt was ended");
    assert!(
        api.state
            .store
            .holds("real", id.parse().expect("uuid"), attempt as u32)
            .await
            .expect("holds")
    );

    // The real worker's result is then accepted.
    let (status, answer) = api
        .post(
            &format!("/api/worktasks/{id}"),
            json!({"worktask_id": id, "status": "completed", "worker_id": "real", "attempt": attempt,
                   "result": {"answer": 42}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let task = api.task(&id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["result"]["answer"], 42);
}

#[tokio::test]
async fn a_heartbeat_or_progress_for_a_lease_not_held_is_refused_and_changes_nothing() {
    let api = Api::new().await;
    let pipeline = api.pipeline("hi").await;
    let id = api.submit(&pipeline).await;
    api.register("real").await;
    api.register("intruder").await;
    let (_, attempt) = api.lease("real").await;
    let before = leased_state(&api.task(&id).await);

    // A heartbeat naming a lease the worker does not hold: nothing started
    // or renewed, and `lost` says what to stop.
    let started = chrono::Utc::now().to_rfc3339();
    for (worker, held_attempt) in [("intruder", attempt), ("real", attempt + 1)] {
        let (status, answer) = api
            .post(
                &format!("/api/workers/{worker}/heartbeat"),
                json!({"tasks": [{"worktask_id": id, "attempt": held_attempt, "started_at": started}]}),
            )
            .await;
        assert_error(status, &answer, StatusCode::CONFLICT, "not_lease_holder");
        assert_eq!(answer["lost"], json!([id]), "{answer}");
    }
    let progress = |worker: Option<&str>, attempt: u64| {
        let mut body =
            json!({"attempt": attempt, "steps": [{"name": "forged", "status": "completed"}]});
        if let Some(worker) = worker {
            body["worker_id"] = json!(worker);
        }
        body
    };
    for body in [
        progress(Some("intruder"), attempt),
        progress(Some("real"), attempt + 1),
        progress(None, attempt),
    ] {
        let (status, answer) = api
            .post(&format!("/api/worktasks/{id}/progress"), body)
            .await;
        assert_error(status, &answer, StatusCode::CONFLICT, "not_lease_holder");
    }
    assert_eq!(
        leased_state(&api.task(&id).await),
        before,
        "the task is unchanged"
    );
    assert!(api.state.progress.is_empty(), "no progress kept");

    // The holder's heartbeat and progress are taken.
    let (status, answer) = api
        .post(
            "/api/workers/real/heartbeat",
            json!({"tasks": [{"worktask_id": id, "attempt": attempt, "started_at": started}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["lost"], json!([]));
    let (status, _) = api
        .post(
            &format!("/api/worktasks/{id}/progress"),
            progress(Some("real"), attempt),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let task = api.task(&id).await;
    assert_eq!(task["status"], "executing");
    assert_eq!(task["result"]["steps"][0]["name"], "forged");
}

#[tokio::test]
async fn progress_for_unknown_tasks_is_refused_and_keeps_nothing() {
    let api = Api::new().await;
    api.register("w").await;
    // Today 200 of these keep 190 MB for good.
    let steps: Vec<Value> = (0..1000)
        .map(
            |i| json!({"name": format!("step-{i}"), "status": "completed", "pad": "x".repeat(100)}),
        )
        .collect();
    for _ in 0..200 {
        let id = uuid::Uuid::now_v7();
        let (status, answer) = api
            .post(
                &format!("/api/worktasks/{id}/progress"),
                json!({"worker_id": "w", "attempt": 1, "steps": steps}),
            )
            .await;
        assert_error(status, &answer, StatusCode::CONFLICT, "not_lease_holder");
    }
    assert_eq!(api.state.progress.len(), 0, "nothing kept");
}

#[tokio::test]
async fn progress_is_bounded_and_released_when_its_attempt_ends_or_loses_its_lease() {
    let options = SqliteOptions {
        lease_ttl: Duration::from_millis(200),
        ..SqliteOptions::default()
    };
    let api = Api::with(options, |_| {}).await;
    let pipeline = api.pipeline("hi").await;
    let first = api.submit(&pipeline).await;
    api.register("w").await;
    let (_, attempt) = api.lease("w").await;
    let path = format!("/api/worktasks/{first}/progress");

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"name": format!("s{i}")}))
        .collect();
    let (status, answer) = api
        .post(
            &path,
            json!({"worker_id": "w", "attempt": attempt, "steps": too_many}),
        )
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let too_big =
        json!({"worker_id": "w", "attempt": attempt, "steps": [{"name": "x".repeat(300 * 1024)}]});
    let (status, answer) = api.post(&path, too_big).await;
    assert_error(
        status,
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(api.state.progress.is_empty());

    let report = json!({"worker_id": "w", "attempt": attempt, "steps": [{"name": "one"}]});
    let (status, _) = api.post(&path, report.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.state.progress.len(), 1);
    // Its attempt ends: the progress goes.
    let (status, answer) = api
        .post(
            "/api/workers/w/results",
            json!({"results": [{"worktask_id": first, "status": "completed", "attempt": attempt}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        api.state.progress.is_empty(),
        "released when the attempt ended"
    );

    // Its lease is lost (the worker stops heartbeating): the progress goes.
    let second = api.submit(&pipeline).await;
    let (_, attempt) = api.lease("w").await;
    let report = json!({"worker_id": "w", "attempt": attempt, "steps": [{"name": "one"}]});
    let (status, _) = api
        .post(&format!("/api/worktasks/{second}/progress"), report)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.state.progress.len(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api.task(&second).await["status"] != "queued" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never expired"
        );
        mimir_server::serve::reap_once(&api.state, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        api.state.progress.is_empty(),
        "released when the lease was lost"
    );
}

#[tokio::test]
async fn a_text_plain_post_cannot_register_a_worker_or_lease_the_queue() {
    let api = Api::new().await;
    let pipeline = api.pipeline("hi").await;
    api.submit(&pipeline).await;
    let plain = |uri: &str, content_type: Option<&str>, body: &str| {
        let mut request = Request::post(uri);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.body(Body::from(body.to_string())).expect("request")
    };
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        for (uri, body) in [
            ("/api/workers/register", r#"{"worker_id":"page"}"#),
            ("/api/workers/page/lease", r#"{"max":1000}"#),
            (
                "/api/worktasks",
                &*format!(
                    r#"{{"type":"pipeline_execution","project_id":"p","task_spec":{{"pipeline_id":"{pipeline}"}}}}"#
                ),
            ),
            ("/api/projects", r#"{"name":"x"}"#),
        ] {
            let answer = api.raw(plain(uri, content_type, body)).await;
            assert_eq!(
                answer.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{uri} {content_type:?}: {}",
                answer.body
            );
            assert_eq!(answer.body["error"]["code"], "unsupported_media_type");
            assert_eq!(answer.content_type, "application/json");
        }
    }
    let put = Request::put(format!("/api/pipelines/{pipeline}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .expect("request");
    assert_eq!(
        api.raw(put).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let (_, workers) = api.get("/api/workers").await;
    assert_eq!(workers["workers"], json!([]), "no worker registered");
    assert_eq!(queued(&api).await, 1, "nothing leased");
    assert_eq!(api.total_tasks().await, 1, "nothing submitted");
    assert_eq!(registered_projects(&api).await, Vec::<Value>::new());
}

#[tokio::test]
async fn worker_routes_refuse_changes_from_other_web_sites() {
    let api = Api::new().await;
    let pipeline = api.pipeline("hi").await;
    api.submit(&pipeline).await;
    api.register("w").await;
    let from = |uri: &str, body: &str, origin: &str| {
        Request::post(uri)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    for (uri, body) in [
        ("/api/workers/register", r#"{"worker_id":"page"}"#),
        ("/api/workers/w/lease", r#"{"max":1000}"#),
    ] {
        let answer = api.raw(from(uri, body, "https://evil.example")).await;
        assert_error(
            answer.status,
            &answer.body,
            StatusCode::FORBIDDEN,
            "cross_origin",
        );
    }
    let (_, workers) = api.get("/api/workers").await;
    assert_eq!(
        workers["workers"].as_array().map(Vec::len),
        Some(1),
        "{workers}"
    );
    assert_eq!(queued(&api).await, 1, "nothing leased");
    // The server's own origin is still served.
    let answer = api
        .raw(from(
            "/api/workers/w/lease",
            r#"{"max":1}"#,
            "http://127.0.0.1:8080",
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn a_loopback_server_refuses_hosts_that_are_not_loopback_dns_rebinding() {
    let api = Api::with(SqliteOptions::default(), |state| state.loopback_only = true).await;
    let with_host = |method: &str, host: &str| {
        Request::builder()
            .method(method)
            .uri("/api/projects")
            .header(header::HOST, host)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"name":"rebound"}"#))
            .expect("request")
    };
    for host in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.nip.io:8080",
        "localhost.evil.example",
        "10.0.0.1:8080",
    ] {
        for method in ["GET", "POST"] {
            let answer = api.raw(with_host(method, host)).await;
            assert_error(
                answer.status,
                &answer.body,
                StatusCode::FORBIDDEN,
                "forbidden_host",
            );
        }
    }
    let (_, projects) = api.get("/api/projects").await;
    assert_eq!(projects["projects"], json!([]), "nothing created");
    for host in [
        "localhost",
        "localhost:8080",
        "127.0.0.1:8080",
        "127.0.0.2",
        "[::1]:8080",
    ] {
        let answer = api.raw(with_host("GET", host)).await;
        assert_eq!(answer.status, StatusCode::OK, "{host}: {}", answer.body);
    }
    // Not bound to loopback: any host name is served.
    let open = Api::new().await;
    assert_eq!(
        open.raw(with_host("GET", "mimir.example:8080"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_error_is_the_json_error_body() {
    let api = Api::with(SqliteOptions::default(), |state| {
        state.max_body_bytes = 4096
    })
    .await;
    let pipeline = api.pipeline("hi").await;
    let big = format!(r#"{{"parameters":{{"x":"{}"}}}}"#, "y".repeat(8192));
    let request = |method: &str, uri: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let cases = [
        (
            request("POST", &format!("/api/pipelines/{pipeline}/execute"), &big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            request("POST", "/api/worktasks", &big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            request("GET", "/api/worktasks/%ff", ""),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            request("GET", "/api/projects/%ff%fe", ""),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            request("POST", "/api/workers/%ff/lease", r#"{"max":1}"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            request("GET", "/api/worktasks?status=%ff", ""),
            StatusCode::BAD_REQUEST,
            "invalid_status",
        ),
        (
            request("GET", "/api/worktasks?%ff=1", ""),
            StatusCode::BAD_REQUEST,
            "unknown_parameter",
        ),
        (
            request("POST", "/api/worktasks", "{\"type\":"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            request("DELETE", "/api/worktasks", ""),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            request("PATCH", "/api/projects", "{}"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            request("GET", "/api/nowhere", ""),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            request("GET", "/nowhere/%ff", ""),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let answer = api.raw(request).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        assert_eq!(answer.content_type, "application/json", "{what}");
        assert_eq!(
            answer.body["error"]["code"], code,
            "{what}: {}",
            answer.body
        );
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    assert_eq!(api.total_tasks().await, 0);
}

#[tokio::test]
async fn ids_names_and_labels_are_bounded_and_refuse_control_characters() {
    let api = Api::new().await;
    let long = "x".repeat(257);
    let pipeline = api.pipeline("hi").await;
    let cases = [
        ("/api/projects", json!({"name": long}), "name"),
        ("/api/projects", json!({"name": "a\u{1b}[31mred"}), "name"),
        ("/api/projects", json!({"id": "a\nb", "name": "n"}), "id"),
        ("/api/projects", json!({"id": long, "name": "n"}), "id"),
        (
            "/api/pipelines",
            json!({"project_id": "p\r", "name": "n", "steps": [{"name": "a", "plugin": "core", "action": "log", "parameters": {"message": "m"}}]}),
            "project_id",
        ),
        (
            "/api/pipelines",
            json!({"project_id": "p", "name": long, "steps": [{"name": "a", "plugin": "core", "action": "log", "parameters": {"message": "m"}}]}),
            "name",
        ),
        (
            "/api/pipelines",
            json!({"project_id": "p", "name": "n", "steps": [{"name": "a\u{7}", "plugin": "core", "action": "log", "parameters": {"message": "m"}}]}),
            "steps[0].name",
        ),
        (
            "/api/workers/register",
            json!({"worker_id": long}),
            "worker_id",
        ),
        (
            "/api/workers/register",
            json!({"worker_id": "w", "hostname": "h\nforged log line"}),
            "hostname",
        ),
        (
            "/api/workers/register",
            json!({"worker_id": "w", "types": vec!["ml_training"; 17]}),
            "types",
        ),
        (
            "/api/workers/register",
            json!({"worker_id": "w", "types": [long]}),
            "types[0]",
        ),
        (
            "/api/worktasks",
            json!({"type": "ml_training", "project_id": "p\u{0}", "task_spec": {"pipeline_id": pipeline}}),
            "project_id",
        ),
        (
            "/api/worktasks",
            json!({"type": "ml_training", "project_id": long, "task_spec": {"pipeline_id": pipeline}}),
            "project_id",
        ),
        (
            "/api/worktasks",
            json!({"type": "ml_training", "project_id": "p", "task_spec": {"pipeline_id": long}}),
            "task_spec.pipeline_id",
        ),
        (
            "/api/worktasks",
            json!({"type": "ml_training", "project_id": "p", "task_spec": {"pipeline_id": pipeline, "model_id": "m\t"}}),
            "task_spec.model_id",
        ),
    ];
    for (uri, body, field) in cases {
        let (status, answer) = api.post(uri, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{uri}: {answer}");
    }
    for uri in [
        format!("/api/worktasks?project_id={long}"),
        "/api/worktasks?project_id=a%0Ab".to_string(),
        "/api/pipelines?project_id=a%1Bb".to_string(),
    ] {
        let (status, answer) = api.get(&uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {answer}");
        assert_eq!(answer["error"]["field"], "project_id", "{uri}: {answer}");
    }
    for uri in [
        format!("/api/projects/{long}"),
        format!("/api/pipelines/{long}"),
        "/api/projects/a%0Ab".to_string(),
        "/api/pipelines/a%1Bb".to_string(),
    ] {
        let (status, answer) = api.get(&uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {answer}");
        assert_eq!(answer["error"]["field"], "id", "{uri}: {answer}");
    }
    let (status, answer) = api
        .post(&format!("/api/workers/{long}/lease"), json!({"max": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(registered_projects(&api).await, Vec::<Value>::new());
    let (_, pipelines) = api.get("/api/pipelines").await;
    assert_eq!(pipelines["pipelines"].as_array().map(Vec::len), Some(1));
    let (_, workers) = api.get("/api/workers").await;
    assert_eq!(workers["workers"], json!([]));
    assert_eq!(api.total_tasks().await, 0);
}

#[tokio::test]
async fn projects_are_listed_a_page_at_a_time() {
    let api = Api::new().await;
    for i in 0..5 {
        let (status, body) = api
            .post(
                "/api/projects",
                json!({"id": format!("p{i}"), "name": format!("project {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut seen = Vec::new();
    let mut uri = "/api/projects?limit=2".to_string();
    loop {
        let (status, page) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let projects = page["projects"].as_array().expect("projects");
        assert!(projects.len() <= 2);
        seen.extend(
            projects
                .iter()
                .map(|p| p["id"].as_str().expect("id").to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/projects?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4"]);
    let (_, all) = api.get("/api/projects").await;
    assert_eq!(all["projects"].as_array().map(Vec::len), Some(5));
    assert_eq!(all["next_cursor"], Value::Null);
    for (uri, code) in [
        ("/api/projects?cursor=garbage", "invalid_cursor"),
        ("/api/projects?limit=0", "invalid_limit"),
        ("/api/projects?limit=100000", "invalid_limit"),
        ("/api/projects?page=2", "unknown_parameter"),
    ] {
        let (status, body) = api.get(uri).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, code);
    }
}

#[tokio::test]
async fn submissions_that_cannot_succeed_are_refused_and_store_nothing() {
    let api = Api::new().await;
    let (status, fetch) = api
        .post(
            "/api/pipelines",
            json!({"project_id": "p", "name": "fetch", "steps": [
                {"name": "get", "plugin": "http", "action": "request", "parameters": {"url": "$.params.url"}},
                {"name": "say", "plugin": "core", "action": "log", "parameters": {"message": {"deep": ["$.params.greeting.text"]}}}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fetch}");
    let fetch = fetch["id"].as_str().expect("id").to_string();
    let noop = api.pipeline("hi").await;
    let missing = "0191d1a4-0000-7000-8000-00000000dead";
    let task = |task_type: &str, spec: Value| json!({"type": task_type, "project_id": "p", "task_spec": spec});
    let both = json!({"url": "http://127.0.0.1:1/", "greeting": {"text": "hi"}});
    let cases = [
        (
            task("pipeline_execution", json!({})),
            "task_spec.pipeline_id",
            "missing_field",
            "",
        ),
        (
            task("ml_training", json!({"model_id": "m"})),
            "task_spec.pipeline_id",
            "missing_field",
            "",
        ),
        (
            task("ml_inference", json!({"model_id": "m"})),
            "task_spec.pipeline_id",
            "missing_field",
            "",
        ),
        (
            task("pipeline_execution", json!({"pipeline_id": missing})),
            "task_spec.pipeline_id",
            "unknown_pipeline",
            missing,
        ),
        (
            task("pipeline_execution", json!({"pipeline_id": fetch})),
            "task_spec.parameters.greeting",
            "missing_parameter",
            "greeting",
        ),
        (
            task(
                "ml_training",
                json!({"pipeline_id": fetch, "parameters": {"greeting": 1}}),
            ),
            "task_spec.parameters.url",
            "missing_parameter",
            "url",
        ),
    ];
    for (body, field, code, named) in &cases {
        let (status, answer) = api.post("/api/worktasks", body.clone()).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, code);
        assert_eq!(answer["error"]["field"], *field, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(named)),
            "{answer}"
        );
    }
    // The same in a batch, naming the entry.
    for (body, field, code, _) in &cases {
        let batch = json!({"worktasks": [
            task("pipeline_execution", json!({"pipeline_id": noop})),
            task("pipeline_execution", json!({"pipeline_id": fetch, "parameters": both})),
            task("ml_inference", json!({"pipeline_id": noop})),
            body,
        ]});
        let (status, answer) = api.post("/api/worktasks/batch", batch).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, code);
        assert_eq!(
            answer["error"]["field"],
            format!("worktasks[3].{field}"),
            "{answer}"
        );
    }
    // And when executing a pipeline.
    let (status, answer) = api
        .post(
            &format!("/api/pipelines/{fetch}/execute"),
            json!({"parameters": {"greeting": "hi"}}),
        )
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "missing_parameter",
    );
    assert_eq!(answer["error"]["field"], "parameters.url", "{answer}");
    assert_eq!(api.total_tasks().await, 0, "nothing stored");

    // What they need, they are accepted with.
    let (status, answer) = api
        .post(
            "/api/worktasks",
            task(
                "pipeline_execution",
                json!({"pipeline_id": fetch, "parameters": both}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = api
        .post(
            &format!("/api/pipelines/{fetch}/execute"),
            json!({"parameters": both}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // A pipeline changed to read a new parameter asks for it at once; a
    // deleted one is unknown at once.
    let (status, answer) = api
        .send(
            "PUT",
            &format!("/api/pipelines/{noop}"),
            Some(&json!({"project_id": "p", "name": "say", "steps": [
                {"name": "say", "plugin": "core", "action": "log", "parameters": {"message": "$.params.who"}}
            ]}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = api
        .post(
            "/api/worktasks",
            task("pipeline_execution", json!({"pipeline_id": noop})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error"]["field"], "task_spec.parameters.who",
        "{answer}"
    );
    let (status, _) = api
        .send("DELETE", &format!("/api/pipelines/{noop}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, answer) = api
        .post(
            "/api/worktasks",
            task(
                "pipeline_execution",
                json!({"pipeline_id": noop, "parameters": {"who": "me"}}),
            ),
        )
        .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "unknown_pipeline");
    assert_eq!(api.total_tasks().await, 2);
}

/// The whole protocol as a worker uses it: lease, heartbeat (which starts
/// the attempt), progress, results; each answer's body as documented.
#[tokio::test]
async fn a_worker_leases_heartbeats_reports_progress_and_results() {
    let api = Api::new().await;
    let pipeline = api.pipeline("hi").await;
    let id = api.submit(&pipeline).await;
    api.register("w").await;

    let (status, leased) = api
        .post("/api/workers/w/lease", json!({"max": 5, "wait_ms": 0}))
        .await;
    assert_eq!(status, StatusCode::OK, "{leased}");
    assert_eq!(leased["stop"], false, "{leased}");
    let tasks = leased["worktasks"].as_array().expect("worktasks");
    assert_eq!(tasks.len(), 1, "{leased}");
    assert_eq!(tasks[0]["worktask_id"], id.as_str());
    assert_eq!(tasks[0]["status"], "scheduled");
    assert_eq!(tasks[0]["worker_id"], "w");
    assert_eq!(tasks[0]["attempt"], 1);
    let attempt = 1;
    assert!(
        api.state
            .store
            .holds("w", id.parse().expect("uuid"), attempt)
            .await
            .expect("holds")
    );
    assert_eq!(queued(&api).await, 0);
    // Leased, not started: it still counts as waiting.
    assert_eq!(
        api.state.store.queue_length().await.expect("queue length"),
        1
    );

    // Nothing else waits: an empty lease, not an error.
    let (status, empty) = api
        .post("/api/workers/w/lease", json!({"max": 1, "wait_ms": 0}))
        .await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["worktasks"], json!([]));

    let started = chrono::Utc::now();
    let (status, beat) = api
        .post(
            "/api/workers/w/heartbeat",
            json!({"tasks": [{"worktask_id": id, "attempt": attempt, "started_at": started.to_rfc3339()}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert_eq!(
        beat,
        json!({"cancel": [], "lost": [], "stop": false, "give_back": 0, "waiting": 0}),
        "{beat}"
    );
    let task = api.task(&id).await;
    assert_eq!(task["status"], "executing", "the heartbeat started it");
    assert_eq!(task["worker_id"], "w");

    let (status, body) = api
        .post(
            &format!("/api/worktasks/{id}/progress"),
            json!({"worker_id": "w", "attempt": attempt, "steps": [{"name": "say", "status": "completed"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    assert_eq!(api.state.progress.len(), 1);
    assert_eq!(api.task(&id).await["result"]["steps"][0]["name"], "say");

    let (status, answer) = api
        .post(
            "/api/workers/w/results",
            json!({"results": [{"worktask_id": id, "status": "completed", "attempt": attempt,
                                "result": {"answer": 42}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"results": [{"worktask_id": id, "accepted": true, "status": "completed"}]})
    );
    let task = api.task(&id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["result"]["answer"], 42);
    assert!(
        api.state.progress.is_empty(),
        "the ended attempt's progress goes"
    );
    assert!(
        !api.state
            .store
            .holds("w", id.parse().expect("uuid"), attempt)
            .await
            .expect("holds")
    );

    // The same result again: the attempt is over, so it is refused and the
    // stored result stays.
    let (status, answer) = api
        .post(
            "/api/workers/w/results",
            json!({"results": [{"worktask_id": id, "status": "failed", "attempt": attempt}]}),
        )
        .await;
    assert_error(status, &answer, StatusCode::CONFLICT, "not_lease_holder");
    assert_eq!(answer["results"][0]["accepted"], false, "{answer}");
    assert_eq!(api.task(&id).await, task, "nothing changed");
}

/// A worker shutting down gives back what it has not started: the task
/// waits again in its place, with its attempt not used up; a release of a
/// task the worker does not hold, or has started, changes nothing.
#[tokio::test]
async fn release_gives_back_only_unstarted_tasks_the_worker_holds() {
    let api = Api::new().await;
    let pipeline = api.pipeline("hi").await;
    let first = api.submit(&pipeline).await;
    let second = api.submit(&pipeline).await;
    api.register("w").await;
    api.register("other").await;
    let (status, leased) = api
        .post("/api/workers/w/lease", json!({"max": 2, "wait_ms": 0}))
        .await;
    assert_eq!(status, StatusCode::OK, "{leased}");
    assert_eq!(leased["worktasks"].as_array().map(Vec::len), Some(2));
    // The second one starts running.
    let (status, beat) = api
        .post(
            "/api/workers/w/heartbeat",
            json!({"tasks": [{"worktask_id": second, "attempt": 1, "started_at": chrono::Utc::now().to_rfc3339()}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert_eq!(api.task(&second).await["status"], "executing");
    let before = (
        leased_state(&api.task(&first).await),
        leased_state(&api.task(&second).await),
    );

    // Another worker's release, a wrong attempt, a started task: nothing moves.
    for (worker, body) in [
        (
            "other",
            json!({"tasks": [{"worktask_id": first, "attempt": 1}]}),
        ),
        (
            "w",
            json!({"tasks": [{"worktask_id": first, "attempt": 2}]}),
        ),
        (
            "w",
            json!({"tasks": [{"worktask_id": second, "attempt": 1}]}),
        ),
    ] {
        let (status, answer) = api
            .post(&format!("/api/workers/{worker}/release"), body.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{body} -> {answer}");
        let after = (
            leased_state(&api.task(&first).await),
            leased_state(&api.task(&second).await),
        );
        assert_eq!(after, before, "{worker} {body} changed nothing");
        assert_eq!(queued(&api).await, 0);
    }

    let (status, answer) = api
        .post(
            "/api/workers/w/release",
            json!({"tasks": [{"worktask_id": first, "attempt": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"released": 1}));
    let task = api.task(&first).await;
    assert_eq!(task["status"], "queued", "{task}");
    assert_eq!(task["worker_id"], "");
    assert_eq!(
        api.state.store.queue_length().await.expect("queue length"),
        1
    );
    assert!(
        !api.state
            .store
            .holds("w", first.parse().expect("uuid"), 1)
            .await
            .expect("holds")
    );
    assert_eq!(api.attempts(&first).await, json!([]), "no attempt was used");
    assert_eq!(api.task(&second).await["status"], "executing");

    // Another worker takes it next.
    let (taken, attempt) = api.lease("other").await;
    assert_eq!(taken, first);
    assert_eq!(
        attempt, 2,
        "attempts count leases, and the next lease is the second"
    );
}

/// A result for an attempt that is over (its task was retried and leased
/// again) is refused with 409 `stale_attempt`, on both result routes, and
/// stores nothing.
#[tokio::test]
async fn a_result_for_a_stale_attempt_is_refused_409_and_stores_nothing() {
    let options = SqliteOptions {
        retry: mimir_store::conformance::TEST_RETRY,
        ..SqliteOptions::default()
    };
    let api = Api::with(options, |_| {}).await;
    let pipeline = api.pipeline("hi").await;
    let id = api.submit(&pipeline).await;
    api.register("w").await;
    let (_, first) = api.lease("w").await;
    let (status, answer) = api
        .post(
            "/api/workers/w/results",
            json!({"results": [{"worktask_id": id, "status": "failed", "attempt": first,
                                "error_message": "try again"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["results"][0]["status"], "queued",
        "retried: {answer}"
    );
    // The lease waits until the backoff has passed.
    let (status, leased) = api
        .post("/api/workers/w/lease", json!({"max": 1, "wait_ms": 10_000}))
        .await;
    assert_eq!(status, StatusCode::OK, "{leased}");
    let second = leased["worktasks"][0]["attempt"]
        .as_u64()
        .expect("leased again");
    assert_eq!(second, first + 1);
    // A lease is answered before its commit is durable: wait until it reads back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api.task(&id).await["attempt"] != second {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never landed"
        );
        tokio::task::yield_now().await;
    }
    let before = leased_state(&api.task(&id).await);
    let attempts = api.attempts(&id).await;

    let stale = json!({"worktask_id": id, "worker_id": "w", "status": "completed", "attempt": first,
                       "result": {"late": true}});
    let (status, answer) = api.post(&format!("/api/worktasks/{id}"), stale).await;
    assert_error(status, &answer, StatusCode::CONFLICT, "stale_attempt");
    let (status, answer) = api
        .post(
            "/api/workers/w/results",
            json!({"results": [{"worktask_id": id, "status": "completed", "attempt": first}]}),
        )
        .await;
    assert_error(status, &answer, StatusCode::CONFLICT, "not_lease_holder");
    assert_eq!(answer["results"][0]["accepted"], false, "{answer}");
    assert_eq!(
        answer["results"][0]["error"]["code"], "stale_attempt",
        "{answer}"
    );
    assert!(
        answer["results"][0]["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{answer}"
    );

    assert_eq!(
        leased_state(&api.task(&id).await),
        before,
        "nothing changed"
    );
    assert_eq!(api.attempts(&id).await, attempts, "no attempt was ended");
    assert!(
        api.state
            .store
            .holds("w", id.parse().expect("uuid"), second as u32)
            .await
            .expect("holds")
    );
}

/// Every worker route answers 404 `unknown_worker` to a worker that never
/// registered, and stores nothing: no lease, no start, no result, no release.
#[tokio::test]
async fn an_unknown_worker_gets_404_on_every_worker_route_and_stores_nothing() {
    let api = Api::new().await;
    let pipeline = api.pipeline("hi").await;
    let first = api.submit(&pipeline).await;
    api.submit(&pipeline).await;
    api.register("w").await;
    let (held, attempt) = api.lease("w").await;
    assert_eq!(held, first, "the first submitted is leased first");
    let (_, before) = api.get("/api/worktasks?limit=10").await;

    let held_task = json!({"worktask_id": held, "attempt": attempt, "started_at": chrono::Utc::now().to_rfc3339()});
    for (method, uri, body) in [
        ("POST", "/api/workers/ghost/lease", Some(json!({"max": 10}))),
        (
            "POST",
            "/api/workers/ghost/heartbeat",
            Some(json!({"tasks": [held_task]})),
        ),
        (
            "POST",
            "/api/workers/ghost/results",
            Some(
                json!({"results": [{"worktask_id": held, "status": "completed", "attempt": attempt}]}),
            ),
        ),
        (
            "POST",
            "/api/workers/ghost/release",
            Some(json!({"tasks": [{"worktask_id": held, "attempt": attempt}]})),
        ),
        ("DELETE", "/api/workers/ghost", None),
    ] {
        let body = body.map(|b| b.to_string());
        let (status, answer) = api.send(method, uri, body.as_deref()).await;
        assert_error(status, &answer, StatusCode::NOT_FOUND, "unknown_worker");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("ghost") && m.contains("register")),
            "{uri}: {answer}"
        );
    }
    let (_, after) = api.get("/api/worktasks?limit=10").await;
    assert_eq!(after, before, "no task changed");
    let (_, workers) = api.get("/api/workers").await;
    assert_eq!(
        workers["workers"].as_array().map(Vec::len),
        Some(1),
        "calling did not register the unknown worker: {workers}"
    );
    assert_eq!(queued(&api).await, 1, "nothing leased");
    assert!(
        api.state
            .store
            .holds("w", held.parse().expect("uuid"), attempt as u32)
            .await
            .expect("holds")
    );
    assert_eq!(api.task(&held).await["status"], "scheduled", "not started");
}

/// Waits until the workers waiting for work have `slots` free slots in all.
async fn until_idle_slots(api: &Api, slots: usize) {
    let started = std::time::Instant::now();
    while api.state.idle_capacity.total() != slots {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "idle slots stayed {} (wanted {slots})",
            api.state.idle_capacity.total()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_ask_for_unstarted_tasks_back_only_for_workers_that_could_run_them() {
    let api = Arc::new(Api::new().await);
    let pipeline = api.pipeline("hi").await;
    api.register("busy").await;
    api.register("idle").await;
    let (status, body) = api
        .post(
            "/api/workers/register",
            json!({"worker_id": "trainer", "types": ["ml_training"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let give_back = |api: Arc<Api>| async move {
        let (status, beat) = api
            .post("/api/workers/busy/heartbeat", json!({"tasks": []}))
            .await;
        assert_eq!(status, StatusCode::OK, "{beat}");
        beat["give_back"].as_u64().expect("give_back")
    };
    assert_eq!(give_back(api.clone()).await, 0, "nobody waits");

    // A worker of ML training only waits: it could not run what "busy" holds.
    let trainer = tokio::spawn({
        let api = api.clone();
        async move {
            api.post(
                "/api/workers/trainer/lease",
                json!({"max": 2, "types": ["ml_training"], "wait_ms": 10_000}),
            )
            .await
        }
    });
    until_idle_slots(&api, 2).await;
    assert_eq!(give_back(api.clone()).await, 0);

    // A worker of every type waits with 3 free slots of its 5.
    let idle = tokio::spawn({
        let api = api.clone();
        async move {
            api.post(
                "/api/workers/idle/lease",
                json!({"max": 5, "idle": 3, "wait_ms": 10_000}),
            )
            .await
        }
    });
    until_idle_slots(&api, 5).await;
    assert_eq!(give_back(api.clone()).await, 3);

    // A task arrives: the idle worker takes it and stops waiting.
    let id = api.submit(&pipeline).await;
    let (status, leased) = idle.await.expect("join");
    assert_eq!(status, StatusCode::OK, "{leased}");
    assert_eq!(leased["worktasks"][0]["worktask_id"], id.as_str());
    until_idle_slots(&api, 2).await;
    assert_eq!(give_back(api.clone()).await, 0);
    trainer.abort();
}
