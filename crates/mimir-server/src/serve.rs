//! Running the orchestrator: open the store, bind, serve until asked to stop.

use crate::config::{Config, ConfigError};
use crate::leadership::Leadership;
use crate::telemetry::{MeteredStore, ScrapeAuth, TaskEventRecorder, WorkerCollector};
use crate::workers::Registry;
use crate::workers::WorkerBackend;
use crate::workers::pool::{self, Pool, PoolConfig};
use crate::{AppState, api};
use mimir_store::{Store, StoreError};
use mimir_telemetry::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the orchestrator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A TLS file cannot be used (the message names it).
    #[error(transparent)]
    Tls(#[from] mimir_http::TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A file root (`pipelines.fileRoots`) could not be created.
    #[error("cannot create the pipeline file root {} (pipelines.fileRoots): {source}", path.display())]
    FileRoot {
        /// The root.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// How often expired leases are looked for.
const REAPER_INTERVAL: Duration = Duration::from_millis(250);

/// Serves `config` until `shutdown` resolves; reports the bound address through
/// `on_listening` (useful with port 0). `worker_args` are passed to every local
/// worker the pool starts (log settings).
pub async fn run(
    config: Config,
    on_listening: impl FnOnce(std::net::SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    worker_args: Vec<String>,
) -> Result<(), ServeError> {
    let valid = config.validate()?;
    // Before anything opens files: connections are capped below this limit.
    mimir_http::raise_fd_limit();
    let tls = match &valid.tls {
        Some(tls) => Some(mimir_http::TlsServer::new(&tls.server)?),
        None => None,
    };
    let data_dir = config.data_dir.clone();
    let workers = Arc::new(Registry::default());
    let mut metrics = Metrics::new();
    metrics.register_collector(Box::new(WorkerCollector {
        registry: workers.clone(),
        lost_after: valid.lease_ttl,
    }));
    let metrics = Arc::new(metrics);
    let recording = config.metrics.enabled;
    let timeline = Arc::new(crate::dashboard::Timeline::new(
        config.dashboard.history_seconds,
    ));
    let pipeline_stats = Arc::new(crate::dashboard::PipelineStats::default());
    let recorder = recording.then(|| {
        TaskEventRecorder::start(
            metrics.clone(),
            Some(timeline.clone()),
            Some(pipeline_stats.clone()),
        ) as _
    });
    let (ml_ends, ml_ended) = crate::ml::MlTaskEnds::new(recorder);
    let settings = crate::store_choice::StoreSettings {
        aging: valid.aging,
        retry: valid.retry,
        lease_ttl: valid.lease_ttl,
        // ML task ends update the registry whether or not metrics are on.
        events: Some(ml_ends as _),
    };
    let store = crate::store_choice::open(&valid.store, &data_dir, settings).await?;
    for root in &valid.confinement.file_roots {
        std::fs::create_dir_all(root).map_err(|source| ServeError::FileRoot {
            path: root.clone(),
            source,
        })?;
    }
    // Workers' executors have storage, so pipelines may use `storage.*`.
    let plugins = mimir_pipeline::Registry::confined(&valid.confinement)
        .map_err(ConfigError::from)?
        .with_storage();
    let store: Arc<dyn Store> = if recording {
        Arc::new(MeteredStore::new(store, &metrics))
    } else {
        store
    };
    let listener = TcpListener::bind(valid.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: valid.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    // Workers present the worker token; with only an API token set, that one
    // guards the worker protocol too, so leasing tasks is never left open
    // while reading them is closed.
    let api_token = Some(config.api.token.clone()).filter(|t| !t.is_empty());
    let token = Some(config.orchestrator.worker_auth_token.clone())
        .filter(|t| !t.is_empty())
        .or_else(|| api_token.clone());
    let o = &config.orchestrator;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    // Local workers would fail one after another: say why now.
    if let Some(tls) = valid.tls.as_ref().filter(|_| o.max_workers > 0) {
        mimir_http::check_trusted(&tls.server.cert_file, &tls.ca_file, &host).map_err(|why| {
            ConfigError::new(format!(
                "tls.caFile: local workers trusting {} would refuse tls.certFile for {host}: {why}",
                tls.ca_file.display()
            ))
        })?;
        if tls.server.client_ca_file.is_some() && tls.worker_identity.is_none() {
            return Err(ConfigError::new(
                "tls.workerCertFile: with tls.clientCaFile, local workers need a client certificate (tls.workerCertFile and tls.workerKeyFile), or set orchestrator.maxWorkers: 0".into(),
            )
            .into());
        }
    }
    let local = (o.max_workers > 0 && valid.kubernetes.is_none()).then(|| {
        Arc::new(Pool::new(
            PoolConfig {
                exe: std::env::current_exe().unwrap_or_else(|_| "mimir-aip".into()),
                orchestrator_url: format!("{scheme}://{host}:{}", addr.port()),
                token: token.clone(),
                min: o.min_workers,
                max: o.max_workers,
                threshold: o.queue_threshold,
                idle_timeout: valid.idle_timeout,
                poll: pool::DEFAULT_POLL,
                worker_args: [
                    vec![
                        "--concurrency".to_string(),
                        o.worker_concurrency.max(1).to_string(),
                        "--prefetch".to_string(),
                        o.worker_prefetch.to_string(),
                    ],
                    worker_args,
                ]
                .concat(),
                fresh: valid.lease_ttl,
                env: worker_env(&config, &valid.confinement, valid.tls.as_ref()),
                pid_dir: Some(config.data_dir.join("workers")),
            },
            metrics.clone(),
        ))
    });
    let backend: Option<Arc<dyn WorkerBackend>> = match &valid.kubernetes {
        Some(kubernetes) => Some(Arc::new(
            crate::kubernetes::KubernetesBackend::connect(
                kubernetes.clone(),
                valid.type_limits.clone(),
                metrics.clone(),
            )
            .await?,
        )),
        None => local.map(|pool| pool as Arc<dyn WorkerBackend>),
    };
    let leadership = Leadership::new(
        format!(
            "{}-{}",
            mimir_telemetry::hostname(),
            uuid::Uuid::now_v7().simple()
        ),
        crate::leadership::DEFAULT_LEADER_TTL,
    );
    let state = AppState {
        store: store.clone(),
        max_body_bytes: config.api.max_body_bytes,
        workers: workers.clone(),
        idle_capacity: Arc::default(),
        backend: backend.clone(),
        type_limits: valid.type_limits.clone(),
        lease_ttl: valid.lease_ttl,
        worker_token: token,
        api_token,
        plugins: Arc::new(plugins),
        progress: Arc::default(),
        requirements: Arc::default(),
        loopback_only: addr.ip().is_loopback(),
        metrics: metrics.clone(),
        record_metrics: recording,
        scrape_auth: ScrapeAuth {
            bearer_token: Some(config.metrics.bearer_token.clone()).filter(|t| !t.is_empty()),
            basic: (!config.metrics.username.is_empty()).then(|| {
                (
                    config.metrics.username.clone(),
                    config.metrics.password.clone(),
                )
            }),
        },
        timeline,
        pipeline_stats,
        shutdown: tokio_util::sync::CancellationToken::new(),
        storage: Arc::new(mimir_storage::Connectors::new(
            mimir_storage::Secrets::from_env(),
            config.data_dir.join("storage"),
            Arc::new(mimir_storage::MetricsObserver::new(metrics.clone())),
        )),
        artifacts: Arc::new(crate::ml::ArtifactStore::new(&config.data_dir)),
        max_artifact_bytes: config.ml.max_artifact_bytes,
        leadership: leadership.clone(),
        scheduler_wake: Default::default(),
    };
    let campaign = tokio::spawn(leadership.clone().run(store.clone()));
    let ml_task_ends = tokio::spawn(crate::ml::task_ends::run(
        store.clone(),
        metrics.clone(),
        ml_ended,
    ));
    let scheduler = tokio::spawn(crate::schedules::run(state.clone()));
    let reaper = tokio::spawn(reap(state.clone(), valid.lease_ttl * 2));
    let rates = tokio::spawn(crate::telemetry::rates::sample_queue_rates(metrics.clone()));
    let sampler = tokio::spawn(crate::dashboard::sampler::run(state.clone()));
    let storage_health = tokio::spawn(crate::telemetry::storage_up::run(state.clone()));
    let streams = state.shutdown.clone();
    let backend_task = backend.clone().map(|backend| {
        tokio::spawn(backend.run(store.clone(), workers.clone(), leadership.clone()))
    });
    tracing::info!(%addr, scheme, data_dir = %config.data_dir.display(), max_workers = o.max_workers, max_connections = valid.limits.connection_cap(), "orchestrator listening");
    on_listening(addr);

    // On shutdown, let local workers finish what they run while the API still answers.
    let drain_backend = backend.clone();
    let drain_workers = workers.clone();
    let graceful = async move {
        shutdown.await;
        streams.cancel();
        if let Some(backend) = drain_backend {
            tracing::info!(
                backend = backend.kind(),
                "asking workers to finish and stop"
            );
            backend
                .stop_all(&drain_workers, Duration::from_secs(30))
                .await;
        }
    };
    mimir_http::serve(listener, api::app(state), valid.limits, tls, graceful).await?;
    reaper.abort();
    scheduler.abort();
    campaign.abort();
    leadership.resign(store.as_ref()).await;
    rates.abort();
    sampler.abort();
    storage_health.abort();
    ml_task_ends.abort();
    if let Some(task) = backend_task {
        task.abort();
    }
    // Every answer is given: commit what is pending and fold the WAL into
    // `mimir.db`, so the file alone is a complete copy.
    if let Err(error) = store.close().await {
        tracing::error!(%error, "the store did not close cleanly; it recovers from its WAL at the next start");
    }
    tracing::info!("orchestrator stopped");
    Ok(())
}

/// Runs [`reap_once`] every [`REAPER_INTERVAL`].
async fn reap(state: AppState, forget_after: Duration) {
    let mut tick = tokio::time::interval(REAPER_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        reap_once(&state, forget_after).await;
    }
}

/// Ends attempts whose workers stopped renewing their leases, drops the
/// progress of attempts no longer held, and forgets workers silent for
/// `forget_after` (counted as failed).
pub async fn reap_once(state: &AppState, forget_after: Duration) {
    let store = &state.store;
    if !state.leadership.leads() {
        state.leadership.campaign_once(store.as_ref()).await;
    }
    // Only the leader ends expired leases: once, whichever replica it is,
    // and not within a lease lifetime of the store being out of reach.
    if let Some(term) = state.leadership.term()
        && !state.leadership.unreachable_within(state.lease_ttl)
        && let Err(error) = store.expire_leases(chrono::Utc::now(), term).await
    {
        if matches!(error, StoreError::Unavailable(_)) {
            state.leadership.note_unreachable();
        }
        tracing::error!(%error, "cannot expire leases");
    }
    // Progress of attempts that ended or lost their lease goes with them.
    if !state.progress.is_empty() {
        let mut gone = Vec::new();
        for (worker_id, id, attempt) in state.progress.attempts() {
            // A store that cannot answer keeps the progress for now.
            if matches!(store.holds(&worker_id, id, attempt).await, Ok(false)) {
                gone.push((worker_id, id, attempt));
            }
        }
        state.progress.forget_attempts(&gone);
    }
    for (worker_id, lifetime) in state.workers.remove_silent(forget_after) {
        // Silent here may mean busy with another replica: on a shared store
        // its leases end only when nobody renews them.
        if !store.shared()
            && let Err(error) = store.forfeit(&worker_id).await
        {
            tracing::warn!(%error, worker_id = %worker_id, "cannot forfeit a silent worker's leases: they expire instead");
        }
        state.metrics.workers_failed.inc();
        state
            .metrics
            .worker_duration
            .observe(lifetime.as_secs_f64());
        tracing::warn!(worker_id = %worker_id, silent_s = forget_after.as_secs(), "worker went silent; forgotten and counted as failed");
    }
}

/// Environment for local workers: what pipeline steps may reach, how to
/// verify the orchestrator over HTTPS, trace
/// export configured by keys rather than `OTEL_*` variables (which children
/// inherit anyway), and the Loki sink.
fn worker_env(
    config: &Config,
    confinement: &mimir_pipeline::Confinement,
    tls: Option<&crate::listener::ValidTls>,
) -> Vec<(String, String)> {
    // Read by `worker`'s --file-root, --http-allow and --http-deny; set even
    // when empty, so the worker's defaults never stand in for the server's.
    let roots: Vec<String> = confinement
        .file_roots
        .iter()
        .map(|r| r.display().to_string())
        .collect();
    let mut env = vec![
        ("MIMIR_PIPELINE_FILE_ROOTS".to_string(), roots.join(",")),
        // Local workers keep `filesystem` storage configs' folders where the
        // orchestrator's API does, so both see the same records.
        (
            "MIMIR_STORAGE_ROOT".to_string(),
            config.data_dir.join("storage").display().to_string(),
        ),
        (
            "MIMIR_PIPELINE_HTTP_ALLOW".to_string(),
            confinement.http.allow.join(","),
        ),
        (
            "MIMIR_PIPELINE_HTTP_DENY".to_string(),
            confinement.http.deny.join(","),
        ),
    ];
    // Local workers verify the orchestrator with its CA, and present the
    // client certificate mutual TLS asks for.
    if let Some(tls) = tls {
        let path = |p: &std::path::Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        env.push(("MIMIR_CA_CERT".to_string(), path(&tls.ca_file)));
        if let Some((cert, key)) = &tls.worker_identity {
            env.push(("MIMIR_CLIENT_CERT".to_string(), path(cert)));
            env.push(("MIMIR_CLIENT_KEY".to_string(), path(key)));
        }
    }
    let set = |key: &str| std::env::var(key).is_ok_and(|v| !v.is_empty());
    if !config.tracing.endpoint.is_empty() && !set("OTEL_EXPORTER_OTLP_ENDPOINT") {
        env.push((
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            config.tracing.endpoint.clone(),
        ));
    }
    if !config.tracing.environment.is_empty() {
        env.push((
            "MIMIR_DEPLOYMENT_ENVIRONMENT".to_string(),
            config.tracing.environment.clone(),
        ));
    }
    // Local workers push their logs to the same Loki (read by `worker`'s
    // --loki-* flags; secrets stay out of the command line).
    let loki = &config.logging.loki;
    if !loki.url.is_empty() {
        let labels: Vec<String> = loki
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for (key, value) in [
            ("MIMIR_LOKI_URL", loki.url.clone()),
            ("MIMIR_LOKI_TENANT", loki.tenant.clone()),
            ("MIMIR_LOKI_BEARER_TOKEN", loki.bearer_token.clone()),
            ("MIMIR_LOKI_USERNAME", loki.username.clone()),
            ("MIMIR_LOKI_PASSWORD", loki.password.clone()),
            ("MIMIR_LOKI_LABELS", labels.join(",")),
            ("MIMIR_LOKI_ENCODING", loki.encoding.clone()),
            ("MIMIR_LOKI_BATCH_SIZE", loki.batch_size.to_string()),
            ("MIMIR_LOKI_BATCH_WAIT_MS", loki.batch_wait_ms.to_string()),
            ("MIMIR_LOKI_QUEUE_CAPACITY", loki.queue_capacity.to_string()),
        ] {
            if !value.is_empty() {
                env.push((key.to_string(), value));
            }
        }
    }
    env
}
