//! Pid files of local workers (`<dir>/<worker_id>.pid`), and whether a pid
//! still runs that worker, read from `/proc`.

use std::path::Path;

/// Records that `worker_id` runs as `pid`.
pub fn write(dir: &Path, worker_id: &str, pid: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{worker_id}.pid")), format!("{pid}\n"))
}

/// Forgets `worker_id`'s pid file, if there is one.
pub fn remove(dir: &Path, worker_id: &str) {
    let _ = std::fs::remove_file(dir.join(format!("{worker_id}.pid")));
}

/// True when `pid` is a live process (not a zombie) whose command line is
/// `mimir-aip worker ... --worker-id <worker_id>`: a pid reused by another
/// process does not pass. False where `/proc` is not available.
pub fn runs_worker(pid: u32, worker_id: &str) -> bool {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // `pid (comm) state ...`: comm may hold spaces and parentheses.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    if matches!(state, None | Some("Z" | "X" | "x")) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_worker = args.get(1).is_some_and(|a| *a == b"worker");
    let has_id = args
        .windows(2)
        .any(|pair| pair[0] == b"--worker-id" && pair[1] == worker_id.as_bytes());
    is_worker && has_id
}
