//! A consistent copy of a live store, with SQLite's online backup API.
//!
//! The copy is taken in one backup step: one read transaction, so it is the
//! store as of one commit, and in WAL mode that transaction holds up neither
//! the orchestrator's writer nor its readers. It is written beside the
//! destination and renamed into place once complete and synced, so a failed
//! or interrupted backup never leaves a partial file under the destination's
//! name.

use super::DB_FILE_NAME;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Defaults to 60 s: how long a backup waits for a lock on the source
/// (only a checkpoint or a migration holds one long).
pub const DEFAULT_BACKUP_WAIT: Duration = Duration::from_secs(60);

/// Why a backup was not made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The data directory holds no store.
    #[error("no store at {}: is the data directory right?", .0.display())]
    NoStore(PathBuf),
    /// The destination exists and overwriting was not asked for.
    #[error("{} exists already; choose another destination or overwrite it with --force", .0.display())]
    Exists(PathBuf),
    /// The destination is a directory.
    #[error("{} is a directory; name the file to write, e.g. {}", .0.display(), .0.join(DB_FILE_NAME).display())]
    IsDirectory(PathBuf),
    /// The source stayed locked.
    #[error("the store at {} stayed locked for {}s", .0.display(), DEFAULT_BACKUP_WAIT.as_secs())]
    Busy(PathBuf),
    /// SQLite failed.
    #[error("backup of {} failed: {source}", path.display())]
    Sqlite {
        /// The file being read or written.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// What a backup copied.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The database file copied.
    pub source: PathBuf,
    /// The copy.
    pub destination: PathBuf,
    /// Work tasks in the copy.
    pub tasks: u64,
    /// Size of the copy in bytes.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Copies the store in `data_dir` (live or not) to the file `destination`,
/// which must not exist unless `overwrite`. The copy is a self-contained
/// database file: put it in an empty data directory as `mimir.db` to restore.
pub fn backup(
    data_dir: &Path,
    destination: &Path,
    overwrite: bool,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let source_path = data_dir.join(DB_FILE_NAME);
    if !source_path.is_file() {
        return Err(BackupError::NoStore(source_path));
    }
    if destination.is_dir() {
        return Err(BackupError::IsDirectory(destination.to_path_buf()));
    }
    if destination.exists() && !overwrite {
        return Err(BackupError::Exists(destination.to_path_buf()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    let parent = match destination.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DB_FILE_NAME.to_string());
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let result = copy(&source_path, &partial);
    let tasks = match result {
        Ok(tasks) => tasks,
        Err(error) => {
            remove_partial(&partial);
            return Err(error);
        }
    };
    if let Err(error) = std::fs::File::open(&partial).and_then(|f| f.sync_all()) {
        remove_partial(&partial);
        return Err(io(&partial)(error));
    }
    std::fs::rename(&partial, destination).map_err(io(destination))?;
    // The rename itself is durable once the directory is synced.
    if let Ok(dir) = std::fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    let bytes = std::fs::metadata(destination)
        .map_err(io(destination))?
        .len();
    Ok(BackupReport {
        source: source_path,
        destination: destination.to_path_buf(),
        tasks,
        bytes,
        elapsed: started.elapsed(),
    })
}

/// Copies `source` into a new file `target`; returns the tasks it holds.
fn copy(source_path: &Path, target_path: &Path) -> Result<u64, BackupError> {
    let sqlite = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Sqlite { path, source }
    };
    if target_path.exists() {
        std::fs::remove_file(target_path).map_err(|source| BackupError::Io {
            path: target_path.to_path_buf(),
            source,
        })?;
    }
    // Read-write without create: a WAL database is read through its shared
    // memory file, which a read-only connection may not be able to set up.
    let source = Connection::open_with_flags(
        source_path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(source_path))?;
    source
        .busy_timeout(Duration::from_secs(5))
        .map_err(sqlite(source_path))?;
    let mut target = Connection::open(target_path).map_err(sqlite(target_path))?;
    {
        let backup = Backup::new(&source, &mut target).map_err(sqlite(target_path))?;
        let deadline = Instant::now() + DEFAULT_BACKUP_WAIT;
        loop {
            // All pages in one step: one snapshot, never restarted by the
            // writes the orchestrator makes meanwhile.
            match backup.step(-1).map_err(sqlite(source_path))? {
                StepResult::Done => break,
                StepResult::More => continue,
                // Busy or locked: wait for the lock, a while.
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => return Err(BackupError::Busy(source_path.to_path_buf())),
            }
        }
    }
    drop(source);
    // One file, no WAL beside it: the copy is whole on its own.
    let _: String = target
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(sqlite(target_path))?;
    let tasks: u64 = target
        .query_row("SELECT count(*) FROM worktasks", [], |r| r.get(0))
        .map_err(sqlite(target_path))?;
    Ok(tasks)
}

fn remove_partial(path: &Path) {
    let _ = std::fs::remove_file(path);
    for suffix in ["-journal", "-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
}
