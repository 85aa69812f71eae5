//! The background thread that batches queued lines and pushes them.

use super::encode::encode;
use super::{Auth, DROPPED_PUSH_FAILED, Encoding, Entry, LokiSettings, MAX_BATCH_BYTES, SENT};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

/// Pushes a batch this many times before dropping it (retrying only
/// connection errors, 429 and 5xx answers).
const ATTEMPTS: u32 = 3;
/// The longest the guard waits for the last lines to be pushed.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps the sink running; dropping it pushes what is queued (waiting up to
/// 5 s) and stops the thread.
#[derive(Debug)]
pub struct LokiGuard {
    stop: Arc<AtomicBool>,
    done: Receiver<()>,
}

impl Drop for LokiGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.done.recv_timeout(FLUSH_TIMEOUT).is_err() {
            eprintln!("loki: log lines still queued at exit were not all pushed");
        }
    }
}

/// What the thread needs.
struct Pusher {
    url: String,
    tenant: String,
    auth: Option<Auth>,
    service: String,
    labels: Vec<(String, String)>,
    encoding: Encoding,
    timeout: Duration,
    /// When the last failure was reported, to report at most one a minute.
    last_report: Option<Instant>,
}

pub(super) fn spawn(settings: &LokiSettings) -> std::io::Result<(SyncSender<Entry>, LokiGuard)> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(settings.queue_capacity.max(1));
    let (done_tx, done) = std::sync::mpsc::sync_channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = Pusher {
        url: settings.push_url(),
        tenant: settings.tenant.clone(),
        auth: settings.auth.clone(),
        service: settings.service.clone(),
        labels: settings.labels.clone(),
        encoding: settings.encoding,
        timeout: settings.timeout,
        last_report: None,
    };
    let batch_size = settings.batch_size.max(1);
    let batch_wait = settings.batch_wait;
    let thread_stop = stop.clone();
    std::thread::Builder::new()
        .name("mimir-loki".into())
        .spawn(move || {
            run(pusher, receiver, batch_size, batch_wait, &thread_stop);
            let _ = done_tx.send(());
        })?;
    Ok((sender, LokiGuard { stop, done }))
}

/// Collects lines until the batch is full (count or bytes) or its first line
/// has waited `batch_wait`, then pushes; on stop, drains the queue and exits.
fn run(
    mut pusher: Pusher,
    queue: Receiver<Entry>,
    batch_size: usize,
    batch_wait: Duration,
    stop: &AtomicBool,
) {
    // The blocking client runs its own runtime: build it on this thread.
    let client = match reqwest::blocking::Client::builder()
        .timeout(pusher.timeout)
        .user_agent(concat!("mimir-aip/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("loki: cannot create the HTTP client, logs are not pushed: {error}");
            return;
        }
    };
    let mut batch: Vec<Entry> = Vec::new();
    let mut bytes = 0;
    let mut oldest: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let wait = match oldest {
            Some(t) => batch_wait.saturating_sub(t.elapsed()),
            None => batch_wait,
        };
        // Wake often enough to notice a stop request.
        let received = if stopping {
            queue.try_recv().map_err(|_| RecvTimeoutError::Timeout)
        } else {
            queue.recv_timeout(wait.min(Duration::from_millis(100)))
        };
        let got_one = received.is_ok();
        match received {
            Ok(entry) => {
                bytes += entry.line.len();
                oldest.get_or_insert_with(Instant::now);
                batch.push(entry);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                pusher.push(&client, std::mem::take(&mut batch), false);
                return;
            }
        }
        let due = oldest.is_some_and(|t| t.elapsed() >= batch_wait);
        let queue_drained = stopping && !got_one;
        if batch.len() >= batch_size || bytes >= MAX_BATCH_BYTES || due || queue_drained {
            // While stopping, one attempt per batch: exit must not wait on a dead Loki.
            pusher.push(&client, std::mem::take(&mut batch), !stopping);
            bytes = 0;
            oldest = None;
        }
        if queue_drained {
            return;
        }
    }
}

impl Pusher {
    fn push(&mut self, client: &reqwest::blocking::Client, batch: Vec<Entry>, retry: bool) {
        if batch.is_empty() {
            return;
        }
        let (body, content_type) = encode(&batch, &self.service, &self.labels, self.encoding);
        let attempts = if retry { ATTEMPTS } else { 1 };
        let mut failure = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(250 << attempt));
            }
            let mut request = client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone());
            if !self.tenant.is_empty() {
                request = request.header("X-Scope-OrgID", &self.tenant);
            }
            request = match &self.auth {
                Some(Auth::Bearer(token)) => request.bearer_auth(token),
                Some(Auth::Basic { username, password }) => {
                    request.basic_auth(username, Some(password))
                }
                None => request,
            };
            match request.send() {
                Ok(response) if response.status().is_success() => {
                    SENT.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().unwrap_or_default();
                    failure = format!("{status}: {}", text.trim());
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    if !retryable {
                        break;
                    }
                }
                Err(error) => failure = error.to_string(),
            }
        }
        DROPPED_PUSH_FAILED.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if self
            .last_report
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_report = Some(Instant::now());
            tracing::warn!(
                target: "mimir::loki",
                url = %self.url,
                lines = batch.len(),
                error = %failure,
                "cannot push log lines to Loki; dropped them"
            );
        }
    }
}
