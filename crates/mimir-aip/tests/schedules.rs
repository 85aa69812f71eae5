//! Schedules, webhooks, checkpoints and richer pipelines through the real
//! binary: per-second schedules across a `kill -9` and over two PostgreSQL
//! replicas (this machine's server, a fresh schema), and incremental loads
//! run by real local worker processes.

mod harness;

use chrono::{DateTime, Utc};
use harness::Orchestrator;
use harness::pipelines::noop;
use harness::postgres::Schema;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Every task in the store, paged through the API.
async fn all_tasks(client: &mimir_client::Client) -> Vec<Value> {
    let mut tasks = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/worktasks?limit=1000&cursor={c}"),
            None => "/api/worktasks?limit=1000".to_string(),
        };
        let page: Value = client.call(Method::GET, &path, None).await.expect("list");
        tasks.extend(page["worktasks"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return tasks,
        }
    }
}

/// Fires by schedule: slot → how many tasks carry it.
async fn fires(client: &mimir_client::Client) -> HashMap<String, BTreeMap<DateTime<Utc>, usize>> {
    let mut fires: HashMap<String, BTreeMap<DateTime<Utc>, usize>> = HashMap::new();
    for task in all_tasks(client).await {
        let spec = &task["task_spec"];
        let Some(schedule) = spec["schedule_id"].as_str() else {
            continue;
        };
        let slot: DateTime<Utc> = spec["parameters"]["scheduled_at"]
            .as_str()
            .expect("scheduled_at")
            .parse()
            .expect("RFC 3339");
        *fires
            .entry(schedule.to_string())
            .or_default()
            .entry(slot)
            .or_default() += 1;
    }
    fires
}

/// Creates `n` schedules firing `pipeline` every second, catching up every
/// slot a restart or a failover let pass; answers their ids.
async fn every_second(client: &mimir_client::Client, pipeline: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let schedule: Value = client
            .call(
                Method::POST,
                "/api/schedules",
                Some(
                    &json!({"name": format!("tick-{i}"), "pipeline_id": pipeline,
                             "cron": "* * * * * *", "catchup": "all"}),
                ),
            )
            .await
            .expect("create schedule");
        ids.push(schedule["id"].as_str().expect("id").to_string());
    }
    ids
}

async fn pause_all(client: &mimir_client::Client, ids: &[String]) {
    for id in ids {
        let _: Value = client
            .call(Method::POST, &format!("/api/schedules/{id}/pause"), None)
            .await
            .expect("pause");
    }
}

/// Checks every schedule fired every second from its first slot to its
/// last, each slot exactly once, and at least `min_slots` slots.
fn assert_every_slot_once(
    fires: &HashMap<String, BTreeMap<DateTime<Utc>, usize>>,
    ids: &[String],
    min_slots: usize,
) {
    for id in ids {
        let slots = fires
            .get(id)
            .unwrap_or_else(|| panic!("schedule {id} never fired"));
        let doubled: Vec<_> = slots.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            doubled.is_empty(),
            "schedule {id} fired slots twice: {doubled:?}"
        );
        let first = *slots.keys().next().expect("a slot");
        let last = *slots.keys().last().expect("a slot");
        let expected = (last - first).num_seconds() as usize + 1;
        assert_eq!(
            slots.len(),
            expected,
            "schedule {id} missed slots between {first} and {last}: {:?}",
            slots.keys().collect::<Vec<_>>()
        );
        assert!(
            slots.len() >= min_slots,
            "schedule {id}: only {} slots",
            slots.len()
        );
    }
}

/// Waits until `cond` holds, up to `within`.
async fn wait_for<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut cond: impl FnMut() -> F,
) {
    let started = Instant::now();
    while !cond().await {
        assert!(
            started.elapsed() < within,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn per_second_schedules_fire_every_slot_exactly_once_across_a_kill_9() {
    let mut orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let client = orchestrator.client();
    let pipeline = noop(&client).await;
    let ids = every_second(&client, &pipeline, 20).await;
    let enough = |n: usize| {
        let client = client.clone();
        let ids = ids.clone();
        async move {
            let fires = fires(&client).await;
            ids.iter()
                .all(|id| fires.get(id).is_some_and(|s| s.len() >= n))
        }
    };
    wait_for(Duration::from_secs(30), || enough(3)).await;
    orchestrator.kill9();
    // Slots pass while it is down; catch-up fires them after the restart.
    tokio::time::sleep(Duration::from_secs(2)).await;
    orchestrator.restart();
    wait_for(Duration::from_secs(30), || enough(8)).await;
    pause_all(&client, &ids).await;
    let fires = fires(&client).await;
    assert_every_slot_once(&fires, &ids, 8);
    // The restarted process counted what it fired (the outage's slots
    // caught up), and nothing missed.
    let metrics = harness::scrape_text(&orchestrator.url).await;
    let count = |outcome: &str| {
        harness::sample(
            &metrics,
            &format!("mimir_schedule_fires_total{{schedule=\"tick-0\",outcome=\"{outcome}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(count("caught_up") >= 1.0, "{metrics}");
    assert!(count("fired") + count("caught_up") >= 3.0, "{metrics}");
    assert_eq!(count("missed"), 0.0, "{metrics}");
    assert!(
        harness::sample(&metrics, "mimir_schedule_lag_seconds_count").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_postgres_replicas_fire_every_slot_once_through_a_leader_kill() {
    let schema = Schema::new();
    let yaml = "orchestrator:\n  leaseTtlMs: 10000\n";
    let mut replicas: Vec<Orchestrator> = (0..2)
        .map(|_| Orchestrator::start_replica(&schema, yaml, &["--max-workers", "0"]))
        .collect();
    let client = replicas[1].client();
    let pipeline = noop(&client).await;
    let ids = every_second(&client, &pipeline, 20).await;
    let enough = |n: usize| {
        let client = client.clone();
        let ids = ids.clone();
        async move {
            let fires = fires(&client).await;
            ids.iter()
                .all(|id| fires.get(id).is_some_and(|s| s.len() >= n))
        }
    };
    wait_for(Duration::from_secs(30), || enough(3)).await;
    // The replica started first leads; kill it and let the other take over.
    replicas[0].kill9();
    wait_for(Duration::from_secs(30), || enough(10)).await;
    replicas[0].restart();
    wait_for(Duration::from_secs(30), || enough(13)).await;
    pause_all(&client, &ids).await;
    let fires = fires(&client).await;
    assert_every_slot_once(&fires, &ids, 13);
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
fn sign(secret: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Waits for a task to end; answers it.
async fn ended(client: &mimir_client::Client, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let task: Value = client
            .call(Method::GET, &format!("/api/worktasks/{id}"), None)
            .await
            .expect("task");
        if ["completed", "failed", "timeout", "cancelled"]
            .contains(&task["status"].as_str().unwrap_or(""))
        {
            return task;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "task {id} did not end: {task}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_run_loads_incrementally_and_moves_its_checkpoint_only_on_success() {
    let orchestrator = Orchestrator::start(&[]);
    let client = orchestrator.client();
    let secret = "incremental-load-secret";
    // Loads the records after the checkpoint, one loop item each, skips the
    // failure step unless the body asks for it, and saves the highest id.
    let pipeline: Value = client
        .call(
            Method::POST,
            "/api/pipelines",
            Some(&json!({
                "project_id": "e2e", "name": "incremental",
                "trigger_config": {"webhook": {"enabled": true, "secret": secret}},
                "steps": [
                    {"name": "since", "plugin": "checkpoint", "action": "load",
                     "parameters": {"key": "last_id", "default": 0}},
                    {"name": "new", "plugin": "transform", "action": "jq",
                     "parameters": {"input": {"records": "$.params.body.records", "since": "$.since.value"},
                                    "program": ".since as $s | [.records[] | select(.id > $s)] as $r | {records: $r, last: ([$r[].id] | max)}"}},
                    {"name": "each", "for_each": {"items": "$.new.records", "concurrency": 3, "steps": [
                        {"name": "double", "plugin": "transform", "action": "jq",
                         "parameters": {"input": "$.item", "program": ".id * 2"}}
                    ]}},
                    {"name": "boom", "plugin": "core", "action": "fail",
                     "when": ".params.body.fail == true",
                     "parameters": {"message": "asked to fail", "permanent": true}},
                    {"name": "save", "plugin": "checkpoint", "action": "save",
                     "when": ".new.last != null",
                     "parameters": {"key": "last_id", "value": "$.new.last"}}
                ]
            })),
        )
        .await
        .expect("create the pipeline");
    let id = pipeline["id"].as_str().expect("id");
    let http = reqwest::Client::new();
    let call = |body: Value| {
        let http = http.clone();
        let url = format!("{}/api/pipelines/{id}/webhook", orchestrator.url);
        async move {
            let body = body.to_string();
            let answer = http
                .post(url)
                .header("content-type", "application/json")
                .header("x-mimir-signature", sign(secret, &body))
                .body(body)
                .send()
                .await
                .expect("webhook");
            assert_eq!(answer.status(), 202);
            let task: Value = answer.json().await.expect("task");
            task["worktask_id"].as_str().expect("id").to_string()
        }
    };
    let checkpoint = || async {
        let c: Value = client
            .call(
                Method::GET,
                &format!("/api/pipelines/{id}/checkpoints"),
                None,
            )
            .await
            .expect("checkpoints");
        c["checkpoints"]["last_id"].clone()
    };

    let first = call(json!({"records": [{"id": 1}, {"id": 2}, {"id": 3}]})).await;
    let task = ended(&client, &first).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(
        task["result"]["context"]["each"].as_array().map(Vec::len),
        Some(3),
        "{task}"
    );
    assert_eq!(checkpoint().await, json!(3));

    // A failing run reads the checkpoint but does not move it.
    let failing = call(json!({"records": [{"id": 3}, {"id": 4}], "fail": true})).await;
    let task = ended(&client, &failing).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(checkpoint().await, json!(3));

    // The next good run loads only what is past the checkpoint.
    let second = call(json!({"records": [{"id": 2}, {"id": 4}, {"id": 5}]})).await;
    let task = ended(&client, &second).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(
        task["result"]["context"]["new"]["records"],
        json!([{"id": 4}, {"id": 5}])
    );
    assert_eq!(checkpoint().await, json!(5));
}

#[test]
fn the_schedule_cli_creates_lists_pauses_runs_and_deletes() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let pipeline = runtime.block_on(noop(&orchestrator.client()));
    let created = harness::stdout_ok(&orchestrator.cli(&[
        "schedule",
        "create",
        "--name",
        "hourly",
        "--pipeline",
        &pipeline,
        "--cron",
        "@hourly",
        "--timezone",
        "Europe/Berlin",
        "--output",
        "json",
    ]));
    let schedule: Value = serde_json::from_str(&created).expect("JSON");
    let id = schedule["id"].as_str().expect("id");
    let listed = harness::stdout_ok(&orchestrator.cli(&["schedule", "list"]));
    assert!(
        listed.contains("hourly") && listed.contains("Europe/Berlin"),
        "{listed}"
    );
    let paused = harness::stdout_ok(&orchestrator.cli(&["schedule", "pause", id]));
    assert!(paused.contains("paused"), "{paused}");
    let resumed = harness::stdout_ok(&orchestrator.cli(&["schedule", "resume", id]));
    assert!(resumed.contains("active"), "{resumed}");
    let fired =
        harness::stdout_ok(&orchestrator.cli(&["schedule", "run-now", id, "--output", "json"]));
    let tasks: Value = serde_json::from_str(&fired).expect("JSON");
    assert_eq!(tasks.as_array().map(Vec::len), Some(1), "{fired}");
    let shown = harness::stdout_ok(&orchestrator.cli(&["schedule", "get", id]));
    assert!(shown.contains("last task"), "{shown}");
    let refused = harness::stderr_failed(&orchestrator.cli(&[
        "schedule",
        "create",
        "--name",
        "bad",
        "--pipeline",
        &pipeline,
        "--cron",
        "* * *",
    ]));
    assert!(refused.contains("cron"), "{refused}");
    harness::stdout_ok(&orchestrator.cli(&["schedule", "delete", id]));
    let empty = harness::stdout_ok(&orchestrator.cli(&["schedule", "list", "--output", "json"]));
    assert_eq!(
        serde_json::from_str::<Value>(&empty).expect("JSON"),
        json!([])
    );
}
