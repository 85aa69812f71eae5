//! The worker's side: a pool of warm executor processes, each running one
//! attempt at a time under the attempt's memory limit, stopped from outside
//! when the attempt is cancelled or runs past a deadline.

use super::protocol::{Event, Job, Outcome};
use mimir_pipeline::{ErrorClass, StepRecord, StepStatus, human_bytes};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long after a deadline an executor that has not reported is killed:
/// time for a step that does yield to stop by itself and say so.
const GRACE: Duration = Duration::from_millis(300);

/// How long a closing executor may take to flush its telemetry and exit.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// What std prints when an allocation fails, just before it aborts.
const ALLOCATION_FAILED: &str = "memory allocation of";

/// Environment variables an executor inherits; everything else (the worker
/// token above all) stays with the worker, so no step can read it.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "MIMIR_DEPLOYMENT_ENVIRONMENT",
];

/// How to start an executor process.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The program (`mimir-aip`).
    pub program: PathBuf,
    /// Its arguments (`executor` and its flags).
    pub args: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Executors kept warm between attempts.
    pub max_idle: usize,
}

impl SandboxConfig {
    /// The inherited part of this process's environment: [`INHERITED_ENV`]
    /// and the standard `OTEL_*` variables, so steps' spans reach the same
    /// collector.
    pub fn inherited_env() -> Vec<(String, String)> {
        std::env::vars()
            .filter(|(name, _)| INHERITED_ENV.contains(&name.as_str()) || name.starts_with("OTEL_"))
            .collect()
    }
}

/// How a sandboxed attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// One record per step, in pipeline order.
    pub steps: Vec<StepRecord>,
    /// The completed steps' entries (empty when the executor was stopped).
    pub context: serde_json::Map<String, serde_json::Value>,
    /// `step "NAME" (plugin.action) failed: reason`, when a step failed.
    pub error: Option<String>,
    /// Whether retrying can help, when a step failed.
    pub error_class: Option<ErrorClass>,
    /// A deadline passed.
    pub timed_out: bool,
    /// The attempt was cancelled.
    pub cancelled: bool,
    /// The storage operations it ran (none known when the executor was stopped).
    pub storage_operations: Vec<mimir_core::StorageOperationEvent>,
    /// The checkpoints it saved, when it succeeded (`checkpoint.save`).
    pub checkpoints: serde_json::Map<String, serde_json::Value>,
}

/// The pool of executors.
pub struct Sandboxes {
    config: SandboxConfig,
    idle: Mutex<Vec<Executor>>,
    /// The hard memory limit executors inherit; their soft limit may not
    /// exceed it.
    hard_data_limit: Option<u64>,
}

impl Sandboxes {
    /// A pool that starts executors as attempts need them.
    pub fn new(config: SandboxConfig) -> Sandboxes {
        let hard_data_limit = rustix::process::getrlimit(rustix::process::Resource::Data).maximum;
        Sandboxes {
            config,
            idle: Mutex::new(Vec::new()),
            hard_data_limit,
        }
    }

    /// Runs `job` in an executor limited to `memory` bytes (of data and heap)
    /// until it ends, `cancel` fires, or a deadline passes; `on_step` gets
    /// each step's record as the executor reports it.
    pub async fn run(
        &self,
        job: &Job<'_>,
        memory: Option<u64>,
        cancel: &CancellationToken,
        on_step: &mut (dyn FnMut(&StepRecord) + Send),
    ) -> Ended {
        let mut line = match serde_json::to_vec(job) {
            Ok(line) => line,
            Err(error) => {
                return failed(
                    job,
                    &[],
                    format!("cannot encode the job: {error}"),
                    ErrorClass::Permanent,
                );
            }
        };
        line.push(b'\n');
        // An idle executor may have died since its last job; a fresh one
        // is tried once before giving up.
        let mut executor = None;
        for _ in 0..2 {
            let mut candidate = match self.acquire(memory).await {
                Ok(candidate) => candidate,
                Err(error) => {
                    return failed(
                        job,
                        &[],
                        format!("cannot start an executor process: {error}"),
                        ErrorClass::Transient,
                    );
                }
            };
            if let Err(error) = candidate.limit_memory(memory, self.hard_data_limit) {
                tracing::warn!(%error, "cannot set an executor's memory limit");
            }
            if candidate.stdin.write_all(&line).await.is_ok() {
                executor = Some(candidate);
                break;
            }
            candidate.kill().await;
        }
        let Some(mut executor) = executor else {
            return failed(
                job,
                &[],
                "the executor process exited before taking the job".into(),
                ErrorClass::Transient,
            );
        };
        let task_deadline = job
            .remaining_ms
            .map(|ms| (Instant::now() + Duration::from_millis(ms), ms));
        let mut step_deadline: Option<(Instant, u64)> = None;
        let mut records: Vec<StepRecord> = Vec::with_capacity(job.steps.len());
        let mut text = String::new();
        loop {
            let kill_at = match (step_deadline, task_deadline) {
                (Some((a, _)), Some((b, _))) => Some(a.min(b)),
                (a, b) => a.or(b).map(|(at, _)| at),
            };
            let expired = async {
                match kill_at {
                    Some(at) => tokio::time::sleep_until(at + GRACE).await,
                    None => std::future::pending().await,
                }
            };
            text.clear();
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    executor.kill().await;
                    let mut ended = failed(job, &records, "cancelled".into(), ErrorClass::Transient);
                    ended.cancelled = true;
                    return ended;
                }
                () = expired => {
                    executor.kill().await;
                    let why = match (step_deadline, task_deadline) {
                        (Some((at, ms)), task) if task.is_none_or(|(t, _)| at <= t) => {
                            format!("timed out after {ms} ms and was stopped")
                        }
                        (_, Some((_, ms))) => {
                            format!("timed out: the task's timeout_ms ({ms} ms) ran out, and the step was stopped")
                        }
                        _ => "timed out".to_string(),
                    };
                    let mut ended = failed(job, &records, why, ErrorClass::Transient);
                    ended.timed_out = true;
                    return ended;
                }
                read = executor.stdout.read_line(&mut text) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        let (why, class) = executor.death(memory).await;
                        return failed(job, &records, why, class);
                    }
                    match serde_json::from_str::<Event>(&text) {
                        Ok(Event::Started { deadline_ms, .. }) => {
                            step_deadline = Some((Instant::now() + Duration::from_millis(deadline_ms), deadline_ms));
                        }
                        Ok(Event::Done(record)) => {
                            on_step(&record);
                            records.push(record);
                            step_deadline = None;
                        }
                        Ok(Event::Finished(outcome)) => {
                            if outcome.timed_out {
                                // The engine abandoned the late step, but a
                                // step that never yields still runs on a
                                // thread of the executor: only a new one is clean.
                                executor.kill().await;
                            } else {
                                self.release(executor);
                            }
                            return finished(job, records, outcome);
                        }
                        Err(error) => {
                            executor.kill().await;
                            return failed(job, &records, format!("the executor sent a malformed report: {error}"), ErrorClass::Transient);
                        }
                    }
                }
            }
        }
    }

    /// Closes every idle executor and waits for them to exit, so their
    /// telemetry is flushed.
    pub async fn close(&self) {
        let idle: Vec<Executor> = std::mem::take(&mut *self.idle.lock());
        for executor in idle {
            executor.close().await;
        }
    }

    /// An idle executor fit for an attempt limited to `memory`, else a new one.
    async fn acquire(&self, memory: Option<u64>) -> std::io::Result<Executor> {
        loop {
            let Some(executor) = self.idle.lock().pop() else {
                return Executor::spawn(&self.config);
            };
            if !executor.too_big_for(memory) {
                return Ok(executor);
            }
            // Memory an earlier, larger attempt left mapped would count
            // against this one's smaller limit.
            executor.kill().await;
        }
    }

    fn release(&self, executor: Executor) {
        let mut idle = self.idle.lock();
        if idle.len() < self.config.max_idle.max(1) {
            idle.push(executor);
        }
        // Dropping an executor kills it (kill_on_drop); tokio reaps it.
    }
}

/// One executor process.
struct Executor {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: Option<rustix::process::Pid>,
    /// The soft data limit set last, to skip a system call when it is unchanged.
    memory_limit: Option<u64>,
    stderr: Arc<Mutex<StderrTail>>,
    stderr_done: tokio::task::JoinHandle<()>,
}

/// What an executor said last on stderr (its log lines pass through).
#[derive(Default)]
struct StderrTail {
    last: String,
    allocation_failed: bool,
}

impl Executor {
    fn spawn(config: &SandboxConfig) -> std::io::Result<Executor> {
        let mut child = Command::new(&config.program)
            .args(&config.args)
            .env_clear()
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .env(super::child::PARENT_ENV, std::process::id().to_string())
            // mimalloc commits its 1 GiB arenas up front where the kernel
            // overcommits; the data limit would count them as used. Committed
            // on demand, only what steps use counts.
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let missing = || std::io::Error::other("the executor's pipes are missing");
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(missing)?);
        let stderr = child.stderr.take().ok_or_else(missing)?;
        let pid = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        let tail = Arc::new(Mutex::new(StderrTail::default()));
        let stderr_done = tokio::spawn(forward_stderr(stderr, tail.clone()));
        Ok(Executor {
            child,
            stdin,
            stdout,
            pid,
            memory_limit: None,
            stderr: tail,
            stderr_done,
        })
    }

    /// Sets the executor's soft limit on data and heap memory: an allocation
    /// past it fails and the executor aborts, instead of the machine running
    /// out of memory.
    fn limit_memory(&mut self, bytes: Option<u64>, hard: Option<u64>) -> std::io::Result<()> {
        let current = match (bytes, hard) {
            (Some(b), Some(h)) => Some(b.min(h)),
            (b, h) => b.or(h),
        };
        if current == self.memory_limit {
            return Ok(());
        }
        let limit = rustix::process::Rlimit {
            current,
            maximum: hard,
        };
        rustix::process::prlimit(self.pid, rustix::process::Resource::Data, limit)?;
        self.memory_limit = current;
        Ok(())
    }

    /// Whether this executor, limited to more than `memory` until now, holds
    /// so much already that `memory` would leave the next attempt too little.
    fn too_big_for(&self, memory: Option<u64>) -> bool {
        let (Some(memory), Some(current)) = (memory, self.memory_limit) else {
            return false;
        };
        memory < current && data_bytes(self.pid).is_none_or(|used| used > memory / 2)
    }

    async fn kill(mut self) {
        let _ = self.child.kill().await;
        self.stderr_done.abort();
    }

    /// Why the executor died, once it has: its exit and what it said last.
    async fn death(mut self, memory: Option<u64>) -> (String, ErrorClass) {
        let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        // Its last words may still be in the pipe.
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.stderr_done).await;
        let tail = self.stderr.lock();
        if tail.allocation_failed {
            let limit = memory.map_or("its memory limit".to_string(), |b| human_bytes(b as usize));
            return (
                format!(
                    "memory limit exceeded: the step needed more than {limit} \
                     (raise resource_requirements.memory to allow more)"
                ),
                ErrorClass::Permanent,
            );
        }
        let how = match status {
            Ok(Ok(status)) => describe(status),
            _ => "it did not exit".to_string(),
        };
        let said = if tail.last.is_empty() {
            String::new()
        } else {
            format!(": {}", tail.last)
        };
        (
            format!("the executor process died ({how}){said}"),
            ErrorClass::Transient,
        )
    }

    async fn close(self) {
        let Executor {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        if tokio::time::timeout(CLOSE_WAIT, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

/// A process's data and heap in use (`VmData`), from `/proc/PID/status`.
fn data_bytes(pid: Option<rustix::process::Pid>) -> Option<u64> {
    let pid = pid?.as_raw_nonzero().get();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmData:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Passes an executor's log lines on to this process's stderr, keeping the
/// last one to explain a crash.
async fn forward_stderr(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<StderrTail>>) {
    use std::io::Write;
    let mut lines = BufReader::new(stderr);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
                // The worker's Loki sink carries its executors' lines too.
                mimir_telemetry::loki::forward(line.trim_end());
                let mut tail = tail.lock();
                tail.allocation_failed |= line.contains(ALLOCATION_FAILED);
                tail.last.clear();
                let text = line.trim_end();
                let mut end = text.len().min(500);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                tail.last.push_str(&text[..end]);
            }
        }
    }
}

/// The attempt as the executor ran it.
fn finished(job: &Job<'_>, mut steps: Vec<StepRecord>, outcome: Outcome) -> Ended {
    // The executor reports every step; a short list means it lost count.
    for step in &job.steps[steps.len().min(job.steps.len())..] {
        steps.push(record(step, StepStatus::Skipped, String::new()));
    }
    Ended {
        steps,
        context: outcome.context,
        error: outcome.error,
        error_class: outcome.error_class,
        timed_out: outcome.timed_out,
        cancelled: false,
        storage_operations: outcome.storage_operations,
        checkpoints: outcome.checkpoints,
    }
}

/// The attempt stopped from outside (or never started): the first step
/// without a record failed with `why`, the rest were skipped.
fn failed(job: &Job<'_>, done: &[StepRecord], why: String, class: ErrorClass) -> Ended {
    let mut steps = done.to_vec();
    let mut error = None;
    for step in &job.steps[done.len().min(job.steps.len())..] {
        if error.is_none() {
            error = Some(format!(
                "step \"{}\" ({}) failed: {why}",
                step.name,
                step.qualified_action()
            ));
            steps.push(record(step, StepStatus::Failed, why.clone()));
        } else {
            steps.push(record(step, StepStatus::Skipped, String::new()));
        }
    }
    Ended {
        steps,
        context: serde_json::Map::new(),
        error: Some(error.unwrap_or(why)),
        error_class: Some(class),
        timed_out: false,
        cancelled: false,
        storage_operations: Vec::new(),
        checkpoints: serde_json::Map::new(),
    }
}

fn record(step: &mimir_pipeline::Step, status: StepStatus, error: String) -> StepRecord {
    StepRecord {
        name: step.name.clone(),
        plugin: step.plugin.clone(),
        action: step.action.clone(),
        status,
        duration_ms: 0.0,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(steps: &[&str]) -> Job<'static> {
        Job {
            worktask_id: "t".into(),
            pipeline_id: "p".into(),
            attempt: 0,
            traceparent: None,
            steps: steps
                .iter()
                .map(|name| {
                    serde_json::from_value(json!({"name": name, "plugin": "core", "action": "log"}))
                        .expect("step")
                })
                .collect::<Vec<_>>()
                .into(),
            parameters: std::borrow::Cow::Owned(serde_json::Map::new()),
            step_timeout_ms: None,
            remaining_ms: None,
            checkpoints: None,
            project_id: String::new(),
            storage_configs: Vec::new(),
            storage_unavailable: Default::default(),
        }
    }

    #[test]
    fn a_stopped_attempt_blames_the_first_step_without_a_record_and_skips_the_rest() {
        let job = job(&["a", "b", "c"]);
        let done = [record(&job.steps[0], StepStatus::Completed, String::new())];
        let ended = failed(&job, &done, "cancelled".into(), ErrorClass::Transient);
        let statuses: Vec<_> = ended
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("a", StepStatus::Completed),
                ("b", StepStatus::Failed),
                ("c", StepStatus::Skipped)
            ]
        );
        assert_eq!(
            ended.error.as_deref(),
            Some("step \"b\" (core.log) failed: cancelled")
        );
        assert_eq!(ended.error_class, Some(ErrorClass::Transient));
    }

    #[test]
    fn a_finished_attempt_missing_records_gets_them_as_skipped() {
        let job = job(&["a", "b"]);
        let done = vec![record(&job.steps[0], StepStatus::Completed, String::new())];
        let ended = finished(&job, done, Outcome::default());
        assert_eq!(ended.steps.len(), 2);
        assert_eq!(ended.steps[1].status, StepStatus::Skipped);
        assert_eq!(ended.error, None);
    }
}
