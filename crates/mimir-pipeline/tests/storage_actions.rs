//! The `storage.*` actions through the engine, against real `filesystem`
//! storage configs in a temp dir: what each answers, and the bad inputs
//! refused when a pipeline is validated or, for values only known at run
//! time, when the step runs.

use chrono::Utc;
use mimir_core::{ConnectionSettings, ErrorClass, PluginType, StorageConfig};
use mimir_pipeline::{
    Confinement, Engine, Execution, Registry, RunContext, Step, Storages, validate,
};
use mimir_storage::{Connectors, Secrets, Unobserved};
use serde_json::{Map, Value, json};
use std::sync::Arc;

fn steps(value: Value) -> Vec<Step> {
    serde_json::from_value(value).expect("steps JSON in the test is valid")
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn config(id: &str, project: &str, base_path: &str) -> StorageConfig {
    StorageConfig {
        id: id.into(),
        project_id: project.into(),
        plugin_type: PluginType::Filesystem,
        config: ConnectionSettings {
            connection_string: String::new(),
            credentials: Map::new(),
            options: object(json!({"base_path": base_path})),
        },
        active: true,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

struct Fixture {
    _root: tempfile::TempDir,
    engine: Engine,
    run: RunContext,
}

/// Project `p` has storage `fs`; project `other` has `theirs`.
fn fixture() -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let connectors = Arc::new(Connectors::new(
        Secrets::new(root.path().join("secrets")),
        root.path(),
        Arc::new(Unobserved),
    ));
    let storages = Storages::new(
        "p",
        connectors,
        [config("fs", "p", "fs"), config("theirs", "other", "theirs")],
    );
    let registry = Registry::confined(&Confinement::default())
        .expect("the default confinement")
        .with_storage();
    Fixture {
        _root: root,
        engine: Engine::new(Arc::new(registry)),
        run: RunContext::new("task", "pipeline").with_storages(Arc::new(storages)),
    }
}

impl Fixture {
    async fn run(&self, pipeline: Value, params: Value) -> Execution {
        let steps = steps(pipeline);
        validate(&steps, self.engine.registry()).expect("test pipelines are valid");
        self.engine
            .run(&steps, &object(params), &self.run, &mut |_| {})
            .await
    }

    fn invalid(&self, pipeline: Value) -> String {
        let steps = steps(pipeline);
        match validate(&steps, self.engine.registry()) {
            Ok(()) => panic!("accepted {steps:?}"),
            Err(e) => format!("{}: {}", e.field, e.message),
        }
    }
}

fn people() -> Value {
    json!({
        "version": "1.0",
        "source": {"type": "file", "parameters": {"entity_type": "people"}},
        "data": [
            {"name": "ada", "age": 36, "team": "a"},
            {"name": "bob", "age": 25, "team": "b"},
            {"name": "cy", "age": 41, "team": "a"}
        ]
    })
}

fn step(name: &str, action: &str, parameters: Value) -> Value {
    json!({"name": name, "plugin": "storage", "action": action, "parameters": parameters})
}

#[tokio::test]
async fn store_retrieve_update_delete_and_schema_round_trip() {
    let f = fixture();
    let team_a = json!({"entity_type": "people", "filters": [{"attribute": "team", "operator": "eq", "value": "a"}]});
    let execution = f
        .run(
            json!([
                step("schema", "schema", json!({"storage_id": "fs", "schema": {"name": "people", "attributes": [
                    {"name": "name", "type": "string"}, {"name": "age", "type": "integer", "indexed": true},
                    {"name": "team", "type": "string"}]}})),
                step("store", "store", json!({"storage_id": "fs", "cir_data": "$.params.doc"})),
                step("older", "retrieve", json!({"storage_id": "fs", "query": {
                    "entity_type": "people",
                    "filters": [{"attribute": "age", "operator": "gt", "value": 30}],
                    "order_by": [{"attribute": "age", "direction": "desc"}]}})),
                step("update", "update", json!({"storage_id": "fs", "query": team_a, "updates": {"team": "c"}})),
                step("delete", "delete", json!({"storage_id": "fs", "query": {"entity_type": "people", "filters": [
                    {"attribute": "name", "operator": "in", "value": ["bob"]}]}})),
                step("left", "retrieve", json!({"storage_id": "fs", "query": {"entity_type": "people"}})),
            ]),
            json!({"doc": people()}),
        )
        .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    let c = &execution.context;
    assert_eq!(
        c["schema"],
        json!({"success": true, "entity_type": "people"})
    );
    assert_eq!(c["store"], json!({"success": true, "affected_items": 3}));
    let older = &c["older"];
    assert_eq!(older["version"], "1.0");
    assert_eq!(older["metadata"]["record_count"], 2);
    let names: Vec<&Value> = older["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| &r["name"])
        .collect();
    assert_eq!(names, [&json!("cy"), &json!("ada")]);
    assert_eq!(older["source"]["parameters"]["storage_id"], "fs");
    assert_eq!(c["update"], json!({"success": true, "affected_items": 2}));
    assert_eq!(c["delete"], json!({"success": true, "affected_items": 1}));
    let left = &c["left"]["data"];
    assert_eq!(left.as_array().map(Vec::len), Some(2));
    assert!(
        left.as_array()
            .expect("data")
            .iter()
            .all(|r| r["team"] == "c"),
        "{left}"
    );
}

#[tokio::test]
async fn store_takes_a_file_read_document_and_an_entity_type() {
    let f = fixture();
    let execution = f
        .run(
            json!([
                step("store", "store", json!({"storage_id": "fs", "entity_type": "rows",
                    "cir_data": {"version": "1.0", "source": {"type": "file", "path": "x.csv", "format": "csv"},
                                 "data": [{"a": "1"}, {"a": "2"}], "metadata": {"records": 2}}})),
                step("read", "retrieve", json!({"storage_id": "fs", "query": {"entity_type": "rows"}})),
            ]),
            json!({}),
        )
        .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(execution.context["read"]["metadata"]["record_count"], 2);
}

#[tokio::test]
async fn a_reference_answer_reads_nothing_and_a_later_step_reads_it() {
    let f = fixture();
    let query = json!({"entity_type": "people", "filters": [{"attribute": "team", "operator": "eq", "value": "b"}]});
    let execution = f
        .run(
            json!([
                step(
                    "store",
                    "store",
                    json!({"storage_id": "fs", "cir_data": people()})
                ),
                step(
                    "ref",
                    "retrieve",
                    json!({"storage_id": "fs", "query": query, "as": "reference"})
                ),
                step(
                    "read",
                    "retrieve",
                    json!({"storage_id": "$.ref.storage_id", "query": "$.ref.query"})
                ),
            ]),
            json!({}),
        )
        .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    let reference = &execution.context["ref"];
    assert_eq!(reference["storage_id"], "fs");
    assert_eq!(reference["backend"], "filesystem");
    assert_eq!(reference["entity_type"], "people");
    assert!(reference.get("data").is_none(), "{reference}");
    assert_eq!(execution.context["read"]["data"][0]["name"], "bob");
}

#[tokio::test]
async fn bad_literals_are_refused_when_the_pipeline_is_validated() {
    let f = fixture();
    for (parameters, action, says) in [
        (json!({"storage_id": "fs"}), "store", "cir_data"),
        (
            json!({"storage_id": "fs", "cir_data": [1]}),
            "store",
            "cir_data",
        ),
        (
            json!({"storage_id": "", "cir_data": {}}),
            "store",
            "storage_id",
        ),
        (
            json!({"storage_id": "fs", "cir_data": {}, "entity_type": "a b"}),
            "store",
            "entity_type",
        ),
        (
            json!({"storage_id": "fs", "table": "x"}),
            "retrieve",
            "table",
        ),
        (
            json!({"storage_id": "fs", "query": {"filters": [{"attribute": "a", "operator": "regex", "value": "x"}]}}),
            "retrieve",
            "regex",
        ),
        (
            json!({"storage_id": "fs", "query": {"filters": [{"attribute": "a;drop", "operator": "eq", "value": 1}]}}),
            "retrieve",
            "filters[0].attribute",
        ),
        (
            json!({"storage_id": "fs", "query": {"entity_type": "../etc"}}),
            "retrieve",
            "entity_type",
        ),
        (
            json!({"storage_id": "fs", "query": {"limit": 0}}),
            "retrieve",
            "limit",
        ),
        (
            json!({"storage_id": "fs", "query": {"filter": []}}),
            "retrieve",
            "CIRQuery",
        ),
        (
            json!({"storage_id": "fs", "as": "table"}),
            "retrieve",
            "records or reference",
        ),
        (
            json!({"storage_id": "fs", "query": {"entity_type": "people"}, "updates": {"a": 1}}),
            "update",
            "\"all\": true",
        ),
        (
            json!({"storage_id": "fs", "query": {"entity_type": "people"}, "updates": {}, "all": true}),
            "update",
            "empty",
        ),
        (
            json!({"storage_id": "fs", "query": {"entity_type": "people", "limit": 3}, "updates": {"a": 1}, "all": true}),
            "update",
            "not order_by",
        ),
        (
            json!({"storage_id": "fs", "query": {"entity_type": "people"}, "updates": {"a b": 1}, "all": true}),
            "update",
            "updates",
        ),
        (
            json!({"storage_id": "fs", "query": {"entity_type": "people"}}),
            "delete",
            "\"all\": true",
        ),
        (
            json!({"storage_id": "fs", "query": {}, "all": "yes"}),
            "delete",
            "all",
        ),
        (
            json!({"storage_id": "fs", "schema": {"name": "x", "attributes": []}}),
            "schema",
            "schema",
        ),
    ] {
        let message = f.invalid(json!([step("s", action, parameters.clone())]));
        assert!(message.contains(says), "{action} {parameters}: {message}");
    }
    // `all` given as a reference may be true at run time: the filterless
    // query is accepted now and checked when the step runs.
    let steps = steps(json!([step(
        "s",
        "delete",
        json!({"storage_id": "fs", "query": {}, "all": "$.params.all"})
    )]));
    assert!(validate(&steps, f.engine.registry()).is_ok());
}

#[tokio::test]
async fn run_time_values_are_checked_and_failures_name_the_storage() {
    let f = fixture();
    let cases = [
        // Another project's config is not there at all.
        (
            step("s", "retrieve", json!({"storage_id": "theirs"})),
            "not a storage config of project \"p\"",
        ),
        (
            step("s", "retrieve", json!({"storage_id": "nope"})),
            "\"nope\"",
        ),
        (
            step(
                "s",
                "retrieve",
                json!({"storage_id": "fs", "query": "$.params.query"}),
            ),
            "regex",
        ),
        (
            step(
                "s",
                "delete",
                json!({"storage_id": "fs", "query": {}, "all": "$.params.all"}),
            ),
            "\"all\": true",
        ),
        (
            step(
                "s",
                "store",
                json!({"storage_id": "fs", "cir_data": "$.params.doc"}),
            ),
            "data[0] must be an object",
        ),
    ];
    for (step, says) in cases {
        let execution = f
            .run(
                json!([step]),
                json!({"query": {"filters": [{"attribute": "a", "operator": "regex", "value": 1}]},
                       "all": false, "doc": {"version": "1.0", "data": [1]}}),
            )
            .await;
        let error = execution.error.clone().unwrap_or_default();
        assert!(error.contains(says), "{step}: {error}");
        assert_eq!(
            execution.error_class,
            Some(ErrorClass::Permanent),
            "{error}"
        );
    }
}

#[tokio::test]
async fn without_storages_a_storage_step_says_where_it_can_run() {
    let mut f = fixture();
    f.run.storages = None;
    let execution = f
        .run(
            json!([step("s", "retrieve", json!({"storage_id": "fs"}))]),
            json!({}),
        )
        .await;
    let error = execution.error.unwrap_or_default();
    assert!(error.contains("only in workers"), "{error}");
}
