//! What pipeline steps may reach, through the engine and the real built-in
//! actions: files only inside the roots (temp dirs), HTTP only where the
//! allow and deny lists say (real servers on 127.0.0.1), and no secrets.

#![cfg(unix)]

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use mimir_pipeline::{
    Confinement, Engine, Execution, HttpPolicy, Registry, RunContext, Step, validate,
};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn engine(confinement: &Confinement) -> Engine {
    let registry = Registry::confined(confinement).expect("a valid confinement");
    Engine::new(Arc::new(registry))
}

fn in_roots(roots: &[&Path]) -> Confinement {
    Confinement {
        file_roots: roots.iter().map(|r| r.to_path_buf()).collect(),
        ..Confinement::default()
    }
}

fn with_http(allow: &[&str], deny: &[&str]) -> Confinement {
    Confinement {
        http: HttpPolicy {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        },
        ..Confinement::default()
    }
}

async fn run(confinement: &Confinement, pipeline: Value, params: Value) -> Execution {
    let steps: Vec<Step> = serde_json::from_value(pipeline).expect("steps JSON");
    let engine = engine(confinement);
    validate(&steps, engine.registry()).expect("test pipelines are valid");
    let Value::Object(params) = params else {
        panic!("parameters must be an object");
    };
    engine
        .run(&steps, &params, &RunContext::new("t", "p"), &mut |_| {})
        .await
}

/// Runs one `file.read` of `path` (as text) under `confinement`.
async fn read(confinement: &Confinement, path: &str) -> Execution {
    run(
        confinement,
        json!([{"name": "load", "plugin": "file", "action": "read",
                "parameters": {"path": "$.params.path", "format": "text"}}]),
        json!({"path": path}),
    )
    .await
}

/// Runs one `file.write` of `{"x": 1}` (as JSON) to `path` under `confinement`.
async fn write(confinement: &Confinement, path: &str) -> Execution {
    run(
        confinement,
        json!([{"name": "save", "plugin": "file", "action": "write",
                "parameters": {"path": "$.params.path", "format": "json", "data": {"x": 1}}}]),
        json!({"path": path}),
    )
    .await
}

/// The step's error, asserting that it failed and stored nothing.
fn refusal(execution: &Execution, step: &str) -> String {
    assert!(!execution.succeeded(), "the step should have been refused");
    assert!(
        execution.context.get(step).is_none(),
        "a refused step stores nothing: {:?}",
        execution.context
    );
    execution.error.clone().unwrap_or_default()
}

fn assert_outside(error: &str, path: &str, root: &Path) {
    assert!(
        error.contains(&format!("path \"{path}\""))
            && error.contains("outside the file roots")
            && error.contains(&root.display().to_string()),
        "the error names the path and the roots: {error}"
    );
}

/// Every file under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            out.push(path.strip_prefix(dir).unwrap_or(&path).to_path_buf());
        }
    }
    out.sort();
    out
}

// ---- files ----

#[tokio::test]
async fn file_read_of_proc_self_environ_is_refused() {
    let root = tempfile::tempdir().expect("temp dir");
    let confinement = in_roots(&[root.path()]);
    let depth = root.path().components().count();
    let climb = format!("{}proc/self/environ", "../".repeat(depth + 2));
    for path in ["/proc/self/environ", climb.as_str(), "/etc/passwd"] {
        let execution = read(&confinement, path).await;
        let error = refusal(&execution, "load");
        assert_outside(&error, path, root.path());
        assert!(!error.contains("PATH="), "no content leaks: {error}");
    }
}

#[tokio::test]
async fn file_write_outside_the_roots_is_refused() {
    let root = tempfile::tempdir().expect("temp dir");
    let elsewhere = tempfile::tempdir().expect("another temp dir");
    let confinement = in_roots(&[root.path()]);
    let before = std::fs::metadata("/tmp/x")
        .ok()
        .and_then(|m| m.modified().ok());
    let absolute = elsewhere.path().join("x.json");
    for path in [
        "../../../../tmp/x",
        absolute.to_str().expect("utf-8"),
        "sub/../../escaped.json",
    ] {
        let execution = write(&confinement, path).await;
        let error = refusal(&execution, "save");
        assert_outside(&error, path, root.path());
    }
    assert_eq!(
        std::fs::metadata("/tmp/x")
            .ok()
            .and_then(|m| m.modified().ok()),
        before,
        "/tmp/x was neither created nor changed"
    );
    assert!(listing(elsewhere.path()).is_empty());
    assert!(listing(root.path()).is_empty(), "not even a directory");
    assert!(
        !root
            .path()
            .parent()
            .expect("parent")
            .join("escaped.json")
            .exists(),
        "nothing next to the root"
    );
}

#[tokio::test]
async fn file_steps_through_a_symlink_that_escapes_are_refused() {
    let root = tempfile::tempdir().expect("temp dir");
    let outside = tempfile::tempdir().expect("outside dir");
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "top secret").expect("fixture");
    std::os::unix::fs::symlink(&secret, root.path().join("secret-link")).expect("symlink");
    std::os::unix::fs::symlink(outside.path(), root.path().join("dir-link")).expect("symlink");
    std::os::unix::fs::symlink(
        outside.path().join("new.json"),
        root.path().join("dangling"),
    )
    .expect("symlink");
    let confinement = in_roots(&[root.path()]);
    let real_secret = std::fs::canonicalize(&secret).expect("canonical");

    for path in ["secret-link", "dir-link/secret.txt"] {
        let error = refusal(&read(&confinement, path).await, "load");
        assert!(
            error.contains(&format!(
                "path \"{path}\" resolves to {}, outside the file roots",
                real_secret.display()
            )),
            "{error}"
        );
        assert!(!error.contains("top secret"), "{error}");
    }
    for path in [
        "secret-link",
        "dir-link/secret.txt",
        "dir-link/new/deeper.json",
        "dangling",
    ] {
        let error = refusal(&write(&confinement, path).await, "save");
        assert!(
            error.contains(&format!("path \"{path}\" resolves to"))
                && error.contains("outside the file roots"),
            "{error}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&secret).expect("still there"),
        "top secret"
    );
    assert_eq!(listing(outside.path()), [PathBuf::from("secret.txt")]);
}

#[tokio::test]
async fn relative_paths_and_symlinks_inside_the_roots_work() {
    let first = tempfile::tempdir().expect("temp dir");
    let second = tempfile::tempdir().expect("temp dir");
    let confinement = in_roots(&[first.path(), second.path()]);

    // A relative path is taken from the first root, directories created.
    let execution = write(&confinement, "out/a.json").await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert!(first.path().join("out/a.json").is_file());
    // Any root takes absolute paths.
    let in_second = second.path().join("b.json");
    let execution = write(&confinement, in_second.to_str().expect("utf-8")).await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    // `..` that stays inside is fine.
    let execution = read(&confinement, "out/../out/a.json").await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    // A symlink from one root into another is inside the roots.
    std::os::unix::fs::symlink(&in_second, first.path().join("alias.json")).expect("symlink");
    let execution = read(&confinement, "alias.json").await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(
        execution.context["load"]["data"],
        json!("{\n  \"x\": 1\n}\n")
    );
    let execution = write(&confinement, "alias.json").await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert!(
        std::fs::symlink_metadata(first.path().join("alias.json"))
            .expect("link")
            .file_type()
            .is_symlink(),
        "a write through a link inside the roots updates its target"
    );
}

#[tokio::test]
async fn a_root_itself_is_not_a_file_to_write() {
    let root = tempfile::tempdir().expect("temp dir");
    let confinement = in_roots(&[root.path()]);
    for path in ["", ".", "a/..", root.path().to_str().expect("utf-8")] {
        let error = refusal(&write(&confinement, path).await, "save");
        assert!(error.contains("names a directory"), "{path:?}: {error}");
    }
    assert!(listing(root.path()).is_empty());
}

#[tokio::test]
async fn a_fifo_in_the_roots_is_refused_without_hanging() {
    let root = tempfile::tempdir().expect("temp dir");
    let fifo = root.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let error = refusal(&read(&in_roots(&[root.path()]), "pipe").await, "load");
    assert!(error.contains("not a regular file"), "{error}");
}

#[tokio::test]
async fn without_roots_file_steps_say_how_to_configure_them() {
    let error = refusal(&read(&Confinement::default(), "a.json").await, "load");
    assert!(
        error.contains("no file roots are configured (pipelines.fileRoots)"),
        "{error}"
    );
}

// ---- http ----

/// A real server on 127.0.0.1:0. `/echo` answers what it got (and whether an
/// Authorization header came), `/to?url=U` redirects to U; `hits` counts
/// every request.
struct Server {
    base: String,
    port: u16,
    hits: Arc<AtomicUsize>,
}

async fn serve() -> Server {
    serve_on("127.0.0.1").await
}

async fn serve_on(ip: &str) -> Server {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/echo",
            get(|headers: HeaderMap| async move {
                axum::Json(json!({
                    "authorized": headers.contains_key(header::AUTHORIZATION),
                }))
            }),
        )
        .route(
            "/to",
            get(
                |axum::extract::Query(q): axum::extract::Query<Map<String, Value>>| async move {
                    let to = q
                        .get("url")
                        .and_then(Value::as_str)
                        .unwrap_or("/")
                        .to_string();
                    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
                },
            ),
        )
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        base: format!("http://{address}"),
        port: address.port(),
        hits,
    }
}

async fn get_url(confinement: &Confinement, url: &str) -> Execution {
    run(
        confinement,
        json!([{"name": "call", "plugin": "http", "action": "request",
                "parameters": {"url": "$.params.url", "timeout_ms": 3000}}]),
        json!({"url": url}),
    )
    .await
}

#[tokio::test]
async fn http_redirect_to_cloud_metadata_is_refused() {
    let server = serve().await;
    for (target, shown, address) in [
        (
            "http://169.254.169.254/latest/meta-data/iam/",
            "http://169.254.169.254/latest/meta-data/iam/",
            "169.254.169.254",
        ),
        (
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "fd00:ec2::254",
        ),
        // An IPv4-mapped IPv6 address is the IPv4 address it maps.
        (
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "169.254.169.254",
        ),
    ] {
        let url = format!("{}/to?url={target}", server.base);
        let error = refusal(&get_url(&Confinement::default(), &url).await, "call");
        assert!(
            error.contains(&format!(
                "GET {url}: refused: redirect to {shown}: {address} is denied by"
            )) && error.contains("pipelines.http.deny"),
            "{error}"
        );
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 3, "the redirects only");
    // The metadata address itself, asked directly.
    let error = refusal(
        &get_url(&Confinement::default(), "http://169.254.169.254/latest/").await,
        "call",
    );
    assert!(
        error.ends_with(
            "refused: 169.254.169.254 is denied by \"169.254.0.0/16\" in the HTTP deny list (pipelines.http.deny)"
        ),
        "{error}"
    );
    // Redirects that stay where they may go are followed.
    let url = format!("{}/to?url=/echo", server.base);
    let execution = get_url(&Confinement::default(), &url).await;
    assert!(execution.succeeded(), "{:?}", execution.error);
}

#[tokio::test]
async fn http_request_to_a_denied_host_is_refused() {
    let server = serve().await;
    let url = format!("{}/echo", server.base);
    for deny in ["127.0.0.1", "127.0.0.0/8"] {
        let error = refusal(&get_url(&with_http(&[], &[deny]), &url).await, "call");
        assert!(
            error.contains(&format!("refused: 127.0.0.1 is denied by \"{deny}\"")),
            "{error}"
        );
    }
    // By name, at a redirect hop: the second server is never called.
    let target = serve().await;
    let url = format!(
        "{}/to?url=http://LocalHost:{}/echo",
        server.base, target.port
    );
    let error = refusal(
        &get_url(&with_http(&[], &["localhost"]), &url).await,
        "call",
    );
    assert!(
        error.contains("host localhost is denied by \"localhost\""),
        "{error}"
    );
    assert_eq!(target.hits.load(Ordering::SeqCst), 0);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "only the redirect");
}

#[tokio::test]
async fn http_allow_list_refuses_other_hosts() {
    let server = serve().await;
    let url = format!("{}/echo", server.base);
    let error = refusal(
        &get_url(&with_http(&["api.example.com", "10.0.0.0/8"], &[]), &url).await,
        "call",
    );
    assert!(
        error.contains("refused: 127.0.0.1 is not in the HTTP allow list (pipelines.http.allow)"),
        "{error}"
    );
    let error = refusal(
        &get_url(
            &with_http(&["api.example.com"], &[]),
            &format!("http://localhost:{}/echo", server.port),
        )
        .await,
        "call",
    );
    assert!(
        error.contains("host localhost resolves to")
            && error.contains("which is not in the HTTP allow list"),
        "{error}"
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    // Listed by address or by name, it is called.
    let execution = get_url(&with_http(&["127.0.0.1"], &[]), &url).await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    let by_name = format!("http://localhost:{}/echo", server.port);
    let execution = get_url(&with_http(&["localhost"], &["::1"]), &by_name).await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn http_name_resolving_to_a_denied_address_is_refused() {
    let server = serve().await;
    let confinement = with_http(&[], &["127.0.0.0/8", "::1"]);
    let url = format!("http://localhost:{}/echo", server.port);
    let error = refusal(&get_url(&confinement, &url).await, "call");
    assert!(
        error.contains("refused: host localhost resolves to")
            && error.contains("which is denied by")
            && error.contains("pipelines.http.deny"),
        "{error}"
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    // Also when the name comes from a redirect: the first hop, on another
    // loopback address, is allowed; the name it sends to is not.
    let first = serve_on("127.0.0.2").await;
    let confinement = with_http(&[], &["127.0.0.1", "::1"]);
    let url = format!(
        "{}/to?url=http://localhost:{}/echo",
        first.base, server.port
    );
    let error = refusal(&get_url(&confinement, &url).await, "call");
    assert!(
        error.contains(
            "refused: host localhost resolves to 127.0.0.1, which is denied by \"127.0.0.1\""
        ),
        "{error}"
    );
    assert_eq!(first.hits.load(Ordering::SeqCst), 1);
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn http_results_and_errors_do_not_echo_credentials() {
    let server = serve().await;
    let execution = run(
        &Confinement::default(),
        json!([{"name": "call", "plugin": "http", "action": "request",
                "parameters": {"url": "$.params.url",
                               "headers": {"Authorization": "Bearer s3cret-token", "X-Api-Key": "s3cret-key"}}}]),
        json!({"url": format!("{}/echo", server.base)}),
    )
    .await;
    assert!(execution.succeeded(), "{:?}", execution.error);
    assert_eq!(execution.context["call"]["body"]["authorized"], json!(true));
    let result = execution.result_json().to_string();
    assert!(!result.contains("s3cret"), "{result}");

    // A password in the URL stays out of the error.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("http://user:s3cret-pass@127.0.0.1:{closed}/");
    let error = refusal(&get_url(&Confinement::default(), &url).await, "call");
    assert!(!error.contains("s3cret"), "{error}");
    assert!(error.contains("http://***:***@127.0.0.1:"), "{error}");
}

// ---- secrets ----

#[tokio::test]
async fn transform_jq_cannot_read_the_environment() {
    let path = std::env::var("PATH").expect("PATH is set in the test process");
    for program in [
        "$ENV.PATH",
        "$ENV",
        "env.PATH",
        "env | tostring",
        "[env[]]",
        "$__prog_env",
    ] {
        let steps: Vec<Step> = serde_json::from_value(json!([
            {"name": "peek", "plugin": "transform", "action": "jq",
             "parameters": {"program": program}}
        ]))
        .expect("steps JSON");
        let engine = engine(&Confinement::default());
        // Refused when the pipeline is saved...
        let invalid = validate(&steps, engine.registry()).expect_err(program);
        assert!(!invalid.to_string().contains(&path), "{invalid}");
        // ...and when it runs anyway (stored before this check existed).
        let execution = engine
            .run(&steps, &Map::new(), &RunContext::new("t", "p"), &mut |_| {})
            .await;
        let result = execution.result_json().to_string();
        assert!(!execution.succeeded(), "{program}: {result}");
        assert!(!result.contains(&path), "{program}: {result}");
    }
}
