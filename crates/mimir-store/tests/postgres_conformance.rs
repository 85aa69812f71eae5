//! The conformance suite against a real PostgreSQL, each test in a schema of
//! its own, plus what only a shared database shows: two stores leasing from
//! one queue, leadership, results posted through another process, and
//! replicas migrating at once.
//!
//! Reads `MIMIR_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Without a reachable server
//! the tests fail, saying how to start one.

use chrono::Utc;
use mimir_core::{AttemptOutcome, WorkTaskResult, WorkTaskStatus, WorkTaskType};
use mimir_store::{
    LeaseRequest, PostgresOptions, PostgresStore, Store, StoreError, Term, conformance,
};
use sqlx_core::connection::Connection;
use sqlx_postgres::PgConnection;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn url() -> String {
    std::env::var("MIMIR_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

async fn connect() -> PgConnection {
    let url = url();
    match PgConnection::connect(&url).await {
        Ok(conn) => conn,
        Err(error) => panic!(
            "PostgreSQL is not reachable at {url}: {error}. These tests need one: start it \
             (for example `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust \
             -e POSTGRES_DB=test postgres:16`) or point MIMIR_TEST_POSTGRES_URL at one."
        ),
    }
}

async fn execute(sql: &str) {
    let mut conn = connect().await;
    sqlx_core::raw_sql::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A fresh schema, dropped when the test ends, whether it passed or panicked.
struct Schema(String);

impl Schema {
    async fn new() -> Schema {
        let name = format!("t_{}", Uuid::new_v4().simple());
        execute(&format!("CREATE SCHEMA {name}")).await;
        Schema(name)
    }

    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            schema: Some(self.0.clone()),
            pool_size: 6,
            retry: conformance::TEST_RETRY,
            lease_ttl: conformance::TEST_LEASE_TTL,
            aging: Some(conformance::TEST_AGING),
            ..PostgresOptions::new(url())
        }
    }

    async fn open(&self) -> PostgresStore {
        PostgresStore::open(self.options())
            .await
            .expect("open store")
    }

    /// A store leasing in plain priority order.
    async fn open_without_aging(&self) -> PostgresStore {
        let options = PostgresOptions {
            aging: None,
            ..self.options()
        };
        PostgresStore::open(options).await.expect("open store")
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime (maybe while it unwinds): a
        // thread of its own with a runtime of its own does the I/O.
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url()).await?;
                sqlx_core::raw_sql::raw_sql(&sql).execute(&mut conn).await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop schema {}: {dropped:?}", self.0);
        }
    }
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let schema = Schema::new().await;
                conformance::run(stringify!($check), Arc::new(schema.open().await)).await;
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

/// The checks of the lease order, on stores without aging (the suite's
/// stores age, and leases then read the queue level by level).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_checks_hold_without_aging() {
    for check in [
        "most_urgent_in_queue_order",
        "lease_and_complete",
        "lease_types_and_limits",
        "failures_retry_then_fail",
        "release_and_cancel_running",
        "concurrent_leases_never_share_a_task",
    ] {
        let schema = Schema::new().await;
        conformance::run(check, Arc::new(schema.open_without_aging().await)).await;
    }
}

fn request(worker: &str, max: usize) -> LeaseRequest {
    LeaseRequest {
        worker_id: worker.into(),
        max,
        types: None,
        limits: HashMap::new(),
        only: None,
        at: Utc::now(),
    }
}

fn completed(id: Uuid, attempt: u32) -> WorkTaskResult {
    WorkTaskResult {
        worktask_id: Some(id),
        status: AttemptOutcome::Completed,
        output_location: String::new(),
        metadata: serde_json::Value::Null,
        error_message: String::new(),
        attempt: Some(attempt),
        worker_id: None,
        started_at: None,
        result: None,
        error_class: None,
        storage_operations: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_lease_every_task_exactly_once() {
    const TASKS: usize = 10_000;
    let schema = Schema::new().await;
    let stores = [
        Arc::new(schema.open_without_aging().await),
        Arc::new(schema.open_without_aging().await),
    ];
    let mut all = HashSet::new();
    for batch in 0..TASKS / 1000 {
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                conformance::task(
                    WorkTaskType::ALL[i % WorkTaskType::COUNT],
                    1 + (i as i64 % 10),
                    "load",
                )
            })
            .collect();
        all.extend(tasks.iter().map(|t| t.worktask_id));
        stores[batch % 2].submit(tasks).await.expect("submit");
    }
    let mut loops = Vec::new();
    for n in 0..8 {
        let store = stores[n % 2].clone();
        loops.push(tokio::spawn(async move {
            let worker = format!("w{n}");
            let mut leased = Vec::new();
            loop {
                let got = store.lease(request(&worker, 37)).await.expect("lease");
                if got.is_empty() {
                    return leased;
                }
                leased.extend(got.into_iter().map(|t| (t.worktask_id, t.attempt)));
            }
        }));
    }
    let mut seen = HashSet::new();
    for handle in loops {
        for (id, attempt) in handle.await.expect("lease loop") {
            assert_eq!(attempt, 1, "task {id} leased under attempt {attempt}");
            assert!(seen.insert(id), "task {id} handed out twice");
        }
    }
    assert_eq!(seen, all, "every task leased once");
    let counts = stores[0].counts().await.expect("counts");
    assert_eq!(counts.by_status()[&WorkTaskStatus::Scheduled], TASKS as u64);
    assert_eq!(stores[1].queue_length().await.expect("queue length"), TASKS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_passes_on_expiry_or_resignation() {
    let schema = Schema::new().await;
    let a = schema.open().await;
    let b = schema.open().await;
    let ttl = Duration::from_millis(600);
    let first = a.lead("a", ttl).await.expect("lead").expect("a leads");
    assert_eq!(b.lead("b", ttl).await.expect("lead"), None, "a leads");
    assert_eq!(a.lead("a", ttl).await.expect("lead"), Some(first), "kept");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let second = b.lead("b", ttl).await.expect("lead").expect("b took over");
    assert!(second > first, "{second:?} after {first:?}");
    assert_eq!(a.lead("a", ttl).await.expect("lead"), None, "b leads now");
    match a.expire_leases(Utc::now(), first).await {
        Err(StoreError::Deposed { term }) => assert_eq!(term, first.0),
        other => panic!("a deposed leader's write: {other:?}"),
    }
    b.expire_leases(Utc::now(), second)
        .await
        .expect("the leader writes");
    b.resign("b", second).await.expect("resign");
    let third = a
        .lead("a", ttl)
        .await
        .expect("lead")
        .expect("at once after a resignation");
    assert!(third > second, "{third:?} after {second:?}");
    assert!(matches!(
        b.expire_leases(Utc::now(), second).await,
        Err(StoreError::Deposed { .. })
    ));
    let placement = mimir_store::Placement {
        id: Uuid::now_v7(),
        attempt: 1,
        worker_id: "w".into(),
        cluster_name: "c".into(),
        kubernetes_job_name: "j".into(),
    };
    assert!(matches!(
        b.place(vec![placement], Term(second.0)).await,
        Err(StoreError::Deposed { .. })
    ));
    // A leader whose own lease lapsed starts a new term when it takes over
    // again: its writes under the lapsed one stay refused.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let fourth = a.lead("a", ttl).await.expect("lead").expect("a again");
    assert!(fourth > third, "{fourth:?} after {third:?}");
    assert!(matches!(
        a.expire_leases(Utc::now(), third).await,
        Err(StoreError::Deposed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_posted_through_another_store_is_accepted() {
    let schema = Schema::new().await;
    let leasing = schema.open().await;
    let other = schema.open().await;
    let t = conformance::task(WorkTaskType::MlInference, 5, "p");
    leasing.submit(vec![t.clone()]).await.expect("submit");
    let leased = leasing.lease(request("w", 1)).await.expect("lease");
    assert_eq!(leased.len(), 1);
    assert!(other.holds("w", t.worktask_id, 1).await.expect("holds"));
    let done = other
        .finish(
            t.worktask_id,
            Some("w".into()),
            completed(t.worktask_id, 1),
            Utc::now(),
        )
        .await
        .expect("finish through the other store");
    assert_eq!(done.status, WorkTaskStatus::Completed);
    let seen = leasing
        .get(t.worktask_id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(seen.status, WorkTaskStatus::Completed);
    let renewal = leasing
        .renew("w", &[(t.worktask_id, 1)])
        .await
        .expect("renew");
    assert_eq!(renewal.lost, vec![t.worktask_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_migrate_once() {
    let schema = Schema::new().await;
    let (a, b) = tokio::join!(
        PostgresStore::open(schema.options()),
        PostgresStore::open(schema.options())
    );
    let (a, b) = (a.expect("open a"), b.expect("open b"));
    a.ping().await.expect("a is current");
    b.ping().await.expect("b is current");
    let mut conn = connect().await;
    let (rows, versions): (i64, i64) = sqlx_core::query_as::query_as(&format!(
        "SELECT count(*), count(DISTINCT version) FROM {}.mimir_migrations",
        schema.0
    ))
    .fetch_one(&mut conn)
    .await
    .expect("migrations");
    assert_eq!(rows, versions, "each migration recorded once");
    assert!(rows >= 5, "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_build_is_refused_and_one_behind_fails_ping() {
    let schema = Schema::new().await;
    let store = schema.open().await;
    store.ping().await.expect("current");
    execute(&format!(
        "DELETE FROM {}.mimir_migrations WHERE version = (SELECT max(version) FROM {}.mimir_migrations)",
        schema.0, schema.0
    ))
    .await;
    let behind = store.ping().await.expect_err("behind the build");
    assert!(
        behind.to_string().contains("schema at migration"),
        "{behind}"
    );
    execute(&format!(
        "INSERT INTO {}.mimir_migrations (version, name) VALUES (999, 'from the future')",
        schema.0
    ))
    .await;
    let newer = PostgresStore::open(schema.options())
        .await
        .err()
        .expect("refused");
    assert!(
        newer.to_string().contains("newer than this binary"),
        "{newer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_never_show_the_password() {
    let options = PostgresOptions {
        acquire_timeout: Duration::from_secs(2),
        ..PostgresOptions::new("postgres://mimir:s3cr3t-pw@127.0.0.1:1/nowhere")
    };
    let error = PostgresStore::open(options).await.err().expect("refused");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let message = error.to_string();
    assert!(!message.contains("s3cr3t-pw"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(error.is_backend_failure());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_many_completes_a_batch_and_refuses_a_repeated_report() {
    let schema = Schema::new().await;
    let store = schema.open().await;
    let tasks: Vec<_> = (0..200)
        .map(|_| conformance::task(WorkTaskType::PipelineExecution, 5, "p"))
        .collect();
    store.submit(tasks.clone()).await.expect("submit");
    let leased = store.lease(request("w", 200)).await.expect("lease");
    assert_eq!(leased.len(), 200);
    let started = Utc::now();
    let mut reports: Vec<_> = tasks
        .iter()
        .map(|t| WorkTaskResult {
            started_at: Some(started),
            ..completed(t.worktask_id, 1)
        })
        .collect();
    reports.push(completed(tasks[7].worktask_id, 1));
    let answers = store
        .finish_many("w", reports, Utc::now())
        .await
        .expect("finish_many");
    assert!(
        answers[..200]
            .iter()
            .all(|a| matches!(a, Ok(WorkTaskStatus::Completed))),
        "{answers:?}"
    );
    assert!(
        matches!(answers[200], Err(StoreError::Transition { .. })),
        "{:?}",
        answers[200]
    );
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        counts.get(WorkTaskType::PipelineExecution, WorkTaskStatus::Completed),
        200
    );
    assert_eq!(store.queue_length().await.expect("queue length"), 0);
    let attempts = store
        .attempts(tasks[7].worktask_id)
        .await
        .expect("attempts")
        .expect("present");
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0].started_at.map(|t| t.timestamp_micros()),
        Some(started.timestamp_micros())
    );
    assert!(store.leases_by_worker().await.expect("leases").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_limit_holds_across_stores_leasing_at_once() {
    const LIMIT: usize = 5;
    let schema = Schema::new().await;
    let stores = [
        Arc::new(schema.open_without_aging().await),
        Arc::new(schema.open().await),
    ];
    let tasks: Vec<_> = (0..100)
        .map(|_| conformance::task(WorkTaskType::MlTraining, 5, "p"))
        .collect();
    stores[0].submit(tasks).await.expect("submit");
    let mut loops = Vec::new();
    for n in 0..8 {
        let store = stores[n % 2].clone();
        loops.push(tokio::spawn(async move {
            let mut limited = request(&format!("w{n}"), 3);
            limited.limits.insert(WorkTaskType::MlTraining, LIMIT);
            let mut leased = 0;
            for _ in 0..5 {
                leased += store.lease(limited.clone()).await.expect("lease").len();
            }
            leased
        }));
    }
    let mut leased = 0;
    for handle in loops {
        leased += handle.await.expect("lease loop");
    }
    assert_eq!(leased, LIMIT, "never more running than the limit");
    let counts = stores[1].counts().await.expect("counts");
    assert_eq!(
        counts.get(WorkTaskType::MlTraining, WorkTaskStatus::Scheduled),
        LIMIT as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_fire_a_schedule_once() {
    let schema = Schema::new().await;
    let stores = [Arc::new(schema.open().await), Arc::new(schema.open().await)];
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let schedule = mimir_core::Schedule {
        id: Uuid::now_v7().to_string(),
        project_id: "p".into(),
        name: "replicas".into(),
        pipeline_id: "pa".into(),
        pipeline_ids: vec!["pa".into()],
        cron: "* * * * *".into(),
        timezone: "UTC".into(),
        parameters: serde_json::Map::new(),
        priority: mimir_core::Priority::new(5).expect("priority"),
        enabled: true,
        catchup: mimir_core::CatchUp::Skip,
        overlap: mimir_core::Overlap::Allow,
        jitter_ms: 0,
        next_fire_at: Some(now),
        next_due_at: Some(now),
        queued_fire_at: None,
        last_fire_at: None,
        last_task_id: None,
        last_task_ids: Vec::new(),
        last_outcome: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    };
    let schedule = stores[0]
        .put_schedule(schedule, true)
        .await
        .expect("create");
    // Each replica's scheduler decides from the same revision, many times over.
    let mut passes = Vec::new();
    for n in 0..16 {
        let store = stores[n % 2].clone();
        let schedule = schedule.clone();
        passes.push(tokio::spawn(async move {
            let mut fired = conformance::task(WorkTaskType::PipelineExecution, 5, "p");
            fired.task_spec.schedule_id = schedule.id.clone();
            let advance = mimir_store::ScheduleAdvance {
                schedule_id: schedule.id.clone(),
                revision: schedule.revision,
                next_fire_at: Some(now + chrono::Duration::minutes(1)),
                next_due_at: Some(now + chrono::Duration::minutes(1)),
                queued_fire_at: None,
                last_outcome: Some(mimir_core::FireOutcome::Fired),
                last_fire_at: Some(now),
                last_task_ids: vec![fired.worktask_id],
                tasks: vec![fired],
            };
            store
                .advance_schedules(vec![advance], None)
                .await
                .expect("advance")
        }));
    }
    let mut applied = 0;
    for pass in passes {
        applied += pass.await.expect("pass").iter().filter(|a| **a).count();
    }
    assert_eq!(applied, 1, "one replica's decision applied");
    assert_eq!(stores[1].counts().await.expect("counts").total(), 1);
    let stored = stores[1]
        .get_schedule(&schedule.id)
        .await
        .expect("get")
        .expect("schedule");
    assert_eq!(stored.revision, 2);
}
