//! What the stand-in does with the Jobs it is given: the program a pod runs, how long a pod
//! takes to start, the pod faults and API faults tests inject.

use std::path::PathBuf;
use std::time::Duration;

/// Defaults to 5 seconds between watch bookmarks.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);
/// Defaults to keeping the last 10 000 watch events for watches that resume.
pub const DEFAULT_EVENT_HISTORY: usize = 10_000;

/// How the stand-in API server runs the pods of the Jobs it is given.
#[derive(Debug, Clone)]
pub struct StandInConfig {
    /// Program started for each Job's pod (None: pods are created and go Running, no process).
    pub worker: Option<WorkerProgram>,
    /// How long a new pod stays Pending before Running. Defaults to 0.
    pub pod_start_delay: Duration,
    /// When no program runs: the pods then succeed on their own after this long
    /// (None: they stay Running until [`crate::StandIn::finish_pod`] or a fault ends them).
    pub auto_succeed_after: Option<Duration>,
    /// Time between BOOKMARK events on a watch stream. Defaults to [`DEFAULT_BOOKMARK_INTERVAL`].
    pub bookmark_interval: Duration,
    /// How many watch events are kept for watches resuming from a resourceVersion; older
    /// resourceVersions answer 410 Expired. Defaults to [`DEFAULT_EVENT_HISTORY`].
    pub event_history: usize,
}

impl Default for StandInConfig {
    fn default() -> Self {
        Self {
            worker: None,
            pod_start_delay: Duration::ZERO,
            auto_succeed_after: None,
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            event_history: DEFAULT_EVENT_HISTORY,
        }
    }
}

/// The program each pod runs in place of its container image.
///
/// It runs as a child process on this machine with this process's environment, plus the
/// container's `env` (plain values, `valueFrom.secretKeyRef` from
/// [`crate::StandIn::set_secret`], `valueFrom.fieldRef` for the pod's name, namespace, uid,
/// labels and service account), plus `env` here, which wins.
#[derive(Debug, Clone)]
pub struct WorkerProgram {
    /// Path of the executable.
    pub program: PathBuf,
    /// Arguments; the container's `command`/`args` are ignored.
    pub args: Vec<String>,
    /// Extra environment, set after the container's own.
    pub env: Vec<(String, String)>,
}

/// A fault given to the pods of matching Jobs.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Label selector on the Job's labels (`k=v`, `k!=v`, `k`, `!k`, `k in (a,b)`, comma-joined).
    pub selector: String,
    /// How many Jobs get the fault (None: every matching Job).
    pub times: Option<usize>,
    /// What happens to the pod.
    pub fault: PodFault,
}

/// What happens to a pod, as a kubelet or node controller would report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodFault {
    /// The process is killed; pod Failed, container terminated reason `OOMKilled`, exit 137.
    OomKilled,
    /// The process is killed; pod Failed with status reason `Evicted`.
    Evicted,
    /// The pod stays Pending, its container waiting in `ErrImagePull` / `ImagePullBackOff`.
    ImagePullBackOff,
    /// The pod stays Pending and unscheduled, condition PodScheduled False with this message.
    Unschedulable(String),
    /// The node is gone: the pod is deleted and its process killed; the Job fails.
    NodeLost,
}

/// Faults of the API server itself.
#[derive(Debug, Clone, Default)]
pub struct ApiFaults {
    /// The next N requests answer 500 InternalError.
    pub status_500: usize,
    /// The next N requests never answer (until shutdown or the connection closes).
    pub hang: usize,
    /// Refuse connections: the listener is closed and open connections dropped until this
    /// is set false again, when the same port is bound again.
    pub unreachable: bool,
    /// Count only requests of this verb (None: every request, including the list and
    /// watch requests of watchers running in the background).
    pub verb: Option<ApiVerb>,
}

/// A request's verb, as the API server's audit log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVerb {
    /// POST of a new object.
    Create,
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// DELETE of one object.
    Delete,
}
