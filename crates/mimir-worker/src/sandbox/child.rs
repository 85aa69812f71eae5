//! The executor process's side: runs jobs from stdin, one at a time, and
//! reports on stdout. `mimir-aip executor` calls [`serve`]; nothing else runs
//! in that process, so a step that loops, allocates without bound or crashes
//! takes down only the executor, which its worker replaces.

use super::operations::Operations;
use super::protocol::{Event, Job, Outcome};
use mimir_pipeline::{Checkpoints, Engine, RunContext, Step, StepRecord, Storages, Watcher};
use mimir_storage::{Connectors, Secrets};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How an executor's steps reach storages, for the executor's whole life:
/// one set of connectors (pools reused from job to job) and the collector
/// of each job's operations.
pub struct StorageAccess {
    connectors: Arc<Connectors>,
    operations: Arc<Operations>,
}

impl StorageAccess {
    /// Connectors keeping `filesystem` configs' folders under `root`.
    /// Configs arrive resolved, so this process resolves no reference.
    pub fn new(root: impl Into<PathBuf>) -> StorageAccess {
        let operations = Arc::new(Operations::default());
        let connectors = Arc::new(Connectors::new(
            Secrets::default(),
            root,
            operations.clone(),
        ));
        StorageAccess {
            connectors,
            operations,
        }
    }
}

/// Runs jobs until stdin closes, each driven to its end by `runtime` on the
/// calling thread. Each job's events are written to stdout, batched: a step's
/// record is flushed as soon as it exists unless the job's last event follows
/// at once, so a supervisor that sees the process die knows which step was
/// running, and a one-step job costs one write.
pub fn serve(
    runtime: &tokio::runtime::Runtime,
    engine: &Engine,
    storage: &StorageAccess,
) -> std::io::Result<()> {
    die_with_worker()?;
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut line = String::new();
    loop {
        line.clear();
        if stdin.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut reporter = Reporter::default();
        match serde_json::from_str::<Job>(&line) {
            Ok(job) => runtime.block_on(run(engine, storage, job, &mut reporter)),
            Err(error) => reporter.finish(Outcome {
                error: Some(format!("the executor got a malformed job: {error}")),
                ..Outcome::default()
            }),
        }
        reporter.flush()?;
    }
}

/// An executor must not outlive its worker (a worker killed with `kill -9`
/// would leave a runaway step running): the kernel kills it when the worker
/// exits, and it exits at once if the worker is already gone.
fn die_with_worker() -> std::io::Result<()> {
    use rustix::process::{Signal, getppid, set_parent_process_death_signal};
    set_parent_process_death_signal(Some(Signal::KILL))?;
    let worker = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok());
    let parent = getppid().map(|p| p.as_raw_nonzero().get());
    if worker.is_some() && worker != parent {
        return Err(std::io::Error::other(
            "the worker that started this executor is gone",
        ));
    }
    Ok(())
}

/// The variable a worker sets to its own pid for the executors it starts.
pub const PARENT_ENV: &str = "MIMIR_EXECUTOR_PARENT";

async fn run(engine: &Engine, storage: &StorageAccess, job: Job<'_>, reporter: &mut Reporter) {
    let mut run = RunContext::new(job.worktask_id, job.pipeline_id).with_attempt(job.attempt);
    // Steps reach only the configs of the job's project, and the previous
    // job's configs are gone with its context.
    let storages = Storages::new(
        job.project_id,
        storage.connectors.clone(),
        job.storage_configs,
    )
    .with_unavailable(job.storage_unavailable);
    run = run.with_storages(Arc::new(storages));
    storage.operations.take();
    if let Some(stored) = job.checkpoints {
        run = run.with_checkpoints(Arc::new(Checkpoints::new(stored)));
    }
    if let Some(traceparent) = job.traceparent {
        run = run.with_traceparent(traceparent);
    }
    if let Some(ms) = job.step_timeout_ms {
        run = run.with_step_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = job.remaining_ms {
        run = run.with_deadline(tokio::time::Instant::now() + Duration::from_millis(ms));
    }
    reporter.left = job.steps.len();
    let execution = engine
        .run_watched(&job.steps, &job.parameters, &run, reporter)
        .await;
    reporter.finish(Outcome {
        context: execution.context,
        error: execution.error,
        error_class: execution.error_class,
        timed_out: execution.timed_out,
        storage_operations: storage.operations.take(),
        checkpoints: execution.checkpoints,
    });
}

/// Buffers a job's events and writes them when the supervisor needs them.
#[derive(Default)]
struct Reporter {
    buffer: Vec<u8>,
    /// Steps whose record is still to come.
    left: usize,
}

impl Reporter {
    fn push(&mut self, event: &Event) {
        // Serializing our own types into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buffer, event);
        self.buffer.push(b'\n');
    }

    fn finish(&mut self, outcome: Outcome) {
        self.push(&Event::Finished(outcome));
    }

    /// Writes what is buffered in one call (stdout flushes at each newline,
    /// and writes everything up to the last one at once).
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&self.buffer)?;
        stdout.flush()?;
        self.buffer.clear();
        Ok(())
    }
}

impl Watcher for Reporter {
    fn step_started(&mut self, step: &Step, deadline: Option<tokio::time::Instant>) {
        let Some(deadline) = deadline else { return };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.push(&Event::Started {
            step: step.name.clone(),
            deadline_ms: left.as_millis() as u64,
        });
        // The supervisor arms its timer now; a lost write means it has gone.
        let _ = self.flush();
    }

    fn step_done(&mut self, record: &StepRecord) {
        self.push(&Event::Done(record.clone()));
        self.left = self.left.saturating_sub(1);
        if self.left > 0 {
            let _ = self.flush();
        }
    }
}
