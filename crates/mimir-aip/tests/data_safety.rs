//! The orchestrator keeps its data safe: a clean shutdown leaves `mimir.db`
//! complete on its own — through the real binary.

mod harness;

use harness::Orchestrator;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use uuid::Uuid;

async fn submit_batch(client: &mimir_client::Client, n: usize) -> Vec<Uuid> {
    let batch: Vec<Value> = (0..n)
        .map(
            |i| json!({"type": "pipeline_execution", "project_id": "safe", "priority": 1 + i % 10}),
        )
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
