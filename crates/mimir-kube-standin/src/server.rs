//! The HTTP side: connections, routing, the verbs on Jobs and Pods, and watch streams.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ApiFaults, ApiVerb, StandInConfig};
use crate::resource::Kind;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Propagation, Store};
use crate::{kubelet, query};

/// The largest request body accepted, as the real API server's 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// A watch without `timeoutSeconds` (or with 0) ends after this long.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Everything the connections, pod tasks and the [`crate::StandIn`] handle share.
pub(crate) struct Shared {
    pub config: StandInConfig,
    pub store: Mutex<Store>,
    pub shutdown: CancellationToken,
    /// Cancelled (and replaced) to close every open watch stream.
    pub watches: Mutex<CancellationToken>,
    /// Cancelled (and replaced) to drop every open connection.
    pub connections: Mutex<CancellationToken>,
    pub faults: Mutex<ApiFaults>,
    /// None while unreachable.
    pub listener: Mutex<Option<TcpListener>>,
    pub listener_changed: Notify,
    pub addr: SocketAddr,
    pub tasks: TaskTracker,
}

/// Accepts connections for as long as the stand-in lives, from whichever listener is bound.
pub(crate) async fn accept_loop(shared: Arc<Shared>) {
    loop {
        let accept = std::future::poll_fn(|cx| match shared.listener.lock().as_ref() {
            Some(listener) => listener.poll_accept(cx).map(Some),
            None => Poll::Pending,
        });
        let accepted = tokio::select! {
            a = accept => a,
            () = shared.listener_changed.notified() => continue,
            () = shared.shutdown.cancelled() => return,
        };
        let Some(Ok((stream, _))) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let dropped = shared.connections.lock().clone();
        let shutdown = shared.shutdown.clone();
        let conn_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&conn_shared);
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = dropped.cancelled() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// A response body: whole, or the lines of a watch stream.
pub(crate) enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx
                .poll_recv(cx)
                .map(|line| line.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

fn json(status: u16, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Full(Some(body)))
        .expect("a valid response")
}

fn error(e: &ApiError) -> Response<Body> {
    json(e.code, e.body())
}

/// What a request addresses.
struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    /// `…/pods/{name}/log`
    log: bool,
}

fn route(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (kind, rest) = match segments.as_slice() {
        ["apis", "batch", "v1", rest @ ..] => (Kind::Job, rest),
        ["api", "v1", rest @ ..] => (Kind::Pod, rest),
        _ => return None,
    };
    let plural = kind.plural();
    match rest {
        [p] if *p == plural => Some(Target {
            kind,
            namespace: None,
            name: None,
            log: false,
        }),
        ["namespaces", ns, p] if *p == plural => Some(Target {
            kind,
            namespace: Some(ns.to_string()),
            name: None,
            log: false,
        }),
        ["namespaces", ns, p, name] if *p == plural => Some(Target {
            kind,
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            log: false,
        }),
        ["namespaces", ns, "pods", name, "log"] if kind == Kind::Pod => Some(Target {
            kind,
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            log: true,
        }),
        _ => None,
    }
}

fn verb(method: &Method, target: &Target, params: &[(String, String)]) -> Option<ApiVerb> {
    let watch = params
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    match (method, &target.name) {
        (&Method::POST, None) => Some(ApiVerb::Create),
        (&Method::GET, Some(_)) => Some(ApiVerb::Get),
        (&Method::GET, None) if watch => Some(ApiVerb::Watch),
        (&Method::GET, None) => Some(ApiVerb::List),
        (&Method::DELETE, Some(_)) if !target.log => Some(ApiVerb::Delete),
        _ => None,
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/healthz" | "/readyz" | "/livez" => return json(200, Bytes::from_static(b"ok")),
        "/version" => {
            let version = br#"{"major":"1","minor":"33","gitVersion":"v1.33.0-standin","platform":"linux/amd64"}"#;
            return json(200, Bytes::from_static(version));
        }
        _ => {}
    }
    let params = query::parse(req.uri().query().unwrap_or_default());
    let Some(target) = route(&path) else {
        return error(&ApiError::path_not_found());
    };
    let Some(verb) = verb(req.method(), &target, &params) else {
        return error(&ApiError::method_not_allowed());
    };
    if let Some(namespace) = &target.namespace
        && !crate::validate::is_dns1123_label(namespace)
    {
        return error(&ApiError::path_not_found());
    }

    let (fail, hang) = {
        let mut faults = shared.faults.lock();
        let counts = faults.verb.is_none_or(|v| v == verb);
        if counts && faults.status_500 > 0 {
            faults.status_500 -= 1;
            (true, false)
        } else if counts && faults.hang > 0 {
            faults.hang -= 1;
            (false, true)
        } else {
            (false, false)
        }
    };
    if fail {
        return error(&ApiError::internal("stand-in: injected internal error"));
    }
    if hang {
        shared.shutdown.cancelled().await;
        return error(&ApiError::internal("stand-in: shutting down"));
    }

    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let ns = target.namespace.as_deref();
    match verb {
        ApiVerb::Create => {
            let Some(ns) = ns else {
                return error(&ApiError::method_not_allowed());
            };
            if target.kind != Kind::Job {
                return error(&ApiError::method_not_allowed());
            }
            let body = match read_body(req.into_body()).await {
                Ok(body) => body,
                Err(e) => return error(&e),
            };
            let created = shared.store.lock().create_job(ns, &body);
            match created {
                Ok((response, start)) => {
                    shared
                        .tasks
                        .spawn(kubelet::run_pod(Arc::clone(&shared), start));
                    json(201, response)
                }
                Err(e) => error(&e),
            }
        }
        ApiVerb::Get => {
            let (Some(ns), Some(name)) = (ns, target.name.as_deref()) else {
                return error(&ApiError::path_not_found());
            };
            if target.log {
                return pod_log(&shared, ns, name, &param);
            }
            match shared.store.lock().get(target.kind, ns, name) {
                Ok(body) => json(200, body),
                Err(e) => error(&e),
            }
        }
        ApiVerb::Delete => {
            let (Some(ns), Some(name)) = (ns, target.name.clone()) else {
                return error(&ApiError::path_not_found());
            };
            let query_policy = param("propagationPolicy").map(str::to_owned);
            let body = match read_body(req.into_body()).await {
                Ok(body) => body,
                Err(e) => return error(&e),
            };
            let policy = match delete_policy(&body, query_policy.as_deref()) {
                Ok(policy) => policy,
                Err(e) => return error(&e),
            };
            let result = match target.kind {
                Kind::Job => shared.store.lock().delete_job(ns, &name, policy),
                Kind::Pod => {
                    let deleted = shared.store.lock().delete_pod(ns, &name);
                    deleted.map(|(body, expiry)| {
                        if let Some(expiry) = expiry {
                            kubelet::expire_after(&shared, expiry);
                        }
                        body
                    })
                }
            };
            match result {
                Ok(body) => json(200, body),
                Err(e) => error(&e),
            }
        }
        ApiVerb::List | ApiVerb::Watch => {
            let labels = match LabelSelector::parse(param("labelSelector").unwrap_or_default()) {
                Ok(s) => s,
                Err(message) => {
                    return error(&ApiError::bad_request(format!(
                        "unable to parse requirement: {message}"
                    )));
                }
            };
            let fields = match FieldSelector::parse(param("fieldSelector").unwrap_or_default()) {
                Ok(s) => s,
                Err(message) => return error(&ApiError::bad_request(message)),
            };
            if verb == ApiVerb::Watch {
                return watch(&shared, target.kind, ns, labels, fields, &param);
            }
            let limit = match param("limit").map(str::parse::<usize>) {
                None => None,
                Some(Ok(limit)) => Some(limit),
                Some(Err(_)) => {
                    return error(&ApiError::bad_request(
                        "limit must be a non-negative integer",
                    ));
                }
            };
            let after = match param("continue").filter(|c| !c.is_empty()) {
                None => None,
                Some(token) => match query::parse_continue(token) {
                    Some(key) => Some(key),
                    None => return error(&ApiError::bad_request("continue key is not valid")),
                },
            };
            let body = shared
                .store
                .lock()
                .list(target.kind, ns, &labels, &fields, limit, after);
            json(200, body)
        }
    }
}

fn pod_log<'a>(
    shared: &Shared,
    ns: &str,
    name: &str,
    param: &impl Fn(&str) -> Option<&'a str>,
) -> Response<Body> {
    if param("previous") == Some("true") {
        return error(&ApiError::bad_request(format!(
            "previous terminated container in pod \"{name}\" not found"
        )));
    }
    let number = |key: &str| match param(key).map(str::parse::<usize>) {
        None => Ok(None),
        Some(Ok(n)) => Ok(Some(n)),
        Some(Err(_)) => Err(ApiError::bad_request(format!(
            "{key} must be a non-negative integer"
        ))),
    };
    let (tail, limit) = match (number("tailLines"), number("limitBytes")) {
        (Ok(tail), Ok(limit)) => (tail, limit),
        (Err(e), _) | (_, Err(e)) => return error(&e),
    };
    match shared.store.lock().pod_log(ns, name, tail, limit) {
        Ok(text) => Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(Body::Full(Some(text)))
            .expect("a valid response"),
        Err(e) => error(&e),
    }
}

async fn read_body(mut body: Incoming) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(out),
            Some(Err(e)) => {
                return Err(ApiError::bad_request(format!(
                    "reading the request body: {e}"
                )));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > MAX_BODY {
                        return Err(ApiError::too_large());
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

use http_body::Body as _;

/// The propagation policy of a delete: the body's `propagationPolicy` (or the deprecated
/// `orphanDependents`), else the query's, else Orphan, the default for batch/v1 Jobs.
fn delete_policy(body: &[u8], query: Option<&str>) -> Result<Propagation, ApiError> {
    let mut policy = query.map(str::to_owned);
    if !body.is_empty() {
        let options: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        })?;
        if let Some(p) = options.get("propagationPolicy").and_then(|p| p.as_str()) {
            policy = Some(p.to_owned());
        } else if let Some(orphan) = options.get("orphanDependents").and_then(|o| o.as_bool()) {
            policy = Some(if orphan { "Orphan" } else { "Background" }.to_owned());
        }
    }
    match policy.as_deref() {
        None | Some("Orphan") => Ok(Propagation::Orphan),
        Some("Background") => Ok(Propagation::Background),
        Some("Foreground") => Ok(Propagation::Foreground),
        Some(other) => Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

/// A BOOKMARK event as the API server sends it: the kind and apiVersion, and metadata with
/// only the resourceVersion (and the end-of-initial-events annotation).
fn bookmark_line(kind: Kind, rv: u64, initial_end: bool) -> Bytes {
    let api_version = match kind.group() {
        "" => "v1".to_owned(),
        group => format!("{group}/v1"),
    };
    let mut metadata = serde_json::json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = serde_json::json!({ "k8s.io/initial-events-end": "true" });
    }
    let event = serde_json::json!({
        "type": "BOOKMARK",
        "object": { "kind": kind.kind(), "apiVersion": api_version, "metadata": metadata },
    });
    let mut line = serde_json::to_vec(&event).expect("a bookmark serializes");
    line.push(b'\n');
    Bytes::from(line)
}

fn error_line(e: &ApiError) -> Bytes {
    let mut line = serde_json::to_vec(&WatchEvent::<Job>::ErrorStatus(e.to_status()))
        .expect("a Status serializes");
    line.push(b'\n');
    Bytes::from(line)
}

fn watch<'a>(
    shared: &Arc<Shared>,
    kind: Kind,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
    param: &impl Fn(&str) -> Option<&'a str>,
) -> Response<Body> {
    let timeout = match param("timeoutSeconds").map(str::parse::<u64>) {
        None => DEFAULT_WATCH_TIMEOUT,
        Some(Ok(0)) => DEFAULT_WATCH_TIMEOUT,
        Some(Ok(secs)) => Duration::from_secs(secs),
        Some(Err(_)) => {
            return error(&ApiError::bad_request(
                "timeoutSeconds must be a non-negative integer",
            ));
        }
    };
    let bookmarks = param("allowWatchBookmarks") == Some("true");
    let send_initial = param("sendInitialEvents") == Some("true");
    let rv = param("resourceVersion").unwrap_or_default();
    let rv = match rv {
        "" | "0" => None,
        rv => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return error(&ApiError::bad_request(format!(
                    "invalid resource version: {rv:?}"
                )));
            }
        },
    };
    let closed = shared.watches.lock().clone();
    let ns = ns.map(str::to_owned);

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let (mut lines, mut events, mut last) = {
        let store = shared.store.lock();
        let current = store.log.current();
        match rv {
            Some(rv) if !send_initial => match store.log.resume(rv) {
                Some((missed, events)) => {
                    let lines: Vec<Bytes> = missed
                        .iter()
                        .filter(|e| e.kind == kind && matches(e, ns.as_deref(), &labels, &fields))
                        .map(|e| e.line.clone())
                        .collect();
                    (lines, events, current)
                }
                None => {
                    let oldest = current;
                    let e = ApiError::expired(format!("too old resource version: {rv} ({oldest})"));
                    let _ = tx.try_send(error_line(&e));
                    return stream(rx);
                }
            },
            _ => (
                store.snapshot_lines(kind, ns.as_deref(), &labels, &fields),
                store.log.subscribe(),
                current,
            ),
        }
    };
    if send_initial {
        lines.push(bookmark_line(kind, last, true));
    }
    let interval = shared.config.bookmark_interval;
    let shutdown = shared.shutdown.clone();
    tokio::spawn(async move {
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let end = tokio::time::sleep(timeout);
        tokio::pin!(end);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            let line = tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        last = event.rv;
                        if event.kind != kind || !matches(&event, ns.as_deref(), &labels, &fields) {
                            continue;
                        }
                        event.line.clone()
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(error_line(&ApiError::expired("the watch fell too far behind"))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticks.tick(), if bookmarks => bookmark_line(kind, last, false),
                () = &mut end => return,
                () = closed.cancelled() => return,
                () = shutdown.cancelled() => return,
                () = tx.closed() => return,
            };
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });
    stream(rx)
}

fn matches(
    event: &crate::events::Event,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> bool {
    ns.is_none_or(|ns| ns == event.namespace)
        && fields.matches(&event.namespace, &event.name)
        && labels.matches(&event.labels)
}

fn stream(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::Stream(rx))
        .expect("a valid response")
}
