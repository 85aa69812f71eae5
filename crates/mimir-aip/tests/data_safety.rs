//! The orchestrator keeps its data safe: a worker's result survives a full
//! disk, a clean shutdown leaves `mimir.db` complete on its own, `backup`
//! copies a live store consistently, and the workers a killed orchestrator
//! left are adopted by the next one — all through the real binary.

mod harness;

use harness::pipelines::{execute, one_step};
use harness::{Orchestrator, bin, cli_in, processes_mentioning, stderr_failed, stdout_ok};
use mimir_core::WorkTaskStatus;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Submits `n` tasks of a one-step pipeline, made on first use and kept per
/// orchestrator (tasks must name a pipeline that exists).
async fn submit_batch(client: &mimir_client::Client, n: usize) -> Vec<Uuid> {
    let pipeline =
        harness::pipelines::one_step(client, "note", "core.log", json!({"message": "hi"})).await;
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            json!({"type": "pipeline_execution", "project_id": "safe", "priority": 1 + i % 10,
                   "task_spec": {"pipeline_id": pipeline}})
        })
        .collect();
    client
        .submit_batch(&batch)
        .await
        .expect("batch")
        .into_iter()
        .map(|t| t.worktask_id)
        .collect()
}

/// Every task id in the database file `db`, read by SQLite directly.
fn task_ids(db: &Path) -> HashSet<Uuid> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the copy");
    let mut select = conn.prepare("SELECT id FROM worktasks").expect("select");
    select
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .expect("query")
        .map(|id| Uuid::from_slice(&id.expect("id")).expect("a uuid"))
        .collect()
}

/// A small tmpfs mounted on a directory, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts one on `path`, or says why not and answers `None`.
    fn mount(path: &Path, size: &str) -> Option<SmallDisk> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match output {
            Ok(output) if output.status.success() => Some(SmallDisk {
                path: path.to_path_buf(),
            }),
            Ok(output) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs to fill ({}); run as root to test a full disk",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(error) => {
                eprintln!("SKIPPED: cannot run mount ({error}); run as root to test a full disk");
                None
            }
        }
    }

    /// Writes a file until the disk refuses more; returns it.
    fn fill(&self) -> PathBuf {
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        for chunk in [64 * 1024, 4096, 512, 1] {
            let block = vec![7u8; chunk];
            while file.write_all(&block).is_ok() {}
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

async fn readiness(url: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{url}/ready")).await.expect("ready");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_result_survives_a_full_disk_and_is_taken_once_space_is_freed() {
    // Declared first, so it is unmounted after the orchestrator stops.
    let mut disk = None;
    let orchestrator = Orchestrator::start_with_data(
        |data| disk = SmallDisk::mount(data, "8m"),
        &["--max-workers", "0"],
    );
    let Some(disk) = &disk else {
        return;
    };
    let client = orchestrator.client();
    let pipeline = one_step(&client, "nap", "core.sleep", json!({"ms": 1000})).await;
    let task = execute(&client, &pipeline, json!({})).await;
    let worker_log =
        std::fs::File::create(orchestrator.dir.path().join("worker.log")).expect("log");
    let mut worker = Command::new(bin())
        .args([
            "worker",
            "--orchestrator",
            &orchestrator.url,
            "--worker-id",
            "patient",
        ])
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(worker_log)
        .spawn()
        .expect("start a worker");
    let started = Instant::now();
    while client.get(task.worktask_id).await.expect("get").status != WorkTaskStatus::Executing {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the task never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The result meets a full disk: refused with 507, and the orchestrator
    // says it is not ready.
    let filler = disk.fill();
    let started = Instant::now();
    let ready = loop {
        let (status, ready) = readiness(&orchestrator.url).await;
        if status == 503 {
            break ready;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never unready: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["checks"]["store"], "full", "{ready}");
    let waiting = client.get(task.worktask_id).await.expect("get");
    assert_eq!(
        waiting.status,
        WorkTaskStatus::Executing,
        "nothing was stored"
    );
    assert!(
        orchestrator.log().contains("storage_full"),
        "{}",
        orchestrator.log()
    );

    // Space freed: ready again, and the worker's kept result is taken.
    std::fs::remove_file(filler).expect("free the space");
    let started = Instant::now();
    loop {
        let done = client.get(task.worktask_id).await.expect("get");
        if done.status == WorkTaskStatus::Completed {
            assert_eq!(done.retry_count, 0, "the first attempt's result: {done:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the result was not taken: {done:?}\nworker log:\n{}",
            std::fs::read_to_string(orchestrator.dir.path().join("worker.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(readiness(&orchestrator.url).await.0, 200);
    let _ = worker.kill();
    let _ = worker.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_checkpoints_the_wal_so_mimir_db_alone_holds_every_task() {
    let mut orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let client = orchestrator.client();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.extend(submit_batch(&client, 100).await);
    }
    let data = orchestrator.data_dir();
    let wal = data.join("mimir.db-wal");
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(wal_len() > 0, "the tasks are in the WAL while it runs");

    let status = orchestrator.terminate();
    assert!(status.success(), "{status}\n{}", orchestrator.log());
    assert_eq!(wal_len(), 0, "the WAL is empty or gone after a clean stop");
    assert!(orchestrator.log().contains("store checkpointed"));

    // The database file alone, without its WAL, holds every task.
    let alone = tempfile::tempdir().expect("tempdir");
    std::fs::copy(data.join("mimir.db"), alone.path().join("mimir.db")).expect("copy");
    let stored = task_ids(&alone.path().join("mimir.db"));
    assert_eq!(stored.len(), ids.len());
    assert!(ids.iter().all(|id| stored.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_live_store_holds_every_task_acknowledged_before_it_began() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let client = orchestrator.client();
    let mut before: Vec<Uuid> = Vec::new();
    for _ in 0..3 {
        before.extend(submit_batch(&client, 100).await);
    }
    // Submissions keep running through the backup; each batch notes when it
    // was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicUsize::new(0));
    let submitter = {
        let (client, stop, batches) = (client.clone(), stop.clone(), batches.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let ids = submit_batch(&client, 50).await;
                acknowledged.push((Instant::now(), ids));
                batches.fetch_add(1, Ordering::SeqCst);
            }
            acknowledged
        })
    };
    while batches.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dest = orchestrator
        .dir
        .path()
        .join("backups")
        .join("mimir-backup.db");
    let data = orchestrator.data_dir();
    let began = Instant::now();
    let output = {
        let (dir, dest, data) = (
            orchestrator.dir.path().to_path_buf(),
            dest.clone(),
            data.clone(),
        );
        tokio::task::spawn_blocking(move || {
            cli_in(
                &dir,
                &[
                    "backup",
                    dest.to_str().expect("utf-8"),
                    "--data-dir",
                    data.to_str().expect("utf-8"),
                ],
            )
        })
        .await
        .expect("join")
    };
    let during = batches.load(Ordering::SeqCst);
    // Let a few more land after it, then stop.
    while batches.load(Ordering::SeqCst) < during + 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let acknowledged = submitter.await.expect("submitter");
    let printed = stdout_ok(&output);

    let copied = task_ids(&dest);
    let mut expected: HashSet<Uuid> = before.into_iter().collect();
    let mut all = expected.clone();
    for (at, ids) in &acknowledged {
        if *at < began {
            expected.extend(ids.iter().copied());
        }
        all.extend(ids.iter().copied());
    }
    let missing = expected.difference(&copied).count();
    assert_eq!(
        missing, 0,
        "{missing} acknowledged tasks missing from the backup"
    );
    assert!(copied.is_subset(&all), "the backup holds only real tasks");
    assert!(
        printed.contains(&format!("backed up {} tasks", copied.len())),
        "{printed}"
    );
    assert!(
        printed.contains("bytes") && printed.contains(dest.to_str().expect("utf-8")),
        "{printed}"
    );
    assert!(
        !std::fs::read_dir(dest.parent().expect("parent"))
            .expect("list")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("partial")),
        "no partial file is left beside the copy"
    );

    // An existing destination is kept unless --force.
    let kept = std::fs::read(&dest).expect("read the copy");
    let dest_arg = dest.to_str().expect("utf-8");
    let data_arg = data.to_str().expect("utf-8");
    let refused = cli_in(
        orchestrator.dir.path(),
        &["backup", dest_arg, "--data-dir", data_arg],
    );
    let message = stderr_failed(&refused);
    assert!(
        message.contains(dest_arg) && message.contains("--force"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&dest).expect("read"),
        kept,
        "the refused backup changed nothing"
    );
    let forced = cli_in(
        orchestrator.dir.path(),
        &["backup", dest_arg, "--data-dir", data_arg, "--force"],
    );
    stdout_ok(&forced);
    assert!(task_ids(&dest).is_superset(&copied));
    // A data directory without a store is refused by name, writing nothing.
    let empty = tempfile::tempdir().expect("tempdir");
    let nowhere = orchestrator.dir.path().join("nowhere.db");
    let refused = cli_in(
        orchestrator.dir.path(),
        &[
            "backup",
            nowhere.to_str().expect("utf-8"),
            "--data-dir",
            empty.path().to_str().expect("utf-8"),
        ],
    );
    let message = stderr_failed(&refused);
    assert!(
        message.contains("no store at") && message.contains(empty.path().to_str().expect("utf-8")),
        "{message}"
    );
    assert!(!nowhere.exists());
    assert_eq!(std::fs::read_dir(empty.path()).expect("list").count(), 0);

    // Restore the first copy: a data directory holding it serves every task.
    std::fs::write(&dest, &kept).expect("put the first copy back");

    let restored = Orchestrator::start_with_data(
        |data| {
            std::fs::copy(&dest, data.join("mimir.db")).expect("restore");
        },
        &["--max-workers", "0"],
    );
    let restored_client = restored.client();
    let summary: Value = restored_client
        .call(Method::GET, "/api/metrics", None)
        .await
        .expect("summary");
    assert_eq!(summary["queue"]["length"], copied.len(), "{summary}");
    for id in &expected {
        let task = restored_client.get(*id).await.expect("a backed-up task");
        assert_eq!(task.status, WorkTaskStatus::Queued);
    }
}

/// Worker processes of the orchestrator at `url`.
fn live_workers(url: &str) -> usize {
    processes_mentioning(url)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).nth(1) == Some(b"worker".as_slice()))
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_left_by_a_killed_orchestrator_are_adopted_and_the_pool_never_exceeds_max_workers()
{
    // Leases long enough to outlast the restart: the old workers' attempts
    // stay theirs. One task at a time per worker: two run at once.
    let mut orchestrator = Orchestrator::start_with_config(
        "orchestrator:\n  leaseTtlMs: 20000\n  workerConcurrency: 1\n",
        &["--max-workers", "2", "--min-workers", "2"],
    );
    let client = orchestrator.client();
    let pipeline = one_step(&client, "nap", "core.sleep", json!({"ms": 3000})).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let task = harness::pipelines::execute(&client, &pipeline, json!({})).await;
        ids.push(task.worktask_id);
    }
    let started = Instant::now();
    let running = loop {
        let mut running = Vec::new();
        for id in &ids {
            if client.get(*id).await.expect("get").status == WorkTaskStatus::Executing {
                running.push(*id);
            }
        }
        if running.len() == 2 {
            break running;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "two tasks never ran at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Count worker processes all along, from before the crash to the end.
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (url, stop, most) = (orchestrator.url.clone(), stop.clone(), most.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                most.fetch_max(live_workers(&url), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    orchestrator.kill9();
    assert_eq!(
        live_workers(&orchestrator.url),
        2,
        "the workers outlive the crash"
    );
    // A pid reused by another process, and one that is gone, are not adopted.
    let pid_dir = orchestrator.data_dir().join("workers");
    std::fs::write(
        pid_dir.join("local-reused.pid"),
        format!("{}\n", std::process::id()),
    )
    .expect("a pid file");
    std::fs::write(pid_dir.join("local-gone.pid"), "4194999\n").expect("a pid file");
    orchestrator.restart();
    let client = orchestrator.client();

    // The old workers finish their attempts and the new orchestrator takes
    // their results; then the rest of the queue runs.
    let started = Instant::now();
    for id in &ids {
        loop {
            let task = client.get(*id).await.expect("get");
            if task.status == WorkTaskStatus::Completed {
                if running.contains(id) {
                    assert_eq!(
                        task.retry_count, 0,
                        "the old worker's result was taken: {task:?}"
                    );
                }
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "task {id} did not complete: {task:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    watcher.join().expect("watcher");
    let most = most.load(Ordering::SeqCst);
    assert!(
        most <= 2,
        "{most} worker processes ran at once with maxWorkers 2"
    );
    assert!(
        orchestrator
            .log()
            .contains("adopted a worker left running by the previous orchestrator"),
        "{}",
        orchestrator.log()
    );
    let summary: Value = client
        .call(Method::GET, "/api/metrics", None)
        .await
        .expect("summary");
    assert_eq!(summary["tasks_by_status"]["completed"], 4, "{summary}");
    // One pid file per live worker: the adopted ones, nothing spawned beside them.
    let pid_files = std::fs::read_dir(orchestrator.data_dir().join("workers"))
        .expect("the pid files")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
        .count();
    assert_eq!(pid_files, live_workers(&orchestrator.url));
    assert_eq!(pid_files, 2);
}
