//! The conformance suite against the `s3` backend and a real S3-compatible
//! server: moto's server (PyPI, installed by `scripts/install-moto`, found
//! through `MIMIR_MOTO_SERVER`), which stands in here for AWS S3 or MinIO.
//! The test binary starts one server on a free port, with one bucket; each
//! test works under its own prefix, through a [`Proxy`] that can cut the
//! server off, and deletes its objects at the end. The server stops when
//! the test binary exits (it watches its stdin, which closes then).

use mimir_core::ConnectionSettings;
use mimir_storage::backends::s3::S3;
use mimir_storage::conformance::Fixture;
use mimir_storage::testing::Proxy;
use mimir_storage::{CommonOptions, Connector, ErrorKind, Name};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const BUCKET: &str = "mimir-conformance";

/// The running server: its address, and the process kept so that its
/// stdin stays open while the tests run.
struct Server {
    addr: SocketAddr,
    _process: Child,
}

fn moto_server() -> String {
    if let Ok(path) = std::env::var("MIMIR_MOTO_SERVER") {
        return path;
    }
    let installed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/moto/bin/moto_server"
    );
    if std::path::Path::new(installed).exists() {
        return installed.to_string();
    }
    panic!(
        "moto's server is needed for the s3 tests: run scripts/install-moto and set MIMIR_MOTO_SERVER to the path it prints"
    );
}

/// Starts moto's server on a free port (once per test binary) and creates
/// the bucket; waits until it answers.
fn server() -> SocketAddr {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap_or_else(|e| panic!("free port: {e}"));
            // The shell stops the server when its stdin closes, which it
            // does when this process exits, however it exits.
            let process = Command::new("sh")
                .arg("-c")
                .arg(r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & server=$!; cat >/dev/null; kill $server"#)
                .arg(moto_server())
                .arg(port.to_string())
                .stdin(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start moto's server: {e}"));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match request(addr, &format!("PUT /{BUCKET} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")) {
                    Ok(answer) if answer.starts_with("HTTP/1.1 200") => break,
                    Ok(answer) => panic!("moto refused the bucket: {answer}"),
                    Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                    Err(e) => panic!("moto's server did not start: {e}"),
                }
            }
            Server {
                addr,
                _process: process,
            }
        })
        .addr
}

/// One plain HTTP request; the answer's text.
fn request(addr: SocketAddr, text: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(text.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

fn settings(addr: SocketAddr, prefix: &str) -> ConnectionSettings {
    ConnectionSettings {
        options: json!({"bucket": BUCKET, "prefix": prefix, "endpoint": format!("http://{addr}"), "allow_http": true})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        credentials: json!({"region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..ConnectionSettings::default()
    }
}

fn options() -> CommonOptions {
    CommonOptions {
        max_connections: 4,
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        retries: 2,
    }
}

/// Deletes every object under `prefix` (entity folders one level down).
async fn delete_objects(prefix: &str) {
    let store = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_endpoint(format!("http://{}", server()))
        .with_allow_http(true)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let top = store
        .list_with_delimiter(Some(&Path::from(prefix)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut objects: Vec<Path> = top.objects.into_iter().map(|m| m.location).collect();
    for folder in top.common_prefixes {
        let listed = store
            .list_with_delimiter(Some(&folder))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        objects.extend(listed.objects.into_iter().map(|m| m.location));
    }
    for object in objects {
        store
            .delete(&object)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn fixture() -> Fixture {
    let proxy = Proxy::start(server())
        .await
        .unwrap_or_else(|e| panic!("proxy: {e}"));
    let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    let connector =
        S3::open(&settings(proxy.addr(), &prefix), &options()).unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        connector: Arc::new(connector),
        outage: Arc::new(proxy),
        cleanup: parking_lot::Mutex::new(Some(Box::pin(async move {
            delete_objects(&prefix).await;
        }))),
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

/// A bucket that does not exist is an error naming it, not a hang, and
/// the secret key never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_an_error_without_secrets() {
    let mut settings = settings(server(), "x");
    settings
        .options
        .insert("bucket".into(), json!("no-such-bucket"));
    settings
        .credentials
        .insert("secret_access_key".into(), json!("very-secret-key"));
    let connector = S3::open(&settings, &options()).unwrap_or_else(|e| panic!("{e}"));
    let entity = Name::new("things", "entity").unwrap_or_else(|e| panic!("{e}"));
    let error = connector
        .store(
            &entity,
            vec![json!({"a": 1}).as_object().cloned().unwrap_or_default()],
        )
        .await
        .err();
    let error = error.unwrap_or_else(|| panic!("a store into a missing bucket succeeded"));
    assert!(!error.message.contains("very-secret-key"), "{error}");
    assert_ne!(error.kind, ErrorKind::Invalid, "{error}");
}

/// Updates of the same segment from two connectors (two processes) each
/// land: the conditional put makes the loser read the segment again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_lose_nothing() {
    let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    let a = Arc::new(
        S3::open(&settings(server(), &prefix), &options()).unwrap_or_else(|e| panic!("{e}")),
    );
    let b = Arc::new(
        S3::open(&settings(server(), &prefix), &options()).unwrap_or_else(|e| panic!("{e}")),
    );
    let entity = Name::new("counters", "entity").unwrap_or_else(|e| panic!("{e}"));
    let records = (0..20)
        .map(|i| json!({"id": i}).as_object().cloned().unwrap_or_default())
        .collect();
    a.store(&entity, records)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for (n, connector) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let request: mimir_storage::QueryRequest = serde_json::from_value(json!({
                "entity_type": "counters",
                "filters": [{"attribute": "id", "operator": "gte", "value": 0}]
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            let selection =
                mimir_storage::Selection::check(&request, false).unwrap_or_else(|e| panic!("{e}"));
            let update = json!({format!("w{n}"): true})
                .as_object()
                .cloned()
                .unwrap_or_default();
            connector.update(&selection, &update).await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap_or_else(|e| panic!("{e}")).ok());
    }
    let all = a
        .retrieve(&mimir_storage::Query::all(entity, 100))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    delete_objects(&prefix).await;
    assert_eq!(outcomes, vec![Some(20); 4]);
    assert_eq!(all.len(), 20);
    for record in all {
        for n in 0..4 {
            assert_eq!(
                record.get(&format!("w{n}")),
                Some(&json!(true)),
                "{record:?}"
            );
        }
    }
}
