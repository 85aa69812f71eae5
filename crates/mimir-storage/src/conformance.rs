//! Behaviour every [`Connector`] must show, run unchanged against every
//! backend's real server (as the metadata store's suite is).
//!
//! Each check gets a [`Fixture`]: a connector to a fresh, empty namespace
//! (its own folder, database schema, key prefix or bucket prefix) and a way
//! to cut the backend off. [`CHECKS`] lists them; a backend's tests prove
//! they run every one.

use crate::testing::Outage;
use crate::{
    CommonOptions, Connector, EntitySchema, ErrorKind, Name, Query, QueryRequest, Record,
    Selection, Storage, StorageError, Unobserved, matching,
};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cleans a fixture's namespace up once its check ends.
pub type Cleanup = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a check runs against.
pub struct Fixture {
    /// A connector to a fresh, empty namespace.
    pub connector: Arc<dyn Connector>,
    /// Cuts the backend off and back (for network backends, a
    /// [`crate::testing::Proxy`] the connector goes through).
    pub outage: Arc<dyn Outage>,
    /// Run after the check, pass or fail.
    pub cleanup: parking_lot::Mutex<Option<Cleanup>>,
}

fn name(text: &str) -> Name {
    Name::new(text, "name").unwrap_or_else(|e| panic!("{e}"))
}

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        other => panic!("not a record: {other}"),
    }
}

fn records(values: Value) -> Vec<Record> {
    match values {
        Value::Array(items) => items.into_iter().map(record).collect(),
        other => panic!("not records: {other}"),
    }
}

fn query(entity: &str, request: Value) -> Query {
    let mut request: QueryRequest =
        serde_json::from_value(request).unwrap_or_else(|e| panic!("bad query: {e}"));
    request.entity_type = Some(entity.into());
    Query::check(&request).unwrap_or_else(|e| panic!("bad query: {e}"))
}

fn selection(entity: &str, filters: Value, all: bool) -> Selection {
    let request: QueryRequest =
        serde_json::from_value(json!({"entity_type": entity, "filters": filters}))
            .unwrap_or_else(|e| panic!("bad selection: {e}"));
    Selection::check(&request, all).unwrap_or_else(|e| panic!("bad selection: {e}"))
}

async fn all_of(c: &dyn Connector, entity: &str) -> Vec<Record> {
    c.retrieve(&Query::all(name(entity), crate::MAX_LIMIT))
        .await
        .unwrap_or_else(|e| panic!("retrieve {entity}: {e}"))
}

async fn store(c: &dyn Connector, entity: &str, batch: Vec<Record>) -> u64 {
    c.store(&name(entity), batch)
        .await
        .unwrap_or_else(|e| panic!("store {entity}: {e}"))
}

fn ids(records: &[Record]) -> Vec<Value> {
    records
        .iter()
        .map(|r| r.get("id").cloned().unwrap_or(Value::Null))
        .collect()
}

/// Values of every kind the CIR carries, unicode and awkward strings
/// included, come back exactly as stored, in insertion order.
async fn round_trips_every_kind(f: &Fixture) {
    let batch = records(json!([
        {"id": 1, "name": "Ada", "score": 9.5, "active": true, "note": null,
         "tags": ["a", "b"], "address": {"city": "Zürich", "zip": "8000"},
         "big": 9007199254740993_i64, "negative": -42, "tiny": 0.1,
         "at": "2026-11-30T05:00:00.000000Z"},
        {"id": 2, "name": "日本語 😀 ñ", "score": 0, "active": false,
         "quote": "it's \"quoted\" \\ back\\slash", "sql": "'; DROP TABLE x; --",
         "percent": "100% _sure_", "empty": "", "newline": "a\nb\tc"},
        {"id": 3}
    ]));
    assert_eq!(store(&*f.connector, "people", batch.clone()).await, 3);
    assert_eq!(all_of(&*f.connector, "people").await, batch);
}

/// A fixed set of records with every kind, nulls and missing attributes.
fn operator_data() -> Vec<Record> {
    records(json!([
        {"id": 0, "n": 5, "s": "apple", "b": true, "m": 1.5},
        {"id": 1, "n": 10, "s": "banana", "b": false},
        {"id": 2, "n": -3, "s": "Apple", "b": true, "m": null},
        {"id": 3, "n": 5.0, "s": "cherry pie"},
        {"id": 4, "n": "5", "s": "a%b_c"},
        {"id": 5, "n": null, "s": null, "b": null},
        {"id": 6},
        {"id": 7, "n": 2.75, "s": "ábc", "b": false, "m": 1},
        {"id": 8, "n": 100000000000_i64, "s": "zebra", "m": -0.5},
        {"id": 9, "n": 0, "s": "", "b": true}
    ]))
}

/// The filters checked against [`matching`]: every operator, on every kind,
/// across kinds, with nulls and missing attributes.
fn operator_filters() -> Vec<Value> {
    let mut filters = Vec::new();
    let values = [
        json!(5),
        json!(5.0),
        json!(2.75),
        json!(-3),
        json!(0),
        json!(100000000000_i64),
        json!("5"),
        json!("apple"),
        json!("Apple"),
        json!("b"),
        json!(""),
        json!(true),
        json!(false),
        json!(1.5),
    ];
    for attribute in ["n", "s", "b", "m", "absent"] {
        for operator in ["eq", "neq", "gt", "gte", "lt", "lte"] {
            for value in &values {
                filters
                    .push(json!([{"attribute": attribute, "operator": operator, "value": value}]));
            }
        }
        filters.push(json!([{"attribute": attribute, "operator": "eq", "value": null}]));
        filters.push(json!([{"attribute": attribute, "operator": "neq", "value": null}]));
        for list in [
            json!([5, "apple", true]),
            json!([]),
            json!([null, 10]),
            json!(["5", 2.75, false]),
        ] {
            filters.push(json!([{"attribute": attribute, "operator": "in", "value": list}]));
        }
        for pattern in [
            "a%",
            "%e",
            "%an%",
            "_pple",
            "a\\%b\\_c",
            "a%b_c",
            "%",
            "",
            "APPLE",
            "á%",
            "%pie",
        ] {
            filters.push(json!([{"attribute": attribute, "operator": "like", "value": pattern}]));
        }
    }
    filters.push(json!([
        {"attribute": "n", "operator": "gte", "value": 0},
        {"attribute": "s", "operator": "like", "value": "%a%"}
    ]));
    filters.push(json!([
        {"attribute": "b", "operator": "eq", "value": true},
        {"attribute": "m", "operator": "neq", "value": null}
    ]));
    filters
}

/// Every operator chooses exactly the records [`matching`] defines, for
/// retrieve, update and delete alike.
async fn operators_match_the_definition(f: &Fixture) {
    let c = &*f.connector;
    let data = operator_data();
    store(c, "things", data.clone()).await;
    for filters in operator_filters() {
        let q = query("things", json!({"filters": filters, "limit": 100}));
        let expected = ids(&matching::evaluate(data.clone(), &q));
        let got = c
            .retrieve(&q)
            .await
            .unwrap_or_else(|e| panic!("retrieve with {filters}: {e}"));
        assert_eq!(ids(&got), expected, "retrieve with filters {filters}");
    }
    // Update and delete choose the same records.
    let chosen = json!([{"attribute": "n", "operator": "lt", "value": 5.5}]);
    let expected = ids(&matching::evaluate(
        data.clone(),
        &query("things", json!({"filters": chosen})),
    ));
    let updated = c
        .update(
            &selection("things", chosen.clone(), false),
            &record(json!({"flag": "x"})),
        )
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(updated, expected.len() as u64);
    let flagged = c
        .retrieve(&query(
            "things",
            json!({"filters": [{"attribute": "flag", "operator": "eq", "value": "x"}]}),
        ))
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    assert_eq!(ids(&flagged), expected);
    let deleted = c
        .delete(&selection("things", chosen, false))
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(deleted, expected.len() as u64);
    let left = all_of(c, "things").await;
    assert_eq!(left.len(), data.len() - expected.len());
    assert!(left.iter().all(|r| !expected.contains(&r["id"])));
}

/// order_by sorts as defined (nulls last ascending, first descending,
/// ties in insertion order), and pages of limit/offset tile the result.
async fn orders_and_pages(f: &Fixture) {
    let c = &*f.connector;
    let data = operator_data();
    store(c, "things", data.clone()).await;
    let mut numbers: Vec<Record> = records(json!([
        {"id": 0, "k": 3, "t": "b"}, {"id": 1, "k": 1, "t": "a"}, {"id": 2, "t": "c"},
        {"id": 3, "k": 3, "t": "a"}, {"id": 4, "k": null, "t": "b"}, {"id": 5, "k": -1.5, "t": "b"},
        {"id": 6, "k": 2, "t": "a"}, {"id": 7, "k": 3, "t": "c"}
    ]));
    store(c, "ordered", numbers.clone()).await;
    for order in [
        json!([{"attribute": "k"}]),
        json!([{"attribute": "k", "direction": "desc"}]),
        json!([{"attribute": "t", "direction": "asc"}, {"attribute": "k", "direction": "desc"}]),
        json!([{"attribute": "t", "direction": "desc"}, {"attribute": "k"}]),
    ] {
        let q = query("ordered", json!({"order_by": order, "limit": 100}));
        let expected = ids(&matching::evaluate(numbers.clone(), &q));
        let got = c
            .retrieve(&q)
            .await
            .unwrap_or_else(|e| panic!("retrieve: {e}"));
        assert_eq!(ids(&got), expected, "order_by {order}");
        let mut paged = Vec::new();
        for offset in (0..10).step_by(3) {
            let page = query(
                "ordered",
                json!({"order_by": order, "limit": 3, "offset": offset}),
            );
            let got = c
                .retrieve(&page)
                .await
                .unwrap_or_else(|e| panic!("retrieve: {e}"));
            assert!(got.len() <= 3);
            paged.extend(got);
        }
        assert_eq!(ids(&paged), expected, "pages of order_by {order}");
    }
    // Insertion order without order_by, also when paged with a filter.
    let q = query(
        "ordered",
        json!({"filters": [{"attribute": "t", "operator": "neq", "value": "c"}], "offset": 1, "limit": 3}),
    );
    let expected = ids(&matching::evaluate(numbers.clone(), &q));
    assert_eq!(
        ids(&c.retrieve(&q).await.unwrap_or_else(|e| panic!("{e}"))),
        expected
    );
    // An order on a numeric attribute of the operator data.
    let q = query(
        "things",
        json!({"order_by": [{"attribute": "id", "direction": "desc"}], "limit": 4}),
    );
    let got = c
        .retrieve(&q)
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    assert_eq!(ids(&got), vec![json!(9), json!(8), json!(7), json!(6)]);
    numbers.clear();
}

/// Updates set values (null included) on the chosen records only, and
/// answer how many changed; no match changes nothing.
async fn updates_chosen_records(f: &Fixture) {
    let c = &*f.connector;
    store(
        c,
        "users",
        records(json!([
            {"id": 1, "status": "new", "age": 30},
            {"id": 2, "status": "new", "age": 40},
            {"id": 3, "status": "old", "age": 50}
        ])),
    )
    .await;
    let chosen = selection(
        "users",
        json!([{"attribute": "status", "operator": "eq", "value": "new"}]),
        false,
    );
    let n = c
        .update(
            &chosen,
            &record(json!({"status": "active", "age": null, "since": "2026"})),
        )
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(n, 2);
    assert_eq!(
        all_of(c, "users").await,
        records(json!([
            {"id": 1, "status": "active", "age": null, "since": "2026"},
            {"id": 2, "status": "active", "age": null, "since": "2026"},
            {"id": 3, "status": "old", "age": 50}
        ]))
    );
    let none = selection(
        "users",
        json!([{"attribute": "id", "operator": "eq", "value": 99}]),
        false,
    );
    assert_eq!(
        c.update(&none, &record(json!({"x": 1}))).await.ok(),
        Some(0)
    );
    let everyone = selection("users", json!([]), true);
    assert_eq!(
        c.update(&everyone, &record(json!({"seen": true})))
            .await
            .ok(),
        Some(3)
    );
}

/// Deletes remove the chosen records only; `all` empties the entity type.
async fn deletes_chosen_records(f: &Fixture) {
    let c = &*f.connector;
    store(c, "logs", records(json!([{"id": 1, "level": "debug"}, {"id": 2, "level": "error"}, {"id": 3, "level": "debug"}]))).await;
    let debug = selection(
        "logs",
        json!([{"attribute": "level", "operator": "eq", "value": "debug"}]),
        false,
    );
    assert_eq!(c.delete(&debug).await.ok(), Some(2));
    assert_eq!(ids(&all_of(c, "logs").await), vec![json!(2)]);
    assert_eq!(c.delete(&debug).await.ok(), Some(0));
    assert_eq!(
        c.delete(&selection("logs", json!([]), true)).await.ok(),
        Some(1)
    );
    assert!(all_of(c, "logs").await.is_empty());
    // The entity type takes records again.
    store(c, "logs", records(json!([{"id": 4}]))).await;
    assert_eq!(ids(&all_of(c, "logs").await), vec![json!(4)]);
}

/// An entity type never written, and filters matching nothing, answer an
/// empty list, not an error; entity types do not see each other's records.
async fn empty_results_and_separate_entities(f: &Fixture) {
    let c = &*f.connector;
    assert!(all_of(c, "never_written").await.is_empty());
    let nobody = selection(
        "never_written",
        json!([{"attribute": "a", "operator": "eq", "value": 1}]),
        false,
    );
    assert_eq!(
        c.update(&nobody, &record(json!({"a": 2}))).await.ok(),
        Some(0)
    );
    assert_eq!(c.delete(&nobody).await.ok(), Some(0));
    store(c, "cats", records(json!([{"id": 1}]))).await;
    store(c, "dogs", records(json!([{"id": 2}, {"id": 3}]))).await;
    assert_eq!(ids(&all_of(c, "cats").await), vec![json!(1)]);
    assert_eq!(ids(&all_of(c, "dogs").await), vec![json!(2), json!(3)]);
    let q = query(
        "cats",
        json!({"filters": [{"attribute": "id", "operator": "gt", "value": 5}]}),
    );
    assert!(
        c.retrieve(&q)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
}

/// A definition makes typed attributes: records that do not fit are
/// refused (the whole batch), timestamps come back canonical and compare
/// in time order, and filters on indexed attributes work.
async fn schemas_type_and_index(f: &Fixture) {
    let c = &*f.connector;
    let schema: EntitySchema = serde_json::from_value(json!({
        "name": "orders",
        "attributes": [
            {"name": "order_id", "type": "integer", "indexed": true, "required": true},
            {"name": "customer", "type": "string", "indexed": true},
            {"name": "total", "type": "number"},
            {"name": "paid", "type": "boolean"},
            {"name": "placed_at", "type": "timestamp", "indexed": true},
            {"name": "lines", "type": "json"}
        ]
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    c.create_schema(&schema)
        .await
        .unwrap_or_else(|e| panic!("create_schema: {e}"));
    c.create_schema(&schema)
        .await
        .unwrap_or_else(|e| panic!("create_schema again: {e}"));
    let bad_batch = records(json!([
        {"order_id": 1, "customer": "a"},
        {"order_id": "two", "customer": "b"}
    ]));
    let error = c.store(&name("orders"), bad_batch).await.err();
    assert_eq!(error.map(|e| e.kind), Some(ErrorKind::Invalid));
    assert!(
        all_of(c, "orders").await.is_empty(),
        "a refused batch stores nothing"
    );
    store(
        c,
        "orders",
        records(json!([
            {"order_id": 1, "customer": "ann", "total": 10.5, "paid": true,
             "placed_at": "2026-01-02T03:04:05Z", "lines": [{"sku": "x", "qty": 2}]},
            {"order_id": 2, "customer": "bob", "total": 3, "paid": false,
             "placed_at": "2026-01-02T05:04:05.25+02:00"},
            {"order_id": 3, "customer": "ann", "placed_at": "2025-12-31T23:59:59Z"}
        ])),
    )
    .await;
    let got = all_of(c, "orders").await;
    assert_eq!(got[0]["placed_at"], json!("2026-01-02T03:04:05.000000Z"));
    assert_eq!(got[1]["placed_at"], json!("2026-01-02T03:04:05.250000Z"));
    assert_eq!(got[0]["lines"], json!([{"sku": "x", "qty": 2}]));
    assert_eq!(
        got[2].get("total").cloned().unwrap_or(Value::Null),
        Value::Null
    );
    let q = query(
        "orders",
        json!({"filters": [
            {"attribute": "placed_at", "operator": "gt", "value": "2026-01-02T04:04:05+01:00"}
        ]}),
    );
    assert_eq!(
        ids_of(
            &c.retrieve(&q).await.unwrap_or_else(|e| panic!("{e}")),
            "order_id"
        ),
        vec![json!(2)]
    );
    let q = query(
        "orders",
        json!({"filters": [{"attribute": "customer", "operator": "eq", "value": "ann"}],
        "order_by": [{"attribute": "placed_at"}]}),
    );
    assert_eq!(
        ids_of(
            &c.retrieve(&q).await.unwrap_or_else(|e| panic!("{e}")),
            "order_id"
        ),
        vec![json!(3), json!(1)]
    );
    let undeclared = query(
        "orders",
        json!({"filters": [{"attribute": "nope", "operator": "eq", "value": 1}]}),
    );
    assert_eq!(
        c.retrieve(&undeclared).await.err().map(|e| e.kind),
        Some(ErrorKind::Invalid)
    );
    let wrong_update = c
        .update(
            &selection(
                "orders",
                json!([{"attribute": "order_id", "operator": "eq", "value": 1}]),
                false,
            ),
            &record(json!({"paid": "yes"})),
        )
        .await
        .err();
    assert_eq!(wrong_update.map(|e| e.kind), Some(ErrorKind::Invalid));
    let mut changed = schema.clone();
    changed.attributes.pop();
    let refused = c.create_schema(&changed).await.err();
    assert_eq!(
        refused.map(|e| e.kind),
        Some(ErrorKind::Invalid),
        "a new definition over records is refused"
    );
}

fn ids_of(records: &[Record], key: &str) -> Vec<Value> {
    records
        .iter()
        .map(|r| r.get(key).cloned().unwrap_or(Value::Null))
        .collect()
}

/// Strings that would break a hand-built query are data, matched exactly.
async fn hostile_values_are_data(f: &Fixture) {
    let c = &*f.connector;
    let hostile = [
        "'; DROP TABLE records; --",
        "\" OR 1=1 --",
        "\\",
        "%",
        "_",
        "a'b",
        "`x`",
        "$1",
        "?",
        "*",
        "\u{0}x",
    ];
    let batch: Vec<Record> = hostile
        .iter()
        .enumerate()
        .map(|(i, s)| record(json!({"id": i, "v": s})))
        .collect();
    store(c, "hostile", batch).await;
    for (i, s) in hostile.iter().enumerate() {
        let q = query(
            "hostile",
            json!({"filters": [{"attribute": "v", "operator": "eq", "value": s}]}),
        );
        let got = c
            .retrieve(&q)
            .await
            .unwrap_or_else(|e| panic!("eq {s:?}: {e}"));
        assert_eq!(ids(&got), vec![json!(i)], "eq {s:?}");
    }
    let q = query(
        "hostile",
        json!({"filters": [{"attribute": "v", "operator": "like", "value": "\\%"}]}),
    );
    assert_eq!(
        ids(&c.retrieve(&q).await.unwrap_or_else(|e| panic!("{e}"))),
        vec![json!(3)]
    );
    assert_eq!(
        all_of(c, "hostile").await.len(),
        hostile.len(),
        "nothing was dropped"
    );
}

/// A batch of thousands is stored in one call and read back in pages.
async fn large_batches(f: &Fixture) {
    let c = &*f.connector;
    let batch: Vec<Record> = (0..5000)
        .map(|i| {
            record(
                json!({"id": i, "group": i % 7, "label": format!("item {i}"), "even": i % 2 == 0}),
            )
        })
        .collect();
    assert_eq!(store(c, "bulk", batch).await, 5000);
    let mut seen = 0;
    for offset in (0..5000).step_by(2000) {
        let page = c
            .retrieve(&query("bulk", json!({"limit": 2000, "offset": offset})))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(page.first().map(|r| r["id"].clone()), Some(json!(offset)));
        seen += page.len();
    }
    assert_eq!(seen, 5000);
    let q = query(
        "bulk",
        json!({"filters": [{"attribute": "group", "operator": "eq", "value": 3},
        {"attribute": "even", "operator": "eq", "value": true}], "limit": 10000}),
    );
    let expected = (0..5000).filter(|i| i % 7 == 3 && i % 2 == 0).count();
    assert_eq!(
        c.retrieve(&q).await.unwrap_or_else(|e| panic!("{e}")).len(),
        expected
    );
}

/// Concurrent stores all land.
async fn concurrent_stores_all_land(f: &Fixture) {
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let c = f.connector.clone();
        tasks.push(tokio::spawn(async move {
            let batch: Vec<Record> = (0..25)
                .map(|i| record(json!({"writer": writer, "i": i})))
                .collect();
            c.store(&name("shared"), batch).await
        }));
    }
    for task in tasks {
        let stored = task.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.ok(), Some(25));
    }
    assert_eq!(all_of(&*f.connector, "shared").await.len(), 200);
}

/// A backend that goes away mid-run fails operations within the timeout
/// with an error naming the storage and backend (no hang), and works again
/// by itself once it is back.
async fn outage_fails_fast_then_recovers(f: &Fixture) {
    let options = CommonOptions {
        max_connections: 4,
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        retries: 2,
    };
    let storage = Storage::new(
        "s-outage",
        f.connector.clone(),
        options,
        Arc::new(Unobserved),
    );
    let doc = |i: i32| json!({"version": "1.0", "source": {"parameters": {"entity_type": "events"}}, "data": {"i": i}});
    assert_eq!(storage.store_document(doc(1)).await.ok(), Some(1));
    f.outage.cut();
    let started = Instant::now();
    let error: Option<StorageError> = storage.store_document(doc(2)).await.err();
    let took = started.elapsed();
    let error = error.unwrap_or_else(|| panic!("a store during the outage succeeded"));
    assert!(took < Duration::from_secs(4), "the failure took {took:?}");
    assert!(error.is_transient(), "{error:?}");
    let plugin = f.connector.plugin_type();
    assert!(
        error.message.contains("storage s-outage") && error.message.contains(plugin.as_str()),
        "{error}"
    );
    assert!(
        storage.health().await.is_err(),
        "health is down during the outage"
    );
    f.outage.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match storage.store_document(doc(3)).await {
            Ok(1) => break,
            result if Instant::now() > deadline => {
                panic!("no recovery after the outage: {result:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(storage.health().await.is_ok());
    let q = query("events", json!({"order_by": [{"attribute": "i"}]}));
    let got: Vec<Value> = storage
        .retrieve(&q)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r["i"].clone())
        .collect();
    assert_eq!(
        got,
        vec![json!(1), json!(3)],
        "the failed store left nothing behind"
    );
}

/// Metadata names the backend and its capabilities; health is fine.
async fn metadata_and_health(f: &Fixture) {
    let c = &*f.connector;
    c.health().await.unwrap_or_else(|e| panic!("health: {e}"));
    let metadata = c
        .metadata()
        .await
        .unwrap_or_else(|e| panic!("metadata: {e}"));
    assert_eq!(metadata.storage_type, c.plugin_type());
    assert!(!metadata.version.is_empty());
    for capability in ["store", "retrieve", "update", "delete", "schema_creation"] {
        assert!(
            metadata.capabilities.iter().any(|c| c == capability),
            "{capability}"
        );
    }
}

/// One check as a backend runs it.
pub type Check = fn(Arc<Fixture>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! register {
    ($($check:ident),* $(,)?) => {
        /// Every check, by name. One left out of this list is dead code,
        /// which the build refuses; a backend's tests prove they run every
        /// check listed.
        pub const CHECKS: &[(&str, Check)] = &[
            $((stringify!($check), |fixture| Box::pin(async move { $check(&fixture).await })),)*
        ];
    };
}

register!(
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

/// A test per check for a backend's test file, plus one proving none is
/// left out: `conformance_tests!(fixture().await; round_trips_every_kind, …)`,
/// where the expression makes a fresh [`Fixture`] for each test.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::conformance::run(stringify!($check), $fixture).await;
            }
        )*

        #[test]
        fn every_conformance_check_runs() {
            let mut ran = vec![$(stringify!($check)),*];
            let mut checks: Vec<&str> =
                $crate::conformance::CHECKS.iter().map(|(name, _)| *name).collect();
            ran.sort_unstable();
            checks.sort_unstable();
            assert_eq!(ran, checks, "each check in conformance::CHECKS gets a test here");
        }
    };
}

/// Runs the check named `name` against `fixture`, then its cleanup (also
/// when the check fails).
///
/// # Panics
///
/// When the check fails, or no check has that name.
pub async fn run(check_name: &str, mut fixture: Fixture) {
    let Some((_, check)) = CHECKS.iter().find(|(n, _)| *n == check_name) else {
        panic!("no conformance check is named {check_name:?}");
    };
    let cleanup = fixture.cleanup.get_mut().take();
    let fixture = Arc::new(fixture);
    let outcome = tokio::spawn(check(fixture.clone())).await;
    fixture.outage.restore();
    if let Some(cleanup) = cleanup {
        cleanup.await;
    }
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("check {check_name} did not finish: {error}"),
        }
    }
}
