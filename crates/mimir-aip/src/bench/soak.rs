//! `bench soak`: a long mixed load against a spawned orchestrator with local
//! workers, watched for what only shows over time: memory or file
//! descriptors that grow, latencies that creep up, tasks that go missing.
//!
//! The load, all at once: single and batch submissions at a steady rate;
//! filtered task lists; the dashboard's live stream (`/api/dashboard/stream`)
//! held open and read; pipelines that fail and retry (transiently, then
//! succeed), fail for good (permanently, or with their retries exhausted),
//! and retrying tasks cancelled while they wait out their backoff; and one
//! local worker killed with SIGKILL each minute, whose leased tasks come back
//! when their leases expire.
//!
//! Each minute prints the orchestrator's RSS and open fds (medians of a look
//! every 5 s), the minute's p99 latencies, and the task accounting read while
//! no submission is under way, so that every acknowledged task must show up
//! in exactly one status. The first minutes are a warm-up, not compared:
//! the allocator's pools and the store's page caches (SQLite's, 32 MiB for
//! the writer and 8 MiB per reader) grow until the store outgrows them, which
//! at the default load (about 3.4 MB of store a minute) happens between
//! minutes 11 and 15. So by default the first half of the run warms up and
//! the second half must be flat: the minute after the warm-up is the
//! baseline the last one is compared with.

use super::Target;
use super::report::{self, histogram};
use super::spawn::{Orchestrator, Telemetry};
use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use mimir_client::{Client, ClientError, ListFilter};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How far the last minute's RSS or fds may be from the baseline's and still
/// count as flat, as a fraction.
const FLAT_WITHIN: f64 = 0.10;
/// How often RSS and fds are looked at within a minute.
const LOOK_EVERY: Duration = Duration::from_secs(5);
/// When within each minute a worker is killed.
const KILL_AT: Duration = Duration::from_secs(30);
/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Projects the tasks are spread over (and the lists filter on).
const PROJECTS: [&str; 3] = ["soak-a", "soak-b", "soak-c"];
/// Status filters the lists rotate through, groups included.
const LIST_STATUSES: [&str; 6] = [
    "queued",
    "running",
    "waiting",
    "completed",
    "failed",
    "cancelled",
];
/// Statuses that end a task; every other one is in flight.
const DONE_COMPLETED: &str = "completed";
const DONE_FAILED: [&str; 2] = ["failed", "timeout"];
const DONE_CANCELLED: &str = "cancelled";

/// Options of `bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    target: Target,
    /// How long the load runs, in minutes, warm-up included.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    minutes: u64,
    /// Minutes at the start that are not compared, while caches fill
    /// [default: half of --minutes].
    #[arg(long)]
    warm_up: Option<u64>,
    /// Local workers.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Single submissions per second.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Tasks in the batch submitted each second (one in ten fails once and
    /// retries, one in twenty-five fails permanently, one in twenty-five
    /// exhausts its retries).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
    /// Filtered task lists per second.
    #[arg(long, default_value_t = 10)]
    lists: u64,
    /// Longest wait, after the load stops, for the tasks in flight to finish.
    #[arg(long, default_value_t = 300)]
    drain_seconds: u64,
}

/// Where the orchestrator's tasks are, against what it acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Accounting {
    /// Tasks whose submission was answered 2xx.
    submitted: u64,
    completed: u64,
    /// Failed or timed out.
    failed: u64,
    cancelled: u64,
    /// Every status that has not ended: queued, scheduled, spawned, executing.
    in_flight: u64,
}

/// How the orchestrator's tasks add up against the acknowledged ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Balance {
    /// Every acknowledged task is in exactly one status.
    Even,
    /// Acknowledged tasks the orchestrator does not have.
    Lost(u64),
    /// Tasks the orchestrator has whose submission was not acknowledged
    /// (a request that timed out or broke after the task was stored).
    Unacknowledged(u64),
}

impl Accounting {
    /// From `tasks_by_status` of `GET /api/metrics`. Statuses other than the
    /// ending ones count as in flight, so a status added later is not missed.
    fn from_counts(submitted: u64, by_status: &Value) -> anyhow::Result<Accounting> {
        let counts = by_status
            .as_object()
            .context("no tasks_by_status in GET /api/metrics")?;
        let mut accounting = Accounting {
            submitted,
            ..Accounting::default()
        };
        for (status, count) in counts {
            let count = count
                .as_u64()
                .with_context(|| format!("tasks_by_status.{status} is not a count: {count}"))?;
            match status.as_str() {
                DONE_COMPLETED => accounting.completed += count,
                DONE_CANCELLED => accounting.cancelled += count,
                s if DONE_FAILED.contains(&s) => accounting.failed += count,
                _ => accounting.in_flight += count,
            }
        }
        Ok(accounting)
    }

    fn held(&self) -> u64 {
        self.completed + self.failed + self.cancelled + self.in_flight
    }

    /// Whether submitted = completed + failed + cancelled + in flight.
    fn balance(&self) -> Balance {
        let held = self.held();
        if held == self.submitted {
            Balance::Even
        } else if held < self.submitted {
            Balance::Lost(self.submitted - held)
        } else {
            Balance::Unacknowledged(held - self.submitted)
        }
    }

    fn line(&self) -> String {
        let balance = match self.balance() {
            Balance::Even => "adds up".to_string(),
            Balance::Lost(n) => format!("LOST {n}"),
            Balance::Unacknowledged(n) => format!("{n} stored but not acknowledged"),
        };
        format!(
            "submitted {} = completed {} + failed {} + cancelled {} + in flight {}: {balance}",
            self.submitted, self.completed, self.failed, self.cancelled, self.in_flight
        )
    }
}

/// What one minute showed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Minute {
    /// 1-based.
    number: usize,
    /// Median RSS of the minute's looks, in bytes.
    rss: u64,
    /// Median open fds of the minute's looks.
    fds: u64,
    accounting: Accounting,
}

/// The baseline minute against the last.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Verdict {
    baseline: Minute,
    last: Minute,
    /// Change of RSS, in percent of the baseline.
    rss_change: f64,
    /// Change of open fds, in percent of the baseline.
    fds_change: f64,
}

impl Verdict {
    /// Compares the first minute after `warm_up` minutes with the last one;
    /// `None` when the run did not last beyond the warm-up.
    fn of(minutes: &[Minute], warm_up: usize) -> Option<Verdict> {
        let baseline = *minutes.get(warm_up)?;
        let last = *minutes.last()?;
        Some(Verdict {
            baseline,
            last,
            rss_change: change(baseline.rss, last.rss),
            fds_change: change(baseline.fds, last.fds),
        })
    }

    fn memory_flat(&self) -> bool {
        self.rss_change.abs() <= FLAT_WITHIN * 100.0
    }

    fn fds_flat(&self) -> bool {
        self.fds_change.abs() <= FLAT_WITHIN * 100.0
    }
}

/// `to` against `from`, in percent (0 when both are 0).
fn change(from: u64, to: u64) -> f64 {
    if from == 0 {
        return if to == 0 { 0.0 } else { f64::INFINITY };
    }
    (to as f64 / from as f64 - 1.0) * 100.0
}

/// Nothing lost: no minute and not the end found an acknowledged task
/// missing, and nothing is left in flight after draining.
fn nothing_lost(minutes: &[Minute], end: &Accounting) -> bool {
    let lost = |a: &Accounting| matches!(a.balance(), Balance::Lost(_));
    !minutes.iter().any(|m| lost(&m.accounting)) && !lost(end) && end.in_flight == 0
}

/// The middle value; 0 for none.
fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Latencies and errors of the current minute, swapped out at its end.
#[derive(Debug)]
struct Window {
    single: Histogram<u64>,
    batch: Histogram<u64>,
    list: Histogram<u64>,
    errors: u64,
    /// Dashboard stream events received.
    stream_events: u64,
    stream_reconnects: u64,
    /// Cancels that took a task out of the queue.
    cancels: u64,
}

impl Window {
    fn new() -> Window {
        Window {
            single: histogram(),
            batch: histogram(),
            list: histogram(),
            errors: 0,
            stream_events: 0,
            stream_reconnects: 0,
            cancels: 0,
        }
    }
}

/// What the load's parts share.
struct Shared {
    client: Client,
    url: String,
    /// Held shared by each submission until it is counted, and exclusively
    /// while the accounting is read, so that no task is stored but not yet
    /// counted as submitted (or the reverse) at that moment.
    gate: tokio::sync::RwLock<()>,
    submitted: AtomicU64,
    window: std::sync::Mutex<Window>,
    stop: AtomicBool,
}

impl Shared {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, what: &str, error: &dyn std::fmt::Display) {
        self.window().errors += 1;
        eprintln!("soak: {what}: {error}");
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A request bounded by [`REQUEST_TIMEOUT`].
async fn bounded<T>(
    request: impl std::future::Future<Output = Result<T, ClientError>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(answer) => Ok(answer?),
        Err(_) => bail!("no answer within {REQUEST_TIMEOUT:?}"),
    }
}

/// The tasks the load submits, by pipeline.
struct Kinds {
    noop: Value,
    /// Fails its first two attempts, then succeeds.
    transient: Value,
    /// Fails without retries.
    permanent: Value,
    /// Always fails; one retry, then failed.
    exhausted: Value,
}

impl Kinds {
    async fn create(client: &Client) -> anyhow::Result<Kinds> {
        let noop = super::noop_pipeline(client).await?;
        let transient = fail_pipeline(client, "transient", json!({"times": 2})).await?;
        let permanent = fail_pipeline(client, "permanent", json!({"permanent": true})).await?;
        let exhausted = fail_pipeline(client, "exhausted", json!({})).await?;
        let task = |pipeline: &str, extra: Value| {
            let mut task = json!({"type": "pipeline_execution", "project_id": PROJECTS[0], "task_spec": {"pipeline_id": pipeline}});
            if let (Some(task), Some(extra)) = (task.as_object_mut(), extra.as_object()) {
                task.extend(extra.clone());
            }
            task
        };
        Ok(Kinds {
            noop: task(&noop, json!({})),
            transient: task(&transient, json!({})),
            permanent: task(&permanent, json!({})),
            exhausted: task(&exhausted, json!({"max_retries": 1})),
        })
    }

    /// The `i`th task of a batch: mostly no-ops, some that fail.
    fn nth(&self, i: u64) -> (&Value, bool) {
        if i % 10 == 3 {
            (&self.transient, true)
        } else if i % 25 == 7 {
            (&self.permanent, false)
        } else if i % 25 == 17 {
            (&self.exhausted, false)
        } else {
            (&self.noop, false)
        }
    }
}

async fn fail_pipeline(client: &Client, name: &str, parameters: Value) -> anyhow::Result<String> {
    let steps =
        json!([{"name": "fail", "plugin": "core", "action": "fail", "parameters": parameters}]);
    let body = json!({"project_id": "bench", "name": format!("soak-{name}"), "type": "processing", "steps": steps});
    let pipeline: Value = client
        .call(Method::POST, "/api/pipelines", Some(&body))
        .await?;
    Ok(pipeline["id"]
        .as_str()
        .context("no pipeline id in the answer")?
        .to_string())
}

fn with_project(task: &Value, i: u64) -> Value {
    let mut task = task.clone();
    task["project_id"] = json!(PROJECTS[(i % PROJECTS.len() as u64) as usize]);
    task
}

/// Single submissions at `rate` per second.
async fn submit_singles(shared: Arc<Shared>, kinds: Arc<Kinds>, rate: u64) {
    if rate == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i = 0u64;
    while !shared.stopped() {
        tick.tick().await;
        let task = with_project(&kinds.noop, i);
        i += 1;
        let _open = shared.gate.read().await;
        let started = Instant::now();
        match bounded(shared.client.submit(&task)).await {
            Ok(_) => {
                report::record(&mut shared.window().single, started.elapsed());
                shared.submitted.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => shared.error("single submit", &e),
        }
    }
}

/// A batch each second; half a second later, one of its retrying tasks is
/// cancelled while it waits out its backoff.
async fn submit_batches(shared: Arc<Shared>, kinds: Arc<Kinds>, size: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i = 0u64;
    while !shared.stopped() {
        tick.tick().await;
        let mut batch = Vec::new();
        let mut retrying = Vec::new();
        for n in 0..size {
            let (task, retries) = kinds.nth(n);
            if retries {
                retrying.push(batch.len());
            }
            batch.push(with_project(task, i));
            i += 1;
        }
        let stored = {
            let _open = shared.gate.read().await;
            let started = Instant::now();
            match bounded(shared.client.submit_batch(&batch)).await {
                Ok(stored) => {
                    report::record(&mut shared.window().batch, started.elapsed());
                    shared
                        .submitted
                        .fetch_add(stored.len() as u64, Ordering::SeqCst);
                    stored
                }
                Err(e) => {
                    shared.error("batch submit", &e);
                    continue;
                }
            }
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(task) = retrying.first().and_then(|&k| stored.get(k)) else {
            continue;
        };
        match bounded(shared.client.cancel(task.worktask_id)).await {
            Ok(_) => shared.window().cancels += 1,
            Err(e) => {
                // Already retried and done, or running: not cancellable, fine.
                let refused = matches!(
                    e.downcast_ref::<ClientError>(),
                    Some(ClientError::Api { status, .. }) if *status == StatusCode::CONFLICT
                );
                if !refused {
                    shared.error("cancel", &e);
                }
            }
        }
    }
}

/// Filtered task lists, rotating through statuses and projects.
async fn list_tasks(shared: Arc<Shared>, per_second: u64) {
    if per_second == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i = 0usize;
    while !shared.stopped() {
        tick.tick().await;
        let filter = ListFilter {
            status: Some(LIST_STATUSES[i % LIST_STATUSES.len()].into()),
            project_id: Some(PROJECTS[(i / LIST_STATUSES.len()) % PROJECTS.len()].into()),
            limit: Some(50),
            ..ListFilter::default()
        };
        i += 1;
        let started = Instant::now();
        match bounded(shared.client.list(&filter)).await {
            Ok(_) => report::record(&mut shared.window().list, started.elapsed()),
            Err(e) => shared.error("task list", &e),
        }
    }
}

/// Holds the dashboard's live stream open and reads every event, as an open
/// dashboard tab does; reconnects when it ends.
async fn read_stream(shared: Arc<Shared>) {
    let http = reqwest::Client::new();
    let url = format!("{}/api/dashboard/stream", shared.url);
    while !shared.stopped() {
        let mut response = match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                shared.error("dashboard stream", &r.status());
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                shared.error("dashboard stream", &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut pending = Vec::new();
        loop {
            let chunk = tokio::select! {
                chunk = response.chunk() => chunk,
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if shared.stopped() { return; }
                    continue;
                }
            };
            match chunk {
                Ok(Some(bytes)) => {
                    pending.extend_from_slice(&bytes);
                    let events = complete_events(&mut pending);
                    shared.window().stream_events += events;
                }
                Ok(None) => break,
                Err(e) => {
                    shared.error("dashboard stream", &e);
                    break;
                }
            }
        }
        if !shared.stopped() {
            shared.window().stream_reconnects += 1;
        }
    }
}

/// Counts the `second` events complete in `pending` (an SSE event ends with
/// a blank line) and keeps the incomplete rest.
fn complete_events(pending: &mut Vec<u8>) -> u64 {
    let mut events = 0;
    while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
        let event: Vec<u8> = pending.drain(..end + 2).collect();
        if event.starts_with(b"event: second") || event.windows(14).any(|w| w == b"\nevent: second")
        {
            events += 1;
        }
    }
    events
}

/// Parent pid of a process, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(1)?.parse().ok()
}

/// Kills one live local worker of the orchestrator `root` with SIGKILL;
/// answers its pid. Only a child of `root` is killed, so a pid the
/// orchestrator still lists after its worker is gone (and the system may
/// have reused) is never hit.
async fn kill_a_worker(client: &Client, root: u32, turn: usize) -> anyhow::Result<Option<u32>> {
    let workers: Value = bounded(client.call(Method::GET, "/api/workers", None)).await?;
    let mut pids: Vec<u32> = workers["workers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|w| w["local"] == json!(true) && w["state"] != json!("lost"))
        .filter_map(|w| w["pid"].as_u64().and_then(|p| u32::try_from(p).ok()))
        .filter(|&pid| pid != 0 && parent_of(pid) == Some(root))
        .collect();
    pids.sort_unstable();
    let Some(&pid) = pids.get(turn % pids.len().max(1)) else {
        return Ok(None);
    };
    let status = tokio::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .await
        .context("cannot run kill")?;
    if !status.success() {
        bail!("kill -KILL {pid} failed");
    }
    Ok(Some(pid))
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The accounting, read while no submission is under way.
async fn account(shared: &Shared) -> anyhow::Result<Accounting> {
    let _closed = shared.gate.write().await;
    let summary: Value = bounded(shared.client.call(Method::GET, "/api/metrics", None)).await?;
    Accounting::from_counts(
        shared.submitted.load(Ordering::SeqCst),
        &summary["tasks_by_status"],
    )
}

fn p99(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "-".into();
    }
    format!("{:.1} ms", h.value_at_quantile(0.99) as f64 / 1000.0)
}

/// Runs the scenario and prints its figures; fails when a task was lost.
pub async fn run(args: SoakArgs) -> anyhow::Result<ExitCode> {
    if !args.target.spawn {
        bail!(
            "bench soak watches the orchestrator's memory and kills its local workers: add --spawn"
        );
    }
    let warm_up = args.warm_up.unwrap_or(args.minutes / 2);
    if args.minutes <= warm_up {
        bail!(
            "--minutes {} leaves no minute after --warm-up {warm_up} to compare: run longer or warm up less",
            args.minutes
        );
    }
    let warm_up = warm_up as usize;
    let config = format!(
        "orchestrator:\n  minWorkers: {w}\n  maxWorkers: {w}\n",
        w = args.workers
    );
    let orchestrator =
        Orchestrator::start_with(&args.target, &config, Telemetry::Quiet, false).await?;
    let root = orchestrator
        .pid()
        .context("the spawned orchestrator has no pid")?;
    let client = Client::new(&orchestrator.url);
    let kinds = Arc::new(Kinds::create(&client).await?);
    super::wait_for_workers(&client, args.workers).await?;
    let shared = Arc::new(Shared {
        client: client.clone(),
        url: orchestrator.url.clone(),
        gate: tokio::sync::RwLock::new(()),
        submitted: AtomicU64::new(0),
        window: std::sync::Mutex::new(Window::new()),
        stop: AtomicBool::new(false),
    });
    println!(
        "soak: {} minutes ({} warm-up), {} single submits/s, a batch of {} each second, {} lists/s, the dashboard stream open, a local worker of {} killed each minute",
        args.minutes, warm_up, args.rate, args.batch, args.lists, args.workers
    );
    let load = vec![
        tokio::spawn(submit_singles(shared.clone(), kinds.clone(), args.rate)),
        tokio::spawn(submit_batches(shared.clone(), kinds.clone(), args.batch)),
        tokio::spawn(list_tasks(shared.clone(), args.lists)),
        tokio::spawn(read_stream(shared.clone())),
    ];

    let mut minutes = Vec::new();
    let started = tokio::time::Instant::now();
    for number in 1..=args.minutes as usize {
        let minute_start = started + Duration::from_secs(60 * (number as u64 - 1));
        let (mut rss, mut fds) = (Vec::new(), Vec::new());
        let mut killed = None;
        let mut look = minute_start;
        while look < minute_start + Duration::from_secs(60) {
            tokio::time::sleep_until(look).await;
            let (resident, _) = orchestrator
                .memory()
                .context("the orchestrator is gone (no /proc/<pid>/status)")?;
            rss.push(resident);
            fds.extend(open_fds(root));
            if killed.is_none() && look >= minute_start + KILL_AT {
                killed = Some(match kill_a_worker(&client, root, number).await {
                    Ok(Some(pid)) => format!("killed worker pid {pid}"),
                    Ok(None) => "no live local worker to kill".to_string(),
                    Err(e) => format!("could not kill a worker: {e:#}"),
                });
            }
            look += LOOK_EVERY;
        }
        tokio::time::sleep_until(minute_start + Duration::from_secs(60)).await;
        let accounting = account(&shared).await?;
        let window = std::mem::replace(&mut *shared.window(), Window::new());
        let minute = Minute {
            number,
            rss: median(&mut rss),
            fds: median(&mut fds),
            accounting,
        };
        let label = if number <= warm_up { " (warm-up)" } else { "" };
        println!(
            "minute {number:>3}/{}{label}: rss {} fds {} | p99 submit {} batch {} list {} | {} | stream {} events{} | {} cancelled while retrying | {} errors | {}",
            args.minutes,
            report::mib(minute.rss),
            minute.fds,
            p99(&window.single),
            p99(&window.batch),
            p99(&window.list),
            accounting.line(),
            window.stream_events,
            if window.stream_reconnects > 0 {
                format!(" ({} reconnects)", window.stream_reconnects)
            } else {
                String::new()
            },
            window.cancels,
            window.errors,
            killed.unwrap_or_default(),
        );
        minutes.push(minute);
    }

    shared.stop.store(true, Ordering::SeqCst);
    for part in load {
        part.await.context("a part of the load panicked")?;
    }
    let drain_started = Instant::now();
    let end = loop {
        let accounting = account(&shared).await?;
        if accounting.in_flight == 0
            || drain_started.elapsed() >= Duration::from_secs(args.drain_seconds)
        {
            break accounting;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if end.in_flight == 0 {
        println!(
            "load stopped; drained in {:.1}s",
            drain_started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "load stopped; {} tasks still in flight after {}s",
            end.in_flight, args.drain_seconds
        );
    }
    println!("end: {}", end.line());

    if let Some(verdict) = Verdict::of(&minutes, warm_up) {
        let (b, l) = (verdict.baseline, verdict.last);
        let skipped = match warm_up {
            0 => "no warm-up".to_string(),
            1 => "minute 1 was a warm-up, not compared".to_string(),
            n => format!("minutes 1-{n} were a warm-up, not compared"),
        };
        println!(
            "minute {} is the baseline ({skipped}); against the last, minute {}:",
            b.number, l.number
        );
        println!(
            "rss {} -> {} ({:+.1}%)",
            report::mib(b.rss),
            report::mib(l.rss),
            verdict.rss_change
        );
        println!("fds {} -> {} ({:+.1}%)", b.fds, l.fds, verdict.fds_change);
        println!(
            "memory flat within {:.0}%: {}",
            FLAT_WITHIN * 100.0,
            yes_no(verdict.memory_flat())
        );
        println!(
            "fds flat within {:.0}%: {}",
            FLAT_WITHIN * 100.0,
            yes_no(verdict.fds_flat())
        );
    }
    let intact = nothing_lost(&minutes, &end);
    println!("nothing lost: {}", yes_no(intact));
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
        )
    }

    fn minute(number: usize, rss: u64, fds: u64) -> Minute {
        Minute {
            number,
            rss,
            fds,
            accounting: Accounting::default(),
        }
    }

    #[test]
    fn every_status_lands_in_one_column() {
        let by_status = counts(&[
            ("queued", 1),
            ("scheduled", 2),
            ("spawned", 3),
            ("executing", 4),
            ("completed", 100),
            ("failed", 7),
            ("timeout", 1),
            ("cancelled", 5),
        ]);
        let a = Accounting::from_counts(123, &by_status).unwrap();
        assert_eq!(
            a,
            Accounting {
                submitted: 123,
                completed: 100,
                failed: 8,
                cancelled: 5,
                in_flight: 10
            }
        );
        assert_eq!(a.balance(), Balance::Even);
    }

    #[test]
    fn a_status_not_known_here_counts_as_in_flight() {
        let a = Accounting::from_counts(3, &counts(&[("completed", 1), ("paused", 2)])).unwrap();
        assert_eq!(a.in_flight, 2);
        assert_eq!(a.balance(), Balance::Even);
    }

    #[test]
    fn fewer_tasks_held_than_acknowledged_is_a_loss() {
        let a = Accounting::from_counts(10, &counts(&[("completed", 9)])).unwrap();
        assert_eq!(a.balance(), Balance::Lost(1));
        let b = Accounting::from_counts(10, &counts(&[("completed", 12)])).unwrap();
        assert_eq!(b.balance(), Balance::Unacknowledged(2));
    }

    #[test]
    fn counts_that_are_not_numbers_are_refused() {
        assert!(Accounting::from_counts(1, &json!({"completed": "1"})).is_err());
        assert!(Accounting::from_counts(1, &json!([1])).is_err());
    }

    #[test]
    fn the_warm_up_minutes_are_not_the_baseline() {
        // Minute 1 grew fast (warm-up); 2 is the baseline, 4 the last.
        let minutes = [
            minute(1, 10, 10),
            minute(2, 100, 40),
            minute(3, 105, 41),
            minute(4, 109, 43),
        ];
        let v = Verdict::of(&minutes, 1).unwrap();
        assert_eq!(v.baseline.number, 2);
        assert_eq!(v.last.number, 4);
        assert!((v.rss_change - 9.0).abs() < 1e-9);
        assert!((v.fds_change - 7.5).abs() < 1e-9);
        assert!(v.memory_flat());
        assert!(v.fds_flat());
        let later = Verdict::of(&minutes, 2).unwrap();
        assert_eq!(later.baseline.number, 3);
    }

    #[test]
    fn growth_beyond_ten_percent_is_not_flat_either_way() {
        let up = Verdict::of(
            &[minute(1, 1, 1), minute(2, 100, 40), minute(3, 111, 45)],
            1,
        )
        .unwrap();
        assert!(!up.memory_flat());
        assert!(!up.fds_flat());
        let down =
            Verdict::of(&[minute(1, 1, 1), minute(2, 100, 40), minute(3, 89, 35)], 1).unwrap();
        assert!(!down.memory_flat());
        assert!(!down.fds_flat());
    }

    #[test]
    fn no_verdict_without_a_minute_after_the_warm_up() {
        assert_eq!(Verdict::of(&[minute(1, 100, 10)], 1), None);
        assert_eq!(
            Verdict::of(&[minute(1, 100, 10), minute(2, 100, 10)], 2),
            None
        );
        assert_eq!(Verdict::of(&[], 0), None);
    }

    #[test]
    fn change_from_zero_is_flat_only_to_zero() {
        assert_eq!(change(0, 0), 0.0);
        assert!(change(0, 1).is_infinite());
    }

    #[test]
    fn nothing_lost_needs_every_minute_even_and_the_queue_drained() {
        let even = Accounting {
            submitted: 10,
            completed: 10,
            ..Accounting::default()
        };
        let lost = Accounting {
            submitted: 10,
            completed: 9,
            ..Accounting::default()
        };
        let in_flight = Accounting {
            submitted: 10,
            completed: 9,
            in_flight: 1,
            ..Accounting::default()
        };
        let with = |a: Accounting| Minute {
            accounting: a,
            ..minute(1, 1, 1)
        };
        assert!(nothing_lost(&[with(even)], &even));
        assert!(!nothing_lost(&[with(lost)], &even));
        assert!(!nothing_lost(&[with(even)], &lost));
        assert!(!nothing_lost(&[with(in_flight)], &in_flight));
        assert!(nothing_lost(&[with(in_flight)], &even));
    }

    #[test]
    fn stream_events_are_counted_when_complete() {
        let mut pending =
            b"event: second\ndata: {}\n\n: keep-alive\n\nevent: resync\ndata: \n\nevent: sec"
                .to_vec();
        assert_eq!(complete_events(&mut pending), 1);
        assert_eq!(pending, b"event: sec");
        pending.extend_from_slice(b"ond\ndata: {}\n\n");
        assert_eq!(complete_events(&mut pending), 1);
        assert!(pending.is_empty());
    }

    #[test]
    fn median_takes_the_middle_look() {
        assert_eq!(median(&mut [5, 1, 3]), 3);
        assert_eq!(median(&mut []), 0);
    }

    #[test]
    fn batches_mix_failing_tasks_among_no_ops() {
        let kinds = Kinds {
            noop: json!("noop"),
            transient: json!("transient"),
            permanent: json!("permanent"),
            exhausted: json!("exhausted"),
        };
        let mut seen = std::collections::HashMap::new();
        for i in 0..50 {
            *seen.entry(kinds.nth(i).0.to_string()).or_insert(0) += 1;
        }
        assert_eq!(seen["\"transient\""], 5);
        assert_eq!(seen["\"permanent\""], 2);
        assert_eq!(seen["\"exhausted\""], 2);
        assert_eq!(seen["\"noop\""], 41);
    }
}
