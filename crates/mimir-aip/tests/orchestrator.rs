//! End to end through the real binary: durability across kill -9, start-up
//! errors, configuration precedence.

mod harness;

use harness::{Orchestrator, cli_in, stderr_failed};
use mimir_core::WorkTaskStatus;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_finds_every_acknowledged_task_in_order() {
    let mut orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let client = orchestrator.client();
    let pipeline = harness::pipelines::noop(&client).await;
    // (priority, arrival) of every acknowledged task.
    let mut acknowledged = Vec::new();
    for i in 0..60i64 {
        let task = client
            .submit(&json!({"type":"ml_inference","project_id":"p","priority": 1 + (i * 7) % 10, "task_spec": {"pipeline_id": pipeline}}))
            .await
            .expect("submit");
        acknowledged.push(task);
    }
    let batch: Vec<_> = (0..140i64)
        .map(|i| json!({"type":"ml_training","project_id":"q","priority": 1 + (i * 3) % 10, "task_spec": {"pipeline_id": pipeline}}))
        .collect();
    acknowledged.extend(client.submit_batch(&batch).await.expect("batch"));
    let cancelled = acknowledged.remove(5);
    client.cancel(cancelled.worktask_id).await.expect("cancel");

    orchestrator.restart();
    let client = orchestrator.client();
    assert_eq!(client.queue_length().await.expect("length"), 199);
    // The queue order after the restart is priority, then arrival.
    let mut expected = acknowledged.clone();
    expected.sort_by_key(|t| std::cmp::Reverse(t.priority));
    let urgent: serde_json::Value = client
        .call(
            reqwest::Method::GET,
            "/api/worktasks/high-priority?min_priority=1&limit=1000",
            None,
        )
        .await
        .expect("high-priority");
    let got: Vec<Uuid> = urgent["worktasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            t["worktask_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("id")
        })
        .collect();
    let want: Vec<Uuid> = expected.iter().map(|t| t.worktask_id).collect();
    assert_eq!(got, want);
    for task in &acknowledged {
        assert_eq!(&client.get(task.worktask_id).await.expect("get"), task);
    }
    assert_eq!(
        client.get(cancelled.worktask_id).await.expect("get").status,
        WorkTaskStatus::Cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_task() {
    let mut orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let pipeline = harness::pipelines::noop(&orchestrator.client()).await;
    let mut writers = Vec::new();
    for w in 0..6 {
        let client = orchestrator.client();
        let acknowledged = acknowledged.clone();
        let pipeline = pipeline.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let result = if w % 2 == 0 {
                    client.submit(&json!({"type":"pipeline_execution","project_id":"crash","priority": 1 + i % 10, "task_spec": {"pipeline_id": pipeline}})).await.map(|t| vec![t])
                } else {
                    let batch: Vec<_> = (0..20).map(|_| json!({"type":"ml_inference","project_id":"crash","task_spec": {"pipeline_id": pipeline}})).collect();
                    client.submit_batch(&batch).await
                };
                match result {
                    Ok(tasks) => acknowledged.lock().expect("lock").extend(tasks.into_iter().map(|t| t.worktask_id)),
                    Err(_) => return,
                }
            }
        }));
    }
    while acknowledged.lock().expect("lock").len() < 3000 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    orchestrator.kill9();
    for writer in writers {
        writer.await.expect("writer");
    }
    let acknowledged: Vec<Uuid> = acknowledged.lock().expect("lock").clone();
    orchestrator.restart();
    let client = orchestrator.client();
    let mut found = HashSet::new();
    let mut cursor = None;
    loop {
        let filter = mimir_client::ListFilter {
            project_id: Some("crash".into()),
            limit: Some(1000),
            cursor,
            ..Default::default()
        };
        let page = client.list(&filter).await.expect("list");
        found.extend(page.worktasks.iter().map(|t| t.worktask_id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !found.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged tasks lost, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        lost.first()
    );
    assert_eq!(
        client.queue_length().await.expect("length") as usize,
        found.len(),
        "the queue holds what the store holds"
    );
}

#[test]
fn a_corrupt_database_stops_start_up_naming_the_path() {
    if harness::postgres::skip_sqlite_only("a_corrupt_database_stops_start_up_naming_the_path") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    std::fs::write(dir.path().join("data/mimir.db"), vec![7u8; 4096]).expect("junk");
    let output = cli_in(
        dir.path(),
        &["serve", "--data-dir", "data", "--listen", "127.0.0.1:0"],
    );
    let stderr = stderr_failed(&output);
    assert!(stderr.contains("data/mimir.db"), "{stderr}");
}

#[test]
fn an_unwritable_data_dir_stops_start_up_naming_the_path() {
    if harness::postgres::skip_sqlite_only("an_unwritable_data_dir_stops_start_up_naming_the_path")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("occupied"), b"a file, not a directory").expect("write");
    let output = cli_in(
        dir.path(),
        &[
            "serve",
            "--data-dir",
            "occupied/data",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let stderr = stderr_failed(&output);
    assert!(stderr.contains("occupied/data"), "{stderr}");
}

#[test]
fn a_bad_config_key_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mimir.yaml"),
        "orchestrator:\n  maxWorker: 3\n",
    )
    .expect("write");
    let output = cli_in(dir.path(), &["serve", "--config", "mimir.yaml"]);
    let stderr = stderr_failed(&output);
    assert!(stderr.contains("orchestrator.maxWorker"), "{stderr}");
    assert!(stderr.contains("mimir.yaml"), "{stderr}");
    let output = cli_in(dir.path(), &["serve", "--listen", "not-an-address"]);
    assert!(stderr_failed(&output).contains("listen"));
}

#[test]
fn the_environment_overrides_the_file_and_flags_override_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file_port, env_port, flag_port) = (
        harness::free_port(),
        harness::free_port(),
        harness::free_port(),
    );
    std::fs::write(
        dir.path().join("mimir.yaml"),
        format!("listen: 127.0.0.1:{file_port}\norchestrator:\n  maxWorkers: 0\n"),
    )
    .expect("write");
    let start = |with_flag: bool| {
        let mut command = std::process::Command::new(harness::bin());
        command
            .current_dir(dir.path())
            .args(["serve", "--config", "mimir.yaml"])
            .env("MIMIR_LISTEN", format!("127.0.0.1:{env_port}"));
        if with_flag {
            command.args(["--listen", &format!("127.0.0.1:{flag_port}")]);
        }
        command
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let listening = |port: u16| {
        (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
    };
    let mut child = start(false);
    assert!(listening(env_port), "MIMIR_LISTEN wins over the file");
    child.kill().expect("kill");
    child.wait().expect("wait");
    let mut child = start(true);
    assert!(listening(flag_port), "--listen wins over MIMIR_LISTEN");
    child.kill().expect("kill");
    child.wait().expect("wait");
}

#[test]
fn a_second_orchestrator_on_one_data_directory_stops_at_once_naming_the_first() {
    if harness::postgres::skip_sqlite_only(
        "a_second_orchestrator_on_one_data_directory_stops_at_once_naming_the_first",
    ) {
        return;
    }
    let first = Orchestrator::start(&["--max-workers", "0"]);
    let started = std::time::Instant::now();
    let output = std::process::Command::new(harness::bin())
        .args(["serve", "--max-workers", "0", "--listen"])
        .arg(format!("127.0.0.1:{}", harness::free_port()))
        .arg("--data-dir")
        .arg(first.data_dir())
        .output()
        .expect("run a second serve");
    assert!(!output.status.success(), "a second orchestrator started");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "it did not stop at once"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("already serves this data directory"),
        "{stderr}"
    );
    // The first still listens.
    assert!(std::net::TcpStream::connect(("127.0.0.1", first.port)).is_ok());
}
