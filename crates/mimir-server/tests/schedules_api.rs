//! Schedules, webhooks and checkpoints through `app()` with `oneshot`, over
//! a real SQLite file; and the scheduler's tick on that store, with slots
//! set in the past instead of waiting for them.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{Duration as Span, Utc};
use http_body_util::BodyExt;
use mimir_server::schedules::scheduler::{Cadences, tick};
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct Api {
    app: Router,
    state: AppState,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).expect("open"));
        support::put_noop(&store, "p").await;
        let mut state = AppState::new(store.clone());
        state.max_body_bytes = 256 * 1024;
        Api {
            app: api::app(state.clone()),
            state,
            store,
            _dir: dir,
        }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
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

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send("GET", uri, None, &[]).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send("POST", uri, Some(&body.to_string()), &[]).await
    }

    async fn put(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send("PUT", uri, Some(&body.to_string()), &[]).await
    }

    /// `POST uri` with `body` signed under `secret`.
    async fn signed(&self, uri: &str, secret: &str, body: &str) -> (StatusCode, Value) {
        self.send(
            "POST",
            uri,
            Some(body),
            &[("x-mimir-signature", &sign(secret, body))],
        )
        .await
    }

    /// Creates a schedule, asserting it was.
    async fn schedule(&self, body: Value) -> Value {
        let (status, schedule) = self.post("/api/schedules", body).await;
        assert_eq!(status, StatusCode::CREATED, "{schedule}");
        schedule
    }

    async fn schedules(&self) -> Vec<Value> {
        let (status, page) = self.get("/api/schedules?limit=1000").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["schedules"].as_array().cloned().unwrap_or_default()
    }

    /// Every task in the store.
    async fn tasks(&self) -> Vec<Value> {
        let (status, page) = self.get("/api/worktasks?limit=1000").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["worktasks"].as_array().cloned().unwrap_or_default()
    }

    /// One scheduler tick as the leader; the tasks it submitted.
    async fn tick(&self) -> usize {
        let term = self
            .store
            .lead("test", std::time::Duration::from_secs(60))
            .await
            .expect("lead")
            .expect("the only process leads");
        tick(&self.state, term, &mut Cadences::default())
            .await
            .expect("tick")
    }

    /// Moves a schedule's next slot `ago` into the past, as if the
    /// orchestrator had been away since then.
    async fn rewind(&self, id: &str, ago: Span) {
        let mut schedule = self
            .store
            .get_schedule(id)
            .await
            .expect("get")
            .expect("exists");
        let slot = Utc::now() - ago;
        schedule.next_fire_at = Some(slot);
        schedule.next_due_at = Some(slot);
        self.store.put_schedule(schedule, false).await.expect("put");
    }
}

fn every_minute(name: &str) -> Value {
    json!({"name": name, "pipeline_id": support::NOOP, "cron": "* * * * *"})
}

#[tokio::test]
async fn a_schedule_is_created_with_its_first_slot_and_served_back() {
    let api = Api::new().await;
    let schedule = api
        .schedule(json!({
            "name": "nightly", "pipeline_id": support::NOOP, "cron": "30 2 * * *",
            "timezone": "Europe/Berlin", "parameters": {"full": true}, "priority": 7,
            "catchup": "once", "overlap": "skip", "jitter_ms": 500
        }))
        .await;
    assert_eq!(schedule["project_id"], "p");
    assert_eq!(schedule["pipeline_ids"], json!([support::NOOP]));
    assert_eq!(schedule["enabled"], true);
    assert_eq!(schedule["catchup"], "once");
    assert_eq!(schedule["overlap"], "skip");
    let next: chrono::DateTime<Utc> =
        serde_json::from_value(schedule["next_fire_at"].clone()).expect("next_fire_at");
    let local = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(local.format("%H:%M").to_string(), "02:30", "{next}");
    assert!(next > Utc::now());
    let id = schedule["id"].as_str().expect("id");
    let (status, again) = api.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, schedule);
    let (_, pipeline) = api.get(&format!("/api/pipelines/{}", support::NOOP)).await;
    assert_eq!(pipeline["trigger_config"]["schedule_ids"], json!([id]));
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field_and_nothing_is_stored() {
    let api = Api::new().await;
    let base = every_minute("bad");
    for (change, field) in [
        (json!({"cron": "61 * * * *"}), "cron"),
        (json!({"cron": ""}), "cron"),
        (json!({"cron": "* * * * * * 2030"}), "cron"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"pipeline_id": "missing"}), "pipeline_id"),
        (json!({"pipeline_id": null}), "pipeline_id"),
        (
            json!({"pipeline_id": null, "pipeline_ids": []}),
            "pipeline_ids",
        ),
        (
            json!({"pipeline_id": null, "pipeline_ids": [support::NOOP, support::NOOP]}),
            "pipeline_ids[1]",
        ),
        (json!({"project_id": "other"}), "pipeline_id"),
        (json!({"priority": 11}), "priority"),
        (json!({"catchup": "sometimes"}), "catchup"),
        (json!({"overlap": "replace"}), "overlap"),
        (json!({"jitter_ms": 3_600_001u64}), "jitter_ms"),
        (json!({"name": ""}), "name"),
        (
            json!({"parameters": {"scheduled_at": "x"}}),
            "parameters.scheduled_at",
        ),
    ] {
        let mut body = base.clone();
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (status, error) = api.post("/api/schedules", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {error}");
        assert_eq!(error["error"]["field"], field, "{body} → {error}");
    }
    let (status, error) = api
        .send(
            "POST",
            "/api/schedules",
            Some("{\"name\": \"x\", \"cron\": 5}"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, error) = api
        .post(
            "/api/schedules",
            json!({"name": "x", "pipeline_id": support::NOOP, "cron": "* * * * *", "extra": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(api.schedules().await.is_empty());
    assert!(api.tasks().await.is_empty());
}

#[tokio::test]
async fn a_parameter_the_pipeline_reads_must_be_given_but_scheduled_at_is_supplied() {
    let api = Api::new().await;
    let (status, pipeline) = api
        .post(
            "/api/pipelines",
            json!({"project_id": "p", "name": "reads", "steps": [
                {"name": "say", "plugin": "core", "action": "log",
                 "parameters": {"message": "$.params.scheduled_at", "level": "$.params.level"}}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pipeline}");
    let id = pipeline["id"].as_str().expect("id");
    let (status, error) = api
        .post(
            "/api/schedules",
            json!({"name": "a", "pipeline_id": id, "cron": "@hourly"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["field"], "parameters.level");
    api.schedule(
        json!({"name": "a", "pipeline_id": id, "cron": "@hourly", "parameters": {"level": "info"}}),
    )
    .await;
}

#[tokio::test]
async fn names_are_unique_within_a_project() {
    let api = Api::new().await;
    api.schedule(every_minute("twice")).await;
    let (status, error) = api.post("/api/schedules", every_minute("twice")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["field"], "name");
    assert_eq!(api.schedules().await.len(), 1);
}

#[tokio::test]
async fn a_due_schedule_fires_once_per_tick_and_records_the_fire() {
    let api = Api::new().await;
    let schedule = api.schedule(every_minute("due")).await;
    let id = schedule["id"].as_str().expect("id").to_string();
    assert_eq!(api.tick().await, 0, "nothing is due yet");
    api.rewind(&id, Span::seconds(2)).await;
    assert_eq!(api.tick().await, 1);
    assert_eq!(api.tick().await, 0, "the slot fired already");
    let tasks = api.tasks().await;
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert_eq!(task["type"], "pipeline_execution");
    assert_eq!(task["task_spec"]["schedule_id"], id.as_str());
    assert_eq!(task["task_spec"]["pipeline_id"], support::NOOP);
    let (_, after) = api.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(after["last_task_id"], task["worktask_id"]);
    assert_eq!(after["last_outcome"], "fired");
    assert_eq!(
        after["last_fire_at"]
            .as_str()
            .map(|s| s.parse::<chrono::DateTime<Utc>>().expect("time")),
        task["task_spec"]["parameters"]["scheduled_at"]
            .as_str()
            .map(|s| s.parse::<chrono::DateTime<Utc>>().expect("time"))
    );
    let next: chrono::DateTime<Utc> =
        serde_json::from_value(after["next_fire_at"].clone()).expect("next");
    assert!(next > Utc::now());
    let text = mimir_telemetry::render(
        api.state.metrics.registry(),
        mimir_telemetry::Format::Prometheus,
    );
    assert!(
        text.contains("mimir_schedule_fires_total{schedule=\"due\",outcome=\"fired\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("mimir_schedule_lag_seconds_count 1"),
        "{text}"
    );
}

#[tokio::test]
async fn catchup_all_fires_every_missed_slot_and_skip_fires_none_of_them() {
    let api = Api::new().await;
    let all = api
        .schedule(json!({"name": "all", "pipeline_id": support::NOOP, "cron": "* * * * *", "catchup": "all"}))
        .await;
    // Once a year: its one passed slot is the rewound one, 5 minutes late.
    let skip = api
        .schedule(json!({"name": "skip", "pipeline_id": support::NOOP, "cron": "0 0 1 1 *", "catchup": "skip"}))
        .await;
    let ago = Span::minutes(5);
    api.rewind(all["id"].as_str().expect("id"), ago).await;
    api.rewind(skip["id"].as_str().expect("id"), ago).await;
    let fired = api.tick().await;
    let tasks = api.tasks().await;
    let of = |s: &Value| {
        tasks
            .iter()
            .filter(|t| t["task_spec"]["schedule_id"] == s["id"])
            .count()
    };
    // The rewound slot and the five minute boundaries after it.
    assert_eq!(of(&all), 6);
    assert_eq!(of(&skip), 0, "skip fires no late slot");
    assert_eq!(fired, of(&all));
    let (_, skip_after) = api
        .get(&format!(
            "/api/schedules/{}",
            skip["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(skip_after["last_outcome"], "missed");
}

#[tokio::test]
async fn a_paused_schedule_does_not_fire_and_run_now_fires_it_anyway() {
    let api = Api::new().await;
    let schedule = api.schedule(every_minute("paused")).await;
    let id = schedule["id"].as_str().expect("id").to_string();
    api.rewind(&id, Span::seconds(2)).await;
    let (status, paused) = api
        .post(&format!("/api/schedules/{id}/pause"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["enabled"], false);
    assert!(paused["next_fire_at"].is_null());
    assert_eq!(api.tick().await, 0);
    let (status, fired) = api
        .post(&format!("/api/schedules/{id}/run-now"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fired}");
    assert_eq!(fired["worktasks"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        fired["worktasks"][0]["task_spec"]["schedule_id"],
        id.as_str()
    );
    let (status, resumed) = api
        .post(&format!("/api/schedules/{id}/resume"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["enabled"], true);
    assert!(resumed["next_fire_at"].is_string());
    assert_eq!(api.tasks().await.len(), 1);
    let (status, _) = api
        .send("DELETE", &format!("/api/schedules/{id}"), None, &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, error) = api.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    for path in ["pause", "resume", "run-now"] {
        let (status, error) = api
            .post(&format!("/api/schedules/{id}/{path}"), Value::Null)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {error}");
    }
    assert_eq!(api.tasks().await.len(), 1, "the fired task stays");
}

#[tokio::test]
async fn a_pipeline_fired_by_a_schedule_cannot_be_deleted() {
    let api = Api::new().await;
    api.schedule(every_minute("keeps")).await;
    let (status, error) = api
        .send(
            "DELETE",
            &format!("/api/pipelines/{}", support::NOOP),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    let (status, _) = api.get(&format!("/api/pipelines/{}", support::NOOP)).await;
    assert_eq!(status, StatusCode::OK);
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
fn sign(secret: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn webhook_pipeline(api: &Api, webhook: Value) -> (StatusCode, Value) {
    api.post(
        "/api/pipelines",
        json!({"project_id": "p", "name": "hooked", "steps": [
            {"name": "say", "plugin": "core", "action": "log", "parameters": {"message": "$.params.body"}}
        ], "trigger_config": {"webhook": webhook}}),
    )
    .await
}

#[tokio::test]
async fn a_signed_webhook_starts_one_run_and_a_replay_is_refused() {
    let api = Api::new().await;
    let secret = "a-secret-of-at-least-16";
    let (status, pipeline) =
        webhook_pipeline(&api, json!({"enabled": true, "secret": secret})).await;
    assert_eq!(status, StatusCode::CREATED, "{pipeline}");
    assert!(
        pipeline["trigger_config"]["webhook"]
            .get("secret")
            .is_none(),
        "a given secret is never shown: {pipeline}"
    );
    let id = pipeline["id"].as_str().expect("id");
    let uri = format!("/api/pipelines/{id}/webhook");
    let body = r#"{"event": "push", "id": 1}"#;
    let signature = sign(secret, body);
    let (status, task) = api
        .send(
            "POST",
            &uri,
            Some(body),
            &[("x-mimir-signature", &signature)],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");
    assert_eq!(
        task["task_spec"]["parameters"]["body"],
        json!({"event": "push", "id": 1})
    );
    assert_eq!(task["task_spec"]["pipeline_id"], id);
    let (status, error) = api
        .send(
            "POST",
            &uri,
            Some(body),
            &[("x-mimir-signature", &signature)],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "replayed");

    let other = r#"{"event": "push", "id": 2}"#;
    for (headers, code) in [
        (vec![], "missing_signature"),
        (
            vec![("x-mimir-signature", sign("another-secret-16chars", other))],
            "bad_signature",
        ),
        (
            vec![("x-mimir-signature", "sha256=zz".to_string())],
            "bad_signature",
        ),
        (
            vec![("x-mimir-signature", signature.clone())],
            "bad_signature",
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, error) = api.send("POST", &uri, Some(other), &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
        assert_eq!(error["error"]["code"], code, "{error}");
    }
    let not_json = "not json";
    let (status, error) = api.signed(&uri, secret, not_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(api.tasks().await.len(), 1, "only the first call ran");
    let text = mimir_telemetry::render(
        api.state.metrics.registry(),
        mimir_telemetry::Format::Prometheus,
    );
    for (outcome, n) in [
        ("accepted", 1),
        ("replayed", 1),
        ("missing_signature", 1),
        ("bad_signature", 3),
        ("invalid", 1),
    ] {
        let series =
            format!("mimir_webhook_requests_total{{pipeline=\"{id}\",outcome=\"{outcome}\"}} {n}");
        assert!(text.contains(&series), "{series}\n{text}");
    }
}

#[tokio::test]
async fn a_webhook_secret_is_made_up_once_and_a_disabled_webhook_is_refused() {
    let api = Api::new().await;
    let (status, pipeline) = webhook_pipeline(&api, json!({"enabled": true})).await;
    assert_eq!(status, StatusCode::CREATED, "{pipeline}");
    let secret = pipeline["trigger_config"]["webhook"]["secret"]
        .as_str()
        .expect("a made-up secret, shown once")
        .to_string();
    assert_eq!(secret.len(), 64);
    let id = pipeline["id"].as_str().expect("id").to_string();
    let (_, served) = api.get(&format!("/api/pipelines/{id}")).await;
    assert!(
        served["trigger_config"]["webhook"].get("secret").is_none(),
        "{served}"
    );
    let uri = format!("/api/pipelines/{id}/webhook");
    let body = r#"{"n": 1}"#;
    let (status, task) = api.signed(&uri, &secret, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");

    // Replacing the pipeline without a secret keeps it.
    let (status, replaced) = api
        .put(
            &format!("/api/pipelines/{id}"),
            json!({"project_id": "p", "name": "hooked", "steps": [
                {"name": "say", "plugin": "core", "action": "log", "parameters": {"message": "$.params.body"}}
            ], "trigger_config": {"webhook": {"enabled": true}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert!(
        replaced["trigger_config"]["webhook"]
            .get("secret")
            .is_none(),
        "{replaced}"
    );
    let body = r#"{"n": 2}"#;
    let (status, task) = api.signed(&uri, &secret, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");

    // Manual runs and the webhook can each be turned off.
    let (status, _) = api
        .put(
            &format!("/api/pipelines/{id}"),
            json!({"project_id": "p", "name": "hooked", "steps": [
                {"name": "say", "plugin": "core", "action": "log", "parameters": {"message": "$.params.body"}}
            ], "trigger_config": {"allow_manual": false, "webhook": {"enabled": false}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = r#"{"n": 3}"#;
    let (status, error) = api.signed(&uri, &secret, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    let (status, error) = api
        .post(
            &format!("/api/pipelines/{id}/execute"),
            json!({"parameters": {"body": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "manual_trigger_disabled");
    let (status, error) = api
        .post(
            "/api/worktasks",
            json!({"type": "pipeline_execution", "project_id": "p", "task_spec": {"pipeline_id": id, "parameters": {"body": 1}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(api.tasks().await.len(), 2);
}

#[tokio::test]
async fn bad_trigger_configs_are_refused_naming_the_field() {
    let api = Api::new().await;
    let (status, error) = webhook_pipeline(&api, json!({"enabled": true, "secret": "short"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["field"], "trigger_config.webhook.secret");
    let (status, error) = api
        .post(
            "/api/pipelines",
            json!({"project_id": "p", "name": "reads", "steps": [
                {"name": "say", "plugin": "core", "action": "log", "parameters": {"message": "$.params.other"}}
            ], "trigger_config": {"webhook": {"enabled": true}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["field"], "trigger_config.webhook.enabled");
    let (status, error) = webhook_pipeline(&api, json!({"enabled": true, "url": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (_, pipelines) = api.get("/api/pipelines").await;
    assert_eq!(
        pipelines["pipelines"].as_array().map(Vec::len),
        Some(1),
        "only the noop pipeline"
    );
}

#[tokio::test]
async fn checkpoints_are_set_read_and_bounded() {
    let api = Api::new().await;
    let uri = format!("/api/pipelines/{}/checkpoints", support::NOOP);
    let (status, empty) = api.get(&uri).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["checkpoints"], json!({}));
    assert!(empty["updated_at"].is_null());
    let (status, set) = api
        .put(
            &uri,
            json!({"checkpoints": {"last_id": 41, "since": "2026-11-30T00:00:00Z"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (_, read) = api.get(&uri).await;
    assert_eq!(read["checkpoints"]["last_id"], 41);
    assert!(read["updated_at"].is_string());
    for (body, field) in [
        (json!({}), "checkpoints"),
        (json!({"checkpoints": {"": 1}}), "checkpoints."),
        (
            json!({"checkpoints": {"big": "x".repeat(70 * 1024)}}),
            "checkpoints",
        ),
    ] {
        let (status, error) = api.put(&uri, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    let (status, error) = api.put(&uri, json!({"checkpoints": [1]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (_, still) = api.get(&uri).await;
    assert_eq!(
        still["checkpoints"], read["checkpoints"],
        "refusals stored nothing"
    );
    let (status, error) = api.get("/api/pipelines/missing/checkpoints").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    let (status, error) = api
        .put(
            "/api/pipelines/missing/checkpoints",
            json!({"checkpoints": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
}
