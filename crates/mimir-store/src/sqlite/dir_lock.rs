//! One store per data directory: an exclusive lock on `mimir.lock`.
//!
//! Two processes writing one SQLite queue would each keep their own
//! in-memory projection of it (queue order, leases) and hand the same task
//! to two workers. The second one to open the directory fails at once
//! instead, naming the process that holds it. The kernel drops the lock
//! when its holder exits, however it exits, so a crash leaves nothing to
//! clean up.

use crate::StoreError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The lock file's name inside the data directory.
pub const LOCK_FILE_NAME: &str = "mimir.lock";

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the data directory's lock, or says who holds it.
    pub fn take(data_dir: &Path) -> Result<DirLock, StoreError> {
        let path = data_dir.join(LOCK_FILE_NAME);
        let open_error = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| open_error(e.to_string()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                return Err(open_error(format!(
                    "{who} already serves this data directory; one orchestrator per data directory (stop it, or use another --data-dir)"
                )));
            }
            Err(TryLockError::Error(e)) => return Err(open_error(e.to_string())),
        }
        file.set_len(0).map_err(|e| open_error(e.to_string()))?;
        file.rewind().map_err(|e| open_error(e.to_string()))?;
        write!(file, "{}", std::process::id()).map_err(|e| open_error(e.to_string()))?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::take(dir.path()).expect("first");
        let refused = DirLock::take(dir.path()).expect_err("second");
        let message = refused.to_string();
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        drop(first);
        DirLock::take(dir.path()).expect("free again");
    }
}
