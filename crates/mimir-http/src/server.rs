//! The accept loop: one task per connection, each under the [`Limits`], the
//! longest-idle connection closed when the cap is reached, and a graceful
//! stop (no new connections, requests in progress answered, idle
//! connections closed).

use crate::connection::{Conn, Deadline, GuardedBody, Tracked, Why};
use crate::limits::Limits;
use crate::throttle::Throttle;
use crate::tls::{NoClientCertificate, PeerCertificate, TlsServer};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

/// Pause after `accept` fails for lack of resources, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What every connection task shares.
struct Shared {
    app: Router,
    limits: Limits,
    tls: Option<TlsServer>,
    /// Cancelled when the server stops: connections finish their request and close.
    stop: CancellationToken,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting,
/// lets requests in progress finish and returns once every connection is
/// closed. With `tls`, every connection is TLS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<TlsServer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = limits.connection_cap();
    let shared = Arc::new(Shared {
        app,
        limits,
        tls,
        stop: CancellationToken::new(),
    });
    let stop = shared.stop.clone();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    let permits = Arc::new(Semaphore::new(cap));
    let open: Arc<Mutex<HashMap<u64, Arc<Conn>>>> = Arc::default();
    let tracker = TaskTracker::new();
    let at_cap = Throttle::default();
    let accept_failed = Throttle::default();
    let mut next_id = 0u64;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let closed = close_longest_idle(&open);
                if let Some(times) = at_cap.hit() {
                    if closed {
                        tracing::warn!(
                            cap,
                            times,
                            "connection cap reached: closing the longest-idle connection for each new one (server.maxConnections)"
                        );
                    } else {
                        tracing::warn!(
                            cap,
                            times,
                            "connection cap reached with every connection busy: new connections wait (server.maxConnections)"
                        );
                    }
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = stop.cancelled() => break,
                }
            }
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if !is_connection_error(&error) {
                        if let Some(times) = accept_failed.hit() {
                            tracing::error!(%error, times, "cannot accept connections");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                            _ = stop.cancelled() => break,
                        }
                    }
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn::new();
        let id = next_id;
        next_id += 1;
        open.lock().insert(id, conn.clone());
        let shared = shared.clone();
        let open = open.clone();
        tracker.spawn(async move {
            connection(stream, conn, &shared).await;
            open.lock().remove(&id);
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Asks the connection idle the longest to close; false when none is idle.
fn close_longest_idle(open: &Mutex<HashMap<u64, Arc<Conn>>>) -> bool {
    let open = open.lock();
    let victim = open
        .values()
        .filter(|c| c.is_idle() && !c.evict.is_cancelled())
        .min_by_key(|c| c.idle_since());
    match victim {
        Some(conn) => {
            conn.evict.cancel();
            true
        }
        None => false,
    }
}

/// Errors of one connection that `accept` reports; the next one is fine.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Runs one connection to its end: the TLS handshake when configured, then HTTP/1.
async fn connection(stream: TcpStream, conn: Arc<Conn>, shared: &Shared) {
    let Some(tls) = &shared.tls else {
        let io = Tracked::new(stream, conn.clone());
        http(io, conn, None, shared).await;
        return;
    };
    let handshake = tokio::time::timeout(
        shared.limits.header_read_timeout,
        tls.acceptor().accept(stream),
    );
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake not finished within the header read timeout");
                return;
            }
        },
        _ = conn.evict.cancelled() => return,
        _ = shared.stop.cancelled() => return,
    };
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| ClientIdentity::Certified(PeerCertificate::new(cert.as_ref())))
        .or(tls
            .optional_client_certs()
            .then_some(ClientIdentity::Anonymous));
    let io = Tracked::new(stream, conn.clone());
    http(io, conn, peer, shared).await;
}

/// What requests of a TLS connection are told about their client.
#[derive(Clone)]
enum ClientIdentity {
    /// It presented a certificate the client CA verified.
    Certified(PeerCertificate),
    /// It presented none where one was optional.
    Anonymous,
}

/// Serves HTTP/1 requests on `io` until the client leaves, a timeout of the
/// [`Limits`] passes, the connection is evicted or the server stops.
async fn http<S>(io: Tracked<S>, conn: Arc<Conn>, peer: Option<ClientIdentity>, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = shared.app.clone();
    let requests = conn.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let guard = requests.begin();
        match &peer {
            Some(ClientIdentity::Certified(cert)) => {
                request.extensions_mut().insert(cert.clone());
            }
            Some(ClientIdentity::Anonymous) => {
                request.extensions_mut().insert(NoClientCertificate);
            }
            None => {}
        }
        let mut app = app.clone();
        async move {
            let response = match app.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| GuardedBody::new(body, guard)))
        }
    });
    let limits = shared.limits;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true);
    let mut served = pin!(builder.serve_connection(TokioIo::new(io), service));
    let mut closing = false;
    loop {
        let deadline = conn.deadline(limits.header_read_timeout, limits.idle_timeout);
        let wake = match deadline {
            Deadline::Busy => Instant::now() + limits.header_read_timeout,
            Deadline::At(at, _) => at,
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let deadline = conn.deadline(limits.header_read_timeout, limits.idle_timeout);
                if let Deadline::At(at, why) = deadline && at <= Instant::now() {
                    let reason = match why {
                        Why::HeaderRead => "no request header within the header read timeout",
                        Why::Idle => "idle longer than the idle timeout",
                    };
                    tracing::debug!(reason, "closing a connection");
                    return;
                }
            }
            _ = conn.evict.cancelled(), if !closing => {
                if conn.is_idle() {
                    return;
                }
                served.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = shared.stop.cancelled(), if !closing => {
                served.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}
