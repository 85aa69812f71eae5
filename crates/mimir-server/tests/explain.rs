//! `GET /api/worktasks/{id}/explain` through `app()` with `oneshot`, over a
//! real SQLite file: each reason a task can have, with its figures.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mimir_core::{RetryPolicy, WorkTaskType};
use mimir_server::workers::pool::{Pool, PoolConfig};
use mimir_server::workers::{Registry, WorkerBackend};
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Api {
    app: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Api {
        Api::with(SqliteOptions::default(), |_| {}).await
    }

    /// An API over a store opened with `options`, whose state `adjust`
    /// changes first.
    async fn with(options: SqliteOptions, adjust: impl FnOnce(&mut AppState)) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), options).expect("open");
        support::put_noop(&store, "p").await;
        let mut state = AppState::new(Arc::new(store));
        adjust(&mut state);
        Api {
            app: api::app(state.clone()),
            state,
            _dir: dir,
        }
    }

    async fn send(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
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

    async fn post(&self, uri: &str, body: Value) -> Value {
        let (status, answer) = self.send("POST", uri, Some(body)).await;
        assert!(status.is_success(), "POST {uri}: {status} {answer}");
        answer
    }

    /// Submits a task of `task_type` at `priority`; its id.
    async fn submit(&self, task_type: &str, priority: u8) -> String {
        let task = self
            .post(
                "/api/worktasks",
                json!({"type": task_type, "project_id": "p", "priority": priority,
                       "task_spec": {"pipeline_id": support::NOOP}}),
            )
            .await;
        task["worktask_id"].as_str().expect("id").to_string()
    }

    /// The explanation of task `id`, which must be answered 200.
    async fn explain(&self, id: &str) -> Value {
        let (status, body) = self
            .send("GET", &format!("/api/worktasks/{id}/explain"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["worktask_id"], id, "{body}");
        body
    }

    /// Waits until task `id` reads back in `status` (a lease is answered
    /// before its commit is durable).
    async fn wait_status(&self, id: &str, status: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, task) = self
                .send("GET", &format!("/api/worktasks/{id}"), None)
                .await;
            if task["status"] == status {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} never became {status}: {task}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Registers worker `w` (for every type) and leases up to `max` tasks
    /// with it; their ids, once their leases read back.
    async fn lease(&self, max: usize) -> Vec<String> {
        self.post("/api/workers/register", json!({"worker_id": "w"}))
            .await;
        let leased = self
            .post("/api/workers/w/lease", json!({"max": max, "wait_ms": 0}))
            .await;
        let mut ids = Vec::new();
        for task in leased["worktasks"].as_array().expect("worktasks") {
            let id = task["worktask_id"].as_str().expect("id").to_string();
            self.wait_status(&id, "scheduled").await;
            ids.push(id);
        }
        ids
    }
}

fn codes(explanation: &Value) -> Vec<String> {
    explanation["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["code"].as_str().expect("code").to_string())
        .collect()
}

fn reason<'a>(explanation: &'a Value, code: &str) -> &'a Value {
    explanation["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .find(|r| r["code"] == code)
        .unwrap_or_else(|| panic!("no {code} reason in {explanation}"))
}

#[tokio::test]
async fn a_task_behind_others_is_told_how_many_are_ahead_and_at_which_priority() {
    let api = Api::new().await;
    api.post("/api/workers/register", json!({"worker_id": "w"}))
        .await;
    for _ in 0..3 {
        api.submit("pipeline_execution", 9).await;
    }
    let first_at_5 = api.submit("pipeline_execution", 5).await;
    let second_at_5 = api.submit("pipeline_execution", 5).await;

    let explanation = api.explain(&second_at_5).await;
    assert_eq!(explanation["status"], "queued");
    assert_eq!(codes(&explanation), ["queue_position"], "{explanation}");
    let position = reason(&explanation, "queue_position");
    assert_eq!(position["tasks_ahead"], 4);
    assert_eq!(position["ahead_higher_priority"], 3);
    assert_eq!(position["ahead_same_priority"], 1);
    assert_eq!(position["priority"], 5);
    assert_eq!(
        position["message"],
        "4 tasks are ahead of it: 3 at a higher priority, 1 at priority 5 that arrived earlier."
    );

    let first = api.explain(&first_at_5).await;
    assert_eq!(reason(&first, "queue_position")["ahead_same_priority"], 0);
    assert_eq!(reason(&first, "queue_position")["tasks_ahead"], 3);
}

#[tokio::test]
async fn a_task_with_nothing_ahead_is_next() {
    let api = Api::new().await;
    api.post("/api/workers/register", json!({"worker_id": "w"}))
        .await;
    let id = api.submit("pipeline_execution", 1).await;
    let explanation = api.explain(&id).await;
    assert_eq!(codes(&explanation), ["queue_position"], "{explanation}");
    assert_eq!(reason(&explanation, "queue_position")["tasks_ahead"], 0);
}

#[tokio::test]
async fn a_task_in_retry_backoff_says_until_when() {
    let options = SqliteOptions {
        retry: RetryPolicy {
            base: Duration::from_secs(60),
            cap: Duration::from_secs(60),
            jitter: 0.0,
        },
        ..SqliteOptions::default()
    };
    let api = Api::with(options, |_| {}).await;
    let id = api.submit("pipeline_execution", 3).await;
    assert_eq!(api.lease(1).await, std::slice::from_ref(&id));
    api.post(
        "/api/workers/w/results",
        json!({"results": [{"worktask_id": id, "status": "failed", "attempt": 1,
                            "error_message": "connection refused", "error_class": "transient"}]}),
    )
    .await;
    api.wait_status(&id, "queued").await;

    let explanation = api.explain(&id).await;
    assert_eq!(codes(&explanation), ["retry_backoff"], "{explanation}");
    let backoff = reason(&explanation, "retry_backoff");
    let until = chrono::DateTime::parse_from_rfc3339(backoff["until"].as_str().expect("until"))
        .expect("RFC 3339");
    let left = until.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(50) && left <= chrono::Duration::seconds(60),
        "{backoff}"
    );
    let seconds = backoff["seconds"].as_i64().expect("seconds");
    assert!((50..=60).contains(&seconds), "{backoff}");
}

#[tokio::test]
async fn a_full_type_names_its_limit_and_the_task_running() {
    let api = Api::with(SqliteOptions::default(), |state| {
        state.type_limits.insert(WorkTaskType::MlTraining, 1);
    })
    .await;
    let running = api.submit("ml_training", 5).await;
    let waiting = api.submit("ml_training", 5).await;
    assert_eq!(
        api.lease(5).await,
        std::slice::from_ref(&running),
        "the limit holds one"
    );

    let explanation = api.explain(&waiting).await;
    assert_eq!(
        codes(&explanation),
        ["type_concurrency_limit"],
        "{explanation}"
    );
    let limit = reason(&explanation, "type_concurrency_limit");
    assert_eq!(limit["type"], "ml_training");
    assert_eq!(limit["limit"], 1);
    assert_eq!(limit["running"], 1);
    assert_eq!(limit["running_tasks"], json!([running]));
    assert!(
        limit["message"]
            .as_str()
            .is_some_and(|m| m.contains(&running)),
        "{limit}"
    );

    // The leased one waits for its worker to start it.
    let leased = api.explain(&running).await;
    assert_eq!(leased["status"], "scheduled");
    assert_eq!(codes(&leased), ["leased_not_started"], "{leased}");
    assert_eq!(reason(&leased, "leased_not_started")["worker_id"], "w");
}

#[tokio::test]
async fn without_a_worker_or_a_backend_no_worker_runs_the_type() {
    let api = Api::new().await;
    let id = api.submit("ml_inference", 1).await;
    let explanation = api.explain(&id).await;
    assert_eq!(codes(&explanation), ["no_worker_for_type"], "{explanation}");
    assert_eq!(
        reason(&explanation, "no_worker_for_type")["type"],
        "ml_inference"
    );
}

#[tokio::test]
async fn a_worker_for_other_types_only_is_no_worker_for_the_type() {
    let api = Api::new().await;
    api.post(
        "/api/workers/register",
        json!({"worker_id": "trainer", "types": ["ml_training"]}),
    )
    .await;
    let id = api.submit("ml_inference", 1).await;
    assert_eq!(codes(&api.explain(&id).await), ["no_worker_for_type"]);
    let training = api.submit("ml_training", 1).await;
    assert_eq!(codes(&api.explain(&training).await), ["queue_position"]);
}

#[tokio::test]
async fn a_running_task_gets_exactly_running_and_a_finished_one_finished() {
    let api = Api::new().await;
    let id = api.submit("pipeline_execution", 1).await;
    assert_eq!(api.lease(1).await, std::slice::from_ref(&id));
    api.post(
        "/api/workers/w/heartbeat",
        json!({"tasks": [{"worktask_id": id, "attempt": 1,
                          "started_at": chrono::Utc::now().to_rfc3339()}]}),
    )
    .await;
    api.wait_status(&id, "executing").await;
    let explanation = api.explain(&id).await;
    assert_eq!(explanation["status"], "executing");
    assert_eq!(codes(&explanation), ["running"], "{explanation}");

    api.post(
        "/api/workers/w/results",
        json!({"results": [{"worktask_id": id, "status": "completed", "attempt": 1}]}),
    )
    .await;
    api.wait_status(&id, "completed").await;
    let explanation = api.explain(&id).await;
    assert_eq!(codes(&explanation), ["finished"], "{explanation}");
    assert_eq!(reason(&explanation, "finished")["status"], "completed");
}

#[tokio::test]
async fn an_unknown_id_is_404_and_a_malformed_one_400() {
    let api = Api::new().await;
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = api
        .send("GET", &format!("/api/worktasks/{unknown}/explain"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&unknown.to_string())),
        "{body}"
    );

    for bad in ["not-a-uuid", "1234", "%00", "..%2F..%2Fetc"] {
        let (status, body) = api
            .send("GET", &format!("/api/worktasks/{bad}/explain"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_id", "{body}");
        assert_eq!(body["error"]["field"], "worktask_id", "{body}");
    }
}

#[tokio::test]
async fn a_full_local_pool_says_max_workers_reached() {
    // A pool allowed no workers: always full, and it starts none.
    let pool = Arc::new(Pool::new(
        PoolConfig {
            exe: "/nonexistent/mimir-aip".into(),
            orchestrator_url: "http://127.0.0.1:9".into(),
            token: None,
            min: 0,
            max: 0,
            threshold: 1,
            idle_timeout: Duration::from_secs(60),
            poll: Duration::from_millis(10),
            worker_args: Vec::new(),
            fresh: Duration::from_secs(60),
            env: Vec::new(),
            pid_dir: None,
        },
        Arc::new(mimir_telemetry::Metrics::new()),
    ));
    let backend: Arc<dyn WorkerBackend> = pool.clone();
    let api = Api::with(SqliteOptions::default(), |state| {
        state.backend = Some(backend);
    })
    .await;
    let store: Arc<dyn Store> = api.state.store.clone();
    // The only orchestrator on its store: it leads, so its pool scales.
    let leadership = api.state.leadership.clone();
    leadership.campaign_once(store.as_ref()).await;
    let scaling = tokio::spawn(pool.run(store, Arc::new(Registry::default()), leadership));
    let id = api.submit("pipeline_execution", 1).await;

    // The pool sees the queue on its next poll.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let explanation = loop {
        let explanation = api.explain(&id).await;
        if codes(&explanation)
            .iter()
            .any(|c| c == "max_workers_reached")
        {
            break explanation;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never max_workers_reached: {explanation}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    scaling.abort();
    assert_eq!(
        codes(&explanation),
        ["no_worker_for_type", "max_workers_reached"],
        "{explanation}"
    );
    let full = reason(&explanation, "max_workers_reached");
    assert_eq!(full["max_workers"], 0);
    assert_eq!(full["cluster"], "local");
}
