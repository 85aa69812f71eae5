//! Conditions (`when`), loops (`for_each`) and checkpoints, through the
//! engine with the real built-in actions and a probe action that counts
//! how many items run at once.

use async_trait::async_trait;
use mimir_pipeline::{
    Action, ActionDoc, ActionError, CancellationToken, Checkpoints, Confinement, Engine,
    ErrorClass, Execution, ParamDoc, ParamType, Registry, RunContext, Step, StepStatus, validate,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// `probe.hold`: counts runs in progress, keeps the most seen, and holds
/// for `ms`.
#[derive(Default)]
struct Hold {
    running: AtomicUsize,
    most: AtomicUsize,
}

#[async_trait]
impl Action for Hold {
    fn plugin(&self) -> &'static str {
        "probe"
    }

    fn action(&self) -> &'static str {
        "hold"
    }

    fn doc(&self) -> &'static ActionDoc {
        const DOC: ActionDoc = ActionDoc {
            summary: "Counts concurrent runs.",
            parameters: &[ParamDoc::required("ms", ParamType::Integer, "How long.")],
            returns: "{}",
        };
        &DOC
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        _run: &RunContext,
    ) -> Result<Value, ActionError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let ms = params.get("ms").and_then(Value::as_u64).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(json!({}))
    }
}

fn registry() -> Registry {
    Registry::confined(&Confinement::default()).expect("the default confinement")
}

fn engine() -> Engine {
    Engine::new(Arc::new(registry()))
}

/// Validates and runs `pipeline` on `engine`; inner steps must not add
/// records, so there is one per top-level step.
async fn run_on(engine: &Engine, pipeline: Value, params: Value, run: &RunContext) -> Execution {
    let steps = steps(pipeline);
    validate(&steps, engine.registry()).expect("test pipelines are valid");
    let mut seen = Vec::new();
    let execution = engine
        .run(&steps, &object(params), run, &mut |record| {
            seen.push(record.clone())
        })
        .await;
    assert_eq!(seen, execution.steps);
    assert_eq!(
        execution.steps.len(),
        steps.len(),
        "one record per top-level step"
    );
    execution
}

async fn run(pipeline: Value, params: Value) -> Execution {
    run_on(&engine(), pipeline, params, &RunContext::new("t", "p")).await
}

#[tokio::test]
async fn for_each_keeps_item_order_with_concurrency_4_when_items_finish_out_of_order() {
    let started = Instant::now();
    let execution = run(
        json!([
            {"name": "each", "for_each": {"items": "$.params.items", "as": "it", "concurrency": 4, "steps": [
                {"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": "$.it.ms"}},
                {"name": "echo", "plugin": "transform", "action": "jq",
                 "parameters": {"program": ".id", "input": "$.it"}}
            ]}},
            {"name": "after", "plugin": "transform", "action": "jq",
             "parameters": {"program": "map(.echo)", "input": "$.each"}}
        ]),
        json!({"items": [
            {"id": 0, "ms": 300}, {"id": 1, "ms": 10}, {"id": 2, "ms": 200},
            {"id": 3, "ms": 1}, {"id": 4, "ms": 100}, {"id": 5, "ms": 5}
        ]}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(execution.context["each"][0], json!({"nap": {}, "echo": 0}));
    assert_eq!(execution.context["after"], json!([0, 1, 2, 3, 4, 5]));
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "items ran at once: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn for_each_runs_at_most_concurrency_items_at_once() {
    let hold = Arc::new(Hold::default());
    let mut registry = registry();
    registry.register(hold.clone());
    let engine = Engine::new(Arc::new(registry));
    let execution = run_on(
        &engine,
        json!([{"name": "each", "for_each": {"items": "$.params.items", "concurrency": 3, "steps": [
            {"name": "hold", "plugin": "probe", "action": "hold", "parameters": {"ms": 20}}
        ]}}]),
        json!({"items": (0..12).collect::<Vec<_>>()}),
        &RunContext::new("t", "p"),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(hold.most.load(Ordering::SeqCst), 3);
    assert_eq!(execution.context["each"].as_array().map(Vec::len), Some(12));
}

/// Item 3 fails at once and item 1 later: the lowest index is reported.
#[tokio::test]
async fn a_failing_item_fails_the_step_naming_the_lowest_failing_index_and_inner_step() {
    let execution = run(
        json!([
            {"name": "each", "for_each": {"items": "$.params.items", "as": "it", "concurrency": 4, "steps": [
                {"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": "$.it.ms"}},
                {"name": "boom", "plugin": "core", "action": "fail", "when": ".it.fail",
                 "parameters": {"message": "bad row", "permanent": true}}
            ]}},
            {"name": "after", "plugin": "core", "action": "log"}
        ]),
        json!({"items": [
            {"ms": 1, "fail": false}, {"ms": 100, "fail": true},
            {"ms": 1, "fail": false}, {"ms": 1, "fail": true}
        ]}),
    )
    .await;
    assert_eq!(
        execution.error.as_deref(),
        Some("step \"each\" (for_each) failed: item 1: step \"boom\" (core.fail) failed: bad row")
    );
    assert_eq!(execution.error_class, Some(ErrorClass::Permanent));
    assert_eq!(execution.steps[0].status, StepStatus::Failed);
    assert_eq!(execution.steps[1].status, StepStatus::Skipped);
    assert!(!execution.context.contains_key("each"));
}

#[tokio::test]
async fn continue_on_error_collects_failed_items_as_errors_with_their_index() {
    let execution = run(
        json!([{"name": "each", "for_each": {"items": "$.params.items", "as": "n",
        "concurrency": 2, "continue_on_error": true, "steps": [
            {"name": "check", "plugin": "core", "action": "fail", "when": ".n % 2 == 1",
             "parameters": {"message": "odd"}},
            {"name": "double", "plugin": "transform", "action": "jq",
             "parameters": {"program": ". * 2", "input": "$.n"}}
        ]}}]),
        json!({"items": [0, 1, 2, 3]}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(
        execution.context["each"],
        json!([
            {"double": 0},
            {"error": "step \"check\" (core.fail) failed: odd", "index": 1},
            {"double": 4},
            {"error": "step \"check\" (core.fail) failed: odd", "index": 3}
        ])
    );
}

#[tokio::test]
async fn items_that_are_not_an_array_or_too_many_fail_the_step_saying_what_they_are() {
    let pipeline = json!([{"name": "each", "for_each": {"items": "$.params.items", "steps": [
        {"name": "say", "plugin": "core", "action": "log"}]}}]);
    let execution = run(pipeline.clone(), json!({"items": {"a": 1}})).await;
    assert_eq!(
        execution.steps[0].error,
        "for_each.items: \"$.params.items\" is an object, not an array"
    );
    let execution = run(pipeline.clone(), json!({"items": vec![0; 10_001]})).await;
    assert_eq!(
        execution.steps[0].error,
        "for_each.items: \"$.params.items\" has 10001 items, over the limit of 10000"
    );
    let execution = run(pipeline, json!({"items": []})).await;
    assert!(execution.succeeded());
    assert_eq!(execution.context["each"], json!([]));
}

#[tokio::test]
async fn inner_steps_read_outer_entries_params_and_earlier_inner_entries_and_loops_nest() {
    let execution = run(
        json!([
            {"name": "base", "plugin": "transform", "action": "jq", "parameters": {"program": "10"}},
            {"name": "rows", "for_each": {"items": "$.params.rows", "as": "row", "steps": [
                {"name": "sum", "plugin": "transform", "action": "jq",
                 "parameters": {"program": ".a + .b + .c", "input": {"a": "$.base", "b": "$.row.v", "c": "$.params.k"}}},
                {"name": "cells", "for_each": {"items": "$.row.cells", "as": "cell", "steps": [
                    {"name": "plus", "plugin": "transform", "action": "jq",
                     "parameters": {"program": ".x + .y", "input": {"x": "$.cell", "y": "$.sum"}}}
                ]}}
            ]}}
        ]),
        json!({"k": 100, "rows": [{"v": 1, "cells": [1, 2]}, {"v": 2, "cells": []}]}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(
        execution.context["rows"],
        json!([
            {"sum": 111, "cells": [{"plus": 112}, {"plus": 113}]},
            {"sum": 112, "cells": []}
        ])
    );
}

#[tokio::test]
async fn a_loop_over_the_context_cap_fails_before_collecting_every_item() {
    let engine = engine().with_context_cap(500);
    let execution = run_on(
        &engine,
        json!([{"name": "each", "for_each": {"items": "$.params.items", "steps": [
            {"name": "pad", "plugin": "transform", "action": "jq",
             "parameters": {"program": "\"x\" * 100"}}]}}]),
        json!({"items": vec![0; 50]}),
        &RunContext::new("t", "p"),
    )
    .await;
    assert!(
        execution.steps[0].error.contains("over the 500 bytes cap"),
        "{}",
        execution.steps[0].error
    );
}

#[tokio::test]
async fn when_true_runs_the_step_false_skips_it_without_an_entry_and_an_error_fails_it() {
    let execution = run(
        json!([
            {"name": "yes", "plugin": "transform", "action": "jq", "when": ".params.go",
             "parameters": {"program": "1"}},
            {"name": "no", "plugin": "transform", "action": "jq", "when": ".yes == 2",
             "parameters": {"program": "2"}},
            {"name": "none", "plugin": "core", "action": "log", "when": ".params.missing"},
            {"name": "later", "plugin": "core", "action": "log", "when": "(.no | not) and (.yes == 1)"}
        ]),
        json!({"go": true}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    let statuses: Vec<StepStatus> = execution.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Completed,
            StepStatus::Skipped,
            StepStatus::Skipped,
            StepStatus::Completed
        ]
    );
    assert_eq!(execution.steps[1].error, "when was false");
    assert_eq!(execution.steps[2].error, "when was null");
    assert!(
        !execution.context.contains_key("no"),
        "a skipped step has no entry"
    );
    assert_eq!(execution.context["yes"], json!(1));

    // Reading a skipped step's entry fails like reading any missing one.
    let execution = run(
        json!([
            {"name": "no", "plugin": "core", "action": "log", "when": "false"},
            {"name": "reads", "plugin": "core", "action": "log", "parameters": {"message": "$.no"}}
        ]),
        json!({}),
    )
    .await;
    assert!(
        execution.steps[1]
            .error
            .contains("no earlier step named \"no\""),
        "{}",
        execution.steps[1].error
    );

    let execution = run(
        json!([{"name": "bad", "plugin": "core", "action": "log", "when": "error(\"no flag\")"}]),
        json!({}),
    )
    .await;
    assert_eq!(execution.steps[0].status, StepStatus::Failed);
    assert_eq!(execution.steps[0].error, "when: no flag");
    assert_eq!(execution.error_class, Some(ErrorClass::Permanent));
}

fn with_checkpoints(stored: Value) -> (RunContext, Arc<Checkpoints>) {
    let checkpoints = Arc::new(Checkpoints::new(object(stored)));
    (
        RunContext::new("t", "p").with_checkpoints(checkpoints.clone()),
        checkpoints,
    )
}

/// The incremental load: read the bookmark, load what is newer, move it.
fn incremental(fail_after: bool) -> Value {
    json!([
        {"name": "since", "plugin": "checkpoint", "action": "load",
         "parameters": {"key": "last_id", "default": 0}},
        {"name": "other", "plugin": "checkpoint", "action": "load", "parameters": {"key": "other"}},
        {"name": "newest", "plugin": "transform", "action": "jq",
         "parameters": {"program": ".a + 5", "input": {"a": "$.since.value"}}},
        {"name": "save", "plugin": "checkpoint", "action": "save",
         "parameters": {"key": "last_id", "value": "$.newest"}},
        {"name": "reread", "plugin": "checkpoint", "action": "load", "parameters": {"key": "last_id"}},
        {"name": "end", "plugin": "core", "action": "fail", "when": (if fail_after { "true" } else { "false" })}
    ])
}

#[tokio::test]
async fn checkpoint_load_gives_the_default_and_a_save_is_read_back_and_kept_on_success() {
    let (run, _) = with_checkpoints(json!({"other": "x"}));
    let execution = run_on(&engine(), incremental(false), json!({}), &run).await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(
        execution.context["since"],
        json!({"key": "last_id", "value": 0, "found": false})
    );
    assert_eq!(
        execution.context["other"],
        json!({"key": "other", "value": "x", "found": true})
    );
    assert_eq!(
        execution.context["save"],
        json!({"key": "last_id", "value": 5})
    );
    assert_eq!(
        execution.context["reread"],
        json!({"key": "last_id", "value": 5, "found": true})
    );
    assert_eq!(
        Value::Object(execution.checkpoints.clone()),
        json!({"last_id": 5})
    );
    assert_eq!(
        execution.result_json()["checkpoints"],
        json!({"last_id": 5})
    );

    let (run, _) = with_checkpoints(json!({"last_id": 5}));
    let execution = run_on(&engine(), incremental(false), json!({}), &run).await;
    assert_eq!(execution.checkpoints["last_id"], json!(10));
}

#[tokio::test]
async fn checkpoint_saves_of_a_failed_run_are_dropped() {
    let (run, checkpoints) = with_checkpoints(json!({}));
    let execution = run_on(&engine(), incremental(true), json!({}), &run).await;
    assert!(!execution.succeeded());
    assert!(execution.checkpoints.is_empty());
    assert!(execution.result_json().get("checkpoints").is_none());
    assert_eq!(
        checkpoints.staged()["last_id"],
        json!(5),
        "staged, but not reported"
    );
}

#[tokio::test]
async fn checkpoint_steps_fail_permanently_in_a_run_without_checkpoints() {
    let execution = run(
        json!([{"name": "since", "plugin": "checkpoint", "action": "load", "parameters": {"key": "k"}}]),
        json!({}),
    )
    .await;
    assert_eq!(execution.error_class, Some(ErrorClass::Permanent));
    assert!(
        execution.steps[0].error.contains("no checkpoints"),
        "{}",
        execution.steps[0].error
    );
}

#[tokio::test]
async fn cancelling_stops_every_item_of_a_for_each() {
    let hold = Arc::new(Hold::default());
    let mut registry = registry();
    registry.register(hold.clone());
    let engine = Engine::new(Arc::new(registry));
    let cancel = CancellationToken::new();
    let run_ctx = RunContext::new("t", "p").with_cancel(cancel.clone());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let execution = run_on(
        &engine,
        json!([
            {"name": "each", "for_each": {"items": "$.params.items", "concurrency": 4, "steps": [
                {"name": "hold", "plugin": "probe", "action": "hold", "parameters": {"ms": 30000}}]}},
            {"name": "after", "plugin": "core", "action": "log"}
        ]),
        json!({"items": [1, 2, 3, 4, 5, 6, 7, 8]}),
        &run_ctx,
    )
    .await;
    canceller.await.expect("canceller ran");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(execution.cancelled);
    assert_eq!(execution.steps[0].error, "cancelled");
    assert_eq!(execution.steps[1].status, StepStatus::Skipped);
    assert_eq!(hold.most.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_for_each_past_its_timeout_stops_all_items_and_times_out() {
    let started = Instant::now();
    let execution = run(
        json!([{"name": "each", "timeout_ms": 100, "for_each": {"items": "$.params.items",
            "concurrency": 2, "steps": [
                {"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": 30000}}]}}]),
        json!({"items": [1, 2, 3]}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(execution.timed_out);
    assert_eq!(
        execution.steps[0].error,
        "timed out after 100 ms (the step's timeout_ms)"
    );

    // The pipeline's step_timeout_ms bounds each inner step, not the loop.
    let run_ctx = RunContext::new("t", "p").with_step_timeout(Duration::from_millis(150));
    let execution = run_on(
        &engine(),
        json!([{"name": "each", "for_each": {"items": "$.params.items", "steps": [
            {"name": "nap", "plugin": "core", "action": "sleep", "parameters": {"ms": "$.item"}}]}}]),
        json!({"items": [100, 100, 500]}),
        &run_ctx,
    )
    .await;
    assert!(execution.timed_out);
    assert_eq!(
        execution.steps[0].error,
        "item 2: step \"nap\" (core.sleep) failed: timed out after 150 ms (the pipeline's step_timeout_ms)"
    );
}
