//! Logs pushed to Loki by the orchestrator and its local workers.
//!
//! No Grafana Loki server can be installed on the test machine (Debian's
//! `loki` package is an unrelated genetics tool), so a receiver of Loki's
//! documented push API stands in for Loki here: `POST /loki/api/v1/push` with
//! either a snappy-compressed `logproto.PushRequest` (`application/x-protobuf`)
//! or the JSON body (`application/json`, structured metadata as a third
//! element of each value). It decodes with its own copy of Loki's
//! `push.proto`, refuses what Loki would refuse (400), and answers 204 as
//! Loki does.

mod harness;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use harness::Orchestrator;
use harness::pipelines::{one_step, wait_until_done};
use prost::Message;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Loki's `pkg/push/push.proto`, as the stand-in decodes it: written out
/// again from Loki's file rather than imported from the sink, so a wrong tag
/// in the sink's copy fails these tests.
mod logproto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// One received line.
#[derive(Debug, Clone)]
struct Line {
    labels: BTreeMap<String, String>,
    timestamp_ns: i128,
    line: Value,
    metadata: BTreeMap<String, String>,
}

/// One push request.
#[derive(Debug, Clone)]
struct Push {
    content_type: String,
    tenant: Option<String>,
    lines: Vec<Line>,
}

/// The stand-in for Loki's push endpoint.
#[derive(Clone, Default)]
struct Loki {
    pushes: Arc<Mutex<Vec<Push>>>,
}

/// Parses `{a="b", c="d"}` (Prometheus label text) as Loki does.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut labels = BTreeMap::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(name.trim().to_string(), value);
        rest = after[end + 1..].trim_start_matches(',').trim();
    }
    Some(labels)
}

fn decode_protobuf(body: &[u8]) -> Result<Vec<Line>, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("not snappy (block format): {e}"))?;
    let request = logproto::PushRequest::decode(raw.as_slice()).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    for stream in request.streams {
        let labels = parse_labels(&stream.labels).ok_or("bad labels")?;
        for entry in stream.entries {
            let ts = entry.timestamp.ok_or("entry without timestamp")?;
            lines.push(Line {
                labels: labels.clone(),
                timestamp_ns: i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos),
                line: serde_json::from_str(&entry.line).map_err(|e| e.to_string())?,
                metadata: entry
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
            });
        }
    }
    Ok(lines)
}

fn decode_json(body: &[u8]) -> Result<Vec<Line>, String> {
    let body: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    for stream in body["streams"].as_array().ok_or("no streams")? {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(stream["stream"].clone()).map_err(|e| e.to_string())?;
        for value in stream["values"].as_array().ok_or("no values")? {
            let value = value.as_array().ok_or("a value is not an array")?;
            if value.len() != 2 && value.len() != 3 {
                return Err(format!("a value has {} elements", value.len()));
            }
            let metadata = match value.get(2) {
                Some(m) => serde_json::from_value(m.clone()).map_err(|e| e.to_string())?,
                None => BTreeMap::new(),
            };
            lines.push(Line {
                labels: labels.clone(),
                timestamp_ns: value[0]
                    .as_str()
                    .ok_or("the timestamp is not a string")?
                    .parse()
                    .map_err(|e| format!("timestamp: {e}"))?,
                line: serde_json::from_str(value[1].as_str().ok_or("line")?)
                    .map_err(|e| e.to_string())?,
                metadata,
            });
        }
    }
    Ok(lines)
}

impl Loki {
    async fn start(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let loki = self.clone();
        let app = axum::Router::new().route(
            "/loki/api/v1/push",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let loki = loki.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let content_type = header("content-type").unwrap_or_default();
                    let lines = match content_type.as_str() {
                        "application/x-protobuf" => decode_protobuf(&body),
                        "application/json" => decode_json(&body),
                        other => Err(format!("unsupported content type {other:?}")),
                    };
                    match lines {
                        Ok(lines) => {
                            loki.pushes.lock().expect("lock").push(Push {
                                content_type,
                                tenant: header("x-scope-orgid"),
                                lines,
                            });
                            StatusCode::NO_CONTENT
                        }
                        Err(error) => {
                            eprintln!("stand-in Loki refused a push: {error}");
                            StatusCode::BAD_REQUEST
                        }
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn pushes(&self) -> Vec<Push> {
        self.pushes.lock().expect("lock").clone()
    }

    fn lines(&self) -> Vec<Line> {
        self.pushes().into_iter().flat_map(|p| p.lines).collect()
    }

    /// Waits up to 20 s for a line that satisfies `wanted`.
    async fn line_where(&self, what: &str, wanted: impl Fn(&Line) -> bool) -> Line {
        let started = Instant::now();
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| wanted(l)) {
                return line;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no {what} received; got {:#?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A task cancelled while queued: one info line (`event: cancelled`).
async fn submit_and_cancel(client: &mimir_client::Client) -> Uuid {
    let pipeline = harness::pipelines::noop(client).await;
    let task = client
        .submit(&json!({"type": "ml_inference", "project_id": "p", "task_spec": {"pipeline_id": pipeline}}))
        .await
        .expect("submit");
    client.cancel(task.worktask_id).await.expect("cancel");
    task.worktask_id
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as i128
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_and_workers_push_labelled_batched_lines_with_task_metadata() {
    let loki = Loki::default();
    let url = loki.clone().start().await;
    let started_ns = now_ns();
    let orchestrator = Orchestrator::start_with_config(
        &format!(
            "logging:\n  loki:\n    url: {url}\n    tenant: team-a\n    labels: {{env: test}}\n    batchSize: 25\n    batchWaitMs: 300\n"
        ),
        &["--max-workers", "1"],
    );
    let client = orchestrator.client();
    let pipeline = one_step(
        &client,
        "say",
        "core.log",
        json!({"message": "hello from a step"}),
    )
    .await;

    // One traced task, then a burst of 30 more: more lines than one batch holds.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let task = harness::pipelines::execute_traced(&orchestrator.url, &pipeline, trace_id).await;
    let traced: Uuid = task["worktask_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let mut ids = vec![traced];
    for _ in 0..30 {
        ids.push(
            harness::pipelines::execute(&client, &pipeline, json!({}))
                .await
                .worktask_id,
        );
    }
    for id in &ids {
        wait_until_done(&client, *id, Duration::from_secs(60)).await;
    }

    // The orchestrator's lifecycle line: stream labels, and the task's ids as
    // structured metadata rather than labels.
    let completed = loki
        .line_where("completed line of the traced task", |l| {
            l.line["event"] == "completed"
                && l.metadata.get("worktask_id") == Some(&traced.to_string())
        })
        .await;
    assert_eq!(
        completed.labels,
        labels(&[("service", "mimir-aip"), ("level", "info"), ("env", "test")])
    );
    assert_eq!(completed.metadata["pipeline_id"], pipeline);
    assert_eq!(completed.metadata["trace_id"], trace_id);
    assert_eq!(completed.metadata["span_id"].len(), 16);
    assert!(!completed.metadata["worker_id"].is_empty());
    assert_eq!(completed.line["level"], "INFO");
    assert_eq!(completed.line["target"], "mimir::task");
    assert!(
        completed.line.get("worktask_id").is_none(),
        "ids travel as metadata, not in the line: {:?}",
        completed.line
    );
    assert!(
        completed.timestamp_ns > started_ns && completed.timestamp_ns < now_ns(),
        "nanosecond timestamps of when the line was logged"
    );

    // The worker's line from inside the task: its own service, same metadata.
    let step = loki
        .line_where("the worker's step line", |l| {
            l.line["message"] == "hello from a step"
                && l.metadata.get("worktask_id") == Some(&traced.to_string())
        })
        .await;
    assert_eq!(
        step.labels,
        labels(&[
            ("service", "mimir-aip-worker"),
            ("level", "info"),
            ("env", "test")
        ])
    );
    assert_eq!(step.metadata["pipeline_id"], pipeline);

    // Every task's completion arrived: nothing lost on the way.
    for id in &ids {
        loki.line_where("a completed line of every task", |l| {
            l.line["event"] == "completed" && l.metadata.get("worktask_id") == Some(&id.to_string())
        })
        .await;
    }

    let pushes = loki.pushes();
    for push in &pushes {
        assert_eq!(push.content_type, "application/x-protobuf");
        assert_eq!(push.tenant.as_deref(), Some("team-a"));
        assert!(
            push.lines.len() <= 25,
            "batches hold at most batchSize lines"
        );
        let mut last: BTreeMap<&BTreeMap<String, String>, i128> = BTreeMap::new();
        for line in &push.lines {
            let previous = last.insert(&line.labels, line.timestamp_ns).unwrap_or(0);
            assert!(
                line.timestamp_ns >= previous,
                "a stream's entries are in time order"
            );
            let keys: Vec<&String> = line.labels.keys().collect();
            assert_eq!(keys, ["env", "level", "service"], "only bounded labels");
        }
    }
    let orchestrator_lines: usize = pushes
        .iter()
        .flat_map(|p| &p.lines)
        .filter(|l| l.labels["service"] == "mimir-aip")
        .count();
    assert!(
        orchestrator_lines >= 62,
        "two lifecycle lines per task at least"
    );
    assert!(
        pushes.iter().filter(|p| p.lines.len() > 1).count() >= 2,
        "lines are batched: {:?}",
        pushes.iter().map(|p| p.lines.len()).collect::<Vec<_>>()
    );

    // Sent lines are counted.
    let metrics = harness::scrape_text(&orchestrator.url).await;
    let sent = harness::sample(&metrics, "mimir_loki_lines_sent_total")
        .expect("mimir_loki_lines_sent_total");
    assert!(sent >= 62.0, "{sent}");
    assert!(metrics.contains("mimir_loki_lines_dropped_total{reason=\"queue_full\"} 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_encoding_and_the_last_lines_are_flushed_on_shutdown() {
    let loki = Loki::default();
    let url = loki.clone().start().await;
    // Batches that would wait a minute: only the shutdown flush sends them.
    let mut orchestrator = Orchestrator::start_with_config(
        &format!(
            "logging:\n  loki:\n    url: {url}\n    encoding: json\n    batchSize: 10000\n    batchWaitMs: 60000\n"
        ),
        &["--max-workers", "0"],
    );
    let client = orchestrator.client();
    let task = submit_and_cancel(&client).await;
    // Once the cancelled line is in the local log, the sink has it too.
    let logged = |log: &str| {
        log.lines()
            .any(|l| l.contains("\"event\":\"cancelled\"") && l.contains(&task.to_string()))
    };
    let started = Instant::now();
    while !logged(&orchestrator.log()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the cancelled line was never logged\n{}",
            orchestrator.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        loki.pushes().is_empty(),
        "nothing is due before the batch wait"
    );

    let status = orchestrator.terminate();
    assert!(status.success(), "{status}\n{}", orchestrator.log());
    let cancelled = loki
        .line_where("the cancelled line, flushed at shutdown", |l| {
            l.line["event"] == "cancelled"
                && l.metadata.get("worktask_id") == Some(&task.to_string())
        })
        .await;
    assert_eq!(
        cancelled.labels,
        labels(&[("service", "mimir-aip"), ("level", "info")])
    );
    let pushes = loki.pushes();
    assert!(pushes.iter().all(|p| p.content_type == "application/json"));
    assert!(pushes.iter().all(|p| p.tenant.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_that_cannot_be_pushed_are_dropped_and_counted_without_stalling_the_api() {
    // Nothing listens on this port: every push fails.
    let port = harness::free_port();
    let orchestrator = Orchestrator::start_with_config(
        &format!("logging:\n  loki:\n    url: http://127.0.0.1:{port}\n    batchWaitMs: 100\n"),
        &["--max-workers", "0"],
    );
    let client = orchestrator.client();
    let started = Instant::now();
    for _ in 0..20 {
        submit_and_cancel(&client).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "logging never blocks requests"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = harness::scrape_text(&orchestrator.url).await;
        let dropped = harness::sample(
            &metrics,
            "mimir_loki_lines_dropped_total{reason=\"push_failed\"}",
        )
        .unwrap_or(0.0);
        if dropped >= 20.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "push failures not counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The failure is reported on stderr, once, not once per batch.
    let log = orchestrator.log();
    assert_eq!(
        log.matches("cannot push log lines to Loki").count(),
        1,
        "{log}"
    );
}
