//! A commit that fails answers every caller in its group with the failure,
//! whether its command ran, failed, or was never reached.

use super::{Command, Core, Op, Outcome, Writer};
use crate::StoreError;
use crate::conformance::task;
use crate::sqlite::{row::NewRow, schema};
use mimir_core::{QueueIndex, RetryPolicy, WorkTask, WorkTaskType};
use parking_lot::Mutex;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// A writer over a real database file in `dir`, without its thread: the test
/// hands it one group at a time, so the grouping is exact.
fn writer(dir: &tempfile::TempDir) -> Writer {
    let mut conn = Connection::open(dir.path().join("mimir.db")).expect("open");
    schema::prepare_writer(&conn, false).expect("prepare");
    schema::migrate(&mut conn).expect("migrate");
    let (live, next_seq) =
        schema::load_live(&conn, QueueIndex::new(None), Duration::from_secs(15)).expect("load");
    Writer {
        conn,
        core: Core {
            live: Arc::new(Mutex::new(live)),
            queue_signal: Arc::new(Notify::new()),
            retry: RetryPolicy::default(),
            next_seq,
            events: None,
        },
        events_capacity: 0,
        storage_full: Arc::new(AtomicBool::new(false)),
        full: false,
    }
}

fn submit(task: WorkTask) -> (Command, oneshot::Receiver<Result<Outcome, StoreError>>) {
    let (reply, answer) = oneshot::channel();
    let op = Op::Submit(vec![NewRow::encode(task).expect("encode")]);
    (Command { op, reply }, answer)
}

/// A task whose row needs many new pages.
fn large_task() -> WorkTask {
    let mut task = task(WorkTaskType::PipelineExecution, 5, "p");
    task.task_spec
        .parameters
        .insert("blob".into(), "x".repeat(256 * 1024).into());
    task
}

fn stored(writer: &Writer) -> u64 {
    writer
        .conn
        .query_row("SELECT count(*) FROM worktasks", [], |r| r.get(0))
        .expect("count")
}

#[test]
fn a_failed_commit_answers_every_caller_with_its_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer = writer(&dir);
    // The database may not grow: the large row fails with SQLITE_FULL, as on
    // a full disk.
    let pages: u64 = writer
        .conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("page_count");
    let limit: u64 = writer
        .conn
        .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
            r.get(0)
        })
        .expect("max_page_count");
    assert_eq!(limit, pages);

    let before = task(WorkTaskType::MlTraining, 3, "p");
    let after = task(WorkTaskType::MlInference, 3, "p");
    let (ran, ran_answer) = submit(before.clone());
    let (failed, failed_answer) = submit(large_task());
    let (untried, untried_answer) = submit(after.clone());
    let mut group = vec![ran, failed, untried];
    writer.commit_group(&mut group);

    for (caller, answer) in [
        ("ran before the failure", ran_answer),
        ("failed", failed_answer),
        ("never reached", untried_answer),
    ] {
        match answer.blocking_recv() {
            Ok(Err(StoreError::StorageFull(_))) => {}
            other => panic!("the command that {caller} got {other:?}, not storage_full"),
        }
    }
    assert!(group.is_empty());
    assert_eq!(stored(&writer), 0, "a failed group stores nothing");
    assert_eq!(writer.core.live.lock().counts.total(), 0);
    assert_eq!(writer.core.live.lock().queue.len(), 0);
    assert!(writer.storage_full.load(Ordering::Relaxed));

    // Once there is room, the same writer commits again.
    writer
        .conn
        .query_row("PRAGMA max_page_count = 1000000", [], |r| {
            r.get::<_, u64>(0)
        })
        .expect("max_page_count");
    let (again, again_answer) = submit(after.clone());
    writer.commit_group(&mut vec![again]);
    match again_answer.blocking_recv() {
        Ok(Ok(Outcome::Tasks(tasks))) => assert_eq!(tasks, vec![after]),
        other => panic!("the retried submit got {other:?}"),
    }
    assert_eq!(stored(&writer), 1);
    assert!(!writer.storage_full.load(Ordering::Relaxed));
}

#[test]
fn a_failed_commit_answers_a_non_space_failure_as_commit_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer = writer(&dir);
    // A trigger that aborts every insert: a database error that is not about
    // space, raised by SQLite itself mid-group.
    writer
        .conn
        .execute_batch(
            "CREATE TEMP TRIGGER refuse AFTER INSERT ON main.worktasks \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )
        .expect("trigger");
    let (first, first_answer) = submit(task(WorkTaskType::MlTraining, 3, "p"));
    let (second, second_answer) = submit(task(WorkTaskType::MlTraining, 4, "p"));
    writer.commit_group(&mut vec![first, second]);
    for answer in [first_answer, second_answer] {
        match answer.blocking_recv() {
            Ok(Err(StoreError::CommitFailed(message))) => {
                assert!(message.contains("refused by the test"), "{message}");
            }
            other => panic!("got {other:?}, not commit_failed"),
        }
    }
    assert_eq!(stored(&writer), 0);
    assert!(!writer.storage_full.load(Ordering::Relaxed));
}
