//! Errors of installing and running the stack.

use std::path::PathBuf;

/// What went wrong, naming the file, setting or tool.
#[derive(Debug, thiserror::Error)]
pub enum MonitoringError {
    /// A setting cannot be used.
    #[error("{0}")]
    Setting(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory holds no installed stack.
    #[error("{0} holds no monitoring stack; run `mimir-aip metrics install --dir {0}` first")]
    NotInstalled(PathBuf),
    /// The manifest is unreadable.
    #[error("{path}: not a manifest written by `mimir-aip metrics install` ({message})")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A tool the command needs is not installed.
    #[error("{0}")]
    MissingTool(String),
    /// A tool could not start or stopped on its own.
    #[error("{0}")]
    Tool(String),
}

impl MonitoringError {
    /// An I/O error about `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> MonitoringError {
        let path = path.into();
        move |source| MonitoringError::Io { path, source }
    }
}
