//! A stand-in Kubernetes API server, for tests and benchmarks only: it is not Kubernetes.
//!
//! It serves Jobs (`/apis/batch/v1`) and Pods (`/api/v1`) over the real REST and watch
//! protocol — create, get, list with label selectors and paging, delete with propagation,
//! and chunked watch streams with resourceVersions, bookmarks and 410 Expired — so the real
//! `kube` client (`Api<Job>`, `Api<Pod>`, `kube::runtime::watcher`) talks to it unchanged.
//! It also plays the Job controller and the kubelet: each Job gets one pod, which runs a
//! configured program on this machine (or no process at all), and the Job's status follows
//! the pod's end. Tests inject pod faults (OOM kill, eviction, image pull back-off,
//! unschedulable, node lost) and API faults (500s, hangs, refused connections).
//!
//! All state is in memory behind one lock; nothing is written to disk.
//!
//! # Pointing `kube` at it
//!
//! [`StandIn::write_kubeconfig`] writes a kubeconfig (plain HTTP, a bearer token that is
//! not checked); load it with `kube::config::Kubeconfig::read_from` and
//! `kube::Config::from_custom_kubeconfig`, or set `KUBECONFIG` to it for
//! `kube::Client::try_default`.
//!
//! # How it differs from a cluster
//!
//! - One pod per Job, never restarted: the first failure fails the Job whatever
//!   `backoffLimit` says (conditions `FailureTarget` + `Failed`, reason
//!   `BackoffLimitExceeded`; success sets `SuccessCriteriaMet` + `Complete`).
//! - The pod's process is [`WorkerProgram`], whatever the image and command; it runs for
//!   the first container only. Its environment: this process's, then the container's `env`
//!   (`value`, `valueFrom.secretKeyRef` and `envFrom.secretRef` from
//!   [`StandIn::set_secret`], `valueFrom.fieldRef` for `metadata.name`, `metadata.namespace`,
//!   `metadata.uid`, `metadata.labels['k']`, `spec.serviceAccountName`, `spec.nodeName`),
//!   then [`WorkerProgram::env`]. A missing secret (or any configMap reference) leaves the
//!   pod Pending with its container waiting in `CreateContainerConfigError`, as the kubelet
//!   does.
//! - A DELETE without a propagation policy orphans the Job's pod, as the real API server
//!   does for batch/v1 Jobs; pass `DeleteParams::background()` (or foreground) to delete
//!   the pod too. A deleted pod's process gets SIGTERM, and SIGKILL after its
//!   `terminationGracePeriodSeconds` (default 30); the pod itself is gone at once.
//! - Lists always answer the newest state (`resourceVersion` and `resourceVersionMatch`
//!   are ignored); watches honour `resourceVersion` (410 Expired once older than the kept
//!   history), `labelSelector`, `fieldSelector` (`metadata.name`, `metadata.namespace`),
//!   `allowWatchBookmarks`, `sendInitialEvents` and `timeoutSeconds`.
//! - Only POST, GET and DELETE on Jobs, GET and DELETE on Pods, and a pod's log
//!   (`GET …/pods/{name}/log`: the process's stdout and stderr in one stream, last 1 MiB,
//!   `tailLines` and `limitBytes`; the output is also copied to this process's stderr).
//!   No PATCH, PUT, `dryRun`, `deletecollection`, `follow` or other resources (405 or 404).
//! - Times are to the second, as the API server writes them.

mod config;
mod env;
mod events;
mod kubelet;
mod query;
mod record;
mod resource;
mod selector;
mod server;
mod status;
mod store;
mod validate;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{
    ApiFaults, ApiVerb, DEFAULT_BOOKMARK_INTERVAL, DEFAULT_EVENT_HISTORY, FaultRule, PodFault,
    StandInConfig, WorkerProgram,
};
pub use record::{JobPhase, JobRecord, Stats};

use server::Shared;
use store::{Propagation, Store};

/// A running stand-in Kubernetes API server for tests, on 127.0.0.1.
///
/// Dropping it stops serving and kills the pods' processes; [`StandIn::shutdown`] also
/// waits until they are gone.
pub struct StandIn {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
}

impl StandIn {
    /// Starts serving on 127.0.0.1 on a free port.
    pub async fn start(config: StandInConfig) -> anyhow::Result<StandIn> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(config.event_history)),
            config,
            shutdown: CancellationToken::new(),
            watches: Mutex::new(CancellationToken::new()),
            connections: Mutex::new(CancellationToken::new()),
            faults: Mutex::new(ApiFaults::default()),
            listener: Mutex::new(Some(listener)),
            listener_changed: Notify::new(),
            addr,
            tasks: TaskTracker::new(),
        });
        tokio::spawn(server::accept_loop(Arc::clone(&shared)));
        Ok(StandIn {
            shared,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Writes a kubeconfig (context `standin`, server [`StandIn::url`], a bearer-token user,
    /// this default namespace) that `kube::Config::from_custom_kubeconfig` accepts.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            validate::is_dns1123_label(namespace),
            "namespace {namespace:?} is not a DNS-1123 label"
        );
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "standin", "cluster": { "server": self.url() } }],
            "users": [{ "name": "standin", "user": { "token": "standin-token" } }],
            "contexts": [{
                "name": "standin",
                "context": { "cluster": "standin", "user": "standin", "namespace": namespace }
            }],
            "current-context": "standin",
        });
        let text = serde_json::to_string_pretty(&config)?;
        std::fs::write(path, text)
            .with_context(|| format!("writing the kubeconfig {}", path.display()))
    }

    /// Gives matching Jobs a pod fault: Jobs created from now on, and for
    /// [`PodFault::OomKilled`], [`PodFault::Evicted`] and [`PodFault::NodeLost`] the running
    /// pods of existing ones too. Rules apply in the order given; the first with `times`
    /// left wins. Fails when the selector does not parse.
    pub fn inject(&self, rule: FaultRule) -> anyhow::Result<()> {
        self.shared
            .store
            .lock()
            .add_rule(rule)
            .map_err(|e| anyhow::anyhow!("fault rule selector: {e}"))
    }

    /// Sets API faults, replacing the previous ones. Setting `unreachable` closes the
    /// listener and drops open connections at once; clearing it binds the same port again.
    pub fn api_faults(&self, faults: ApiFaults) -> anyhow::Result<()> {
        let unreachable = faults.unreachable;
        let was = std::mem::replace(&mut *self.shared.faults.lock(), faults).unreachable;
        if unreachable && !was {
            *self.shared.listener.lock() = None;
            std::mem::take(&mut *self.shared.connections.lock()).cancel();
            self.shared.listener_changed.notify_one();
        } else if !unreachable && was {
            let std_listener = std::net::TcpListener::bind(self.shared.addr)
                .with_context(|| format!("binding {} again", self.shared.addr))?;
            std_listener.set_nonblocking(true)?;
            let _guard = self.runtime.enter();
            *self.shared.listener.lock() = Some(TcpListener::from_std(std_listener)?);
            self.shared.listener_changed.notify_one();
        }
        Ok(())
    }

    /// Closes every open watch stream, as an API server restart would; clients must watch again.
    pub fn drop_watches(&self) {
        std::mem::take(&mut *self.shared.watches.lock()).cancel();
    }

    /// Forgets the kept watch events: a watch resuming from any resourceVersion older than
    /// now is answered 410 Expired, so the client must list again.
    pub fn forget_history(&self) {
        self.shared.store.lock().log.forget_history();
    }

    /// Deletes a Job and its pods (Background propagation), as `kubectl delete job` does;
    /// false when there is no such Job.
    pub fn delete_job(&self, ns: &str, name: &str) -> bool {
        self.shared
            .store
            .lock()
            .delete_job(ns, name, Propagation::Background)
            .is_ok()
    }

    /// Sets one key of a Secret, for containers' `valueFrom.secretKeyRef` and `envFrom.secretRef`.
    pub fn set_secret(&self, ns: &str, name: &str, key: &str, value: &str) {
        self.shared.store.lock().set_secret(ns, name, key, value);
    }

    /// Ends the running pod of a Job as if its process exited with `exit_code` (killing the
    /// process if one runs); false when the Job has no running pod.
    pub fn finish_pod(&self, ns: &str, job: &str, exit_code: i32) -> bool {
        self.shared.store.lock().finish_pod(ns, job, exit_code)
    }

    /// The Jobs it holds, sorted by namespace and name.
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.shared.store.lock().records()
    }

    /// Its counters.
    pub fn stats(&self) -> Stats {
        self.shared.store.lock().stats()
    }

    /// Stops serving, kills every process it started and waits until they have exited.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        *self.shared.listener.lock() = None;
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        *self.shared.listener.lock() = None;
    }
}
