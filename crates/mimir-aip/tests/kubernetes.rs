//! Workers as Kubernetes Jobs, through the real binary.
//!
//! No Kubernetes API server can run on these machines, so each cluster here
//! is `mimir-kube-standin`: a **stand-in** API server for tests that speaks
//! the real Kubernetes REST and watch protocol for Jobs and Pods (the
//! orchestrator talks to it with the real `kube` client) and that, like a
//! Job controller and kubelet together, starts a real `mimir-aip worker`
//! process for each Job's pod with the pod's environment. Tests inject what
//! clusters do to pods (OOM kills, evictions, image pull failures,
//! unschedulable pods) and to API calls (refused connections).

mod harness;

use harness::pipelines::{one_step, post_task, wait_until_done};
use harness::{Orchestrator, bin, free_port};
use mimir_core::WorkTask;
use mimir_core::WorkTaskStatus;
use mimir_kube_standin::{
    ApiFaults, ApiVerb, FaultRule, JobPhase, JobRecord, PodFault, StandIn, StandInConfig,
    WorkerProgram,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

const TOKEN: &str = "k8s-worker-token-not-in-any-job";

/// A stand-in cluster whose pods run the real worker.
async fn cluster() -> StandIn {
    let standin = StandIn::start(StandInConfig {
        worker: Some(WorkerProgram {
            program: bin().into(),
            args: vec![
                "worker".into(),
                "--log-format".into(),
                "json".into(),
                "--log-level".into(),
                "warn".into(),
            ],
            env: Vec::new(),
        }),
        ..StandInConfig::default()
    })
    .await
    .expect("start the stand-in API server");
    standin.set_secret("jobs", "mimir-aip-worker-token", "token", TOKEN);
    standin
}

/// An orchestrator running its workers as Jobs in `primary` (and
/// `additional`, as `site-b`), with `extra` YAML under `orchestrator.kubernetes`.
fn orchestrator(
    dir: &Path,
    primary: (&StandIn, u32),
    additional: Option<(&StandIn, u32)>,
    kubernetes: &str,
) -> Orchestrator {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary_config = dir.join("primary.kubeconfig");
    primary
        .0
        .write_kubeconfig(&primary_config, "jobs")
        .expect("kubeconfig");
    let mut yaml = format!(
        "retry:\n  backoffBaseMs: 50\n  backoffCapMs: 200\n\
         orchestrator:\n  workerBackend: kubernetes\n  kubeconfig: {}\n  workerNamespace: jobs\n  maxWorkers: {}\n  workerAuthToken: {TOKEN}\n  leaseTtlMs: 3000\n\
         \x20 kubernetes:\n    orchestratorURL: {url}\n    circuitCooldownMs: 1000\n    circuitFailures: 2\n{kubernetes}",
        primary_config.display(),
        primary.1,
    );
    if let Some((site_b, max)) = additional {
        let path = dir.join("site-b.kubeconfig");
        site_b.write_kubeconfig(&path, "jobs").expect("kubeconfig");
        yaml.push_str(&format!(
            "  additionalClusters:\n    - {{name: site-b, kubeconfig: {}, namespace: jobs, orchestratorURL: \"{url}\", maxWorkers: {max}}}\n",
            path.display()
        ));
    }
    Orchestrator::start_on(port, &yaml, &[])
}

async fn sleeper(orchestrator: &Orchestrator, ms: u64) -> String {
    one_step(
        &orchestrator.client(),
        "nap",
        "core.sleep",
        json!({ "ms": ms }),
    )
    .await
}

async fn submit(orchestrator: &Orchestrator, pipeline: &str, extra: Value) -> Uuid {
    let mut body = json!({"type": "pipeline_execution", "project_id": "e2e", "task_spec": {"pipeline_id": pipeline}});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    post_task(&orchestrator.client(), "/api/worktasks", body).await
}

/// Submits `n` tasks of `pipeline`, each with `extra`.
async fn submit_many(
    orchestrator: &Orchestrator,
    pipeline: &str,
    n: usize,
    extra: Value,
) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(submit(orchestrator, pipeline, extra.clone()).await);
    }
    ids
}

/// Waits until `n` of the stand-in's Jobs have a running pod.
async fn jobs_run(standin: &StandIn, n: usize) {
    wait_for(
        &format!("{n} Jobs run"),
        Duration::from_secs(60),
        async || {
            standin
                .jobs()
                .iter()
                .filter(|j| j.phase == JobPhase::Running)
                .count()
                == n
        },
    )
    .await;
}

/// Waits for every task of `ids` to end and checks each completed in its
/// first attempt.
async fn each_completes_in_one_attempt(orchestrator: &Orchestrator, ids: &[Uuid], why: &str) {
    let client = orchestrator.client();
    for id in ids {
        let task = wait_until_done(&client, *id, Duration::from_secs(60)).await;
        assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
        assert_eq!(task.attempt, 1, "{why}: {task:?}");
    }
}

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the Job `name` is in `phase`.
async fn job_reaches(standin: &StandIn, name: &str, phase: JobPhase) {
    wait_for(
        &format!("Job {name} {phase:?}"),
        Duration::from_secs(30),
        async || {
            standin
                .jobs()
                .iter()
                .any(|j| j.name == name && j.phase == phase)
        },
    )
    .await;
}

async fn metrics(orchestrator: &Orchestrator) -> String {
    harness::scrape_text(&orchestrator.url).await
}

/// Makes pods of Jobs matching `selector` meet `fault`, `times` times
/// (every time when `None`).
fn inject(standin: &StandIn, selector: &str, times: Option<usize>, fault: PodFault) {
    standin
        .inject(FaultRule {
            selector: selector.into(),
            times,
            fault,
        })
        .expect("inject a pod fault");
}

/// Runs one 300 ms task, with two retries allowed, whose first attempt's
/// pod meets `fault`; returns the task once it ended, its second attempt's
/// Job, and the orchestrator's metrics then.
async fn first_attempt_meets(fault: PodFault) -> (WorkTask, Option<JobRecord>, String) {
    let standin = cluster().await;
    inject(
        &standin,
        "app=mimir-worker,worktask-attempt=1",
        Some(1),
        fault,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(dir.path(), (&standin, 10), None, "");
    let pipeline = sleeper(&orchestrator, 300).await;
    let id = submit(&orchestrator, &pipeline, json!({"max_retries": 2})).await;
    let task = wait_until_done(&orchestrator.client(), id, Duration::from_secs(60)).await;
    let second = standin
        .jobs()
        .into_iter()
        .find(|j| j.name == format!("mimir-{id}-2"));
    let text = metrics(&orchestrator).await;
    standin.shutdown().await;
    (task, second, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_as_jobs_with_their_env_resources_and_labels_and_each_completes_once() {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(dir.path(), (&standin, 10), None, "");
    let pipeline = sleeper(&orchestrator, 10).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let extra = if i == 0 {
            json!({"resource_requirements": {"cpu": "2", "memory": "3Gi", "gpu": true}, "task_spec": {"pipeline_id": pipeline, "timeout_ms": 60000}})
        } else {
            json!({})
        };
        ids.push(submit(&orchestrator, &pipeline, extra).await);
    }
    let client = orchestrator.client();
    for id in &ids {
        let task = wait_until_done(&client, *id, Duration::from_secs(60)).await;
        assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
        assert_eq!(task.attempt, 1, "one attempt each");
        assert_eq!(task.kubernetes_job_name, format!("mimir-{id}-1"));
        assert_eq!(task.cluster_name, "primary");
        assert_eq!(task.worker_id, task.kubernetes_job_name);
    }
    // A worker exits just after it reports.
    wait_for("every Job succeeds", Duration::from_secs(30), async || {
        standin
            .jobs()
            .iter()
            .all(|j| j.phase == JobPhase::Succeeded)
    })
    .await;
    let jobs = standin.jobs();
    assert_eq!(jobs.len(), ids.len(), "one Job per task");
    for id in &ids {
        let job = jobs
            .iter()
            .find(|j| j.labels.get("worktask-id") == Some(&id.to_string()))
            .expect("the task's Job");
        assert_eq!(job.phase, JobPhase::Succeeded);
        assert_eq!(job.labels["app"], "mimir-worker");
        assert_eq!(job.labels["worktask-type"], "pipeline-execution");
        assert_eq!(job.backoff_limit, Some(0));
        assert_eq!(job.service_account_name.as_deref(), Some("mimir-worker"));
        let env: HashMap<&str, _> = job.env.iter().map(|e| (e.name.as_str(), e)).collect();
        assert_eq!(env["WORKTASK_ID"].value, Some(id.to_string()));
        assert_eq!(
            env["WORKTASK_TYPE"].value.as_deref(),
            Some("pipeline_execution")
        );
        assert_eq!(
            env["MIMIR_ORCHESTRATOR_URL"].value.as_deref(),
            Some(orchestrator.url.as_str())
        );
        assert_eq!(
            env["MIMIR_TOKEN"].value, None,
            "the token comes from a Secret"
        );
        let secret = env["MIMIR_TOKEN"]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("a secret ref");
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("mimir-aip-worker-token", "token")
        );
        let rendered = serde_json::to_string(&job.job).expect("json");
        assert!(!rendered.contains(TOKEN), "the token is never in a Job");
    }
    let first = jobs
        .iter()
        .find(|j| j.labels.get("worktask-id") == Some(&ids[0].to_string()))
        .expect("the first Job");
    let resources = first.resources.clone().expect("resources");
    let requests = resources.requests.expect("requests");
    assert_eq!(requests["cpu"].0, "2");
    assert_eq!(requests["memory"].0, "3Gi");
    assert_eq!(requests["nvidia.com/gpu"].0, "1");
    assert_eq!(
        first.active_deadline_seconds,
        Some(180),
        "the task's timeout and slack"
    );
    let other = jobs
        .iter()
        .find(|j| j.labels.get("worktask-id") == Some(&ids[1].to_string()))
        .expect("a default Job");
    let requests = other
        .resources
        .clone()
        .expect("resources")
        .requests
        .expect("requests");
    assert_eq!(
        (requests["cpu"].0.as_str(), requests["memory"].0.as_str()),
        ("500m", "1Gi")
    );
    assert!(
        !orchestrator.log().contains(TOKEN),
        "the token is never logged"
    );
    let text = metrics(&orchestrator).await;
    assert!(
        text.contains("mimir_cluster_max_workers{cluster=\"primary\"} 10"),
        "{text}"
    );
    assert!(text.contains("mimir_cluster_up{cluster=\"primary\"} 1"));
    assert!(text.contains(
        "mimir_kubernetes_api_request_duration_seconds_count{cluster=\"primary\",verb=\"create\"}"
    ));
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_killed_attempt_is_retried_with_half_again_the_memory_and_the_task_says_why() {
    let (task, second, text) = first_attempt_meets(PodFault::OomKilled).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    assert_eq!(task.retry_count, 1);
    assert!(
        task.retry_reason.contains("OOMKilled"),
        "the task says why: {:?}",
        task.retry_reason
    );
    let requests = second
        .expect("the second attempt's Job")
        .resources
        .and_then(|r| r.requests)
        .expect("requests");
    assert_eq!(requests["memory"].0, "1536Mi", "1Gi × 1.5");
    assert!(
        text.contains(
            "mimir_kubernetes_job_failures_total{cluster=\"primary\",reason=\"oom_killed\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_attempt_is_lost_and_retried() {
    let (task, second, text) = first_attempt_meets(PodFault::Evicted).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    assert_eq!(task.retry_count, 1);
    assert!(
        task.retry_reason.starts_with("lost:") && task.retry_reason.contains("evicted"),
        "{:?}",
        task.retry_reason
    );
    assert!(second.is_some(), "a second Job ran it");
    assert!(
        text.contains(
            "mimir_kubernetes_job_failures_total{cluster=\"primary\",reason=\"evicted\"} 1"
        ),
        "{text}"
    );
}

/// A cluster where no pod can pull its image (pull grace 1.5 s), an
/// orchestrator using it with `maxWorkers` 10, and a 10 ms pipeline.
async fn no_image_pulls() -> (StandIn, tempfile::TempDir, Orchestrator, String) {
    let standin = cluster().await;
    inject(
        &standin,
        "app=mimir-worker",
        None,
        PodFault::ImagePullBackOff,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(
        dir.path(),
        (&standin, 10),
        None,
        "    imagePullGraceMs: 1500\n",
    );
    let pipeline = sleeper(&orchestrator, 10).await;
    (standin, dir, orchestrator, pipeline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_fails_its_task_after_the_grace_without_retries() {
    let (standin, _dir, orchestrator, pipeline) = no_image_pulls().await;
    let id = submit(&orchestrator, &pipeline, json!({"max_retries": 3})).await;
    let task = wait_until_done(&orchestrator.client(), id, Duration::from_secs(60)).await;
    assert_eq!(task.status, WorkTaskStatus::Failed, "{task:?}");
    assert_eq!(task.retry_count, 0, "image pull failures are not retried");
    assert!(
        task.error_message.contains("image pull failing"),
        "{:?}",
        task.error_message
    );
    assert!(
        task.error_message.contains("ImagePullBackOff")
            || task.error_message.contains("ErrImagePull"),
        "{:?}",
        task.error_message
    );
    let text = metrics(&orchestrator).await;
    assert!(
        text.contains(
            "mimir_kubernetes_job_failures_total{cluster=\"primary\",reason=\"image_pull\"} 1"
        ),
        "{text}"
    );
    wait_for(
        "the failed task's Job is deleted",
        Duration::from_secs(10),
        async || {
            standin
                .jobs()
                .iter()
                .all(|j| j.labels.get("worktask-id") != Some(&id.to_string()))
        },
    )
    .await;
    standin.shutdown().await;
}

/// The primary cluster as `GET /api/workers` shows it.
async fn primary_view(orchestrator: &Orchestrator) -> Value {
    let workers: Value = orchestrator
        .client()
        .call(Method::GET, "/api/workers", None)
        .await
        .expect("workers");
    workers["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["name"] == "primary")
        .cloned()
        .expect("the primary cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_keep_failing_to_start_open_the_circuit_and_only_a_started_pod_would_close_it() {
    // circuitFailures 2, circuitCooldownMs 1000 (the helper's).
    let (standin, _dir, orchestrator, pipeline) = no_image_pulls().await;
    let client = orchestrator.client();
    let first = [
        submit(&orchestrator, &pipeline, json!({"max_retries": 0})).await,
        submit(&orchestrator, &pipeline, json!({"max_retries": 0})).await,
    ];
    for id in first {
        let task = wait_until_done(&client, id, Duration::from_secs(60)).await;
        assert_eq!(task.status, WorkTaskStatus::Failed, "{task:?}");
    }
    wait_for("the circuit opens", Duration::from_secs(10), async || {
        primary_view(&orchestrator).await["circuit"] != "closed"
    })
    .await;
    let view = primary_view(&orchestrator).await;
    assert!(
        view["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("fail to start")),
        "{view}"
    );
    // The API answers every create; only one probe Job at a time goes to
    // the cluster until a pod starts, which none does here.
    let next = submit_many(&orchestrator, &pipeline, 3, json!({"max_retries": 0})).await;
    let names: Vec<String> = next.iter().map(|id| id.to_string()).collect();
    let waiting = next[2];
    let reason = wait_for_reason(&orchestrator, waiting, "cluster_unavailable").await;
    assert!(
        reason["message"]
            .as_str()
            .is_some_and(|m| m.contains("primary")),
        "{reason}"
    );
    let started = Instant::now();
    let mut most = 0;
    loop {
        let live = standin
            .jobs()
            .iter()
            .filter(|j| {
                j.finished_at.is_none()
                    && j.labels
                        .get("worktask-id")
                        .is_some_and(|id| names.contains(id))
            })
            .count();
        most = most.max(live);
        let mut done = true;
        for id in &next {
            let task = client.get(*id).await.expect("get");
            done &= task.status.is_terminal();
        }
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the probes did not end"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(most, 1, "one probe Job at a time while pods fail to start");
    let text = metrics(&orchestrator).await;
    assert!(
        text.contains("mimir_cluster_up{cluster=\"primary\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "mimir_kubernetes_job_failures_total{cluster=\"primary\",reason=\"image_pull\"} 5"
        ),
        "{text}"
    );
    standin.shutdown().await;
}

/// An orchestrator whose `pipeline_execution` tasks run on a pool of
/// long-lived worker Jobs in `primary` (at most `max`), scaled from the
/// queue: one worker per 5 waiting tasks, none when idle for a second.
fn pooled_orchestrator(dir: &Path, primary: &StandIn, max: u32) -> Orchestrator {
    orchestrator(
        dir,
        (primary, max),
        None,
        "    poolTypes: [pipeline_execution]\n    imagePullGraceMs: 1500\n  minWorkers: 0\n  queueThreshold: 5\n  idleTimeoutMs: 1000\n",
    )
}

fn pool_jobs(standin: &StandIn) -> Vec<JobRecord> {
    standin
        .jobs()
        .into_iter()
        .filter(|j| j.labels.get("mimir-worker-pool").map(String::as_str) == Some("true"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_workers_lease_many_tasks_within_the_cap_and_stop_when_idle() {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = pooled_orchestrator(dir.path(), &standin, 3);
    let pipeline = sleeper(&orchestrator, 50).await;
    let ids = submit_many(&orchestrator, &pipeline, 60, json!({})).await;
    let client = orchestrator.client();
    let mut workers: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let task = wait_until_done(&client, *id, Duration::from_secs(120)).await;
        assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
        assert_eq!(task.attempt, 1, "each task ran once");
        assert!(
            task.worker_id.starts_with("mimir-pool-"),
            "a pool worker ran it: {task:?}"
        );
        *workers.entry(task.worker_id.clone()).or_default() += 1;
    }
    let jobs = standin.jobs();
    assert!(
        jobs.iter().all(|j| !j.labels.contains_key("worktask-id")),
        "no Job of a single task: {:?}",
        jobs.iter().map(|j| &j.name).collect::<Vec<_>>()
    );
    let stats = standin.stats();
    assert!(stats.max_active <= 3, "over maxWorkers: {stats:?}");
    assert!(
        stats.jobs_created <= 6,
        "a few pool Jobs ran 60 tasks, not one each: {stats:?}"
    );
    assert!(
        workers.values().any(|n| *n > 1),
        "a pool worker ran many tasks: {workers:?}"
    );
    let job = &pool_jobs(&standin)[0];
    let env: HashMap<String, String> = job
        .env
        .iter()
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect();
    assert_eq!(env["MIMIR_WORKER_ID"], job.name);
    assert_eq!(env["MIMIR_WORKER_TYPES"], "pipeline_execution");
    assert!(!env.contains_key("WORKTASK_ID"));
    assert!(
        job.env
            .iter()
            .any(|e| e.name == "MIMIR_TOKEN" && e.value.is_none()),
        "the token comes from the Secret"
    );
    // Idle for the idle timeout with nothing waiting: every worker is asked
    // to stop, exits, and its Job succeeds.
    wait_for("the idle pool stops", Duration::from_secs(30), async || {
        let jobs = pool_jobs(&standin);
        !jobs.is_empty() && jobs.iter().all(|j| j.phase == JobPhase::Succeeded)
    })
    .await;
    wait_for(
        "the gauge falls to 0",
        Duration::from_secs(10),
        async || {
            metrics(&orchestrator)
                .await
                .contains("mimir_cluster_workers{cluster=\"primary\"} 0")
        },
    )
    .await;
    let text = metrics(&orchestrator).await;
    assert!(
        !text.contains("mimir_kubernetes_job_failures_total{"),
        "a worker asked to stop is no failure: {text}"
    );
    // A new flood starts the pool again.
    let again = submit(&orchestrator, &pipeline, json!({})).await;
    let task = wait_until_done(&client, again, Duration::from_secs(60)).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    assert!(task.worker_id.starts_with("mimir-pool-"));
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_worker_killed_for_memory_gives_its_tasks_back_at_once_and_is_replaced() {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = pooled_orchestrator(dir.path(), &standin, 1);
    let pipeline = sleeper(&orchestrator, 2000).await;
    let first = submit(&orchestrator, &pipeline, json!({"max_retries": 2})).await;
    let client = orchestrator.client();
    wait_for(
        "a pool worker runs the task",
        Duration::from_secs(30),
        async || {
            client
                .get(first)
                .await
                .is_ok_and(|t| t.status == WorkTaskStatus::Executing)
        },
    )
    .await;
    let victim = client.get(first).await.expect("get").worker_id;
    // The only pool worker's running pod is killed for memory, as a kubelet
    // reports it: the pod fails with OOMKilled.
    inject(
        &standin,
        "mimir-worker-pool=true",
        Some(1),
        PodFault::OomKilled,
    );
    let task = wait_until_done(&client, first, Duration::from_secs(60)).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    assert_eq!(task.retry_count, 1, "{task:?}");
    assert_ne!(task.worker_id, victim, "another pool worker finished it");
    assert!(task.worker_id.starts_with("mimir-pool-"));
    let text = metrics(&orchestrator).await;
    assert!(
        text.contains(
            "mimir_kubernetes_job_failures_total{cluster=\"primary\",reason=\"oom_killed\"} 1"
        ),
        "{text}"
    );
    assert!(standin.stats().max_active <= 1, "{:?}", standin.stats());
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_goes_to_the_additional_cluster_only_while_the_primary_is_full_and_no_cluster_exceeds_its_cap()
 {
    let primary = cluster().await;
    let site_b = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(dir.path(), (&primary, 3), Some((&site_b, 2)), "");
    let pipeline = sleeper(&orchestrator, 400).await;
    // One that prefers site-b while it has room.
    let preferred = submit(&orchestrator, &pipeline, json!({"priority": 10, "task_spec": {"pipeline_id": pipeline, "preferred_cluster": "site-b"}})).await;
    let mut ids = vec![preferred];
    for _ in 0..19 {
        ids.push(submit(&orchestrator, &pipeline, json!({})).await);
    }
    let client = orchestrator.client();
    let mut clusters: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let task = wait_until_done(&client, *id, Duration::from_secs(120)).await;
        assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
        assert_eq!(task.attempt, 1, "each task ran once");
        *clusters.entry(task.cluster_name.clone()).or_default() += 1;
    }
    let placed = client.get(preferred).await.expect("get");
    assert_eq!(
        placed.cluster_name, "site-b",
        "the preferred cluster had room"
    );
    assert!(
        primary.stats().max_active <= 3,
        "primary over its cap: {:?}",
        primary.stats()
    );
    assert!(
        site_b.stats().max_active <= 2,
        "site-b over its cap: {:?}",
        site_b.stats()
    );
    assert!(
        clusters.get("site-b").copied().unwrap_or(0) > 1,
        "overflow reached site-b: {clusters:?}"
    );
    assert_eq!(
        primary.stats().jobs_created + site_b.stats().jobs_created,
        ids.len() as u64
    );
    primary.shutdown().await;
    site_b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_skipped_while_its_circuit_is_open_and_used_again_once_it_answers()
 {
    let primary = cluster().await;
    let site_b = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(
        dir.path(),
        (&primary, 5),
        Some((&site_b, 5)),
        "    apiTimeoutMs: 1000\n",
    );
    let pipeline = sleeper(&orchestrator, 10).await;
    primary
        .api_faults(ApiFaults {
            unreachable: true,
            ..ApiFaults::default()
        })
        .expect("make it unreachable");
    let client = orchestrator.client();
    let ids = submit_many(&orchestrator, &pipeline, 6, json!({})).await;
    for id in &ids {
        let task = wait_until_done(&client, *id, Duration::from_secs(60)).await;
        assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
        assert_eq!(
            task.cluster_name, "site-b",
            "the unreachable primary is skipped"
        );
    }
    let workers: Value = client
        .call(Method::GET, "/api/workers", None)
        .await
        .expect("workers");
    let primary_view = workers["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["name"] == "primary")
        .cloned()
        .expect("primary");
    assert_eq!(primary_view["up"], false, "{primary_view}");
    wait_for(
        "the primary shows down",
        Duration::from_secs(10),
        async || {
            metrics(&orchestrator)
                .await
                .contains("mimir_cluster_up{cluster=\"primary\"} 0")
        },
    )
    .await;
    primary
        .api_faults(ApiFaults {
            unreachable: false,
            ..ApiFaults::default()
        })
        .expect("reachable again");
    wait_for(
        "the primary takes Jobs again",
        Duration::from_secs(30),
        async || {
            let id = submit(&orchestrator, &pipeline, json!({})).await;
            wait_until_done(&client, id, Duration::from_secs(30))
                .await
                .cluster_name
                == "primary"
        },
    )
    .await;
    wait_for(
        "the primary shows up again",
        Duration::from_secs(10),
        async || {
            metrics(&orchestrator)
                .await
                .contains("mimir_cluster_up{cluster=\"primary\"} 1")
        },
    )
    .await;
    primary.shutdown().await;
    site_b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_the_orchestrator_adopts_running_jobs_within_the_cap_and_each_task_completes_once()
 {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Four run and four wait when the orchestrator is killed: the restarted
    // one must count the four it adopts before it starts any more.
    let mut orchestrator = orchestrator(dir.path(), (&standin, 4), None, "");
    let pipeline = sleeper(&orchestrator, 3000).await;
    let ids = submit_many(&orchestrator, &pipeline, 8, json!({})).await;
    jobs_run(&standin, 4).await;
    orchestrator.restart();
    each_completes_in_one_attempt(
        &orchestrator,
        &ids,
        "the running Job was adopted, not replaced",
    )
    .await;
    let stats = standin.stats();
    assert_eq!(stats.jobs_created, ids.len() as u64, "no second Job");
    assert!(
        stats.max_active <= 4,
        "the restarted orchestrator went over maxWorkers: {stats:?}"
    );
    assert!(orchestrator.log().contains("adopted a running Job"));
    // Their Jobs ended; the next start deletes them.
    orchestrator.restart();
    wait_for(
        "the Jobs of ended tasks are deleted",
        Duration::from_secs(30),
        async || standin.jobs().is_empty(),
    )
    .await;
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_failed_while_the_orchestrator_was_down_is_a_lost_attempt_after_restart() {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut orchestrator = orchestrator(dir.path(), (&standin, 10), None, "");
    let pipeline = sleeper(&orchestrator, 3000).await;
    let id = submit(&orchestrator, &pipeline, json!({"max_retries": 2})).await;
    let first = format!("mimir-{id}-1");
    job_reaches(&standin, &first, JobPhase::Running).await;
    orchestrator.kill9();
    inject(
        &standin,
        &format!("worktask-id={id}"),
        Some(1),
        PodFault::OomKilled,
    );
    job_reaches(&standin, &first, JobPhase::Failed).await;
    orchestrator.restart();
    let task = wait_until_done(&orchestrator.client(), id, Duration::from_secs(60)).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    assert_eq!(task.retry_count, 1, "{task:?}");
    assert!(
        task.retry_reason
            .contains("ended while the orchestrator was away"),
        "{:?}",
        task.retry_reason
    );
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_by_someone_while_it_runs_is_a_lost_attempt_and_retried() {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(dir.path(), (&standin, 10), None, "");
    let pipeline = sleeper(&orchestrator, 3000).await;
    let id = submit(&orchestrator, &pipeline, json!({"max_retries": 2})).await;
    let first = format!("mimir-{id}-1");
    job_reaches(&standin, &first, JobPhase::Running).await;
    assert!(standin.delete_job("jobs", &first), "deleted");
    let task = wait_until_done(&orchestrator.client(), id, Duration::from_secs(60)).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    assert_eq!(task.retry_count, 1, "{task:?}");
    assert!(
        task.retry_reason.starts_with("lost:"),
        "{:?}",
        task.retry_reason
    );
    assert_eq!(task.kubernetes_job_name, format!("mimir-{id}-2"));
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_kubernetes_settings_stop_serve_with_the_key_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (yaml, key) in [
        ("orchestrator:\n  workerBackend: nomad\n", "workerBackend"),
        (
            "orchestrator:\n  workerBackend: kubernetes\n  kubeconfig: /nonexistent/kubeconfig\n",
            "orchestrator.kubeconfig",
        ),
        (
            "orchestrator:\n  workerBackend: kubernetes\n  kubeconfig: /nonexistent\n  resources:\n    pipeline_execution: {requests: {memory: lots}}\n",
            "orchestrator.resources.pipeline_execution.requests.memory",
        ),
        (
            "orchestrator:\n  workerBackend: kubernetes\n  kubeconfig: /nonexistent\n  resources:\n    gpu_job: {requests: {cpu: \"1\"}}\n",
            "orchestrator.resources.gpu_job",
        ),
        (
            "orchestrator:\n  workerBackend: kubernetes\n  kubeconfig: /nonexistent\n  additionalClusters:\n    - {name: b, kubeconfig: /x, orchestratorURL: \"ftp://x\", maxWorkers: 1}\n",
            "orchestrator.additionalClusters[0].orchestratorURL",
        ),
        (
            "orchestrator:\n  workerBackend: kubernetes\n  kubeconfig: /nonexistent\n  workerNamespace: Not_A_Namespace\n",
            "orchestrator.workerNamespace",
        ),
    ] {
        let config = harness::config_file(dir.path(), yaml);
        let output = std::process::Command::new(bin())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .args(["--config", &config])
            .output()
            .expect("run serve");
        assert!(!output.status.success(), "{yaml} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(key),
            "{yaml}: the error names {key}: {stderr}"
        );
    }
}

async fn reasons(orchestrator: &Orchestrator, id: Uuid) -> Vec<Value> {
    let path = format!("/api/worktasks/{id}/explain");
    let answer: Value = orchestrator
        .client()
        .call(Method::GET, &path, None)
        .await
        .expect("explain");
    answer["reasons"].as_array().cloned().unwrap_or_default()
}

async fn wait_for_reason(orchestrator: &Orchestrator, id: Uuid, code: &str) -> Value {
    let started = Instant::now();
    loop {
        let found = reasons(orchestrator, id).await;
        if let Some(reason) = found.iter().find(|r| r["code"] == code) {
            return reason.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no {code} for {id}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_a_task_waits_names_the_scheduler_message_the_image_pull_and_full_clusters() {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(
        dir.path(),
        (&standin, 2),
        None,
        "    imagePullGraceMs: 600000\n",
    );
    let pipeline = sleeper(&orchestrator, 10).await;
    inject(
        &standin,
        "app=mimir-worker",
        Some(1),
        PodFault::Unschedulable("0/3 nodes are available: 3 Insufficient memory.".into()),
    );
    let unschedulable = submit(&orchestrator, &pipeline, json!({})).await;
    let pending = wait_for_reason(&orchestrator, unschedulable, "pod_pending").await;
    assert_eq!(pending["cluster"], "primary");
    assert!(
        pending["message"]
            .as_str()
            .unwrap_or("")
            .contains("Insufficient memory"),
        "{pending}"
    );
    inject(
        &standin,
        "app=mimir-worker",
        Some(1),
        PodFault::ImagePullBackOff,
    );
    let pulling = submit(&orchestrator, &pipeline, json!({})).await;
    let image = wait_for_reason(&orchestrator, pulling, "image_pull_failing").await;
    assert!(
        image["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot start"),
        "{image}"
    );
    // Both Jobs hold the cluster's two places: the next task waits for room.
    let waiting = submit(&orchestrator, &pipeline, json!({})).await;
    let full = wait_for_reason(&orchestrator, waiting, "max_workers_reached").await;
    assert!(
        full["message"]
            .as_str()
            .unwrap_or("")
            .contains("primary 2/2"),
        "{full}"
    );
    let cli = orchestrator.cli(&["task", "why", &waiting.to_string()]);
    let text = harness::stdout_ok(&cli);
    assert!(text.contains("max_workers_reached"), "{text}");
    let failures = metrics(&orchestrator).await;
    assert!(
        failures.contains(
            "mimir_kubernetes_job_failures_total{cluster=\"primary\",reason=\"unschedulable\"} 1"
        ),
        "{failures}"
    );
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_each_cluster_and_why_a_placed_task_waits() {
    let standin = cluster().await;
    inject(
        &standin,
        "app=mimir-worker",
        Some(1),
        PodFault::Unschedulable("0/3 nodes are available: 3 Insufficient memory.".into()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(dir.path(), (&standin, 4), None, "");
    let pipeline = sleeper(&orchestrator, 10).await;
    let id = submit(&orchestrator, &pipeline, json!({})).await;
    wait_for_reason(&orchestrator, id, "pod_pending").await;
    let browser = harness::browser::Browser::start(1280, 900).await;
    browser
        .client
        .goto(&format!("{}/#/workers", orchestrator.url))
        .await
        .expect("open workers");
    browser
        .until("document.body.innerText.includes('Kubernetes clusters (1)') && document.body.innerText.includes('1 / 4')")
        .await;
    browser.screenshot("kubernetes-workers").await;
    browser
        .client
        .goto(&format!("{}/#/task/{id}", orchestrator.url))
        .await
        .expect("open the task");
    browser
        .until(&format!("document.body.innerText.includes('Why it is waiting') && document.body.innerText.includes('Insufficient memory') && document.querySelector('[data-code=pod_pending]') !== null && document.body.innerText.includes('mimir-{id}-1 (cluster primary)')"))
        .await;
    browser.screenshot("kubernetes-task-waiting").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.quit().await;
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_placed_before_a_crash_gets_its_job_under_the_same_name_after_restart() {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut orchestrator =
        orchestrator(dir.path(), (&standin, 4), None, "    apiTimeoutMs: 60000\n");
    let pipeline = sleeper(&orchestrator, 10).await;
    // The next create never answers: the task is placed, its Job not made.
    standin
        .api_faults(ApiFaults {
            hang: 1,
            verb: Some(ApiVerb::Create),
            ..ApiFaults::default()
        })
        .expect("hang the next create");
    let id = submit(&orchestrator, &pipeline, json!({})).await;
    let client = orchestrator.client();
    wait_for("the task is placed", Duration::from_secs(30), async || {
        client.get(id).await.expect("get").kubernetes_job_name == format!("mimir-{id}-1")
    })
    .await;
    assert!(standin.jobs().is_empty(), "no Job was made");
    orchestrator.restart();
    let task = wait_until_done(&orchestrator.client(), id, Duration::from_secs(60)).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    assert_eq!(
        task.attempt, 1,
        "the placed attempt ran, under its own name"
    );
    let jobs = standin.jobs();
    assert_eq!(jobs.len(), 1, "one Job");
    assert_eq!(jobs[0].name, format!("mimir-{id}-1"));
    assert!(
        orchestrator
            .log()
            .contains("creating the Job of an attempt placed before a restart")
    );
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_is_a_lost_attempt_and_retried() {
    let (task, second, text) = first_attempt_meets(PodFault::NodeLost).await;
    assert_eq!(task.status, WorkTaskStatus::Completed, "{task:?}");
    assert_eq!(task.retry_count, 1);
    assert!(
        task.retry_reason.starts_with("lost:"),
        "{:?}",
        task.retry_reason
    );
    assert!(second.is_some(), "a second Job ran it");
    // The pod is deleted and its Job fails: one failure, counted once,
    // whichever event the backend sees first.
    let lost: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("mimir_kubernetes_job_failures_total{cluster=\"primary\""))
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(lost[0].ends_with(" 1"), "{lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_creates_answered_500_put_their_tasks_back_and_each_task_runs_once() {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // circuitFailures is 2: one 500 does not open the circuit.
    let orchestrator = orchestrator(dir.path(), (&standin, 4), None, "");
    let pipeline = sleeper(&orchestrator, 10).await;
    standin
        .api_faults(ApiFaults {
            status_500: 1,
            verb: Some(ApiVerb::Create),
            ..ApiFaults::default()
        })
        .expect("answer the next create with a 500");
    let ids = submit_many(&orchestrator, &pipeline, 3, json!({"max_retries": 0})).await;
    let client = orchestrator.client();
    for id in &ids {
        let task = wait_until_done(&client, *id, Duration::from_secs(60)).await;
        assert_eq!(
            task.status,
            WorkTaskStatus::Completed,
            "a refused create is not a failed attempt: {task:?}"
        );
        assert_eq!(task.retry_count, 0, "{task:?}");
    }
    let per_task = |id: &Uuid| {
        standin
            .jobs()
            .iter()
            .filter(|j| j.labels.get("worktask-id") == Some(&id.to_string()))
            .count()
    };
    for id in &ids {
        assert_eq!(per_task(id), 1, "one Job ran task {id}");
    }
    assert_eq!(standin.stats().jobs_created, 3);
    assert!(metrics(&orchestrator).await.contains(
        "mimir_kubernetes_job_failures_total{cluster=\"primary\",reason=\"create_failed\"} 1"
    ));
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_and_expired_history_lose_no_running_job() {
    let standin = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let orchestrator = orchestrator(dir.path(), (&standin, 4), None, "");
    let pipeline = sleeper(&orchestrator, 2500).await;
    let ids = submit_many(&orchestrator, &pipeline, 3, json!({})).await;
    jobs_run(&standin, 3).await;
    // As an API server restart does: every watch breaks, and resuming from
    // the old resourceVersion is answered 410, so the backend lists again.
    standin.forget_history();
    standin.drop_watches();
    each_completes_in_one_attempt(&orchestrator, &ids, "no attempt was taken for lost").await;
    assert_eq!(standin.stats().jobs_created, 3);
    let text = metrics(&orchestrator).await;
    assert!(
        !text.contains("mimir_kubernetes_job_failures_total{"),
        "a relist is no failure: {text}"
    );
    standin.shutdown().await;
}
