//! A per-call-site rate limit for warnings and errors.
//!
//! A storm of identical warnings (a store that keeps failing, a thousand tasks
//! retried at once) must not flood the log. Each call site may write `burst`
//! warn/error lines per `interval`; the rest are dropped and counted in
//! `mimir_log_messages_dropped_total`, and once per interval a reporter thread
//! writes one line per call site saying how many it dropped. (The report cannot
//! be written from inside the subscriber: `tracing` drops nested events.)

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::callsite::Identifier;
use tracing::{Event, Level, Metadata};
use tracing_subscriber::layer::{Context, Layer};

/// Defaults to 50 lines per call site per second.
pub const DEFAULT_BURST: u32 = 50;

static DROPPED_WARN: AtomicU64 = AtomicU64::new(0);
static DROPPED_ERROR: AtomicU64 = AtomicU64::new(0);

/// Lines dropped so far in this process: `(warn, error)`.
pub fn dropped() -> (u64, u64) {
    (
        DROPPED_WARN.load(Ordering::Relaxed),
        DROPPED_ERROR.load(Ordering::Relaxed),
    )
}

/// The limit: a layer that vetoes excess events for every other layer (the
/// log formatter and the trace exporter alike). Clones share their state.
#[derive(Clone)]
pub struct RateLimit {
    burst: u32,
    interval: Duration,
    sites: std::sync::Arc<Mutex<HashMap<Identifier, Site>>>,
    /// The time windows are measured on: [`Instant::now`], or a test's clock.
    clock: std::sync::Arc<dyn Fn() -> Instant + Send + Sync>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("burst", &self.burst)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Site {
    window_start: Instant,
    written: u32,
    /// Dropped since the last report.
    dropped: u64,
    /// Where the call site is, for the report.
    location: String,
}

impl RateLimit {
    /// At most `burst` warn/error lines per call site per `interval`.
    pub fn new(burst: u32, interval: Duration) -> RateLimit {
        RateLimit::with_clock(burst, interval, Instant::now)
    }

    /// The same limit, with windows measured on `clock`.
    fn with_clock(
        burst: u32,
        interval: Duration,
        clock: impl Fn() -> Instant + Send + Sync + 'static,
    ) -> RateLimit {
        RateLimit {
            burst,
            interval,
            sites: Default::default(),
            clock: std::sync::Arc::new(clock),
        }
    }

    /// Writes one line per call site that dropped lines since the last report.
    pub fn report(&self) {
        let mut reports = Vec::new();
        for site in self.sites.lock().values_mut() {
            if site.dropped > 0 {
                reports.push((site.location.clone(), std::mem::take(&mut site.dropped)));
            }
        }
        for (site, dropped) in reports {
            tracing::warn!(target: "mimir::log", dropped, site, "rate limit dropped log lines from one call site");
        }
    }

    /// Reports drops once per interval from a background thread, for the
    /// life of the process.
    pub fn spawn_reporter(&self) {
        let limit = self.clone();
        let _ = std::thread::Builder::new()
            .name("mimir-log-limit".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(limit.interval.max(Duration::from_millis(100)));
                    limit.report();
                }
            });
    }

    /// Whether a line of `meta` may be written now.
    fn admit(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        let mut sites = self.sites.lock();
        let site = sites.entry(meta.callsite()).or_insert_with(|| Site {
            window_start: now,
            written: 0,
            dropped: 0,
            location: format!(
                "{}:{}",
                meta.file().unwrap_or(meta.target()),
                meta.line().unwrap_or(0)
            ),
        });
        if now.duration_since(site.window_start) >= self.interval {
            site.window_start = now;
            site.written = 0;
        }
        if site.written < self.burst {
            site.written += 1;
            return true;
        }
        site.dropped += 1;
        false
    }
}

impl<S: tracing::Subscriber> Layer<S> for RateLimit {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        // More verbose levels compare greater.
        if *meta.level() > Level::WARN || self.burst == 0 {
            return true;
        }
        let admitted = self.admit(meta, (self.clock)());
        if !admitted {
            let counter = if *meta.level() == Level::ERROR {
                &DROPPED_ERROR
            } else {
                &DROPPED_WARN
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    /// Counts the lines that get through.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
        fn on_event(&self, event: &Event<'_>, _cx: tracing_subscriber::layer::Context<'_, S>) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().push(message.0);
        }
    }

    #[test]
    fn a_storm_from_one_site_is_cut_and_the_drop_is_reported() {
        let lines = Lines::default();
        let start = Instant::now();
        let elapsed = Arc::new(Mutex::new(Duration::ZERO));
        let clock = elapsed.clone();
        let limit =
            RateLimit::with_clock(3, Duration::from_millis(200), move || start + *clock.lock());
        let subscriber = tracing_subscriber::registry()
            .with(lines.clone())
            .with(limit.clone());
        // One call site, whatever the window.
        let disk_full = || tracing::warn!("disk full");
        let warnings = |lines: &Lines| lines.0.lock().iter().filter(|l| *l == "disk full").count();
        let reports = |lines: &Lines| {
            lines
                .0
                .lock()
                .iter()
                .filter(|l| l.contains("rate limit dropped"))
                .count()
        };
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..100 {
                disk_full();
                tracing::info!("routine");
            }
            limit.report();
            assert_eq!(warnings(&lines), 3, "3 in the first window");
            assert_eq!(reports(&lines), 1, "one report for the 97 dropped");
            limit.report();
            assert_eq!(reports(&lines), 1, "none when nothing was dropped");
            // Just inside the window: still dropped.
            *elapsed.lock() = Duration::from_millis(199);
            disk_full();
            assert_eq!(warnings(&lines), 3);
            // The next window: written again.
            *elapsed.lock() = Duration::from_millis(200);
            disk_full();
            assert_eq!(warnings(&lines), 4);
        });
        let routine = lines.0.lock().iter().filter(|l| *l == "routine").count();
        assert_eq!(routine, 100, "info lines are not limited");
    }
}
