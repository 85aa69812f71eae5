//! Wake-ups across processes: commits that queue tasks `NOTIFY` the
//! `mimir_queue` channel; every store LISTENs and signals its waiters.

use parking_lot::Mutex;
use sqlx_postgres::{PgListener, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The channel commits that queue tasks notify.
pub(crate) const CHANNEL: &str = "mimir_queue";

/// The call a transaction that queued tasks makes before it commits (the
/// notification is delivered at the commit, once however many calls).
pub(crate) const NOTIFY_CALL: &str = "pg_notify('mimir_queue', '')";

/// [`NOTIFY_CALL`] as a statement of its own.
pub(crate) const NOTIFY: &str = "SELECT pg_notify('mimir_queue', '')";

/// Waiters are signalled this often even without a notification: one can
/// be lost while the listening connection reconnects.
const POLL: Duration = Duration::from_millis(500);

/// How long the listener waits before connecting again after an error.
const RECONNECT: Duration = Duration::from_secs(1);

/// The background task relaying notifications to the queue signal.
pub(crate) struct Listener {
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    /// Starts listening on a connection of its own.
    pub(crate) fn start(pool: PgPool, signal: Arc<Notify>) -> Listener {
        let task = tokio::spawn(listen(pool, signal));
        Listener {
            task: Mutex::new(Some(task)),
        }
    }

    /// Stops listening (idempotent).
    pub(crate) fn stop(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

async fn listen(pool: PgPool, signal: Arc<Notify>) {
    let mut poll = tokio::time::interval(POLL);
    loop {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for queue notifications; retrying");
                signal.notify_waiters();
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                received = listener.recv() => match received {
                    Ok(_) => signal.notify_waiters(),
                    Err(error) => {
                        tracing::warn!(%error, "lost the queue notification connection; reconnecting");
                        signal.notify_waiters();
                        tokio::time::sleep(RECONNECT).await;
                        break;
                    }
                },
                _ = poll.tick() => signal.notify_waiters(),
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx_core::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
