//! The engine end to end with the real built-in actions: references, the
//! context cap, failures, retries, cancellation, files in a temp dir and HTTP
//! against a real server on 127.0.0.1.

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use mimir_pipeline::{
    CancellationToken, Confinement, Engine, ErrorClass, Execution, Registry, RunContext, Step,
    StepRecord, StepStatus, validate,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn steps(value: Value) -> Vec<Step> {
    serde_json::from_value(value).expect("steps JSON in the test is valid")
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("test parameters must be an object, got {other}"),
    }
}

/// An engine whose file steps are confined to nothing.
fn engine() -> Engine {
    let registry = Registry::confined(&Confinement::default()).expect("the default confinement");
    Engine::new(Arc::new(registry))
}

/// An engine whose file steps work in `root`, as `pipelines.fileRoots` would
/// have it.
fn engine_in(root: &std::path::Path) -> Engine {
    let confinement = Confinement {
        file_roots: vec![root.to_path_buf()],
        ..Confinement::default()
    };
    let registry = Registry::confined(&confinement).expect("a valid confinement");
    Engine::new(Arc::new(registry))
}

/// Validates and runs `pipeline`, returning the execution and the records
/// `on_step` saw.
async fn run_with(
    engine: &Engine,
    pipeline: Value,
    params: Value,
    run: &RunContext,
) -> (Execution, Vec<StepRecord>) {
    let steps = steps(pipeline);
    validate(&steps, engine.registry()).expect("test pipelines are valid");
    let mut seen = Vec::new();
    let execution = engine
        .run(&steps, &object(params), run, &mut |record| {
            seen.push(record.clone())
        })
        .await;
    assert_eq!(seen, execution.steps, "on_step sees every record, in order");
    (execution, seen)
}

async fn run(pipeline: Value, params: Value) -> Execution {
    run_with(
        &engine(),
        pipeline,
        params,
        &RunContext::new("task-1", "pipe-1"),
    )
    .await
    .0
}

/// [`run`] with file steps confined to `root`.
async fn run_in(root: &std::path::Path, pipeline: Value, params: Value) -> Execution {
    run_with(
        &engine_in(root),
        pipeline,
        params,
        &RunContext::new("task-1", "pipe-1"),
    )
    .await
    .0
}

fn statuses(execution: &Execution) -> Vec<StepStatus> {
    execution.steps.iter().map(|s| s.status).collect()
}

#[tokio::test]
async fn references_resolve_params_steps_nested_keys_arrays_and_objects() {
    let execution = run(
        json!([
            {"name": "first", "plugin": "transform", "action": "jq",
             "parameters": {"program": ".", "input": {"n": "$.params.n", "list": [1, "$.params.deep.k"]}}},
            {"name": "echo", "plugin": "transform", "action": "jq",
             "parameters": {"program": ".", "input": {
                 "all_params": "$.params",
                 "whole_step": "$.first",
                 "nested": "$.first.list.1",
                 "in_array": ["$.first.n", {"in_object": "$.params.deep"}],
                 "not_a_reference": "value is $.params.n"
             }}}
        ]),
        json!({"n": 3, "deep": {"k": "v"}}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(
        execution.context["echo"],
        json!({
            "all_params": {"n": 3, "deep": {"k": "v"}},
            "whole_step": {"n": 3, "list": [1, "v"]},
            "nested": "v",
            "in_array": [3, {"in_object": {"k": "v"}}],
            "not_a_reference": "value is $.params.n"
        })
    );
    let result = execution.result_json();
    assert_eq!(result["steps"][1]["status"], json!("completed"));
    assert_eq!(result["steps"][1]["error"], json!(""));
    assert!(result["steps"][1]["duration_ms"].is_number());
    assert_eq!(
        result["context"]["first"],
        json!({"n": 3, "list": [1, "v"]})
    );
}

#[tokio::test]
async fn output_mapping_stores_the_result_under_names_like_the_seed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("items.json");
    std::fs::write(&path, r#"[{"id": 1}, {"id": 2}, {"id": 3}]"#).expect("write fixture");
    let execution = run_in(
        dir.path(),
        json!([
            {"name": "load_once", "plugin": "file", "action": "read",
             "parameters": {"path": "$.params.path"},
             "output": {"data": "$.result", "records": "$.result.metadata.records"}},
            {"name": "transform_1", "plugin": "transform", "action": "jq",
             "parameters": {"program": ".data | map(.id) | add", "input": "$.load_once.data"}},
            {"name": "transform_2", "plugin": "transform", "action": "jq",
             "parameters": {"program": "length", "input": "$.load_once.data.data"}}
        ]),
        json!({"path": path.to_str().expect("utf-8 temp path")}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(execution.context["load_once"]["records"], json!(3));
    assert_eq!(
        execution.context["load_once"]["data"]["version"],
        json!("1.0")
    );
    assert_eq!(execution.context["transform_1"], json!(6));
    assert_eq!(execution.context["transform_2"], json!(3));
}

#[tokio::test]
async fn a_missing_reference_fails_the_step_naming_it_and_the_path() {
    let execution = run(
        json!([
            {"name": "a", "plugin": "transform", "action": "jq",
             "parameters": {"program": "{x: 1}"}},
            {"name": "b", "plugin": "transform", "action": "jq",
             "parameters": {"program": ".", "input": ["$.a.nope"]}}
        ]),
        json!({}),
    )
    .await;
    assert_eq!(
        statuses(&execution),
        [StepStatus::Completed, StepStatus::Failed]
    );
    assert_eq!(
        execution.error.as_deref(),
        Some(
            "step \"b\" (transform.jq) failed: parameters.input[0]: cannot resolve \"$.a.nope\": \"$.a\" has no key \"nope\""
        )
    );
    assert!(execution.steps[1].error.contains("$.a.nope"));
    assert!(!execution.context.contains_key("b"));

    let execution = run(
        json!([{"name": "p", "plugin": "core", "action": "log",
                "parameters": {"message": "$.params.missing.key"}}]),
        json!({}),
    )
    .await;
    let error = execution.error.unwrap_or_default();
    assert!(
        error.starts_with("step \"p\" (core.log) failed:"),
        "{error}"
    );
    assert!(
        error.contains("\"$.params\" has no key \"missing\""),
        "{error}"
    );
}

#[tokio::test]
async fn exceeding_the_context_cap_fails_the_step_naming_size_and_cap() {
    let engine = engine().with_context_cap(200);
    let (execution, _) = run_with(
        &engine,
        json!([
            {"name": "small", "plugin": "transform", "action": "jq",
             "parameters": {"program": "\"ok\""}},
            {"name": "big", "plugin": "transform", "action": "jq",
             "parameters": {"program": "[range(100)] | map(tostring) | join(\",\")"}},
            {"name": "after", "plugin": "core", "action": "log",
             "parameters": {"message": "never"}}
        ]),
        json!({}),
        &RunContext::new("t", "p"),
    )
    .await;
    assert_eq!(
        statuses(&execution),
        [
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped
        ]
    );
    let error = execution.error.clone().unwrap_or_default();
    assert!(
        error.starts_with("step \"big\" (transform.jq) failed: pipeline context is "),
        "{error}"
    );
    assert!(error.ends_with("bytes, over the 200 bytes cap"), "{error}");
    // The oversized entry is not kept, so the result stays within the cap.
    assert_eq!(execution.context.keys().collect::<Vec<_>>(), ["small"]);
    let context_bytes = serde_json::to_vec(&execution.context)
        .expect("serializes")
        .len();
    assert!(context_bytes <= 200);
}

#[tokio::test]
async fn the_default_cap_message_uses_mib() {
    // 11 MiB of text from one step: over the 10 MiB default.
    let execution = run(
        json!([{"name": "load", "plugin": "transform", "action": "jq",
                "parameters": {"program": "\"x\" * (11 * 1024 * 1024)"}}]),
        json!({}),
    )
    .await;
    assert_eq!(
        execution.error.as_deref(),
        Some(
            "step \"load\" (transform.jq) failed: pipeline context is 11.0 MiB, over the 10.0 MiB cap"
        )
    );
}

#[tokio::test]
async fn steps_after_a_failure_are_skipped() {
    let execution = run(
        json!([
            {"name": "one", "plugin": "core", "action": "log", "parameters": {"message": "hi"}},
            {"name": "two", "plugin": "core", "action": "fail", "parameters": {"message": "boom"}},
            {"name": "three", "plugin": "core", "action": "log"},
            {"name": "four", "plugin": "core", "action": "sleep", "parameters": {"ms": 1}}
        ]),
        json!({}),
    )
    .await;
    assert_eq!(
        statuses(&execution),
        [
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped,
            StepStatus::Skipped
        ]
    );
    assert!(!execution.succeeded());
    assert!(!execution.cancelled);
    assert_eq!(
        execution.error.as_deref(),
        Some("step \"two\" (core.fail) failed: boom")
    );
    assert_eq!(execution.steps[1].error, "boom");
    assert_eq!(execution.steps[2].error, "");
    assert_eq!(execution.steps[2].duration_ms, 0.0);
    assert_eq!(execution.context.keys().collect::<Vec<_>>(), ["one"]);
    assert_eq!(execution.context["one"], json!({}));
    let result = execution.result_json();
    assert_eq!(result["steps"][2]["status"], json!("skipped"));
}

#[tokio::test]
async fn core_fail_with_times_fails_the_first_attempts_then_succeeds() {
    let engine = engine();
    let pipeline = json!([{"name": "flaky", "plugin": "core", "action": "fail",
                           "parameters": {"times": 2}}]);
    for attempt in 0..=3 {
        let run = RunContext::new("t", "p").with_attempt(attempt);
        let (execution, _) = run_with(&engine, pipeline.clone(), json!({}), &run).await;
        if attempt < 2 {
            assert_eq!(
                execution.error.as_deref(),
                Some("step \"flaky\" (core.fail) failed: failed on purpose"),
                "attempt {attempt}"
            );
        } else {
            assert!(
                execution.succeeded(),
                "attempt {attempt}: {:?}",
                execution.error
            );
            assert_eq!(execution.context["flaky"], json!({}));
        }
    }
}

/// On paused time: the clock moves only when every task waits, so the
/// cancel lands at 100 ms of the nap's 30 s, whatever the machine's load.
#[tokio::test(start_paused = true)]
async fn cancellation_stops_a_sleep_promptly_and_skips_the_rest() {
    let cancel = CancellationToken::new();
    let run = RunContext::new("t", "p").with_cancel(cancel.clone());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = tokio::time::Instant::now();
    let (execution, _) = run_with(
        &engine(),
        json!([
            {"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": 30000}},
            {"name": "after", "plugin": "core", "action": "log"}
        ]),
        json!({}),
        &run,
    )
    .await;
    canceller.await.expect("canceller ran");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "the nap ended when cancelled"
    );
    assert!(execution.cancelled);
    assert_eq!(
        statuses(&execution),
        [StepStatus::Failed, StepStatus::Skipped]
    );
    assert_eq!(execution.steps[0].error, "cancelled");
    assert_eq!(
        execution.error.as_deref(),
        Some("step \"nap\" (core.sleep) failed: cancelled")
    );
}

#[tokio::test]
async fn a_run_cancelled_before_it_starts_runs_nothing() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let run = RunContext::new("t", "p").with_cancel(cancel);
    let (execution, _) = run_with(
        &engine(),
        json!([{"name": "a", "plugin": "core", "action": "fail"},
               {"name": "b", "plugin": "core", "action": "log"}]),
        json!({}),
        &run,
    )
    .await;
    assert!(execution.cancelled);
    assert_eq!(
        statuses(&execution),
        [StepStatus::Failed, StepStatus::Skipped]
    );
    assert_eq!(execution.steps[0].error, "cancelled");
}

#[tokio::test]
async fn an_unregistered_action_fails_at_run_time_without_panicking() {
    let steps = steps(json!([{"name": "x", "plugin": "nope", "action": "go"}]));
    let execution = engine()
        .run(&steps, &Map::new(), &RunContext::default(), &mut |_| {})
        .await;
    assert_eq!(
        execution.error.as_deref(),
        Some("step \"x\" (nope.go) failed: no action \"nope.go\" is registered")
    );
}

// ---- files ----

/// Writes `data` as `format` to `name` under `dir`, reads it back, and
/// returns the CIR document read.
async fn round_trip(dir: &std::path::Path, name: &str, format: &str, data: Value) -> Value {
    let path = dir.join("nested/deeper").join(name);
    let execution = run_in(
        dir,
        json!([
            {"name": "save", "plugin": "file", "action": "write",
             "parameters": {"path": "$.params.path", "format": format, "data": "$.params.data"}},
            {"name": "load", "plugin": "file", "action": "read",
             "parameters": {"path": "$.save.path", "format": format}}
        ]),
        json!({"path": path.to_str().expect("utf-8 temp path"), "data": data}),
    )
    .await;
    assert!(execution.succeeded(), "{format}: {:?}", execution.error);
    let written = std::fs::metadata(&path).expect("file exists").len();
    assert_eq!(
        execution.context["save"]["bytes"],
        json!(written),
        "{format}"
    );
    assert_eq!(
        execution.context["load"]["metadata"]["bytes"],
        json!(written),
        "{format}"
    );
    execution.context["load"].clone()
}

#[tokio::test]
async fn files_round_trip_in_every_format() {
    let dir = tempfile::tempdir().expect("temp dir");

    let rows = json!([
        {"name": "Ada", "age": 36, "admin": true, "note": "likes, commas"},
        {"name": "Linus", "age": 54.5, "admin": false, "note": "says \"hi\""}
    ]);
    let doc = round_trip(dir.path(), "people.csv", "csv", rows.clone()).await;
    assert_eq!(doc["data"], rows);
    assert_eq!(doc["metadata"]["records"], json!(2));
    assert_eq!(doc["source"]["format"], json!("csv"));
    assert_eq!(doc["source"]["type"], json!("file"));

    let value = json!({"a": [1, 2.5, null, "x"], "b": {"c": true}});
    let doc = round_trip(dir.path(), "value.json", "json", value.clone()).await;
    assert_eq!(doc["data"], value);
    assert_eq!(doc["metadata"]["records"], json!(1));

    let lines = json!([{"a": 1}, [2], "three", null]);
    let doc = round_trip(dir.path(), "lines.ndjson", "ndjson", lines.clone()).await;
    assert_eq!(doc["data"], lines);
    assert_eq!(doc["metadata"]["records"], json!(4));

    let text = json!("first line\nsecond, with ünïcode\n");
    let doc = round_trip(dir.path(), "notes.txt", "text", text.clone()).await;
    assert_eq!(doc["data"], text);
    assert!(doc["metadata"]["read_at"].is_string());

    // Atomic writes leave no temporary files behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("nested/deeper"))
        .expect("dir exists")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_csv_document_written_back_keeps_its_column_order_and_format_follows_the_extension() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.csv");
    std::fs::write(&input, "zeta,alpha,mid\n1,007,x\n2,,y\n").expect("write fixture");
    let execution = run_in(
        dir.path(),
        json!([
            {"name": "load", "plugin": "file", "action": "read",
             "parameters": {"path": "$.params.input"}},
            {"name": "save", "plugin": "file", "action": "write",
             "parameters": {"path": "$.params.output", "data": "$.load"}}
        ]),
        json!({"input": input.to_str(), "output": output.to_str()}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(
        execution.context["load"]["data"][0],
        json!({"zeta": 1, "alpha": "007", "mid": "x"})
    );
    assert_eq!(
        std::fs::read_to_string(&output).expect("written"),
        "zeta,alpha,mid\n1,007,x\n2,,y\n"
    );
}

#[tokio::test]
async fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.json");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").expect("write fixture");
    for (path, expected) in [(&missing, "cannot read"), (&bad, "is not valid json")] {
        let execution = run_in(
            dir.path(),
            json!([{"name": "load", "plugin": "file", "action": "read",
                    "parameters": {"path": "$.params.path"}}]),
            json!({"path": path.to_str()}),
        )
        .await;
        let error = execution.error.unwrap_or_default();
        assert!(error.contains(expected), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
    }
}

#[tokio::test]
async fn jq_transforms_cir_data_and_reports_runtime_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("orders.csv");
    std::fs::write(&path, "id,total,status\n1,10.5,paid\n2,3,open\n3,7,paid\n").expect("fixture");
    let execution = run_in(
        dir.path(),
        json!([
            {"name": "load", "plugin": "file", "action": "read",
             "parameters": {"path": "$.params.path"}},
            {"name": "paid", "plugin": "transform", "action": "jq",
             "parameters": {"program": "[.data[] | select(.status == \"paid\")] | {count: length, total: (map(.total) | add)}",
                            "input": "$.load"}},
            {"name": "ids", "plugin": "transform", "action": "jq",
             "parameters": {"program": ".data[] | .id", "input": "$.load"}},
            {"name": "bad", "plugin": "transform", "action": "jq",
             "parameters": {"program": ".data.id", "input": "$.load"}}
        ]),
        json!({"path": path.to_str()}),
    )
    .await;
    assert_eq!(
        execution.context["paid"],
        json!({"count": 2, "total": 17.5})
    );
    assert_eq!(execution.context["ids"], json!([1, 2, 3]));
    let error = execution.error.unwrap_or_default();
    assert!(
        error.starts_with("step \"bad\" (transform.jq) failed: jq program failed: "),
        "{error}"
    );
}

// ---- http ----

/// A real HTTP server on 127.0.0.1:0: `/echo` returns what it received as
/// JSON, `/text` plain text, `/teapot` a 418, `/slow` answers after 5 s.
async fn serve() -> String {
    async fn echo(method: Method, headers: HeaderMap, body: String) -> impl IntoResponse {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        axum::Json(json!({
            "method": method.as_str(),
            "content_type": header("content-type"),
            "x_test": header("x-test"),
            "traceparent": header("traceparent"),
            "body": body,
        }))
    }
    let app = Router::new()
        .route("/echo", any(echo))
        .route(
            "/text",
            any(|| async {
                (
                    [("content-type", "text/plain"), ("X-Custom", "Yes")],
                    "hello",
                )
            }),
        )
        .route(
            "/teapot",
            any(|| async {
                (
                    StatusCode::IM_A_TEAPOT,
                    axum::Json(json!({"error": "teapot"})),
                )
            }),
        )
        .route(
            "/status/{code}",
            any(
                |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                    (
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        "no",
                    )
                },
            ),
        )
        .route(
            "/slow",
            any(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn http_request_sends_method_headers_json_body_and_traceparent() {
    let base = serve().await;
    let run = RunContext::new("t", "p").with_traceparent(TRACEPARENT);
    let (execution, _) = run_with(
        &engine(),
        json!([
            {"name": "call", "plugin": "http", "action": "request",
             "parameters": {"method": "post", "url": "$.params.url",
                            "headers": {"X-Test": "$.params.tag"},
                            "body": {"items": "$.params.items"}}},
            {"name": "text", "plugin": "http", "action": "request",
             "parameters": {"url": "$.params.text_url"}}
        ]),
        json!({"url": format!("{base}/echo"), "text_url": format!("{base}/text"),
               "tag": "abc", "items": [1, 2]}),
        &run,
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    let call = &execution.context["call"];
    assert_eq!(call["status"], json!(200));
    assert_eq!(call["headers"]["content-type"], json!("application/json"));
    let body = &call["body"];
    assert_eq!(body["method"], json!("POST"));
    assert_eq!(body["x_test"], json!("abc"));
    assert_eq!(body["content_type"], json!("application/json"));
    assert_eq!(body["traceparent"], json!(TRACEPARENT));
    let sent: Value = serde_json::from_str(body["body"].as_str().unwrap_or_default())
        .expect("the server got JSON");
    assert_eq!(sent, json!({"items": [1, 2]}));

    let text = &execution.context["text"];
    assert_eq!(text["body"], json!("hello"));
    assert_eq!(text["headers"]["x-custom"], json!("Yes"));
}

#[tokio::test]
async fn http_request_returns_error_statuses_and_sends_string_bodies_as_is() {
    let base = serve().await;
    let execution = run(
        json!([
            {"name": "teapot", "plugin": "http", "action": "request",
             "parameters": {"url": "$.params.teapot"}},
            {"name": "raw", "plugin": "http", "action": "request",
             "parameters": {"method": "PUT", "url": "$.params.echo", "body": "a=1&b=2",
                            "headers": {"content-type": "application/x-www-form-urlencoded"}}}
        ]),
        json!({"teapot": format!("{base}/teapot"), "echo": format!("{base}/echo")}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(execution.context["teapot"]["status"], json!(418));
    assert_eq!(
        execution.context["teapot"]["body"],
        json!({"error": "teapot"})
    );
    let raw = &execution.context["raw"]["body"];
    assert_eq!(raw["method"], json!("PUT"));
    assert_eq!(raw["body"], json!("a=1&b=2"));
    assert_eq!(
        raw["content_type"],
        json!("application/x-www-form-urlencoded")
    );
    // No traceparent in the run context, none sent.
    assert_eq!(raw["traceparent"], Value::Null);
}

#[tokio::test]
async fn http_request_with_fail_on_status_fails_4xx_permanently_and_5xx_429_transiently() {
    let base = serve().await;
    for (code, class) in [
        (404, ErrorClass::Permanent),
        (400, ErrorClass::Permanent),
        (429, ErrorClass::Transient),
        (503, ErrorClass::Transient),
    ] {
        let execution = run(
            json!([{"name": "call", "plugin": "http", "action": "request",
                    "parameters": {"url": "$.params.url", "fail_on_status": true}}]),
            json!({"url": format!("{base}/status/{code}")}),
        )
        .await;
        let error = execution.error.clone().unwrap_or_default();
        assert!(
            error.contains(&format!("answered {code}")),
            "{code}: {error}"
        );
        assert_eq!(execution.error_class, Some(class), "{code}: {error}");
    }
    // Without it, an error status is a result.
    let execution = run(
        json!([{"name": "call", "plugin": "http", "action": "request",
                "parameters": {"url": "$.params.url"}}]),
        json!({"url": format!("{base}/status/404")}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
}

#[tokio::test]
async fn http_request_times_out_and_connection_errors_fail_the_step() {
    let base = serve().await;
    let started = Instant::now();
    let execution = run(
        json!([{"name": "slow", "plugin": "http", "action": "request",
                "parameters": {"url": "$.params.url", "timeout_ms": 200}}]),
        json!({"url": format!("{base}/slow")}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        execution.error.as_deref(),
        Some(
            format!(
                "step \"slow\" (http.request) failed: GET {base}/slow: no response within 200 ms"
            )
            .as_str()
        )
    );

    // A port nothing listens on: bind, note the port, close.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let execution = run(
        json!([{"name": "down", "plugin": "http", "action": "request",
                "parameters": {"url": "$.params.url", "timeout_ms": 2000}}]),
        json!({"url": format!("http://127.0.0.1:{closed}/")}),
    )
    .await;
    let error = execution.error.unwrap_or_default();
    assert!(
        error.starts_with("step \"down\" (http.request) failed: GET http://127.0.0.1:"),
        "{error}"
    );
}

#[tokio::test]
async fn cancellation_stops_a_pending_http_request_promptly() {
    // A server that takes the connection and never answers: the cancel
    // comes once the request is pending there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let address = listener.local_addr().expect("local address");
    let cancel = CancellationToken::new();
    let run = RunContext::new("t", "p").with_cancel(cancel.clone());
    let canceller = tokio::spawn(async move {
        let (connection, _) = listener.accept().await.expect("the request connects");
        cancel.cancel();
        connection
    });
    let started = Instant::now();
    let (execution, _) = run_with(
        &engine(),
        json!([{"name": "slow", "plugin": "http", "action": "request",
                "parameters": {"url": "$.params.url"}}]),
        json!({"url": format!("http://{address}/never")}),
        &run,
    )
    .await;
    let _held_open = canceller.await.expect("canceller ran");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(execution.cancelled);
    assert_eq!(execution.steps[0].error, "cancelled");
}

#[tokio::test]
async fn a_step_past_its_timeout_fails_as_timed_out_and_the_pipeline_default_applies() {
    let started = std::time::Instant::now();
    let execution = run(
        json!([
            {"name": "quick", "plugin": "core", "action": "sleep", "parameters": {"ms": 1}, "timeout_ms": 5000},
            {"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": 60000}, "timeout_ms": 100}
        ]),
        json!({}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(execution.timed_out);
    assert_eq!(execution.error_class, Some(ErrorClass::Transient));
    assert_eq!(
        statuses(&execution),
        [StepStatus::Completed, StepStatus::Failed]
    );
    assert_eq!(
        execution.steps[1].error,
        "timed out after 100 ms (the step's timeout_ms)"
    );

    // A pipeline default for steps without their own, and the run's deadline.
    let run_ctx = RunContext::new("t", "p").with_step_timeout(Duration::from_millis(50));
    let (execution, _) = run_with(
        &engine(),
        json!([{"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": 60000}}]),
        json!({}),
        &run_ctx,
    )
    .await;
    assert_eq!(
        execution.steps[0].error,
        "timed out after 50 ms (the pipeline's step_timeout_ms)"
    );
    let run_ctx = RunContext::new("t", "p")
        .with_deadline(tokio::time::Instant::now() + Duration::from_millis(80));
    let (execution, _) = run_with(
        &engine(),
        json!([{"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": 60000}, "timeout_ms": 30000}]),
        json!({}),
        &run_ctx,
    )
    .await;
    assert!(execution.timed_out);
    assert!(
        execution.steps[0]
            .error
            .contains("what was left of the task's timeout_ms"),
        "{}",
        execution.steps[0].error
    );
}

#[test]
fn a_step_timeout_of_zero_is_refused_naming_the_field() {
    let pipeline = steps(json!([
        {"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": 1}, "timeout_ms": 0}
    ]));
    let error = validate(&pipeline, engine().registry()).expect_err("refused");
    assert_eq!(error.field, "steps[0].timeout_ms");
}
