//! Behaviour every [`Store`] backend must show.
//!
//! Each check takes a fresh, empty store opened with [`TEST_RETRY`],
//! [`TEST_LEASE_TTL`] and [`TEST_AGING`]. [`CHECKS`] lists them, built from the checks themselves
//! so that none can be left out, and a backend's tests run every one.

use crate::{LeaseRequest, ListQuery, Store, StoreError};
use chrono::{Duration, SubsecRound, Utc};
use mimir_core::{
    AttemptEnd, AttemptOutcome, ErrorClass, Priority, RetryPolicy, Submission, WorkTask,
    WorkTaskResult, WorkTaskStatus, WorkTaskType,
};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use uuid::Uuid;

/// Retry backoff the checks expect: 50 ms, no jitter.
pub const TEST_RETRY: RetryPolicy = RetryPolicy {
    base: std::time::Duration::from_millis(50),
    cap: std::time::Duration::from_millis(50),
    jitter: 0.0,
};

/// Queue aging the checks expect: an hour of waiting is worth one
/// priority level (checks that do not age tasks finish long before).
pub const TEST_AGING: mimir_core::Aging = mimir_core::Aging {
    interval: std::time::Duration::from_secs(3600),
};

/// Lease lifetime the checks expect.
pub const TEST_LEASE_TTL: std::time::Duration = std::time::Duration::from_millis(300);

/// The term of a leader taken for the check (leader-only writes carry one).
async fn term(store: &dyn Store) -> crate::Term {
    store
        .lead("conformance", std::time::Duration::from_secs(30))
        .await
        .expect("lead")
        .expect("the only candidate leads")
}

fn lease_request(worker: &str, max: usize) -> LeaseRequest {
    LeaseRequest {
        worker_id: worker.into(),
        max,
        types: None,
        limits: HashMap::new(),
        only: None,
        at: Utc::now(),
    }
}

fn report(status: AttemptOutcome, attempt: Option<u32>, error: &str) -> WorkTaskResult {
    WorkTaskResult {
        worktask_id: None,
        status,
        output_location: String::new(),
        metadata: serde_json::Value::Null,
        error_message: error.into(),
        attempt,
        worker_id: None,
        started_at: None,
        result: Some(serde_json::json!({"answer": 42})),
        error_class: None,
        storage_operations: Vec::new(),
    }
}

/// A queued task of `task_type` and `priority`, submitted `offset_ms` after now.
pub fn task(task_type: WorkTaskType, priority: i64, project: &str) -> WorkTask {
    let new = Submission {
        task_type: Some(task_type.as_str().into()),
        priority: Some(priority),
        project_id: Some(project.into()),
        task_spec: Some(mimir_core::TaskSpec {
            pipeline_id: "noop".into(),
            ..mimir_core::TaskSpec::default()
        }),
        ..Submission::default()
    }
    .validate()
    .expect("a valid submission");
    WorkTask::new(Uuid::now_v7(), Utc::now(), new)
}

/// Submitted tasks come back exactly as stored, and `get` finds each.
async fn submit_then_get(store: &dyn Store) {
    let tasks = vec![
        task(WorkTaskType::MlTraining, 3, "p1"),
        task(WorkTaskType::PipelineExecution, 7, "p2"),
    ];
    let stored = store.submit(tasks.clone()).await.expect("submit");
    assert_eq!(stored, tasks);
    for task in &tasks {
        let got = store
            .get(task.worktask_id)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(&got, task);
    }
    assert_eq!(store.get(Uuid::now_v7()).await.expect("get"), None);
    assert_eq!(store.queue_length().await.expect("queue length"), 2);
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        counts.get(WorkTaskType::MlTraining, WorkTaskStatus::Queued),
        1
    );
    assert_eq!(counts.total(), 2);
}

/// The most urgent list follows priority then arrival, and counts all matches.
async fn most_urgent_in_queue_order(store: &dyn Store) {
    let mut expected = Vec::new();
    for priority in [2, 9, 5, 9, 10, 1] {
        let t = task(WorkTaskType::MlInference, priority, "p");
        store.submit(vec![t.clone()]).await.expect("submit");
        expected.push(t);
    }
    let (total, urgent) = store
        .most_urgent(Priority::new(5).expect("valid"), 10)
        .await
        .expect("urgent");
    assert_eq!(total, 4);
    let got: Vec<(u8, Uuid)> = urgent
        .iter()
        .map(|t| (t.priority.get(), t.worktask_id))
        .collect();
    let want = vec![
        (10, expected[4].worktask_id),
        (9, expected[1].worktask_id),
        (9, expected[3].worktask_id),
        (5, expected[2].worktask_id),
    ];
    assert_eq!(got, want);
    let (_, two) = store.most_urgent(Priority::MIN, 2).await.expect("urgent");
    assert_eq!(two.len(), 2);
}

/// Pages are newest first, filtered, and walk every match exactly once.
async fn list_filters_and_pages(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let t = task(
            WorkTaskType::ALL[i % WorkTaskType::COUNT],
            1 + (i as i64 % 10),
            if i % 2 == 0 { "even" } else { "odd" },
        );
        ids.push(t.worktask_id);
        store.submit(vec![t]).await.expect("submit");
    }
    let mut seen = Vec::new();
    let mut query = ListQuery {
        limit: 4,
        ..ListQuery::default()
    };
    loop {
        let page = store.list(query.clone()).await.expect("list");
        assert!(page.tasks.len() <= 4);
        seen.extend(page.tasks.iter().map(|t| t.worktask_id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every task once, newest first");

    let query = ListQuery {
        project_id: Some("even".into()),
        task_type: Some(WorkTaskType::PipelineExecution),
        status: Some(WorkTaskStatus::Queued.into()),
        limit: 100,
        ..ListQuery::default()
    };
    let page = store.list(query).await.expect("list");
    assert_eq!(page.tasks.len(), 5, "i in 0,6,12,18,24");
    assert!(page.next.is_none());
    assert!(
        page.tasks
            .iter()
            .all(|t| t.project_id == "even" && t.task_type == WorkTaskType::PipelineExecution)
    );

    // Several statuses at once: every task here is queued, so "waiting"
    // (queued, scheduled) finds them all and "running" none.
    let with_status = |filter: &str| ListQuery {
        status: Some(filter.parse().expect("a status filter")),
        limit: 100,
        ..ListQuery::default()
    };
    let waiting = store.list(with_status("waiting")).await.expect("list");
    assert_eq!(waiting.tasks.len(), 25);
    let running = store.list(with_status("running")).await.expect("list");
    assert!(running.tasks.is_empty());
    let either = store
        .list(with_status("failed,queued"))
        .await
        .expect("list");
    assert_eq!(either.tasks.len(), 25);
}

/// Priority and submission-time filters return exactly the matching tasks,
/// even where submission times run slightly out of arrival order.
async fn list_filters_priority_and_time(store: &dyn Store) {
    let base = Utc::now().trunc_subsecs(0) - Duration::hours(10);
    let mut all = Vec::new();
    for i in 0..40i64 {
        let mut t = task(
            WorkTaskType::ALL[i as usize % WorkTaskType::COUNT],
            1 + i % 10,
            "p",
        );
        // Ten seconds apart, every fourth one earlier than the one before it.
        let jitter = if i % 4 == 3 {
            -Duration::seconds(15)
        } else {
            Duration::zero()
        };
        t.submitted_at = base + Duration::seconds(10 * i) + jitter;
        all.push(t.clone());
        store.submit(vec![t]).await.expect("submit");
    }
    let matching = |query: ListQuery| async move {
        let mut ids = Vec::new();
        let mut query = ListQuery { limit: 7, ..query };
        loop {
            let page = store.list(query.clone()).await.expect("list");
            ids.extend(page.tasks.iter().map(|t| t.worktask_id));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        ids
    };
    let expect = |keep: &dyn Fn(&WorkTask) -> bool| {
        all.iter()
            .rev()
            .filter(|t| keep(t))
            .map(|t| t.worktask_id)
            .collect::<Vec<_>>()
    };
    let high = Priority::new(8).expect("priority");
    let low = Priority::new(3).expect("priority");
    assert_eq!(
        matching(ListQuery {
            min_priority: Some(high),
            ..ListQuery::default()
        })
        .await,
        expect(&|t| t.priority >= high)
    );
    assert_eq!(
        matching(ListQuery {
            min_priority: Some(low),
            max_priority: Some(low),
            task_type: Some(WorkTaskType::MlTraining),
            ..ListQuery::default()
        })
        .await,
        expect(&|t| t.priority == low && t.task_type == WorkTaskType::MlTraining)
    );
    for (from_s, until_s) in [
        (0, 60),
        (95, 200),
        (15, 16),
        (155, 155),
        (-60, 10_000),
        (20, 30),
    ] {
        let from = base + Duration::seconds(from_s);
        let until = base + Duration::seconds(until_s);
        assert_eq!(
            matching(ListQuery {
                submitted_from: Some(from),
                submitted_until: Some(until),
                ..ListQuery::default()
            })
            .await,
            expect(&|t| t.submitted_at >= from && t.submitted_at < until),
            "submitted in [{from_s}, {until_s}) seconds"
        );
    }
    let late = base + Duration::days(1);
    assert!(
        matching(ListQuery {
            submitted_from: Some(late),
            ..ListQuery::default()
        })
        .await
        .is_empty()
    );
}

/// Cancelling a queued task takes it out of the queue; a second cancel is refused.
async fn cancel_queued(store: &dyn Store) {
    let keep = task(WorkTaskType::MlTraining, 5, "p");
    let drop = task(WorkTaskType::MlTraining, 5, "p");
    store
        .submit(vec![keep.clone(), drop.clone()])
        .await
        .expect("submit");
    let at = Utc::now() + Duration::seconds(1);
    let cancelled = store.cancel(drop.worktask_id, at).await.expect("cancel");
    assert_eq!(cancelled.status, WorkTaskStatus::Cancelled);
    assert_eq!(
        cancelled.completed_at.map(|t| t.timestamp_micros()),
        Some(at.timestamp_micros())
    );
    assert_eq!(store.queue_length().await.expect("queue length"), 1);
    let again = store.cancel(drop.worktask_id, at).await;
    assert!(
        matches!(again, Err(StoreError::Transition { .. })),
        "{again:?}"
    );
    let missing = store.cancel(Uuid::now_v7(), at).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert_eq!(
        store.queue_length().await.expect("queue length"),
        1,
        "a refused cancel changes nothing"
    );
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        counts.get(WorkTaskType::MlTraining, WorkTaskStatus::Cancelled),
        1
    );
    assert_eq!(
        counts.get(WorkTaskType::MlTraining, WorkTaskStatus::Queued),
        1
    );
}

/// Many concurrent writers: every task stored once, none lost.
async fn concurrent_submits_all_land(store: Arc<dyn Store>) {
    let mut handles = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..50 {
                let t = task(WorkTaskType::PipelineExecution, 4, "load");
                ids.push(t.worktask_id);
                store.submit(vec![t]).await.expect("submit");
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.expect("writer task"));
    }
    assert_eq!(store.queue_length().await.expect("queue length"), 800);
    for id in all {
        assert!(store.get(id).await.expect("get").is_some());
    }
    store.ping().await.expect("ping");
}

/// Leases go most urgent first, each under a new attempt; a result completes
/// the task once, and a second or stale result is refused.
async fn lease_and_complete(store: &dyn Store) {
    let low = task(WorkTaskType::MlInference, 2, "p");
    let high = task(WorkTaskType::MlInference, 9, "p");
    store
        .submit(vec![low.clone(), high.clone()])
        .await
        .expect("submit");
    let leased = store.lease(lease_request("w1", 1)).await.expect("lease");
    assert_eq!(leased.len(), 1);
    let got = &leased[0];
    assert_eq!(
        (
            got.worktask_id,
            got.status,
            got.attempt,
            got.worker_id.as_str()
        ),
        (high.worktask_id, WorkTaskStatus::Scheduled, 1, "w1")
    );
    // Leased but not started still waits.
    assert_eq!(store.queue_length().await.expect("queue length"), 2);
    store
        .start("w1", vec![(high.worktask_id, 1)], Utc::now())
        .await
        .expect("start");
    assert_eq!(
        store.queue_length().await.expect("queue length"),
        1,
        "started: no longer waiting"
    );
    let running = store
        .get(high.worktask_id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(running.status, WorkTaskStatus::Executing);
    assert!(running.started_at.is_some());

    assert!(store.holds("w1", high.worktask_id, 1).await.expect("holds"));
    assert!(!store.holds("w2", high.worktask_id, 1).await.expect("holds"));
    assert!(!store.holds("w1", high.worktask_id, 2).await.expect("holds"));
    let stale = store
        .finish(
            high.worktask_id,
            Some("w1".into()),
            report(AttemptOutcome::Completed, Some(7), ""),
            Utc::now(),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::StaleAttempt { .. })),
        "{stale:?}"
    );
    let wrong_worker = store
        .finish(
            high.worktask_id,
            Some("w2".into()),
            report(AttemptOutcome::Completed, Some(1), ""),
            Utc::now(),
        )
        .await;
    assert!(
        matches!(wrong_worker, Err(StoreError::NotLeaseHolder { .. })),
        "{wrong_worker:?}"
    );
    let done = store
        .finish(
            high.worktask_id,
            Some("w1".into()),
            report(AttemptOutcome::Completed, Some(1), ""),
            Utc::now(),
        )
        .await
        .expect("finish");
    assert_eq!(done.status, WorkTaskStatus::Completed);
    assert_eq!(done.result, Some(serde_json::json!({"answer": 42})));
    assert!(done.completed_at.is_some());
    let attempts = store
        .attempts(high.worktask_id)
        .await
        .expect("attempts")
        .expect("present");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(
        (
            attempts[0].attempt,
            attempts[0].worker_id.as_str(),
            attempts[0].outcome
        ),
        (1, "w1", AttemptEnd::Completed)
    );
    assert_eq!(Some(attempts[0].ended_at), done.completed_at);
    assert_eq!(attempts[0].started_at, done.started_at);
    let twice = store
        .finish(
            high.worktask_id,
            Some("w1".into()),
            report(AttemptOutcome::Completed, Some(1), ""),
            Utc::now(),
        )
        .await;
    assert!(
        matches!(twice, Err(StoreError::Transition { .. })),
        "{twice:?}"
    );
    assert_eq!(
        store
            .counts()
            .await
            .expect("counts")
            .get(WorkTaskType::MlInference, WorkTaskStatus::Completed),
        1
    );
    assert!(store.leases_by_worker().await.expect("leases").is_empty());
    assert!(!store.holds("w1", high.worktask_id, 1).await.expect("holds"));
}

/// A failed attempt goes back to the queue after its backoff, then fails for
/// good when its retries are used up.
async fn failures_retry_then_fail(store: &dyn Store) {
    let mut t = task(WorkTaskType::PipelineExecution, 5, "p");
    t.max_retries = 1;
    store.submit(vec![t.clone()]).await.expect("submit");
    let first = store.lease(lease_request("w", 10)).await.expect("lease");
    assert_eq!(first.len(), 1);
    let retried = store
        .finish(
            t.worktask_id,
            None,
            report(AttemptOutcome::Failed, Some(1), "step x broke"),
            Utc::now(),
        )
        .await
        .expect("finish");
    assert_eq!(retried.status, WorkTaskStatus::Queued);
    assert_eq!(retried.retry_count, 1);
    assert_eq!(retried.retry_reason, "step x broke");
    assert!(retried.not_before.is_some());
    assert_eq!(store.queue_length().await.expect("queue length"), 1);
    assert!(
        store
            .lease(lease_request("w", 10))
            .await
            .expect("lease")
            .is_empty(),
        "not before its backoff"
    );
    // The lease names its time: just before the backoff ends nothing is
    // eligible, at its end the task is.
    let eligible = store
        .next_eligible_at()
        .await
        .expect("next eligible")
        .expect("a task in backoff");
    assert_eq!(Some(eligible), retried.not_before);
    let early = LeaseRequest {
        at: eligible - Duration::milliseconds(1),
        ..lease_request("w", 10)
    };
    assert!(store.lease(early).await.expect("lease").is_empty());
    let due = LeaseRequest {
        at: eligible,
        ..lease_request("w", 10)
    };
    let second = store.lease(due).await.expect("lease");
    assert_eq!(second.iter().map(|t| t.attempt).collect::<Vec<_>>(), [2]);
    let failed = store
        .finish(
            t.worktask_id,
            None,
            report(AttemptOutcome::Failed, None, "broke again"),
            Utc::now(),
        )
        .await
        .expect("finish");
    assert_eq!(
        (
            failed.status,
            failed.retry_count,
            failed.error_message.as_str()
        ),
        (WorkTaskStatus::Failed, 1, "broke again")
    );
    assert_eq!(store.queue_length().await.expect("queue length"), 0);
    let attempts = store
        .attempts(t.worktask_id)
        .await
        .expect("attempts")
        .expect("present");
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.worker_id.as_str(), a.outcome, a.error.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "w", AttemptEnd::Failed, "step x broke"),
            (2, "w", AttemptEnd::Failed, "broke again")
        ]
    );
    assert!(attempts[0].ended_at <= attempts[1].ended_at);
    assert_eq!(
        store.attempts(Uuid::now_v7()).await.expect("attempts"),
        None
    );
}

/// A permanent failure ends the task at once, with retries left, and its
/// attempt says why it was not retried.
async fn permanent_failures_are_not_retried(store: &dyn Store) {
    let mut t = task(WorkTaskType::PipelineExecution, 5, "p");
    t.max_retries = 3;
    store.submit(vec![t.clone()]).await.expect("submit");
    assert_eq!(
        store
            .lease(lease_request("w", 10))
            .await
            .expect("lease")
            .len(),
        1
    );
    let mut permanent = report(
        AttemptOutcome::Failed,
        Some(1),
        "parameter \"url\" is required",
    );
    permanent.error_class = Some(ErrorClass::Permanent);
    let failed = store
        .finish(t.worktask_id, None, permanent, Utc::now())
        .await
        .expect("finish");
    assert_eq!(
        (failed.status, failed.retry_count),
        (WorkTaskStatus::Failed, 0)
    );
    assert_eq!(store.queue_length().await.expect("queue length"), 0);
    let attempts = store
        .attempts(t.worktask_id)
        .await
        .expect("attempts")
        .expect("present");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].error_class, Some(ErrorClass::Permanent));
}

/// A lease not renewed expires: the attempt ends as a lost worker and the task
/// is retried; the lost worker's late result is refused.
async fn expired_leases_retry(store: &dyn Store) {
    let t = task(WorkTaskType::MlTraining, 5, "p");
    store.submit(vec![t.clone()]).await.expect("submit");
    store.lease(lease_request("gone", 1)).await.expect("lease");
    let keep = task(WorkTaskType::MlTraining, 5, "p");
    store.submit(vec![keep.clone()]).await.expect("submit");
    store.lease(lease_request("alive", 1)).await.expect("lease");
    for _ in 0..4 {
        tokio::time::sleep(TEST_LEASE_TTL / 3).await;
        let renewal = store
            .renew("alive", &[(keep.worktask_id, 1)])
            .await
            .expect("renew");
        assert!(renewal.lost.is_empty());
    }
    assert_eq!(
        store
            .expire_leases(Utc::now(), term(store).await)
            .await
            .expect("expire"),
        1
    );
    let lost = store
        .get(t.worktask_id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!((lost.status, lost.retry_count), (WorkTaskStatus::Queued, 1));
    assert!(lost.retry_reason.contains("gone"), "{}", lost.retry_reason);
    let attempts = store
        .attempts(t.worktask_id)
        .await
        .expect("attempts")
        .expect("present");
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].worker_id.as_str(), attempts[0].outcome),
        ("gone", AttemptEnd::LeaseExpired)
    );
    assert_eq!(
        store
            .renew("gone", &[(t.worktask_id, 1)])
            .await
            .expect("renew")
            .lost,
        vec![t.worktask_id]
    );
    let late = store
        .finish(
            t.worktask_id,
            Some("gone".into()),
            report(AttemptOutcome::Completed, Some(1), ""),
            Utc::now(),
        )
        .await;
    assert!(late.is_err(), "{late:?}");
    assert_eq!(
        store
            .get(keep.worktask_id)
            .await
            .expect("get")
            .expect("present")
            .status,
        WorkTaskStatus::Scheduled
    );
    store.forfeit("alive").await.expect("forfeit");
    assert_eq!(
        store
            .expire_leases(Utc::now(), term(store).await)
            .await
            .expect("expire"),
        1
    );

    // Run again, once its backoff is over, and completed: the history holds
    // both attempts, in order.
    let eligible = store
        .next_eligible_at()
        .await
        .expect("next eligible")
        .expect("a task in backoff");
    let again = store
        .lease(LeaseRequest {
            at: eligible,
            ..lease_request("again", 10)
        })
        .await
        .expect("lease");
    assert!(again.iter().any(|x| x.worktask_id == t.worktask_id));
    store
        .finish(
            t.worktask_id,
            Some("again".into()),
            report(AttemptOutcome::Completed, None, ""),
            Utc::now(),
        )
        .await
        .expect("finish");
    let attempts = store
        .attempts(t.worktask_id)
        .await
        .expect("attempts")
        .expect("present");
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.attempt, a.worker_id.as_str(), a.outcome))
            .collect::<Vec<_>>(),
        [
            (1, "gone", AttemptEnd::LeaseExpired),
            (2, "again", AttemptEnd::Completed)
        ]
    );
}

/// Released tasks keep their queue place; cancelling a running task tells its worker.
async fn release_and_cancel_running(store: &dyn Store) {
    let a = task(WorkTaskType::MlInference, 5, "p");
    let b = task(WorkTaskType::MlInference, 5, "p");
    store
        .submit(vec![a.clone(), b.clone()])
        .await
        .expect("submit");
    let leased = store.lease(lease_request("w", 2)).await.expect("lease");
    assert_eq!(leased.len(), 2);
    store
        .release("w", vec![(a.worktask_id, 1)])
        .await
        .expect("release");
    let back = store
        .get(a.worktask_id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!((back.status, back.retry_count), (WorkTaskStatus::Queued, 0));
    store
        .start("w", vec![(b.worktask_id, 1)], Utc::now())
        .await
        .expect("start");
    let cancelled = store
        .cancel(b.worktask_id, Utc::now())
        .await
        .expect("cancel running");
    assert_eq!(cancelled.status, WorkTaskStatus::Cancelled);
    let renewal = store
        .renew("w", &[(b.worktask_id, 1)])
        .await
        .expect("renew");
    assert_eq!(renewal.cancelled, vec![b.worktask_id]);
    let ended = store.attempts(b.worktask_id).await.expect("attempts");
    let ended = ended.expect("present");
    assert_eq!(
        ended.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [AttemptEnd::Cancelled]
    );
    assert!(ended[0].started_at.is_some(), "the start was reported");
    assert_eq!(
        store
            .attempts(a.worktask_id)
            .await
            .expect("attempts")
            .map(|a| a.len()),
        Some(0),
        "a released attempt never ran"
    );
    assert_eq!(renewal.lost, vec![b.worktask_id]);
    let late = store
        .finish(
            b.worktask_id,
            None,
            report(AttemptOutcome::Completed, Some(1), ""),
            Utc::now(),
        )
        .await;
    assert!(
        matches!(late, Err(StoreError::Transition { .. })),
        "{late:?}"
    );
    let again = store.lease(lease_request("w2", 5)).await.expect("lease");
    assert_eq!(
        again
            .iter()
            .map(|t| (t.worktask_id, t.attempt))
            .collect::<Vec<_>>(),
        [(a.worktask_id, 2)]
    );
}

/// Type filters and per-type limits shape what a lease hands out.
async fn lease_types_and_limits(store: &dyn Store) {
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(task(WorkTaskType::MlTraining, 9, "p"));
        tasks.push(task(WorkTaskType::MlInference, 1, "p"));
    }
    store.submit(tasks).await.expect("submit");
    let mut only_inference = lease_request("w", 10);
    only_inference.types = Some(vec![WorkTaskType::MlInference]);
    only_inference.max = 2;
    let got = store.lease(only_inference).await.expect("lease");
    assert!(got.iter().all(|t| t.task_type == WorkTaskType::MlInference) && got.len() == 2);
    let mut limited = lease_request("w", 10);
    limited.limits.insert(WorkTaskType::MlTraining, 2);
    let got = store.lease(limited.clone()).await.expect("lease");
    let training = got
        .iter()
        .filter(|t| t.task_type == WorkTaskType::MlTraining)
        .count();
    assert_eq!(
        (training, got.len()),
        (2, 3),
        "two training (the limit) and the last inference"
    );
    assert!(
        store.lease(limited).await.expect("lease").is_empty(),
        "the limit holds across leases"
    );
}

/// Projects and pipelines: create, read, list, replace, delete.
async fn catalog_round_trips(store: &dyn Store) {
    let now = Utc::now().trunc_subsecs(6);
    let project = mimir_core::Project {
        id: "p1".into(),
        name: "Vision".into(),
        description: "d".into(),
        created_at: now,
    };
    store
        .create_project(project.clone())
        .await
        .expect("create project");
    assert!(matches!(
        store.create_project(project.clone()).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(
        store.get_project("p1").await.expect("get"),
        Some(project.clone())
    );
    assert_eq!(
        store.list_projects(None, 10).await.expect("list"),
        vec![mimir_core::ProjectListing {
            project: project.clone(),
            registered: true,
            tasks: 0,
            pipelines: 0,
        }]
    );
    let after = Some((project.created_at, project.id.clone()));
    assert!(
        store
            .list_projects(after, 10)
            .await
            .expect("list")
            .is_empty()
    );
    let mut pipeline = mimir_core::Pipeline {
        id: Uuid::now_v7().to_string(),
        project_id: "p1".into(),
        name: "load".into(),
        pipeline_type: mimir_core::PipelineType::Ingestion,
        description: String::new(),
        steps: vec![
            serde_json::json!({"name": "a", "plugin": "core", "action": "log", "parameters": {"message": "hi"}}),
        ],
        created_at: now,
        updated_at: now,
        step_timeout_ms: Some(30_000),
        trigger_config: Default::default(),
    };
    assert_eq!(
        store
            .put_pipeline(pipeline.clone(), true)
            .await
            .expect("create"),
        pipeline
    );
    pipeline.name = "load v2".into();
    assert_eq!(
        store
            .put_pipeline(pipeline.clone(), false)
            .await
            .expect("update")
            .name,
        "load v2"
    );
    assert_eq!(
        store
            .list_pipelines(Some("p1".into()))
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(
        store
            .list_pipelines(Some("other".into()))
            .await
            .expect("list")
            .is_empty()
    );
    store.delete_pipeline(&pipeline.id).await.expect("delete");
    assert_eq!(store.get_pipeline(&pipeline.id).await.expect("get"), None);
    assert!(matches!(
        store.delete_pipeline(&pipeline.id).await,
        Err(StoreError::Missing { .. })
    ));
    assert!(matches!(
        store.put_pipeline(pipeline.clone(), false).await,
        Err(StoreError::Missing { .. })
    ));
    store.delete_project("p1").await.expect("delete project");
    assert!(
        store
            .list_projects(None, 10)
            .await
            .expect("list")
            .is_empty()
    );

    // Projects that tasks and pipelines use are listed whether or not they
    // were registered, with their counts, oldest first.
    let mut first = task(WorkTaskType::PipelineExecution, 1, "used");
    first.submitted_at = now + chrono::Duration::seconds(1);
    let mut other = task(WorkTaskType::MlTraining, 1, "other");
    other.submitted_at = now + chrono::Duration::seconds(2);
    let second = task(WorkTaskType::PipelineExecution, 1, "used");
    store
        .submit(vec![first.clone(), other, second])
        .await
        .expect("submit");
    pipeline.id = Uuid::now_v7().to_string();
    pipeline.project_id = "used".into();
    store.put_pipeline(pipeline, true).await.expect("create");
    let listed = store.list_projects(None, 10).await.expect("list");
    let seen: Vec<(&str, bool, u64, u64)> = listed
        .iter()
        .map(|l| (l.project.id.as_str(), l.registered, l.tasks, l.pipelines))
        .collect();
    assert_eq!(seen, [("used", false, 2, 1), ("other", false, 1, 0)]);
    // Its pipeline came before its first task.
    assert_eq!(listed[0].project.created_at, now);
    assert_eq!(listed[0].project.name, "");
    let page = store.list_projects(None, 1).await.expect("list");
    let after = Some((page[0].project.created_at, page[0].project.id.clone()));
    let rest = store.list_projects(after, 10).await.expect("list");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].project.id, "other");
    // Registering one keeps its counts and adds its name.
    let registered = mimir_core::Project {
        id: "other".into(),
        name: "Other".into(),
        description: "registered late".into(),
        created_at: now + chrono::Duration::seconds(3),
    };
    store
        .create_project(registered.clone())
        .await
        .expect("create project");
    let listed = store.list_projects(None, 10).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].project, registered);
    assert!(listed[1].registered);
    assert_eq!((listed[1].tasks, listed[1].pipelines), (1, 0));
}

/// Storage configs: create, read (credentials as stored), list by project
/// and all, replace (keeping `created_at`), delete; a taken id and a
/// missing one are refused. Deleting a project's registration leaves its
/// configs, as it leaves its pipelines, and the project stays listed.
async fn storage_configs_round_trip(store: &dyn Store) {
    let now = Utc::now().trunc_subsecs(6);
    let settings = |base: &str| mimir_core::ConnectionSettings {
        connection_string: "postgres://app:hunter2@db/x".into(),
        credentials: serde_json::json!({"password": "hunter2", "token": "${env:T}"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        options: serde_json::json!({"base_path": base, "timeout_ms": 500})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let mut first = mimir_core::StorageConfig {
        id: Uuid::now_v7().to_string(),
        project_id: "p1".into(),
        plugin_type: mimir_core::PluginType::Filesystem,
        config: settings("a"),
        active: true,
        created_at: now,
        updated_at: now,
    };
    let other = mimir_core::StorageConfig {
        id: Uuid::now_v7().to_string(),
        project_id: "p2".into(),
        plugin_type: mimir_core::PluginType::Redis,
        created_at: now + Duration::seconds(1),
        updated_at: now + Duration::seconds(1),
        ..first.clone()
    };
    store
        .create_project(mimir_core::Project {
            id: "p1".into(),
            name: "one".into(),
            description: String::new(),
            created_at: now,
        })
        .await
        .expect("create project");
    assert_eq!(
        store
            .put_storage_config(first.clone(), true)
            .await
            .expect("create"),
        first
    );
    assert!(matches!(
        store.put_storage_config(first.clone(), true).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    store
        .put_storage_config(other.clone(), true)
        .await
        .expect("create");
    assert_eq!(
        store.get_storage_config(&first.id).await.expect("get"),
        Some(first.clone()),
        "credentials are stored as given"
    );
    assert_eq!(store.get_storage_config("none").await.expect("get"), None);
    assert_eq!(
        store
            .list_storage_configs(Some("p1".into()))
            .await
            .expect("list"),
        vec![first.clone()]
    );
    assert_eq!(
        store.list_storage_configs(None).await.expect("list"),
        vec![first.clone(), other.clone()]
    );
    assert!(
        store
            .list_storage_configs(Some("p3".into()))
            .await
            .expect("list")
            .is_empty()
    );
    let mut replaced = first.clone();
    replaced.config = settings("b");
    replaced.active = false;
    replaced.updated_at = now + Duration::seconds(5);
    replaced.created_at = now + Duration::seconds(9);
    let stored = store
        .put_storage_config(replaced.clone(), false)
        .await
        .expect("replace");
    assert_eq!(stored.created_at, first.created_at, "created_at is kept");
    assert_eq!(
        (stored.config, stored.active, stored.updated_at),
        (replaced.config, false, replaced.updated_at)
    );
    store.delete_project("p1").await.expect("delete project");
    assert_eq!(
        store
            .list_storage_configs(Some("p1".into()))
            .await
            .expect("list")
            .len(),
        1,
        "a project's configs outlive its registration"
    );
    let listed = store.list_projects(None, 10).await.expect("list");
    let ids: Vec<&str> = listed.iter().map(|l| l.project.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2"], "projects configs use are listed");
    store
        .delete_storage_config(&first.id)
        .await
        .expect("delete");
    assert_eq!(
        store.get_storage_config(&first.id).await.expect("get"),
        None
    );
    assert!(matches!(
        store.delete_storage_config(&first.id).await,
        Err(StoreError::Missing { .. })
    ));
    first.updated_at = now + Duration::seconds(6);
    assert!(matches!(
        store.put_storage_config(first, false).await,
        Err(StoreError::Missing { .. })
    ));
    assert_eq!(
        store.list_storage_configs(None).await.expect("list"),
        vec![other]
    );
}

/// A draft model of `project`, created a second after `now` times `offset`.
fn model(
    project: &str,
    name: &str,
    model_type: mimir_core::ModelType,
    offset: i64,
) -> mimir_core::MlModel {
    let at = Utc::now().trunc_subsecs(6) + Duration::seconds(offset);
    let mut training_config = mimir_core::TrainingConfig {
        label_column: "label".into(),
        random_seed: Some(7),
        feature_columns: vec!["a".into(), "b".into()],
        ..Default::default()
    };
    training_config
        .hyperparameters
        .insert("n_trees".into(), serde_json::json!(50));
    mimir_core::MlModel {
        id: Uuid::now_v7().to_string(),
        project_id: project.into(),
        name: name.into(),
        model_type,
        status: mimir_core::ModelStatus::Draft,
        status_reason: String::new(),
        training_config,
        performance_metrics: mimir_core::PerformanceMetrics::default(),
        versions: Vec::new(),
        training_task_id: None,
        created_at: at,
        updated_at: at,
    }
}

/// A version as a training run reports it (the registry numbers it).
fn model_version(accuracy: f64) -> mimir_core::ModelVersion {
    let mut performance_metrics = mimir_core::PerformanceMetrics {
        accuracy: Some(accuracy),
        confusion_matrix: vec![vec![3, 1], vec![0, 4]],
        classes: vec!["no".into(), "yes".into()],
        ..Default::default()
    };
    performance_metrics
        .feature_importance
        .insert("a".into(), serde_json::json!(0.75));
    mimir_core::ModelVersion {
        version: 0,
        checksum: format!("sha256:{:064x}", 1),
        size_bytes: 1234,
        artifact_store: "data".into(),
        feature_columns: vec!["a".into(), "b".into()],
        label_column: "label".into(),
        performance_metrics,
        training_config: mimir_core::TrainingConfig::default(),
        training_task_id: Some(Uuid::now_v7()),
        training_duration_ms: Some(1500),
        created_at: Utc::now(),
    }
}

fn add_version(accuracy: f64) -> mimir_core::ModelChange {
    mimir_core::ModelChange::AddVersion {
        version: Box::new(model_version(accuracy)),
    }
}

/// Models: create (a taken id refused), read, list by project and all,
/// replace (name and training config only: status, versions and
/// `created_at` kept), delete; a missing one is refused.
async fn models_round_trip(store: &dyn Store) {
    let first = model("p1", "churn", mimir_core::ModelType::RandomForest, 0);
    let other = model("p2", "price", mimir_core::ModelType::LinearRegression, 1);
    assert_eq!(
        store.put_model(first.clone(), true).await.expect("create"),
        first
    );
    assert!(matches!(
        store.put_model(first.clone(), true).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    store.put_model(other.clone(), true).await.expect("create");
    assert_eq!(
        store.get_model(&first.id).await.expect("get"),
        Some(first.clone())
    );
    assert_eq!(store.get_model("none").await.expect("get"), None);
    assert_eq!(
        store.list_models(Some("p1".into())).await.expect("list"),
        vec![first.clone()]
    );
    assert_eq!(
        store.list_models(None).await.expect("list"),
        vec![first.clone(), other.clone()]
    );
    let trained = store
        .change_model(&first.id, add_version(0.9))
        .await
        .expect("add a version");
    let mut replaced = trained.clone();
    replaced.name = "churn v2".into();
    replaced.training_config.label_column = "churned".into();
    replaced.status = mimir_core::ModelStatus::Archived;
    replaced.versions.clear();
    replaced.created_at = first.created_at + Duration::seconds(9);
    replaced.updated_at = first.created_at + Duration::seconds(5);
    let stored = store
        .put_model(replaced.clone(), false)
        .await
        .expect("replace");
    assert_eq!(
        (&stored.name, &stored.training_config, stored.updated_at),
        (
            &replaced.name,
            &replaced.training_config,
            replaced.updated_at
        )
    );
    assert_eq!(
        (stored.status, &stored.versions, stored.created_at),
        (trained.status, &trained.versions, first.created_at),
        "status, versions and created_at are kept"
    );
    assert_eq!(store.get_model(&first.id).await.expect("get"), Some(stored));
    store.delete_model(&first.id).await.expect("delete");
    assert_eq!(store.get_model(&first.id).await.expect("get"), None);
    assert!(matches!(
        store.delete_model(&first.id).await,
        Err(StoreError::Missing { .. })
    ));
    assert!(matches!(
        store.put_model(first, false).await,
        Err(StoreError::Missing { .. })
    ));
    assert_eq!(store.list_models(None).await.expect("list"), vec![other]);
}

/// A refused change ([`mimir_core::MlModel::apply`] says no) is
/// [`StoreError::Refused`] and stores nothing: a second training while one
/// runs, training an imported model, a version for an archived one. A change
/// to a missing model is [`StoreError::Missing`].
async fn refused_model_changes_store_nothing(store: &dyn Store) {
    let m = model("p", "m", mimir_core::ModelType::DecisionTree, 0);
    store.put_model(m.clone(), true).await.expect("create");
    let first = Uuid::now_v7();
    let training = store
        .change_model(
            &m.id,
            mimir_core::ModelChange::StartTraining { task_id: first },
        )
        .await
        .expect("start");
    assert_eq!(training.status, mimir_core::ModelStatus::Training);
    assert_eq!(training.training_task_id, Some(first));
    match store
        .change_model(
            &m.id,
            mimir_core::ModelChange::StartTraining {
                task_id: Uuid::now_v7(),
            },
        )
        .await
    {
        Err(StoreError::Refused { reason, .. }) => {
            assert!(reason.contains("already training"), "{reason}")
        }
        other => panic!("a second training: {other:?}"),
    }
    assert_eq!(
        store.get_model(&m.id).await.expect("get"),
        Some(training),
        "a refused change stores nothing"
    );

    let imported = model("p", "onnx", mimir_core::ModelType::Onnx, 1);
    store
        .put_model(imported.clone(), true)
        .await
        .expect("create");
    assert!(matches!(
        store
            .change_model(
                &imported.id,
                mimir_core::ModelChange::StartTraining {
                    task_id: Uuid::now_v7()
                }
            )
            .await,
        Err(StoreError::Refused { .. })
    ));
    assert_eq!(
        store.get_model(&imported.id).await.expect("get"),
        Some(imported)
    );

    let mut archived = model("p", "old", mimir_core::ModelType::Kmeans, 2);
    archived.status = mimir_core::ModelStatus::Archived;
    store
        .put_model(archived.clone(), true)
        .await
        .expect("create");
    assert!(matches!(
        store.change_model(&archived.id, add_version(0.5)).await,
        Err(StoreError::Refused { .. })
    ));
    assert_eq!(
        store.get_model(&archived.id).await.expect("get"),
        Some(archived),
        "no version row was written"
    );
    assert!(matches!(
        store.change_model("none", add_version(0.5)).await,
        Err(StoreError::Missing { .. })
    ));
}

/// Many `StartTraining` at once on one draft model: exactly one wins, and the
/// model names the winner's task.
async fn concurrent_start_training_one_wins(store: Arc<dyn Store>) {
    let m = model("p", "race", mimir_core::ModelType::LogisticRegression, 0);
    store.put_model(m.clone(), true).await.expect("create");
    let mut handles = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let id = m.id.clone();
        handles.push(tokio::spawn(async move {
            let task_id = Uuid::now_v7();
            let outcome = store
                .change_model(&id, mimir_core::ModelChange::StartTraining { task_id })
                .await;
            (task_id, outcome)
        }));
    }
    let mut winners = Vec::new();
    for handle in handles {
        match handle.await.expect("change task") {
            (task_id, Ok(_)) => winners.push(task_id),
            (_, Err(StoreError::Refused { .. })) => {}
            (_, Err(other)) => panic!("a concurrent start failed: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one training starts");
    let stored = store.get_model(&m.id).await.expect("get").expect("model");
    assert_eq!(stored.status, mimir_core::ModelStatus::Training);
    assert_eq!(stored.training_task_id, Some(winners[0]));
}

/// Versions are numbered 1..n in the order they are added, stored whole,
/// and the model takes the latest one's scores; deleting the model removes
/// its versions (a model made again under the id starts with none).
async fn model_versions_number_up_and_go_with_the_model(store: &dyn Store) {
    let m = model("p", "versions", mimir_core::ModelType::RandomForest, 0);
    store.put_model(m.clone(), true).await.expect("create");
    let mut last = None;
    for accuracy in [0.7, 0.8, 0.9] {
        let task_id = Uuid::now_v7();
        store
            .change_model(&m.id, mimir_core::ModelChange::StartTraining { task_id })
            .await
            .expect("start");
        last = Some(
            store
                .change_model(&m.id, add_version(accuracy))
                .await
                .expect("add"),
        );
    }
    let stored = store.get_model(&m.id).await.expect("get").expect("model");
    assert_eq!(
        Some(&stored),
        last.as_ref(),
        "the answer is what was stored"
    );
    let numbers: Vec<u32> = stored.versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(stored.status, mimir_core::ModelStatus::Trained);
    assert_eq!(stored.performance_metrics.accuracy, Some(0.9));
    let mut want = model_version(0.9);
    want.version = 3;
    want.training_task_id = stored.versions[2].training_task_id;
    want.created_at = stored.versions[2].created_at;
    assert_eq!(stored.versions[2], want, "a version is stored whole");
    store.delete_model(&m.id).await.expect("delete");
    store
        .put_model(m.clone(), true)
        .await
        .expect("create again");
    assert_eq!(
        store.get_model(&m.id).await.expect("get"),
        Some(m),
        "the old versions went with the model"
    );
}

/// Closing commits the writes asked for before it; later writes are refused
/// with [`StoreError::WriterGone`] and store nothing, and reads still answer.
async fn close_commits_then_refuses_writes(store: &dyn Store) {
    let first = task(WorkTaskType::PipelineExecution, 5, "p1");
    let (submitted, closed) = tokio::join!(store.submit(vec![first.clone()]), store.close());
    submitted.expect("a write asked for before the close is committed");
    closed.expect("close");
    let late = task(WorkTaskType::PipelineExecution, 5, "p1");
    match store.submit(vec![late.clone()]).await {
        Err(StoreError::WriterGone) => {}
        other => panic!("a write after close: {other:?}"),
    }
    assert_eq!(store.get(late.worktask_id).await.expect("get"), None);
    assert_eq!(
        store.get(first.worktask_id).await.expect("get"),
        Some(first)
    );
    assert_eq!(store.counts().await.expect("counts").total(), 1);
}

/// Many workers leasing at once from one store never get the same task,
/// and every task is leased exactly once.
async fn concurrent_leases_never_share_a_task(store: Arc<dyn Store>) {
    const TASKS: usize = 2_000;
    let tasks: Vec<WorkTask> = (0..TASKS)
        .map(|i| task(WorkTaskType::PipelineExecution, 1 + (i % 10) as i64, "race"))
        .collect();
    for chunk in tasks.chunks(500) {
        store.submit(chunk.to_vec()).await.expect("submit");
    }
    let mut leasers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        leasers.push(tokio::spawn(async move {
            let worker = format!("racer-{w}");
            let mut got = Vec::new();
            loop {
                let leased = store
                    .lease(lease_request(&worker, 16))
                    .await
                    .expect("lease");
                if leased.is_empty() {
                    break got;
                }
                got.extend(leased.into_iter().map(|t| (t.worktask_id, t.attempt)));
            }
        }));
    }
    let mut seen = std::collections::HashSet::new();
    for leaser in leasers {
        for (id, attempt) in leaser.await.expect("leaser") {
            assert_eq!(attempt, 1, "first lease of {id}");
            assert!(seen.insert(id), "task {id} was leased twice");
        }
    }
    assert_eq!(seen.len(), TASKS, "every task leased once");
    let expected: std::collections::HashSet<Uuid> = tasks.iter().map(|t| t.worktask_id).collect();
    assert_eq!(seen, expected);
}

/// `finish_many` decides each report on its own: accepted ones change their
/// task, refused ones (stale attempt, another worker's, unknown, missing id)
/// change nothing, in one call.
async fn finish_many_decides_each_report(store: &dyn Store) {
    let done = task(WorkTaskType::PipelineExecution, 5, "p");
    let retried = task(WorkTaskType::PipelineExecution, 5, "p");
    let stale = task(WorkTaskType::PipelineExecution, 5, "p");
    let others = task(WorkTaskType::PipelineExecution, 5, "p");
    store
        .submit(vec![
            done.clone(),
            retried.clone(),
            stale.clone(),
            others.clone(),
        ])
        .await
        .expect("submit");
    let mine = store.lease(lease_request("w", 3)).await.expect("lease");
    assert_eq!(mine.len(), 3);
    let theirs = store.lease(lease_request("x", 1)).await.expect("lease");
    assert_eq!(theirs[0].worktask_id, others.worktask_id);
    let with_id = |id: Uuid, status, attempt, error: &str| WorkTaskResult {
        worktask_id: Some(id),
        ..report(status, attempt, error)
    };
    let unknown = Uuid::now_v7();
    let reports = vec![
        with_id(done.worktask_id, AttemptOutcome::Completed, Some(1), ""),
        with_id(
            retried.worktask_id,
            AttemptOutcome::Failed,
            Some(1),
            "flaky",
        ),
        with_id(stale.worktask_id, AttemptOutcome::Completed, Some(7), ""),
        with_id(others.worktask_id, AttemptOutcome::Completed, Some(1), ""),
        with_id(unknown, AttemptOutcome::Completed, Some(1), ""),
        report(AttemptOutcome::Completed, Some(1), ""),
    ];
    let answers = store
        .finish_many("w", reports, Utc::now())
        .await
        .expect("finish_many");
    assert_eq!(answers.len(), 6);
    assert!(
        matches!(answers[0], Ok(WorkTaskStatus::Completed)),
        "{:?}",
        answers[0]
    );
    assert!(
        matches!(answers[1], Ok(WorkTaskStatus::Queued)),
        "{:?}",
        answers[1]
    );
    assert!(
        matches!(
            answers[2],
            Err(StoreError::StaleAttempt {
                attempt: 7,
                current: 1,
                ..
            })
        ),
        "{:?}",
        answers[2]
    );
    assert!(
        matches!(answers[3], Err(StoreError::NotLeaseHolder { .. })),
        "{:?}",
        answers[3]
    );
    assert!(
        matches!(answers[4], Err(StoreError::NotFound(id)) if id == unknown),
        "{:?}",
        answers[4]
    );
    assert!(answers[5].is_err(), "a report without an id is refused");
    let status = |id| async move { store.get(id).await.expect("get").expect("present") };
    assert_eq!(
        status(done.worktask_id).await.status,
        WorkTaskStatus::Completed
    );
    let back = status(retried.worktask_id).await;
    assert_eq!((back.status, back.retry_count), (WorkTaskStatus::Queued, 1));
    let untouched = status(stale.worktask_id).await;
    assert_eq!(
        (untouched.status, untouched.attempt),
        (WorkTaskStatus::Scheduled, 1)
    );
    assert!(store.holds("w", stale.worktask_id, 1).await.expect("holds"));
    assert_eq!(
        status(others.worktask_id).await.status,
        WorkTaskStatus::Scheduled
    );
    assert!(
        store
            .holds("x", others.worktask_id, 1)
            .await
            .expect("holds")
    );
    assert_eq!(store.get(unknown).await.expect("get"), None);
    assert_eq!(
        store.attempts(stale.worktask_id).await.expect("attempts"),
        Some(Vec::new()),
        "a refused report ends no attempt"
    );
}

/// A one-task lease (`only`) takes the named task wherever it stands in the
/// queue; the same worker asking again gets it back; others are refused.
async fn only_leases_take_the_named_task(store: &dyn Store) {
    let first = task(WorkTaskType::PipelineExecution, 9, "p");
    let named = task(WorkTaskType::PipelineExecution, 1, "p");
    store
        .submit(vec![first.clone(), named.clone()])
        .await
        .expect("submit");
    let only = |worker: &str| LeaseRequest {
        only: Some(named.worktask_id),
        ..lease_request(worker, 1)
    };
    let leased = store.lease(only("job")).await.expect("lease");
    assert_eq!(
        leased
            .iter()
            .map(|t| (t.worktask_id, t.attempt, t.status))
            .collect::<Vec<_>>(),
        [(named.worktask_id, 1, WorkTaskStatus::Scheduled)],
        "the named task, though another is more urgent"
    );
    let again = store.lease(only("job")).await.expect("lease again");
    assert_eq!(
        again
            .iter()
            .map(|t| (t.worktask_id, t.attempt))
            .collect::<Vec<_>>(),
        [(named.worktask_id, 1)],
        "the same worker takes up the attempt it holds, not a new one"
    );
    let refused = store.lease(only("other")).await;
    assert!(
        matches!(refused, Err(StoreError::Transition { .. })),
        "{refused:?}"
    );
    let missing = store
        .lease(LeaseRequest {
            only: Some(Uuid::now_v7()),
            ..lease_request("job", 1)
        })
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert_eq!(store.queue_length().await.expect("queue length"), 2);
    let rest = store.lease(lease_request("w", 5)).await.expect("lease");
    assert_eq!(
        rest.iter().map(|t| t.worktask_id).collect::<Vec<_>>(),
        [first.worktask_id]
    );
}

/// With aging, tasks that waited long enough go before newer, more urgent
/// ones: the order is by effective priority (base + waited / interval).
async fn aging_lifts_long_waiting_tasks(store: &dyn Store) {
    let hours_ago = |h: i64| Utc::now() - Duration::hours(h) - Duration::minutes(1);
    let submitted = |priority: i64, at| WorkTask {
        submitted_at: at,
        ..task(WorkTaskType::PipelineExecution, priority, "p")
    };
    // Effective priorities now: 1 + 4 = 5; 2 + 2 = 4; 3. Without aging the
    // order would be the reverse.
    let old_low = submitted(1, hours_ago(4));
    let aged = submitted(2, hours_ago(2));
    let fresh = submitted(3, Utc::now());
    store
        .submit(vec![fresh.clone(), aged.clone(), old_low.clone()])
        .await
        .expect("submit");
    let order: Vec<Uuid> = store
        .lease(lease_request("w", 3))
        .await
        .expect("lease")
        .into_iter()
        .map(|t| t.worktask_id)
        .collect();
    assert_eq!(
        order,
        [old_low.worktask_id, aged.worktask_id, fresh.worktask_id],
        "aged order"
    );
}

/// A task entering the queue wakes a waiting leaser: on submit, and when a
/// failed attempt goes back to the queue.
async fn queue_signal_wakes_waiters(store: &dyn Store) {
    let signal = store.queue_signal();
    let wait = std::time::Duration::from_secs(5);
    let notified = signal.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let t = task(WorkTaskType::PipelineExecution, 5, "p");
    store.submit(vec![t.clone()]).await.expect("submit");
    tokio::time::timeout(wait, notified)
        .await
        .expect("a submit wakes the waiter");
    store.lease(lease_request("w", 1)).await.expect("lease");
    let notified = signal.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    store
        .finish(
            t.worktask_id,
            Some("w".into()),
            report(AttemptOutcome::Failed, Some(1), "again"),
            Utc::now(),
        )
        .await
        .expect("finish");
    tokio::time::timeout(wait, notified)
        .await
        .expect("a retry wakes the waiter");
}

/// Text holding NUL characters (JSON allows them; PostgreSQL's text does
/// not) is stored without failing the write: a submission's parameters and
/// a failed attempt's error and result.
async fn nul_characters_do_not_fail_writes(store: &dyn Store) {
    let mut t = task(WorkTaskType::PipelineExecution, 5, "p");
    t.task_spec.parameters =
        serde_json::Map::from_iter([("key\u{0}".to_string(), serde_json::json!("a\u{0}b"))]);
    store.submit(vec![t.clone()]).await.expect("submit");
    store.lease(lease_request("w", 1)).await.expect("lease");
    let failed = WorkTaskResult {
        result: Some(serde_json::json!({"out": "x\u{0}y"})),
        ..report(AttemptOutcome::Failed, Some(1), "boom\u{0}")
    };
    let after = store
        .finish(t.worktask_id, Some("w".into()), failed, Utc::now())
        .await
        .expect("a failure whose error holds NUL is stored");
    assert_eq!(after.status, WorkTaskStatus::Queued);
    let stored = store
        .get(t.worktask_id)
        .await
        .expect("get")
        .expect("present");
    assert!(stored.error_message.starts_with("boom"), "{stored:?}");
    assert_eq!(
        store
            .attempts(t.worktask_id)
            .await
            .expect("attempts")
            .map(|a| a.len()),
        Some(1)
    );
    // Free-text descriptions of projects and pipelines too.
    let project = mimir_core::Project {
        id: "nul-project".into(),
        name: "nul".into(),
        description: "a\u{0}b".into(),
        created_at: Utc::now().trunc_subsecs(6),
    };
    let answered = store
        .create_project(project)
        .await
        .expect("a project description holding NUL is stored");
    let read = store
        .get_project("nul-project")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(answered, read, "answered as stored");
    let mut described = pipeline("nul-pipeline", "p");
    described.description = "c\u{0}d".into();
    store
        .put_pipeline(described, true)
        .await
        .expect("a pipeline description holding NUL is stored");
}

/// A pipeline of `project` with id `id`, as the checks store it.
fn pipeline(id: &str, project: &str) -> mimir_core::Pipeline {
    let now = Utc::now().trunc_subsecs(6);
    mimir_core::Pipeline {
        id: id.into(),
        project_id: project.into(),
        name: format!("pipeline {id}"),
        pipeline_type: mimir_core::PipelineType::Ingestion,
        description: String::new(),
        steps: vec![serde_json::json!({"name": "a", "plugin": "core", "action": "log"})],
        created_at: now,
        updated_at: now,
        step_timeout_ms: None,
        trigger_config: Default::default(),
    }
}

/// An enabled schedule of `project` named `name` firing `pipelines`, due
/// `due_in` from now (negative: overdue).
fn schedule(
    project: &str,
    name: &str,
    pipelines: &[&str],
    due_in: Duration,
) -> mimir_core::Schedule {
    let now = Utc::now().trunc_subsecs(6);
    let mut parameters = serde_json::Map::new();
    parameters.insert("region".into(), serde_json::json!("eu"));
    mimir_core::Schedule {
        id: Uuid::now_v7().to_string(),
        project_id: project.into(),
        name: name.into(),
        pipeline_id: pipelines[0].into(),
        pipeline_ids: pipelines.iter().map(|p| p.to_string()).collect(),
        cron: "*/5 * * * *".into(),
        timezone: "Europe/Berlin".into(),
        parameters,
        priority: Priority::new(7).expect("a valid priority"),
        enabled: true,
        catchup: mimir_core::CatchUp::Once,
        overlap: mimir_core::Overlap::Queue,
        jitter_ms: 1500,
        next_fire_at: Some(now + due_in),
        next_due_at: Some(now + due_in + Duration::milliseconds(1500)),
        queued_fire_at: None,
        last_fire_at: None,
        last_task_id: None,
        last_task_ids: Vec::new(),
        last_outcome: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    }
}

/// A task schedule `s` fires for its first pipeline.
fn fired_task(s: &mimir_core::Schedule) -> WorkTask {
    let mut t = task(WorkTaskType::PipelineExecution, 7, &s.project_id);
    t.task_spec.pipeline_id = s.pipeline_id.clone();
    t.task_spec.schedule_id = s.id.clone();
    t
}

/// An advance of `s` from its stored revision that fires `tasks` at its
/// `next_fire_at` and moves on five minutes.
fn fire(s: &mimir_core::Schedule, tasks: Vec<WorkTask>) -> crate::ScheduleAdvance {
    let next = s.next_fire_at.map(|t| t + Duration::minutes(5));
    crate::ScheduleAdvance {
        schedule_id: s.id.clone(),
        revision: s.revision,
        next_fire_at: next,
        next_due_at: next,
        queued_fire_at: None,
        last_outcome: Some(mimir_core::FireOutcome::Fired),
        last_fire_at: if tasks.is_empty() {
            None
        } else {
            s.next_fire_at
        },
        last_task_ids: tasks.iter().map(|t| t.worktask_id).collect(),
        tasks,
    }
}

async fn stored_task_count(store: &dyn Store) -> u64 {
    store.counts().await.expect("counts").total()
}

/// Schedules: create (revision 1), read, list by project, by pipeline and
/// by page; a taken id or name is refused; a replacement keeps
/// `created_at` and the record of fires and bumps the revision; a missing
/// one is refused; delete.
async fn schedules_round_trip(store: &dyn Store) {
    let a = schedule("p", "nightly", &["pa", "pb"], Duration::minutes(1));
    let stored = store.put_schedule(a.clone(), true).await.expect("create");
    assert_eq!(
        stored,
        mimir_core::Schedule {
            revision: 1,
            ..a.clone()
        }
    );
    assert_eq!(
        store.get_schedule(&a.id).await.expect("get"),
        Some(stored.clone())
    );
    assert_eq!(store.get_schedule("nope").await.expect("get"), None);
    match store.put_schedule(a.clone(), true).await {
        Err(StoreError::AlreadyExists {
            kind: "schedule",
            id,
        }) => assert_eq!(id, a.id),
        other => panic!("a taken id: {other:?}"),
    }
    let same_name = schedule("p", "nightly", &["pc"], Duration::minutes(1));
    match store.put_schedule(same_name.clone(), true).await {
        Err(StoreError::AlreadyExists {
            kind: "schedule",
            id,
        }) => assert_eq!(id, "nightly"),
        other => panic!("a taken name: {other:?}"),
    }
    let elsewhere = schedule("q", "nightly", &["pb"], Duration::minutes(1));
    store
        .put_schedule(elsewhere.clone(), true)
        .await
        .expect("the name in another project");
    let third = schedule("p", "hourly", &["pc"], Duration::minutes(1));
    store
        .put_schedule(third.clone(), true)
        .await
        .expect("create");

    let ids = |listed: Vec<mimir_core::Schedule>| -> Vec<String> {
        listed.into_iter().map(|s| s.id).collect()
    };
    let mut all = vec![a.id.clone(), elsewhere.id.clone(), third.id.clone()];
    all.sort();
    let everything = crate::ScheduleFilter::default();
    assert_eq!(
        ids(store
            .list_schedules(everything.clone(), None, 10)
            .await
            .expect("list")),
        all
    );
    assert_eq!(
        ids(store
            .list_schedules(everything.clone(), None, 2)
            .await
            .expect("list")),
        all[..2]
    );
    assert_eq!(
        ids(store
            .list_schedules(everything.clone(), Some(all[1].clone()), 10)
            .await
            .expect("list")),
        all[2..]
    );
    let of_p = crate::ScheduleFilter {
        project_id: Some("p".into()),
        pipeline_id: None,
    };
    let mut want = vec![a.id.clone(), third.id.clone()];
    want.sort();
    assert_eq!(
        ids(store.list_schedules(of_p, None, 10).await.expect("list")),
        want
    );
    let firing_pb = crate::ScheduleFilter {
        project_id: None,
        pipeline_id: Some("pb".into()),
    };
    let mut want = vec![a.id.clone(), elsewhere.id.clone()];
    want.sort();
    assert_eq!(
        ids(store
            .list_schedules(firing_pb, None, 10)
            .await
            .expect("list")),
        want
    );
    let both = crate::ScheduleFilter {
        project_id: Some("q".into()),
        pipeline_id: Some("pa".into()),
    };
    assert!(
        store
            .list_schedules(both, None, 10)
            .await
            .expect("list")
            .is_empty()
    );

    // A fire, then a user's replacement that says nothing of it.
    let t = fired_task(&stored);
    let applied = store
        .advance_schedules(vec![fire(&stored, vec![t.clone()])], None)
        .await
        .expect("advance");
    assert_eq!(applied, vec![true]);
    let fired = store
        .get_schedule(&a.id)
        .await
        .expect("get")
        .expect("schedule");
    assert_eq!(fired.revision, 2);
    assert_eq!(fired.last_fire_at, a.next_fire_at);
    assert_eq!(fired.last_task_ids, vec![t.worktask_id]);
    assert_eq!(fired.last_task_id, Some(t.worktask_id));
    assert_eq!(fired.last_outcome, Some(mimir_core::FireOutcome::Fired));
    let mut changed = a.clone();
    changed.cron = "0 * * * *".into();
    changed.pipeline_ids = vec!["pa".into()];
    changed.enabled = false;
    changed.next_fire_at = None;
    changed.next_due_at = None;
    changed.created_at = a.created_at + Duration::days(1);
    changed.updated_at = a.updated_at + Duration::days(1);
    changed.revision = 99;
    let replaced = store
        .put_schedule(changed.clone(), false)
        .await
        .expect("replace");
    assert_eq!(
        replaced,
        mimir_core::Schedule {
            created_at: a.created_at,
            last_fire_at: fired.last_fire_at,
            last_task_id: fired.last_task_id,
            last_task_ids: fired.last_task_ids.clone(),
            last_outcome: fired.last_outcome,
            revision: 3,
            ..changed.clone()
        }
    );
    assert_eq!(
        store.get_schedule(&a.id).await.expect("get"),
        Some(replaced)
    );
    let mut renamed = third.clone();
    renamed.name = "nightly".into();
    match store.put_schedule(renamed, false).await {
        Err(StoreError::AlreadyExists {
            kind: "schedule",
            id,
        }) => assert_eq!(id, "nightly"),
        other => panic!("a replacement taking a name: {other:?}"),
    }

    store.delete_schedule(&a.id).await.expect("delete");
    assert_eq!(store.get_schedule(&a.id).await.expect("get"), None);
    assert!(matches!(
        store.delete_schedule(&a.id).await,
        Err(StoreError::Missing {
            kind: "schedule",
            ..
        })
    ));
    assert!(matches!(
        store.put_schedule(changed, false).await,
        Err(StoreError::Missing {
            kind: "schedule",
            ..
        })
    ));
    // The task it fired stays.
    assert!(store.get(t.worktask_id).await.expect("get").is_some());
}

/// Due schedules: enabled ones due by then or holding a queued fire,
/// earliest due first (none last), up to the limit; whether a task of the
/// last fire still waits or runs; the earliest due time of the enabled.
async fn due_schedules_in_order_with_their_previous_runs(store: &dyn Store) {
    let now = Utc::now().trunc_subsecs(6);
    let later = schedule("p", "later", &["pa"], Duration::minutes(-1));
    let first = schedule("p", "first", &["pa"], Duration::minutes(-3));
    let future = schedule("p", "future", &["pa"], Duration::minutes(10));
    let mut paused = schedule("p", "paused", &["pa"], Duration::minutes(-20));
    paused.enabled = false;
    let mut queued = schedule("p", "queued", &["pa"], Duration::minutes(20));
    queued.queued_fire_at = Some(now - Duration::minutes(5));
    let mut stopped = schedule("p", "stopped", &["pa"], Duration::minutes(0));
    stopped.next_fire_at = None;
    stopped.next_due_at = None;
    stopped.queued_fire_at = Some(now - Duration::minutes(5));
    for s in [&later, &first, &future, &paused, &queued, &stopped] {
        store.put_schedule(s.clone(), true).await.expect("create");
    }
    let due = store.due_schedules(now, 10).await.expect("due");
    let names: Vec<&str> = due.iter().map(|d| d.schedule.name.as_str()).collect();
    assert_eq!(names, ["first", "later", "queued", "stopped"]);
    assert!(due.iter().all(|d| !d.previous_running));
    assert_eq!(due[0].schedule.revision, 1);
    let names: Vec<String> = store
        .due_schedules(now, 2)
        .await
        .expect("due")
        .into_iter()
        .map(|d| d.schedule.name)
        .collect();
    assert_eq!(names, ["first", "later"]);
    assert_eq!(
        store.next_schedule_due().await.expect("next"),
        first.next_due_at
    );

    // A fire whose task waits, then runs, then ends.
    let stored = store
        .get_schedule(&first.id)
        .await
        .expect("get")
        .expect("schedule");
    let t = fired_task(&stored);
    let mut advance = fire(&stored, vec![t.clone()]);
    advance.next_fire_at = Some(now - Duration::minutes(2));
    advance.next_due_at = advance.next_fire_at;
    let applied = store
        .advance_schedules(vec![advance], None)
        .await
        .expect("advance");
    assert_eq!(applied, vec![true]);
    let running = |due: Vec<crate::DueSchedule>| -> bool {
        due.into_iter()
            .find(|d| d.schedule.id == first.id)
            .expect("first is due")
            .previous_running
    };
    assert!(
        running(store.due_schedules(now, 10).await.expect("due")),
        "queued"
    );
    let leased = store.lease(lease_request("w", 1)).await.expect("lease");
    assert_eq!(leased.len(), 1);
    assert!(
        running(store.due_schedules(now, 10).await.expect("due")),
        "scheduled"
    );
    store
        .start("w", vec![(t.worktask_id, 1)], Utc::now())
        .await
        .expect("start");
    assert!(
        running(store.due_schedules(now, 10).await.expect("due")),
        "executing"
    );
    store
        .cancel(t.worktask_id, Utc::now())
        .await
        .expect("cancel");
    assert!(
        !running(store.due_schedules(now, 10).await.expect("due")),
        "ended"
    );
    // Pausing takes it out of the due ones.
    let mut paused_first = store
        .get_schedule(&first.id)
        .await
        .expect("get")
        .expect("schedule");
    paused_first.enabled = false;
    store
        .put_schedule(paused_first, false)
        .await
        .expect("pause");
    assert_eq!(
        store.next_schedule_due().await.expect("next"),
        later.next_due_at
    );
}

/// Sixteen scheduler passes decide from the same revision at once: exactly
/// one is applied, and exactly its tasks are stored.
async fn concurrent_advances_apply_once(store: Arc<dyn Store>) {
    let s = schedule("p", "race", &["pa", "pb"], Duration::minutes(-1));
    let s = store.put_schedule(s, true).await.expect("create");
    let mut handles = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let tasks = vec![fired_task(&s), fired_task(&s)];
            let ids: Vec<Uuid> = tasks.iter().map(|t| t.worktask_id).collect();
            let applied = store
                .advance_schedules(vec![fire(&s, tasks)], None)
                .await
                .expect("advance");
            (ids, applied)
        }));
    }
    let mut winners = Vec::new();
    for handle in handles {
        let (ids, applied) = handle.await.expect("advance task");
        assert_eq!(applied.len(), 1);
        if applied[0] {
            winners.push(ids);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one advance applied");
    assert_eq!(
        stored_task_count(&*store).await,
        2,
        "exactly one fire's tasks"
    );
    let page = store
        .list(ListQuery {
            limit: 100,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    let mut stored: Vec<Uuid> = page.tasks.iter().map(|t| t.worktask_id).collect();
    stored.sort();
    let mut want = winners[0].clone();
    want.sort();
    assert_eq!(stored, want);
    assert!(page.tasks.iter().all(|t| t.task_spec.schedule_id == s.id));
    let after = store
        .get_schedule(&s.id)
        .await
        .expect("get")
        .expect("schedule");
    assert_eq!(after.revision, 2);
    assert_eq!(after.last_task_ids, winners[0]);
    assert_eq!(store.queue_length().await.expect("queue length"), 2);
}

/// An advance of a paused, deleted or since-changed schedule is not
/// applied and stores no task, beside one that is; a deposed leader's
/// advances are refused whole.
async fn stale_advances_store_nothing(store: &dyn Store) {
    let live = store
        .put_schedule(schedule("p", "live", &["pa"], Duration::minutes(-1)), true)
        .await
        .expect("create");
    let mut paused = schedule("p", "paused", &["pa"], Duration::minutes(-1));
    paused.enabled = false;
    let paused = store.put_schedule(paused, true).await.expect("create");
    let gone = store
        .put_schedule(schedule("p", "gone", &["pa"], Duration::minutes(-1)), true)
        .await
        .expect("create");
    store.delete_schedule(&gone.id).await.expect("delete");
    let changed = store
        .put_schedule(
            schedule("p", "changed", &["pa"], Duration::minutes(-1)),
            true,
        )
        .await
        .expect("create");
    store
        .put_schedule(changed.clone(), false)
        .await
        .expect("replace");

    let kept = fired_task(&live);
    let applied = store
        .advance_schedules(
            vec![
                fire(&paused, vec![fired_task(&paused)]),
                fire(&live, vec![kept.clone()]),
                fire(&gone, vec![fired_task(&gone)]),
                fire(&changed, vec![fired_task(&changed)]),
            ],
            Some(term(store).await),
        )
        .await
        .expect("advance");
    assert_eq!(applied, vec![false, true, false, false]);
    assert_eq!(stored_task_count(store).await, 1);
    assert!(store.get(kept.worktask_id).await.expect("get").is_some());
    let paused_after = store
        .get_schedule(&paused.id)
        .await
        .expect("get")
        .expect("schedule");
    assert_eq!(paused_after, paused, "a paused schedule is left as it was");
    assert_eq!(
        store
            .get_schedule(&changed.id)
            .await
            .expect("get")
            .expect("schedule")
            .revision,
        2
    );
    // An advance without a fire keeps the record of the last one.
    let live = store
        .get_schedule(&live.id)
        .await
        .expect("get")
        .expect("schedule");
    let mut quiet = fire(&live, Vec::new());
    quiet.last_outcome = None;
    quiet.queued_fire_at = live.next_fire_at;
    assert_eq!(
        store
            .advance_schedules(vec![quiet], None)
            .await
            .expect("advance"),
        [true]
    );
    let after = store
        .get_schedule(&live.id)
        .await
        .expect("get")
        .expect("schedule");
    assert_eq!(after.revision, live.revision + 1);
    assert_eq!(after.queued_fire_at, live.next_fire_at);
    assert_eq!(after.last_fire_at, live.last_fire_at);
    assert_eq!(after.last_task_ids, vec![kept.worktask_id]);
    assert_eq!(after.last_outcome, Some(mimir_core::FireOutcome::Fired));

    if store.shared() {
        // Another candidate takes over: the old term's advances are refused.
        let old = term(store).await;
        store.resign("conformance", old).await.expect("resign");
        store
            .lead("successor", std::time::Duration::from_secs(30))
            .await
            .expect("lead")
            .expect("the successor leads");
        let before = after.clone();
        let outcome = store
            .advance_schedules(vec![fire(&before, vec![fired_task(&before)])], Some(old))
            .await;
        assert!(
            matches!(outcome, Err(StoreError::Deposed { .. })),
            "{outcome:?}"
        );
        assert_eq!(stored_task_count(store).await, 1);
        assert_eq!(
            store.get_schedule(&live.id).await.expect("get"),
            Some(before)
        );
    }
}

/// Checkpoints: none for a missing pipeline; empty before the first save;
/// a merge keeps other keys and a null removes one; a replacement drops
/// the rest; a write for a missing pipeline is refused.
async fn checkpoints_merge_and_replace(store: &dyn Store) {
    let id = Uuid::now_v7().to_string();
    assert_eq!(store.get_checkpoints(&id).await.expect("get"), None);
    assert!(matches!(
        store
            .put_checkpoints(&id, serde_json::Map::new(), false, Utc::now())
            .await,
        Err(StoreError::Missing {
            kind: "pipeline",
            ..
        })
    ));
    store
        .put_pipeline(pipeline(&id, "p"), true)
        .await
        .expect("create");
    let empty = store
        .get_checkpoints(&id)
        .await
        .expect("get")
        .expect("pipeline");
    assert!(empty.values.is_empty());
    assert_eq!(empty.updated_at, None);
    let values = |v: serde_json::Value| v.as_object().expect("an object").clone();
    let at = Utc::now().trunc_subsecs(6);
    let first = store
        .put_checkpoints(
            &id,
            values(serde_json::json!({"last_id": 41, "cursor": "a"})),
            false,
            at,
        )
        .await
        .expect("put");
    assert_eq!(
        first.values,
        values(serde_json::json!({"last_id": 41, "cursor": "a"}))
    );
    assert_eq!(first.updated_at, Some(at));
    let later = at + Duration::seconds(1);
    let merged = store
        .put_checkpoints(
            &id,
            values(serde_json::json!({"last_id": 42, "cursor": null, "since": "x"})),
            false,
            later,
        )
        .await
        .expect("merge");
    assert_eq!(
        merged.values,
        values(serde_json::json!({"last_id": 42, "since": "x"}))
    );
    assert_eq!(merged.updated_at, Some(later));
    assert_eq!(store.get_checkpoints(&id).await.expect("get"), Some(merged));
    let replaced = store
        .put_checkpoints(
            &id,
            values(serde_json::json!({"only": true, "gone": null})),
            true,
            later,
        )
        .await
        .expect("replace");
    assert_eq!(replaced.values, values(serde_json::json!({"only": true})));
    assert_eq!(
        store.get_checkpoints(&id).await.expect("get"),
        Some(replaced)
    );
}

/// A signed webhook request is accepted once within the window (a replay
/// stores nothing), per pipeline, and again once the window has passed.
async fn webhook_replays_are_refused_within_the_window(store: &dyn Store) {
    let id = Uuid::now_v7().to_string();
    store
        .put_pipeline(pipeline(&id, "p"), true)
        .await
        .expect("create");
    let at = Utc::now().trunc_subsecs(6);
    let delivery = |pipeline_id: &str, at| crate::WebhookDelivery {
        pipeline_id: pipeline_id.into(),
        signature: "ab12".into(),
        at,
        window: std::time::Duration::from_secs(300),
    };
    let mut t = task(WorkTaskType::PipelineExecution, 5, "p");
    t.task_spec.pipeline_id = id.clone();
    let stored = store
        .submit_webhook(delivery(&id, at), t.clone())
        .await
        .expect("webhook");
    assert_eq!(stored, Some(t.clone()));
    assert_eq!(
        store.get(t.worktask_id).await.expect("get"),
        Some(t.clone())
    );
    let replay = task(WorkTaskType::PipelineExecution, 5, "p");
    let refused = store
        .submit_webhook(delivery(&id, at + Duration::seconds(299)), replay.clone())
        .await
        .expect("webhook");
    assert_eq!(refused, None);
    assert_eq!(store.get(replay.worktask_id).await.expect("get"), None);
    assert_eq!(stored_task_count(store).await, 1);
    // The same signature to another pipeline is another request.
    let other = Uuid::now_v7().to_string();
    store
        .put_pipeline(pipeline(&other, "p"), true)
        .await
        .expect("create");
    let elsewhere = task(WorkTaskType::PipelineExecution, 5, "p");
    assert!(
        store
            .submit_webhook(delivery(&other, at), elsewhere)
            .await
            .expect("webhook")
            .is_some()
    );
    // Past the window the signature is forgotten.
    let again = task(WorkTaskType::PipelineExecution, 5, "p");
    let accepted = store
        .submit_webhook(delivery(&id, at + Duration::seconds(301)), again.clone())
        .await
        .expect("webhook");
    assert_eq!(accepted, Some(again));
    assert_eq!(stored_task_count(store).await, 3);
    assert_eq!(store.queue_length().await.expect("queue length"), 3);
}

/// A pipeline's trigger config and webhook secret are stored (never its
/// schedule ids); a replacement without a secret keeps it; a pipeline a
/// schedule fires cannot be deleted, and deleting it afterwards takes its
/// checkpoints along.
async fn pipeline_triggers_and_deletion(store: &dyn Store) {
    let id = Uuid::now_v7().to_string();
    let plain = store
        .put_pipeline(pipeline(&id, "p"), true)
        .await
        .expect("create");
    assert_eq!(plain.trigger_config, mimir_core::TriggerConfig::default());
    let mut p = pipeline(&id, "p");
    p.trigger_config = mimir_core::TriggerConfig {
        allow_manual: false,
        webhook: mimir_core::WebhookTrigger {
            enabled: true,
            secret: Some("k3y".into()),
        },
        schedule_ids: vec!["never stored".into()],
    };
    let stored = store.put_pipeline(p.clone(), false).await.expect("replace");
    let want = mimir_core::TriggerConfig {
        schedule_ids: Vec::new(),
        ..p.trigger_config.clone()
    };
    assert_eq!(stored.trigger_config, want);
    assert_eq!(
        store
            .get_pipeline(&id)
            .await
            .expect("get")
            .expect("pipeline")
            .trigger_config,
        want
    );
    p.trigger_config.webhook.secret = None;
    p.trigger_config.allow_manual = true;
    let kept = store.put_pipeline(p.clone(), false).await.expect("replace");
    assert_eq!(kept.trigger_config.webhook.secret.as_deref(), Some("k3y"));
    assert!(kept.trigger_config.allow_manual);
    let listed = store.list_pipelines(Some("p".into())).await.expect("list");
    assert_eq!(listed, vec![kept.clone()]);
    let mut other = pipeline(&Uuid::now_v7().to_string(), "p");
    other.trigger_config.webhook.secret = Some("new".into());
    let created = store.put_pipeline(other, true).await.expect("create");
    assert_eq!(
        created.trigger_config.webhook.secret.as_deref(),
        Some("new")
    );

    store
        .put_checkpoints(
            &id,
            serde_json::Map::from_iter([("k".into(), serde_json::json!(1))]),
            false,
            Utc::now(),
        )
        .await
        .expect("checkpoints");
    let s1 = store
        .put_schedule(
            schedule("p", "one", &["x", &id], Duration::minutes(1)),
            true,
        )
        .await
        .expect("create");
    let s2 = store
        .put_schedule(schedule("p", "two", &[&id], Duration::minutes(1)), true)
        .await
        .expect("create");
    match store.delete_pipeline(&id).await {
        Err(StoreError::Refused {
            kind: "pipeline",
            id: refused,
            reason,
        }) => {
            assert_eq!(refused, id);
            assert!(
                reason.contains(&s1.id) && reason.contains(&s2.id),
                "{reason}"
            );
        }
        other => panic!("deleting a pipeline schedules fire: {other:?}"),
    }
    assert!(store.get_pipeline(&id).await.expect("get").is_some());
    store.delete_schedule(&s1.id).await.expect("delete");
    store.delete_schedule(&s2.id).await.expect("delete");
    store.delete_pipeline(&id).await.expect("delete");
    assert_eq!(store.get_checkpoints(&id).await.expect("get"), None);
    store
        .put_pipeline(pipeline(&id, "p"), true)
        .await
        .expect("made again");
    let fresh = store
        .get_checkpoints(&id)
        .await
        .expect("get")
        .expect("pipeline");
    assert!(
        fresh.values.is_empty(),
        "a pipeline made again starts without checkpoints"
    );
}

/// One check as a backend runs it: given a fresh, empty store, it panics
/// where the backend misbehaves.
pub type Check = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()>>>;

/// Builds [`CHECKS`] from the checks' names: those that borrow the store and
/// those that share it with tasks they spawn.
macro_rules! register {
    (borrowing: [$($borrowing:ident),* $(,)?], sharing: [$($sharing:ident),* $(,)?] $(,)?) => {
        /// Every check, by name. The checks are private and reached only from
        /// here, so one left out of this list is dead code, which the build
        /// refuses; a backend's tests prove they run every check listed.
        pub const CHECKS: &[(&str, Check)] = &[
            $((stringify!($borrowing), |store| Box::pin(async move { $borrowing(&*store).await })),)*
            $((stringify!($sharing), |store| Box::pin($sharing(store))),)*
        ];
    };
}

register!(
    borrowing: [
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
        finish_many_decides_each_report,
        only_leases_take_the_named_task,
        aging_lifts_long_waiting_tasks,
        queue_signal_wakes_waiters,
        nul_characters_do_not_fail_writes,
        schedules_round_trip,
        due_schedules_in_order_with_their_previous_runs,
        stale_advances_store_nothing,
        checkpoints_merge_and_replace,
        webhook_replays_are_refused_within_the_window,
        pipeline_triggers_and_deletion,
    ],
    sharing: [
        concurrent_submits_all_land,
        concurrent_start_training_one_wins,
        concurrent_leases_never_share_a_task,
        concurrent_advances_apply_once,
    ],
);

/// Runs the check named `name` against `store`.
///
/// # Panics
///
/// When the check fails, or no check has that name.
pub async fn run(name: &str, store: Arc<dyn Store>) {
    let Some((_, check)) = CHECKS.iter().find(|(n, _)| *n == name) else {
        panic!("no conformance check is named {name:?}");
    };
    check(store).await;
}
