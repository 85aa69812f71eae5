//! Behaviour every [`Store`] backend must show.
//!
//! Each check takes a fresh, empty store. A backend's tests call every check;
//! [`CHECKS`] lists them so none is forgotten.

use crate::{ListQuery, Store, StoreError};
use chrono::{Duration, Utc};
use mimir_core::{Priority, Submission, WorkTask, WorkTaskStatus, WorkTaskType};
use uuid::Uuid;

/// A queued task of `task_type` and `priority`, submitted `offset_ms` after now.
pub fn task(task_type: WorkTaskType, priority: i64, project: &str) -> WorkTask {
    let new = Submission {
        task_type: Some(task_type.as_str().into()),
        priority: Some(priority),
        project_id: Some(project.into()),
        ..Submission::default()
    }
    .validate()
    .expect("a valid submission");
    WorkTask::new(Uuid::now_v7(), Utc::now(), new)
}

/// Submitted tasks come back exactly as stored, and `get` finds each.
pub async fn submit_then_get(store: &dyn Store) {
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
    assert_eq!(store.queue_length(), 2);
    let counts = store.counts();
    assert_eq!(
        counts.get(WorkTaskType::MlTraining, WorkTaskStatus::Queued),
        1
    );
    assert_eq!(counts.total(), 2);
}

/// The most urgent list follows priority then arrival, and counts all matches.
pub async fn most_urgent_in_queue_order(store: &dyn Store) {
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
pub async fn list_filters_and_pages(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let t = task(
            WorkTaskType::ALL[i % 3],
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
        status: Some(WorkTaskStatus::Queued),
        limit: 100,
        after: None,
    };
    let page = store.list(query).await.expect("list");
    assert_eq!(page.tasks.len(), 5, "i in 0,6,12,18,24");
    assert!(page.next.is_none());
    assert!(
        page.tasks
            .iter()
            .all(|t| t.project_id == "even" && t.task_type == WorkTaskType::PipelineExecution)
    );
}

/// Cancelling a queued task takes it out of the queue; a second cancel is refused.
pub async fn cancel_queued(store: &dyn Store) {
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
    assert_eq!(store.queue_length(), 1);
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
    assert_eq!(store.queue_length(), 1, "a refused cancel changes nothing");
    let counts = store.counts();
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
pub async fn concurrent_submits_all_land(store: std::sync::Arc<dyn Store>) {
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
    assert_eq!(store.queue_length(), 800);
    for id in all {
        assert!(store.get(id).await.expect("get").is_some());
    }
    store.ping().await.expect("ping");
}

/// The names of every check, for backends to prove they ran them all.
pub const CHECKS: &[&str] = &[
    "submit_then_get",
    "most_urgent_in_queue_order",
    "list_filters_and_pages",
    "cancel_queued",
    "concurrent_submits_all_land",
];
