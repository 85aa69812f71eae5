//! The real `kube` client against the stand-in API server: REST verbs, watches, the Job
//! lifecycle with a real program, pod faults and API faults.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::runtime::watcher;
use mimir_kube_standin::{
    ApiFaults, ApiVerb, FaultRule, JobPhase, PodFault, StandIn, StandInConfig, WorkerProgram,
};
use serde_json::json;

const NS: &str = "mimir";
const WAIT: Duration = Duration::from_secs(20);

async fn client(standin: &StandIn) -> kube::Client {
    client_with(standin, |_| {}).await
}

/// A stand-in whose pods run `worker`, and a client of it.
async fn running(worker: Option<WorkerProgram>) -> (StandIn, kube::Client) {
    let standin = StandIn::start(StandInConfig {
        worker,
        ..StandInConfig::default()
    })
    .await
    .unwrap();
    let client = client(&standin).await;
    (standin, client)
}

async fn client_with(standin: &StandIn, tweak: impl FnOnce(&mut kube::Config)) -> kube::Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    standin.write_kubeconfig(&path, NS).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(config.default_namespace, NS);
    tweak(&mut config);
    kube::Client::try_from(config).unwrap()
}

/// A Job as the backend writes one: one container, restartPolicy Never, backoffLimit 0.
fn job(name: &str, task: &str, env: serde_json::Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name, "labels": { "app": "mimir-worker", "worktask-id": task } },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": { "labels": { "app": "mimir-worker", "worktask-id": task } },
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": "mimir-worker",
                    "containers": [{
                        "name": "worker",
                        "image": "mimir-aip:dev",
                        "env": env,
                        "resources": { "requests": { "cpu": "500m", "memory": "256Mi" }, "limits": { "memory": "512Mi" } }
                    }]
                }
            }
        }
    }))
    .unwrap()
}

async fn wait_for<K>(api: &Api<K>, name: &str, cond: impl Condition<K>) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let found = tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond)).await;
    found
        .expect("condition within the wait")
        .unwrap()
        .expect("the object exists")
}

fn job_condition(type_: &'static str, reason: Option<&'static str>) -> impl Condition<Job> {
    move |job: Option<&Job>| {
        job.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == type_
                        && c.status == "True"
                        && reason.is_none_or(|r| c.reason.as_deref() == Some(r))
                })
            })
    }
}

async fn pod_of(client: &kube::Client, job: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1, "one pod for job {job}");
    list.items.remove(0)
}

fn api_code(e: &kube::Error) -> Option<(u16, String)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.reason.clone())),
        _ => None,
    }
}

fn sleeper() -> Option<WorkerProgram> {
    Some(WorkerProgram {
        program: PathBuf::from("/bin/sleep"),
        args: vec!["30".into()],
        env: Vec::new(),
    })
}

#[tokio::test]
async fn jobs_are_created_read_listed_paged_and_deleted_through_kube() {
    let standin = StandIn::start(StandInConfig::default()).await.unwrap();
    let client = client(&standin).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);

    let created = jobs
        .create(&PostParams::default(), &job("task-a", "a", json!([])))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    for t in ["b", "c", "d", "e"] {
        jobs.create(
            &PostParams::default(),
            &job(&format!("task-{t}"), t, json!([])),
        )
        .await
        .unwrap();
    }
    let other: Api<Job> = Api::namespaced(client.clone(), "elsewhere");
    let mut stray = job("task-z", "z", json!([]));
    stray.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    other.create(&PostParams::default(), &stray).await.unwrap();

    let got = jobs.get("task-a").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(got.status.unwrap().active, Some(1));

    let one = jobs
        .list(&ListParams::default().labels("app=mimir-worker,worktask-id=c"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].metadata.name.as_deref(), Some("task-c"));
    let none = jobs
        .list(
            &ListParams::default()
                .labels("app=mimir-worker,worktask-id!=a,worktask-id!=b,!worktask-id"),
        )
        .await
        .unwrap();
    assert!(none.items.is_empty());

    // Pages of two, in name order, across the continue token.
    let mut names = Vec::new();
    let mut lp = ListParams::default().labels("app=mimir-worker").limit(2);
    loop {
        let page = jobs.list(&lp).await.unwrap();
        assert!(page.items.len() <= 2);
        assert!(page.metadata.resource_version.is_some());
        names.extend(page.items.iter().map(|j| j.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(names, ["task-a", "task-b", "task-c", "task-d", "task-e"]);
    let all: Api<Job> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        6
    );

    let pod = pod_of(&client, "task-a").await;
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels["app"], "mimir-worker");
    assert_eq!(
        labels["controller-uid"],
        created.metadata.uid.clone().unwrap()
    );
    assert_eq!(pod.metadata.owner_references.unwrap()[0].name, "task-a");
    assert!(pod.metadata.name.unwrap().starts_with("task-a-"));

    jobs.delete("task-a", &DeleteParams::background())
        .await
        .unwrap();
    let e = jobs.get("task-a").await.unwrap_err();
    assert_eq!(api_code(&e), Some((404, "NotFound".to_string())));
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    assert!(
        pods.list(&ListParams::default().labels("job-name=task-a"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let e = jobs
        .delete("task-a", &DeleteParams::background())
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), Some((404, "NotFound".to_string())));

    let stats = standin.stats();
    assert_eq!(stats.jobs_created, 6);
    assert_eq!(stats.max_active, 6);
    assert_eq!(stats.active, 5);
    let record = standin
        .jobs()
        .into_iter()
        .find(|r| r.name == "task-b")
        .unwrap();
    assert_eq!(record.service_account_name.as_deref(), Some("mimir-worker"));
    assert_eq!(record.backoff_limit, Some(0));
    assert!(
        record
            .resources
            .unwrap()
            .limits
            .unwrap()
            .contains_key("memory")
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_job_name_is_409_already_exists_and_a_bad_name_422_invalid() {
    let standin = StandIn::start(StandInConfig::default()).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client(&standin).await, NS);
    jobs.create(&PostParams::default(), &job("dup", "1", json!([])))
        .await
        .unwrap();
    let e = jobs
        .create(&PostParams::default(), &job("dup", "1", json!([])))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), Some((409, "AlreadyExists".to_string())));
    assert_eq!(standin.stats().conflicts, 1);

    for bad in ["Upper-Case", "under_score", &"x".repeat(64)] {
        let e = jobs
            .create(&PostParams::default(), &job(bad, "1", json!([])))
            .await
            .unwrap_err();
        assert_eq!(
            api_code(&e),
            Some((422, "Invalid".to_string())),
            "name {bad:?}"
        );
    }
    let mut always = job("always", "1", json!([]));
    always
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("Always".into());
    let e = jobs
        .create(&PostParams::default(), &always)
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), Some((422, "Invalid".to_string())));
    assert_eq!(standin.stats().jobs_created, 1);
    standin.shutdown().await;
}

/// Collects watcher events until `done` holds for what was seen, or the wait ends.
async fn watch_until<S>(stream: &mut S, seen: &mut Vec<String>, done: impl Fn(&[String]) -> bool)
where
    S: futures_util::Stream<Item = Result<watcher::Event<Job>, watcher::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(seen) {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("watch event within the wait");
        let label = match next.expect("the watcher never ends") {
            Ok(watcher::Event::Apply(j)) => format!("apply {}", j.metadata.name.unwrap()),
            Ok(watcher::Event::Delete(j)) => format!("delete {}", j.metadata.name.unwrap()),
            Ok(watcher::Event::Init) => "init".to_string(),
            Ok(watcher::Event::InitApply(j)) => format!("init-apply {}", j.metadata.name.unwrap()),
            Ok(watcher::Event::InitDone) => "init-done".to_string(),
            Err(e) => format!("error {e}"),
        };
        seen.push(label);
    }
}

#[tokio::test]
async fn the_watcher_sees_added_modified_deleted_and_watches_again_after_dropped_watches() {
    let standin = StandIn::start(StandInConfig::default()).await.unwrap();
    let client = client(&standin).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    jobs.create(&PostParams::default(), &job("before", "0", json!([])))
        .await
        .unwrap();
    let mut stream = watcher(
        jobs.clone(),
        watcher::Config::default().labels("app=mimir-worker"),
    )
    .boxed();
    let mut seen = Vec::new();
    watch_until(&mut stream, &mut seen, |s| {
        s.contains(&"init-done".to_string())
    })
    .await;
    assert_eq!(seen, ["init", "init-apply before", "init-done"]);

    seen.clear();
    jobs.create(&PostParams::default(), &job("w1", "1", json!([])))
        .await
        .unwrap();
    // ADDED, then MODIFIED as the Job controller sets active, then ready when the pod runs.
    watch_until(&mut stream, &mut seen, |s| {
        s.iter().filter(|e| *e == "apply w1").count() >= 3
    })
    .await;
    assert!(standin.delete_job(NS, "w1"));
    watch_until(&mut stream, &mut seen, |s| {
        s.contains(&"delete w1".to_string())
    })
    .await;

    standin.drop_watches();
    seen.clear();
    jobs.create(&PostParams::default(), &job("w2", "2", json!([])))
        .await
        .unwrap();
    watch_until(&mut stream, &mut seen, |s| {
        s.contains(&"apply w2".to_string())
    })
    .await;
    assert!(
        !seen.contains(&"init".to_string()),
        "a dropped watch resumes without a relist: {seen:?}"
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn the_watcher_lists_again_when_its_resource_version_has_expired() {
    let standin = StandIn::start(StandInConfig::default()).await.unwrap();
    let client = client(&standin).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let mut stream = watcher(
        jobs.clone(),
        watcher::Config::default().labels("app=mimir-worker"),
    )
    .boxed();
    let mut seen = Vec::new();
    watch_until(&mut stream, &mut seen, |s| {
        s.contains(&"init-done".to_string())
    })
    .await;
    jobs.create(&PostParams::default(), &job("e1", "1", json!([])))
        .await
        .unwrap();
    watch_until(&mut stream, &mut seen, |s| {
        s.contains(&"apply e1".to_string())
    })
    .await;

    // The watcher is not polled meanwhile: it resumes from before e2, which is forgotten.
    standin.drop_watches();
    jobs.create(&PostParams::default(), &job("e2", "2", json!([])))
        .await
        .unwrap();
    standin.forget_history();
    seen.clear();
    watch_until(&mut stream, &mut seen, |s| {
        s.contains(&"init-done".to_string())
    })
    .await;
    let expired = seen
        .iter()
        .position(|e| e.starts_with("error") && e.contains("Expired"));
    let init = seen.iter().position(|e| e == "init");
    assert!(
        expired.is_some() && expired < init,
        "a 410, then a relist: {seen:?}"
    );
    assert!(
        seen.contains(&"init-apply e1".to_string()) && seen.contains(&"init-apply e2".to_string()),
        "{seen:?}"
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn a_job_runs_its_program_with_the_job_env_and_secrets_and_ends_complete() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.txt");
    let worker = WorkerProgram {
        program: PathBuf::from("/bin/sh"),
        args: vec![
            "-c".into(),
            r#"echo "$WORKTASK_ID $MIMIR_TOKEN $POD_NAME" > "$OUT""#.into(),
        ],
        env: vec![("OUT".into(), out.display().to_string())],
    };
    let config = StandInConfig {
        worker: Some(worker),
        pod_start_delay: Duration::from_millis(50),
        ..StandInConfig::default()
    };
    let standin = StandIn::start(config).await.unwrap();
    standin.set_secret(NS, "mimir-worker-token", "token", "s3cret");
    let client = client(&standin).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let env = json!([
        { "name": "WORKTASK_ID", "value": "wt-42" },
        { "name": "MIMIR_TOKEN", "valueFrom": { "secretKeyRef": { "name": "mimir-worker-token", "key": "token" } } },
        { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }
    ]);
    jobs.create(&PostParams::default(), &job("runs", "wt-42", env))
        .await
        .unwrap();
    let done = wait_for(&jobs, "runs", conditions::is_job_completed()).await;
    let status = done.status.unwrap();
    assert_eq!(status.succeeded, Some(1));
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    let pod = pod_of(&client, "runs").await;
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        written.trim(),
        format!("wt-42 s3cret {}", pod.metadata.name.unwrap())
    );
    let pod_status = pod.status.unwrap();
    assert_eq!(pod_status.phase.as_deref(), Some("Succeeded"));
    let terminated = pod_status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert_eq!(standin.jobs()[0].phase, JobPhase::Succeeded);
    assert_eq!(standin.stats().active, 0);
    standin.shutdown().await;
}

#[tokio::test]
async fn a_program_exiting_non_zero_fails_the_job_and_a_missing_secret_keeps_the_pod_waiting() {
    let worker = WorkerProgram {
        program: PathBuf::from("/bin/sh"),
        args: vec![
            "-c".into(),
            "echo starting; echo step 1; echo 'failed: no input' >&2; exit 3".into(),
        ],
        env: Vec::new(),
    };
    let (standin, client) = running(Some(worker)).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    jobs.create(&PostParams::default(), &job("exits", "1", json!([])))
        .await
        .unwrap();
    wait_for(
        &jobs,
        "exits",
        job_condition("Failed", Some("BackoffLimitExceeded")),
    )
    .await;
    let pod = pod_of(&client, "exits").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let tail = LogParams {
        tail_lines: Some(2),
        ..LogParams::default()
    };
    let log = pods
        .logs(pod.metadata.name.as_deref().unwrap(), &tail)
        .await
        .unwrap();
    assert_eq!(log, "step 1\nfailed: no input\n");
    let pod = pod.status.unwrap();
    assert_eq!(pod.phase.as_deref(), Some("Failed"));
    let terminated = pod.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (3, Some("Error"))
    );

    let env =
        json!([{ "name": "T", "valueFrom": { "secretKeyRef": { "name": "absent", "key": "k" } } }]);
    jobs.create(&PostParams::default(), &job("nosecret", "2", env))
        .await
        .unwrap();
    let name = pod_of(&client, "nosecret").await.metadata.name.unwrap();
    let waiting = |pod: Option<&Pod>| {
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs[0].state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
    };
    let pod = wait_for(&pods, &name, waiting).await;
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));
    standin.shutdown().await;
}

#[tokio::test]
async fn an_oom_kill_shows_oomkilled_exit_137_for_new_and_running_jobs() {
    let (standin, client) = running(sleeper()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);

    standin
        .inject(FaultRule {
            selector: "worktask-id=oom".into(),
            times: Some(1),
            fault: PodFault::OomKilled,
        })
        .unwrap();
    jobs.create(&PostParams::default(), &job("oom", "oom", json!([])))
        .await
        .unwrap();
    wait_for(&jobs, "oom", job_condition("Failed", None)).await;
    let oom_pod = pod_of(&client, "oom").await;
    assert_oom(&oom_pod);

    // A running Job, struck after it started.
    jobs.create(&PostParams::default(), &job("later", "later", json!([])))
        .await
        .unwrap();
    let name = pod_of(&client, "later").await.metadata.name.unwrap();
    wait_for(&pods, &name, conditions::is_pod_running()).await;
    standin
        .inject(FaultRule {
            selector: "worktask-id=later".into(),
            times: None,
            fault: PodFault::OomKilled,
        })
        .unwrap();
    wait_for(&jobs, "later", job_condition("Failed", None)).await;
    assert_oom(&pod_of(&client, "later").await);
    standin.shutdown().await;
}

fn assert_oom(pod: &Pod) {
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let terminated = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (137, Some("OOMKilled"))
    );
}

#[tokio::test]
async fn an_unschedulable_pod_stays_pending_with_pod_scheduled_false() {
    let (standin, client) = running(sleeper()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let message = "0/3 nodes are available: 3 Insufficient memory.";
    standin
        .inject(FaultRule {
            selector: "app=mimir-worker".into(),
            times: Some(1),
            fault: PodFault::Unschedulable(message.into()),
        })
        .unwrap();
    jobs.create(&PostParams::default(), &job("big", "big", json!([])))
        .await
        .unwrap();
    let pod = pod_of(&client, "big").await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(pod.spec.unwrap().node_name.is_none());
    let scheduled = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(
        (
            scheduled.status.as_str(),
            scheduled.reason.as_deref(),
            scheduled.message.as_deref()
        ),
        ("False", Some("Unschedulable"), Some(message))
    );
    assert_eq!(standin.jobs()[0].phase, JobPhase::Pending);
    standin.shutdown().await;
}

#[tokio::test]
async fn image_pull_back_off_evictions_and_lost_nodes_look_as_the_kubelet_reports_them() {
    let (standin, client) = running(sleeper()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    standin
        .inject(FaultRule {
            selector: "worktask-id=pull".into(),
            times: None,
            fault: PodFault::ImagePullBackOff,
        })
        .unwrap();
    standin
        .inject(FaultRule {
            selector: "worktask-id=evict".into(),
            times: None,
            fault: PodFault::Evicted,
        })
        .unwrap();
    standin
        .inject(FaultRule {
            selector: "worktask-id=lost".into(),
            times: None,
            fault: PodFault::NodeLost,
        })
        .unwrap();
    for t in ["pull", "evict", "lost"] {
        jobs.create(&PostParams::default(), &job(t, t, json!([])))
            .await
            .unwrap();
    }
    let pull = pod_of(&client, "pull").await.metadata.name.unwrap();
    let backing_off = |pod: Option<&Pod>| {
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs[0].state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| {
                w.reason.as_deref() == Some("ImagePullBackOff")
                    && w.message
                        .as_deref()
                        .is_some_and(|m| m.contains("mimir-aip:dev"))
            })
    };
    wait_for(&pods, &pull, backing_off).await;

    wait_for(&jobs, "evict", job_condition("Failed", None)).await;
    let evicted = pod_of(&client, "evict").await.status.unwrap();
    assert_eq!(
        (evicted.phase.as_deref(), evicted.reason.as_deref()),
        (Some("Failed"), Some("Evicted"))
    );
    assert_eq!(
        evicted.message.as_deref(),
        Some("The node was low on resource: memory.")
    );

    wait_for(&jobs, "lost", job_condition("Failed", None)).await;
    assert!(
        pods.list(&ListParams::default().labels("job-name=lost"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn active_deadline_fails_the_job_and_ttl_deletes_finished_jobs() {
    let (standin, client) = running(sleeper()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let mut deadline = job("deadline", "d", json!([]));
    deadline.spec.as_mut().unwrap().active_deadline_seconds = Some(1);
    jobs.create(&PostParams::default(), &deadline)
        .await
        .unwrap();
    wait_for(
        &jobs,
        "deadline",
        job_condition("Failed", Some("DeadlineExceeded")),
    )
    .await;

    let mut ttl = job("ttl", "t", json!([]));
    ttl.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(0);
    let created = jobs.create(&PostParams::default(), &ttl).await.unwrap();
    let name = pod_of(&client, "ttl").await.metadata.name.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    wait_for(&pods, &name, conditions::is_pod_running()).await;
    assert!(standin.finish_pod(NS, "ttl", 0));
    let uid = created.metadata.uid.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(jobs.clone(), "ttl", conditions::is_deleted(&uid)),
    )
    .await
    .unwrap()
    .unwrap();
    standin.shutdown().await;
}

#[tokio::test]
async fn injected_500s_and_hangs_fail_requests_then_the_api_recovers() {
    let standin = StandIn::start(StandInConfig::default()).await.unwrap();
    let client = client_with(&standin, |c| {
        c.read_timeout = Some(Duration::from_millis(300))
    })
    .await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    standin
        .api_faults(ApiFaults {
            status_500: 2,
            verb: Some(ApiVerb::Create),
            ..ApiFaults::default()
        })
        .unwrap();
    jobs.list(&ListParams::default()).await.unwrap();
    for _ in 0..2 {
        let e = jobs
            .create(&PostParams::default(), &job("x", "x", json!([])))
            .await
            .unwrap_err();
        assert_eq!(api_code(&e), Some((500, "InternalError".to_string())));
    }
    jobs.create(&PostParams::default(), &job("x", "x", json!([])))
        .await
        .unwrap();

    standin
        .api_faults(ApiFaults {
            hang: 1,
            ..ApiFaults::default()
        })
        .unwrap();
    let e = jobs.get("x").await.unwrap_err();
    assert!(api_code(&e).is_none(), "a timeout, not an answer: {e}");
    jobs.get("x").await.unwrap();
    standin.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_api_refuses_connections_until_it_is_back_on_the_same_port() {
    let standin = StandIn::start(StandInConfig::default()).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client(&standin).await, NS);
    jobs.create(&PostParams::default(), &job("x", "x", json!([])))
        .await
        .unwrap();
    standin
        .api_faults(ApiFaults {
            unreachable: true,
            ..ApiFaults::default()
        })
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(standin.addr())
            .await
            .is_err()
    );
    let e = jobs.get("x").await.unwrap_err();
    assert!(api_code(&e).is_none(), "no answer: {e}");
    standin.api_faults(ApiFaults::default()).unwrap();
    assert_eq!(
        jobs.get("x").await.unwrap().metadata.name.as_deref(),
        Some("x")
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn deleting_jobs_follows_the_propagation_policy_and_a_deleted_pod_fails_its_job() {
    let (standin, client) = running(sleeper()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    jobs.create(&PostParams::default(), &job("orphan", "o", json!([])))
        .await
        .unwrap();
    jobs.create(&PostParams::default(), &job("fg", "f", json!([])))
        .await
        .unwrap();
    let orphan_pod = pod_of(&client, "orphan").await.metadata.name.unwrap();
    wait_for(&pods, &orphan_pod, conditions::is_pod_running()).await;

    let answer = jobs
        .delete("orphan", &DeleteParams::default())
        .await
        .unwrap();
    assert!(answer.is_right(), "a Status for a default delete");
    let left = pods.get(&orphan_pod).await.unwrap();
    assert!(left.metadata.owner_references.is_none());

    let answer = jobs
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    let deleting = answer
        .left()
        .expect("the Job being deleted, for Foreground");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert!(
        pods.list(&ListParams::default().labels("job-name=fg"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(standin.jobs().is_empty());

    // A pod deleted under a running Job counts as failed: backoffLimit 0 fails the Job.
    jobs.create(&PostParams::default(), &job("podgone", "p", json!([])))
        .await
        .unwrap();
    let pod = pod_of(&client, "podgone").await.metadata.name.unwrap();
    pods.delete(&pod, &DeleteParams::default()).await.unwrap();
    wait_for(&jobs, "podgone", job_condition("Failed", None)).await;
    standin.shutdown().await;
}

#[tokio::test]
async fn a_streaming_list_watcher_gets_initial_events_then_changes() {
    // Many bookmarks pass while s2's pod starts: each must parse, or the watcher reports errors.
    let config = StandInConfig {
        bookmark_interval: Duration::from_millis(20),
        pod_start_delay: Duration::from_millis(300),
        ..StandInConfig::default()
    };
    let standin = StandIn::start(config).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client(&standin).await, NS);
    jobs.create(&PostParams::default(), &job("s1", "1", json!([])))
        .await
        .unwrap();
    let config = watcher::Config::default()
        .labels("app=mimir-worker")
        .streaming_lists();
    let mut stream = watcher(jobs.clone(), config).boxed();
    let mut seen = Vec::new();
    watch_until(&mut stream, &mut seen, |s| {
        s.contains(&"init-done".to_string())
    })
    .await;
    assert_eq!(seen, ["init", "init-apply s1", "init-done"]);
    jobs.create(&PostParams::default(), &job("s2", "2", json!([])))
        .await
        .unwrap();
    watch_until(&mut stream, &mut seen, |s| {
        s.contains(&"apply s2".to_string())
    })
    .await;
    standin.shutdown().await;
}

fn alive(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// Waits until `check` holds, checking every 20 ms for at most the wait.
async fn until(mut check: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within the wait"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn deleting_a_job_and_shutting_down_kill_the_pods_processes() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProgram {
        program: PathBuf::from("/bin/sh"),
        args: vec![
            "-c".into(),
            r#"echo $$ > "$PIDS/$JOB"; exec sleep 30"#.into(),
        ],
        env: vec![("PIDS".into(), dir.path().display().to_string())],
    };
    let standin = StandIn::start(StandInConfig {
        worker: Some(worker),
        ..StandInConfig::default()
    })
    .await
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(client(&standin).await, NS);
    let mut pids = Vec::new();
    for name in ["deleted", "kept"] {
        let env = json!([{ "name": "JOB", "value": name }]);
        jobs.create(&PostParams::default(), &job(name, name, env))
            .await
            .unwrap();
        let file = dir.path().join(name);
        until(
            || std::fs::read_to_string(&file).is_ok_and(|s| s.ends_with('\n')),
            "the pid file",
        )
        .await;
        let pid: i32 = std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(pid));
        pids.push(pid);
    }
    jobs.delete("deleted", &DeleteParams::background())
        .await
        .unwrap();
    until(|| !alive(pids[0]), "the deleted Job's process gone").await;
    assert!(alive(pids[1]));
    standin.shutdown().await;
    assert!(!alive(pids[1]), "shutdown kills what is left");
}
