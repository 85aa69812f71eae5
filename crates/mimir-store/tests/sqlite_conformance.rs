//! The conformance suite against a real SQLite file, plus SQLite-specific
//! behaviour: restart recovery and refusing a corrupt file.

use mimir_core::{Priority, WorkTaskStatus, WorkTaskType};
use mimir_store::{SqliteOptions, SqliteStore, Store, StoreError, conformance};
use std::sync::Arc;

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    let options = SqliteOptions {
        retry: conformance::TEST_RETRY,
        lease_ttl: conformance::TEST_LEASE_TTL,
        aging: Some(conformance::TEST_AGING),
        ..SqliteOptions::default()
    };
    SqliteStore::open(dir.path(), options).expect("open store")
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let dir = tempfile::tempdir().expect("tempdir");
                conformance::run(stringify!($check), Arc::new(open(&dir))).await;
            }
        )*

        #[test]
        fn every_conformance_check_runs() {
            let mut ran = vec![$(stringify!($check)),*];
            let mut checks: Vec<&str> = conformance::CHECKS.iter().map(|(name, _)| *name).collect();
            ran.sort_unstable();
            checks.sort_unstable();
            assert_eq!(ran, checks, "each check in conformance::CHECKS gets a test here");
        }
    };
}

conformance_tests!(
    submit_then_get,
    most_urgent_in_queue_order,
    list_filters_and_pages,
    list_filters_priority_and_time,
    cancel_queued,
    lease_and_complete,
    failures_retry_then_fail,
    permanent_failures_are_not_retried,
    expired_leases_retry,
    release_and_cancel_running,
    lease_types_and_limits,
    catalog_round_trips,
    storage_configs_round_trip,
    models_round_trip,
    refused_model_changes_store_nothing,
    model_versions_number_up_and_go_with_the_model,
    close_commits_then_refuses_writes,
    concurrent_submits_all_land,
    concurrent_start_training_one_wins,
    finish_many_decides_each_report,
    only_leases_take_the_named_task,
    aging_lifts_long_waiting_tasks,
    queue_signal_wakes_waiters,
    nul_characters_do_not_fail_writes,
    concurrent_leases_never_share_a_task,
    schedules_round_trip,
    due_schedules_in_order_with_their_previous_runs,
    concurrent_advances_apply_once,
    stale_advances_store_nothing,
    checkpoints_merge_and_replace,
    webhook_replays_are_refused_within_the_window,
    pipeline_triggers_and_deletion,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_recovers_the_queue_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut submitted = Vec::new();
    {
        let store = open(&dir);
        for priority in [3, 8, 3, 10, 1, 8] {
            let task = conformance::task(WorkTaskType::MlInference, priority, "p");
            submitted.push(task.clone());
            store.submit(vec![task]).await.expect("submit");
        }
        store
            .cancel(submitted[5].worktask_id, chrono::Utc::now())
            .await
            .expect("cancel");
    }
    let store = open(&dir);
    assert_eq!(store.queue_length().await.expect("queue length"), 5);
    let (_, order) = store.most_urgent(Priority::MIN, 10).await.expect("urgent");
    let order: Vec<_> = order.into_iter().map(|t| t.worktask_id).collect();
    let want: Vec<_> = [3, 1, 0, 2, 4]
        .iter()
        .map(|&i| submitted[i].worktask_id)
        .collect();
    assert_eq!(order, want);
    assert_eq!(
        store
            .counts()
            .await
            .expect("counts")
            .get(WorkTaskType::MlInference, WorkTaskStatus::Cancelled),
        1
    );
    // New submissions after a restart go behind the recovered ones.
    let late = conformance::task(WorkTaskType::MlInference, 10, "p");
    store.submit(vec![late.clone()]).await.expect("submit");
    let (_, order) = store.most_urgent(Priority::MAX, 10).await.expect("urgent");
    assert_eq!(order.last().map(|t| t.worktask_id), Some(late.worktask_id));
}

#[test]
fn a_corrupt_database_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mimir.db"), vec![0x42; 8192]).expect("write junk");
    let error = SqliteStore::open(dir.path(), SqliteOptions::default())
        .err()
        .expect("refused");
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("mimir.db"), "{message}");
    assert!(message.contains("not a database"), "{message}");
}

#[test]
fn an_unusable_data_dir_is_refused_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let error = SqliteStore::open(&file.join("data"), SqliteOptions::default())
        .err()
        .expect("refused");
    assert!(error.to_string().contains("a-file"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_fails_when_the_schema_falls_behind_the_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store.ping().await.expect("a fresh store is current");
    // Another process rolls the file back to an older schema.
    let conn = rusqlite::Connection::open(dir.path().join(mimir_store::sqlite::DB_FILE_NAME))
        .expect("open file");
    conn.pragma_update(None, "user_version", 1)
        .expect("set user_version");
    let error = store.ping().await.expect_err("behind the build");
    assert!(error.to_string().contains("migration 1"), "{error}");
}
