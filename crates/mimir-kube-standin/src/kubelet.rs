//! What the kubelet does with one pod: wait to start, run the worker program (or not), and
//! report how the pod ended; the Job's deadline and its TTL after finishing.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::Child;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, sleep_until};

use crate::config::PodFault;
use crate::server::Shared;
use crate::store::{Ending, Expiry, Kill, PodStart};

/// How long a pod stays in each of `ErrImagePull` and `ImagePullBackOff` before the other.
const IMAGE_PULL_FLIP: Duration = Duration::from_secs(1);

/// Why a pod stops before its process exits on its own.
enum Stop {
    Kill(Kill),
    /// The pod was deleted: stop the process gracefully.
    Deleted,
    Deadline,
    Shutdown,
}

async fn stopped(
    shared: &Shared,
    kill: &mut oneshot::Receiver<Kill>,
    deadline: Option<Instant>,
) -> Stop {
    let deadline = async {
        match deadline {
            Some(at) => sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        k = kill => match k {
            Ok(k) => Stop::Kill(k),
            Err(_) => Stop::Deleted,
        },
        () = deadline => Stop::Deadline,
        () = shared.shutdown.cancelled() => Stop::Shutdown,
    }
}

/// The TTL-after-finished controller: deletes the finished Job once its TTL has passed.
pub(crate) fn expire_after(shared: &Arc<Shared>, expiry: Expiry) {
    let shared = Arc::clone(shared);
    shared.clone().tasks.spawn(async move {
        tokio::select! {
            () = sleep(expiry.after) => {
                shared.store.lock().expire_job(&expiry.namespace, &expiry.job, &expiry.uid);
            }
            () = shared.shutdown.cancelled() => {}
        }
    });
}

/// Runs one pod to its end.
pub(crate) async fn run_pod(shared: Arc<Shared>, start: PodStart) {
    let PodStart {
        namespace: ns,
        name,
        uid,
        fault,
        deadline,
        grace,
        mut kill,
    } = start;
    let deadline = deadline.map(|d| Instant::now() + d);
    let end = |ending: Ending| {
        let expiry = shared.store.lock().pod_ended(&ns, &name, &uid, ending);
        if let Some(expiry) = expiry {
            expire_after(&shared, expiry);
        }
    };
    let stop_to_ending = |stop: Stop| -> Option<Ending> {
        match stop {
            Stop::Kill(Kill::Exit(code)) => Some(Ending::Exited(code)),
            Stop::Kill(Kill::Fault(PodFault::OomKilled)) => Some(Ending::OomKilled),
            Stop::Kill(Kill::Fault(PodFault::Evicted)) => Some(Ending::Evicted),
            Stop::Kill(Kill::Fault(_)) => Some(Ending::NodeLost),
            Stop::Deadline => Some(Ending::DeadlineExceeded),
            Stop::Deleted | Stop::Shutdown => None,
        }
    };

    let delay = shared.config.pod_start_delay;
    if !delay.is_zero() {
        tokio::select! {
            () = sleep(delay) => {}
            stop = stopped(&shared, &mut kill, deadline) => {
                if let Some(ending) = stop_to_ending(stop) { end(ending) }
                return;
            }
        }
    }

    // Pods that never start: they wait for a kill, a deadline or deletion.
    let never_starts = match &fault {
        Some(PodFault::ImagePullBackOff) => {
            let image = shared.store.lock().first_image(&ns, &name);
            let message = format!("Back-off pulling image \"{image}\"");
            let mut pulling = true;
            loop {
                let reason = if pulling {
                    "ErrImagePull"
                } else {
                    "ImagePullBackOff"
                };
                shared
                    .store
                    .lock()
                    .pod_waiting(&ns, &name, &uid, reason, &message);
                pulling = !pulling;
                tokio::select! {
                    () = sleep(IMAGE_PULL_FLIP) => {}
                    stop = stopped(&shared, &mut kill, deadline) => break Some(stop),
                }
            }
        }
        Some(PodFault::Unschedulable(_)) => Some(stopped(&shared, &mut kill, deadline).await),
        _ => None,
    };
    if let Some(stop) = never_starts {
        if let Some(ending) = stop_to_ending(stop) {
            end(ending);
        }
        return;
    }

    let env = shared.store.lock().container_env(&ns, &name);
    let env = match env {
        Ok(env) => env,
        Err(message) => {
            shared.store.lock().pod_waiting(
                &ns,
                &name,
                &uid,
                "CreateContainerConfigError",
                &message,
            );
            if let Some(ending) = stop_to_ending(stopped(&shared, &mut kill, deadline).await) {
                end(ending);
            }
            return;
        }
    };

    let Some(worker) = shared.config.worker.clone() else {
        shared.store.lock().pod_running(&ns, &name, &uid);
        if let Some(fault) = strikes_running(&fault) {
            return end(fault);
        }
        let succeed = async {
            match shared.config.auto_succeed_after {
                Some(after) => sleep(after).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = succeed => end(Ending::Exited(0)),
            stop = stopped(&shared, &mut kill, deadline) => {
                if let Some(ending) = stop_to_ending(stop) { end(ending) }
            }
        }
        return;
    };

    // One pipe for stdout and stderr, as a container runtime keeps one log in write order.
    let pipe =
        std::io::pipe().and_then(|(reader, writer)| Ok((reader, writer.try_clone()?, writer)));
    let (reader, stdout, stderr) = match pipe {
        Ok(pipe) => pipe,
        Err(e) => return end(Ending::StartError(format!("creating the output pipe: {e}"))),
    };
    let mut command = tokio::process::Command::new(&worker.program);
    command
        .args(&worker.args)
        .envs(env)
        .envs(worker.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let spawned = command.spawn();
    // The command holds the pipe's write ends: drop them, or the output never ends.
    drop(command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let message = format!("failed to start {}: {e}", worker.program.display());
            return end(Ending::StartError(message));
        }
    };
    let reader =
        tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))
            .ok()
            .map(|out| copy_output(Arc::clone(&shared), &ns, &name, &uid, out));
    shared.store.lock().pod_running(&ns, &name, &uid);
    if let Some(fault) = strikes_running(&fault) {
        kill_group(&child, Signal::KILL);
        let _ = child.wait().await;
        return end(fault);
    }
    tokio::select! {
        status = child.wait() => {
            let code = match status {
                Ok(status) => exit_code(status),
                Err(_) => 128,
            };
            // The log is whole before the pod is seen to end, unless something the process
            // left behind keeps its output open.
            if let Some(reader) = reader {
                let _ = tokio::time::timeout(OUTPUT_DRAIN, reader).await;
            }
            end(Ending::Exited(code));
        }
        stop = stopped(&shared, &mut kill, deadline) => {
            match stop {
                Stop::Deleted => terminate(&mut child, grace, &shared).await,
                _ => {
                    kill_group(&child, Signal::KILL);
                    let _ = child.wait().await;
                }
            }
            if let Some(ending) = stop_to_ending(stop) { end(ending) }
        }
    }
}

/// How long a finished process's output may take to drain into the pod's log.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// Copies a process's output (stdout and stderr) into the pod's log, and to this process's stderr.
fn copy_output(
    shared: Arc<Shared>,
    ns: &str,
    name: &str,
    uid: &str,
    mut out: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (ns, name, uid) = (ns.to_owned(), name.to_owned(), uid.to_owned());
    tokio::spawn(async move {
        use std::io::Write as _;
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match out.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            shared.store.lock().append_log(&ns, &name, &uid, &buf[..n]);
            let _ = std::io::stderr().write_all(&buf[..n]);
        }
    })
}

/// The faults that strike a pod once it runs.
fn strikes_running(fault: &Option<PodFault>) -> Option<Ending> {
    match fault {
        Some(PodFault::OomKilled) => Some(Ending::OomKilled),
        Some(PodFault::Evicted) => Some(Ending::Evicted),
        Some(PodFault::NodeLost) => Some(Ending::NodeLost),
        _ => None,
    }
}

/// SIGTERM to the process group, SIGKILL after the grace period (or at shutdown).
async fn terminate(child: &mut Child, grace: Duration, shared: &Shared) {
    kill_group(child, Signal::TERM);
    tokio::select! {
        _ = child.wait() => return,
        () = sleep(grace) => {}
        () = shared.shutdown.cancelled() => {}
    }
    kill_group(child, Signal::KILL);
    let _ = child.wait().await;
}

fn kill_group(child: &Child, signal: Signal) {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    if let Some(pid) = pid {
        // The group may already be gone; nothing to do then.
        let _ = kill_process_group(pid, signal);
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 128,
    }
}
