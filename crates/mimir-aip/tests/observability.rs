//! Observability end to end: metric values after a known workload, read
//! through a real Prometheus; traces received by an OTLP receiver; JSON logs
//! with correlation fields.

mod harness;

use axum::body::Bytes;
use harness::pipelines::{create_pipeline, one_step, wait_until_done};
use harness::{Orchestrator, sample};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Fast retries keep the workload short.
const FAST_RETRIES: &str = "retry:\n  backoffBaseMs: 20\n  backoffCapMs: 50\n";

async fn scrape(url: &str, accept: Option<&str>) -> (String, String) {
    let mut request = reqwest::Client::new().get(format!("{url}/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (content_type, response.text().await.expect("body"))
}

/// A Prometheus server scraping `target` every second, with its data in `dir`.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &std::path::Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: mimir\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = harness::free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
            .spawn()
            .expect("run prometheus (the test command installs the Debian package)");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The result vector of an instant query.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let response: Value = match reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => return Vec::new(),
        };
        assert_ne!(response["status"], "error", "{promql}: {response}");
        response["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The single value of `promql`, once it satisfies `ok` (waits up to 60 s).
    async fn value_when(&self, promql: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let started = Instant::now();
        let mut last = Vec::new();
        while started.elapsed() < Duration::from_secs(60) {
            last = self.query(promql).await;
            if let Some(v) = last
                .first()
                .and_then(|r| r["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok())
                && ok(v)
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("{promql} never satisfied the check; last result {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_a_known_workload_in_the_exposition_and_in_prometheus() {
    let orchestrator = Orchestrator::start_with_config(FAST_RETRIES, &["--max-workers", "2"]);
    let client = orchestrator.client();
    let prometheus = Prometheus::start(
        orchestrator.dir.path(),
        &format!("127.0.0.1:{}", orchestrator.port),
    );
    prometheus
        .value_when("up{job=\"mimir\"}", |v| v == 1.0)
        .await;

    // 50 tasks that complete and 5 that fail after 2 retries each, spread over
    // a few seconds so Prometheus sees the counters rise.
    let ok = one_step(&client, "greet", "core.log", json!({"message": "hello"})).await;
    let bad = one_step(&client, "boom", "core.fail", json!({"message": "broken"})).await;
    let mut ids = Vec::new();
    for round in 0..5 {
        for _ in 0..10 {
            ids.push(
                harness::pipelines::post_task(
                    &client,
                    &format!("/api/pipelines/{ok}/execute"),
                    json!({}),
                )
                .await,
            );
        }
        ids.push(
            harness::pipelines::post_task(
                &client,
                &format!("/api/pipelines/{bad}/execute"),
                json!({"max_retries": 2}),
            )
            .await,
        );
        if round < 4 {
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    for id in &ids {
        wait_until_done(&client, *id, Duration::from_secs(60)).await;
    }

    // The exposition, once the event recorder caught up.
    let completed = "mimir_tasks_total{status=\"completed\",type=\"pipeline_execution\"}";
    let started = Instant::now();
    let (content_type, text) = loop {
        let (content_type, text) = scrape(&orchestrator.url, None).await;
        if sample(&text, completed) == Some(50.0) || started.elapsed() > Duration::from_secs(10) {
            break (content_type, text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let expect = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    };
    expect(completed, 50.0);
    expect(
        "mimir_tasks_total{status=\"failed\",type=\"pipeline_execution\"}",
        5.0,
    );
    expect(
        "mimir_task_retries_total{type=\"pipeline_execution\"}",
        10.0,
    );
    expect(
        "mimir_task_duration_seconds_count{type=\"pipeline_execution\"}",
        55.0,
    );
    // Every attempt was queued and leased once: 55 submissions + 10 retries.
    expect("mimir_queue_enqueued_total", 65.0);
    expect("mimir_queue_dequeued_total", 65.0);
    expect(
        "mimir_queue_wait_time_seconds_count{type=\"pipeline_execution\"}",
        65.0,
    );
    expect("mimir_queue_length", 0.0);
    expect(
        "mimir_plugin_errors_total{plugin=\"core\",action=\"fail\"}",
        15.0,
    );
    expect(
        &format!("mimir_pipeline_executions_total{{pipeline=\"{ok}\",status=\"completed\"}}"),
        50.0,
    );
    expect(
        &format!("mimir_pipeline_executions_total{{pipeline=\"{bad}\",status=\"failed\"}}"),
        15.0,
    );
    expect(
        "mimir_pipeline_step_duration_seconds_count{step=\"greet\",plugin=\"core\",action=\"log\"}",
        50.0,
    );
    expect(
        "mimir_store_errors_total{method=\"submit\",backend=\"sqlite\"}",
        0.0,
    );
    assert!(
        sample(
            &text,
            "mimir_store_call_duration_seconds_count{method=\"submit\",backend=\"sqlite\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert!(sample(&text, "mimir_workers_spawned_total").unwrap_or(0.0) >= 1.0);
    assert!(sample(&text, "mimir_workers_active").unwrap_or(0.0) >= 1.0);
    assert!(sample(&text, "process_resident_memory_bytes").unwrap_or(0.0) > 0.0);
    for family in [
        "# TYPE mimir_queue_enqueue_rate gauge",
        "# TYPE mimir_queue_dequeue_rate gauge",
        "# TYPE mimir_workers_failed_total counter",
        "# TYPE mimir_worker_duration_seconds histogram",
        "# TYPE mimir_storage_latency_seconds histogram",
        "# TYPE mimir_storage_operations_total counter",
        "# TYPE mimir_store_errors_total counter",
        "# TYPE mimir_http_request_duration_seconds histogram",
        "# TYPE mimir_store_call_duration_seconds histogram",
        "# TYPE mimir_task_start_latency_seconds histogram",
        "# TYPE mimir_lease_expiries_total counter",
        "# TYPE mimir_autoscaler_decisions_total counter",
        "# TYPE mimir_worker_tasks_total counter",
        "mimir_build_info{version=\"",
    ] {
        assert!(text.contains(family), "missing {family}\n{text}");
    }
    assert!(
        text.contains("mimir_http_requests_total{route=\"/api/pipelines/{id}/execute\",method=\"POST\",status=\"201\"} 55"),
        "route labels are templates\n{text}"
    );
    assert!(!text.contains(&ids[0].to_string()), "no task id as a label");

    // OpenMetrics when asked for, with its end marker.
    let (content_type, open) =
        scrape(&orchestrator.url, Some("application/openmetrics-text")).await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(open.ends_with("# EOF\n"));
    assert!(open.contains("# TYPE mimir_tasks counter"));

    // The same values through a real Prometheus.
    let from_prometheus = prometheus
        .value_when("sum(mimir_tasks_total{status=\"completed\"})", |v| {
            v == 50.0
        })
        .await;
    assert_eq!(from_prometheus, 50.0);
    prometheus
        .value_when("sum(mimir_tasks_total{status=\"failed\"})", |v| v == 5.0)
        .await;
    let rate = prometheus
        .value_when(
            "sum(rate(mimir_tasks_total{status=\"completed\"}[1m]))",
            |v| v > 0.0,
        )
        .await;
    assert!(rate > 0.0);
    let p99 = prometheus
        .value_when(
            "histogram_quantile(0.99, sum by (le) (rate(mimir_task_duration_seconds_bucket[1m])))",
            |v| v.is_finite(),
        )
        .await;
    assert!(p99 > 0.0 && p99 < 60.0, "p99 task duration {p99}");
    prometheus
        .value_when("mimir_queue_enqueued_total", |v| v == 65.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_bearer_token_or_basic_auth() {
    let orchestrator = Orchestrator::start_with_config(
        "metrics:\n  bearerToken: s3cret\n  username: prom\n  password: pw\n",
        &["--max-workers", "0"],
    );
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", orchestrator.url);
    let denied = http.get(&url).send().await.expect("scrape");
    assert_eq!(denied.status(), 401);
    let body: Value = denied.json().await.expect("error body");
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = http
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .expect("scrape");
    assert_eq!(wrong.status(), 401);
    let bearer = http
        .get(&url)
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("scrape");
    assert_eq!(bearer.status(), 200);
    let basic = http
        .get(&url)
        .basic_auth("prom", Some("pw"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(basic.status(), 200);
    // The JSON summary and health stay open.
    let health = http
        .get(format!("{}/health", orchestrator.url))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

/// A received span with its resource's string attributes.
type Received = (HashMap<String, String>, Span);

/// Collects spans posted to `/v1/traces` (OTLP/HTTP protobuf).
#[derive(Clone, Default)]
struct Receiver {
    /// (service.name, span) of every span received.
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let receiver = self.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let receiver = receiver.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut spans = receiver.spans.lock().expect("lock");
                    for resource_spans in request.resource_spans {
                        let mut attributes = HashMap::new();
                        for kv in resource_spans
                            .resource
                            .map(|r| r.attributes)
                            .unwrap_or_default()
                        {
                            if let Some(AnyValue::StringValue(v)) = kv.value.and_then(|v| v.value) {
                                attributes.insert(kv.key, v);
                            }
                        }
                        for scope in resource_spans.scope_spans {
                            for span in scope.spans {
                                spans.push((attributes.clone(), span));
                            }
                        }
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_task_from_submission_through_its_worker_and_onward() {
    let receiver = Receiver::default();
    let collector = receiver.clone().start().await;
    // A downstream service the pipeline calls: records the traceparent it gets.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let downstream = {
        let seen = seen.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route(
            "/hello",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
                        seen.lock().expect("lock").push(tp.to_string());
                    }
                    axum::Json(json!({"hello": "world"}))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hello")
    };
    let orchestrator = Orchestrator::start_with_config(
        &format!("tracing:\n  endpoint: {collector}\n  environment: test\n"),
        &["--max-workers", "1"],
    );
    let client = orchestrator.client();
    let pipeline = create_pipeline(
        &client,
        json!([
            {"name": "note", "plugin": "core", "action": "log", "parameters": {"message": "calling"}},
            {"name": "call", "plugin": "http", "action": "request", "parameters": {"url": downstream}}
        ]),
    )
    .await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let task = harness::pipelines::execute_traced(&orchestrator.url, &pipeline, trace_id).await;
    let id: Uuid = task["worktask_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    assert!(
        task["traceparent"]
            .as_str()
            .unwrap_or_default()
            .contains(trace_id),
        "the task stores its trace context: {task}"
    );
    let done = wait_until_done(&client, id, Duration::from_secs(30)).await;
    assert_eq!(done.status.as_str(), "completed", "{done:?}");

    // Spans arrive in batches (every 5 s by default).
    let wanted = [
        "submit",
        "store commit",
        "queue wait",
        "lease",
        "execute pipeline_execution",
        "step note",
        "step call",
    ];
    let started = Instant::now();
    let spans = loop {
        let spans: Vec<Received> = receiver
            .spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace_id)
            .cloned()
            .collect();
        let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
        let complete =
            wanted.iter().all(|w| names.contains(w)) && names.iter().any(|n| n.starts_with("GET "));
        if complete || started.elapsed() > Duration::from_secs(30) {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_name = |name: &str| -> &Received {
        spans
            .iter()
            .find(|(_, s)| s.name == name || (name == "GET" && s.name.starts_with("GET ")))
            .unwrap_or_else(|| {
                let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
                panic!(
                    "no span {name:?} in trace {trace_id}: {names:?}\n{}",
                    orchestrator.log()
                )
            })
    };
    let submit = by_name("submit");
    assert_eq!(
        hex(&submit.1.parent_span_id),
        "00f067aa0ba902b7",
        "continues the caller's trace"
    );
    let child_of = |child: &str, parent: &Received| {
        assert_eq!(
            hex(&by_name(child).1.parent_span_id),
            hex(&parent.1.span_id),
            "{child} is a child of {}",
            parent.1.name
        );
    };
    child_of("store commit", submit);
    child_of("queue wait", submit);
    child_of("lease", submit);
    child_of("execute pipeline_execution", submit);
    let execute = by_name("execute pipeline_execution");
    child_of("step note", execute);
    child_of("step call", execute);
    child_of("GET", by_name("step call"));

    // Orchestrator and worker are separate services of one trace.
    assert_eq!(submit.0["service.name"], "mimir-aip");
    assert_eq!(execute.0["service.name"], "mimir-aip-worker");
    for (resource, _) in [submit, execute] {
        for key in ["service.version", "service.instance.id", "host.name"] {
            assert!(resource.contains_key(key), "{key} in {resource:?}");
        }
        assert_eq!(resource["deployment.environment"], "test");
    }

    // The downstream call carried the HTTP client span's context onward.
    let http_span = by_name("GET");
    let forwarded = seen.lock().expect("lock").clone();
    assert_eq!(
        forwarded,
        vec![format!("00-{trace_id}-{}-01", hex(&http_span.1.span_id))]
    );

    // Log lines of the task are JSON and carry the correlation fields.
    let log = orchestrator.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.contains(&id.to_string()))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let completed = lines
        .iter()
        .find(|l| l["event"] == "completed")
        .unwrap_or_else(|| panic!("no completed line for {id}:\n{log}"));
    assert_eq!(completed["level"], "INFO");
    assert_eq!(completed["pipeline_id"], pipeline.as_str());
    assert_eq!(completed["trace_id"], trace_id);
    assert!(
        completed["worker_id"]
            .as_str()
            .is_some_and(|w| !w.is_empty())
    );
    assert!(completed["span_id"].as_str().is_some_and(|s| s.len() == 16));
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "started" && l["level"] == "INFO")
    );
    // The worker's lines about the task carry them too.
    let step_line = lines
        .iter()
        .find(|l| l["message"] == "calling")
        .unwrap_or_else(|| panic!("no worker line for {id}:\n{log}"));
    assert_eq!(step_line["worktask_id"], id.to_string());
    assert_eq!(step_line["pipeline_id"], pipeline.as_str());
}
