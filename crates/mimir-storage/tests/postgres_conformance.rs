//! The conformance suite against the `postgresql` backend: the real
//! PostgreSQL on 127.0.0.1:5432 (database `test`), a fresh schema per check
//! dropped afterwards, reached through a [`Proxy`] that the outage check cuts.

use mimir_core::{ConnectionSettings, PluginType};
use mimir_storage::backends::{self, postgres::Postgres};
use mimir_storage::conformance::Fixture;
use mimir_storage::testing::Proxy;
use mimir_storage::{CommonOptions, Connector, ErrorKind, Name, Query, QueryRequest};
use serde_json::{Value, json};
use sqlx_core::executor::Executor;
use std::sync::Arc;

const SERVER: &str = "127.0.0.1:5432";

fn settings(port: u16, schema: &str) -> ConnectionSettings {
    ConnectionSettings {
        connection_string: format!("postgres://postgres@127.0.0.1:{port}/test"),
        options: json!({"schema": schema, "max_connections": 4, "connect_timeout_ms": 1000})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..ConnectionSettings::default()
    }
}

/// A connector to a fresh schema through a proxy, and the schema's removal.
async fn open() -> (Arc<Postgres>, Arc<Proxy>, String) {
    let target = SERVER.parse().unwrap_or_else(|e| panic!("{e}"));
    let proxy = Proxy::start(target)
        .await
        .unwrap_or_else(|e| panic!("proxy: {e}"));
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let settings = settings(proxy.addr().port(), &schema);
    let options = CommonOptions::read(&settings.options).unwrap_or_else(|e| panic!("{e}"));
    let connector = Postgres::open(&settings, &options).unwrap_or_else(|e| panic!("{e}"));
    (Arc::new(connector), Arc::new(proxy), schema)
}

async fn drop_schema(schema: String) {
    let direct = sqlx_postgres::PgPool::connect(&format!("postgres://postgres@{SERVER}/test"))
        .await
        .unwrap_or_else(|e| panic!("cleanup: {e}"));
    let _ = direct
        .execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await;
    direct.close().await;
}

async fn fixture() -> Fixture {
    let (connector, proxy, schema) = open().await;
    Fixture {
        connector,
        outage: proxy,
        cleanup: parking_lot::Mutex::new(Some(Box::pin(drop_schema(schema)))),
    }
}

mimir_storage::conformance_tests!(
    fixture().await;
    round_trips_every_kind,
    operators_match_the_definition,
    orders_and_pages,
    updates_chosen_records,
    deletes_chosen_records,
    empty_results_and_separate_entities,
    schemas_type_and_index,
    hostile_values_are_data,
    large_batches,
    concurrent_stores_all_land,
    outage_fails_fast_then_recovers,
    metadata_and_health,
);

/// Names that would break out of a quoted identifier are refused before
/// any SQL is written; attribute names inside JSON records are data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_injection_through_names_is_refused() {
    for (entity, attribute) in [
        ("users\"; DROP SCHEMA public CASCADE; --", "a"),
        ("users", "a\" = 1 OR 1=1 --"),
        ("users", "a') OR ('1'='1"),
        ("pg_catalog.pg_user", "a"),
    ] {
        let request: QueryRequest = serde_json::from_value(json!({
            "entity_type": entity,
            "filters": [{"attribute": attribute, "operator": "eq", "value": 1}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let error = Query::check(&request).err();
        assert_eq!(
            error.map(|e| e.kind),
            Some(ErrorKind::Invalid),
            "{entity} {attribute}"
        );
    }
    let (connector, _proxy, schema) = open().await;
    let entity = Name::new("victims", "entity").unwrap_or_else(|e| panic!("{e}"));
    let hostile_key = "x'); DROP TABLE victims; --";
    let mut record = serde_json::Map::new();
    record.insert(hostile_key.to_string(), Value::from("y"));
    record.insert("id".to_string(), Value::from(1));
    let stored = connector.store(&entity, vec![record.clone()]).await;
    assert_eq!(stored.ok(), Some(1));
    let got = connector.retrieve(&Query::all(entity, 10)).await;
    assert_eq!(got.ok(), Some(vec![record]), "the key was data");
    drop_schema(schema).await;
}

/// Bad URLs and options are refused without connecting, and no message
/// shows the password.
#[test]
fn settings_are_checked_without_connecting() {
    for (url, options) in [
        ("mysql://u:secret@h/db", json!({})),
        ("postgres://u:secret@h:notaport/db", json!({})),
        ("postgres://u:secret@h/db", json!({"schema": "a-b"})),
        ("postgres://u:secret@h/db", json!({"max_connections": 0})),
    ] {
        let settings = ConnectionSettings {
            connection_string: url.into(),
            options: options.as_object().cloned().unwrap_or_default(),
            ..ConnectionSettings::default()
        };
        let error = backends::check(PluginType::Postgresql, &settings).err();
        let error = error.unwrap_or_else(|| panic!("{url} {options} was accepted"));
        assert_eq!(error.kind, ErrorKind::Config);
        assert!(!error.message.contains("secret"), "{error}");
    }
}
