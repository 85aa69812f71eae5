//! What a connector operation can fail with, and what the caller should do
//! about it.

use std::fmt;

/// How an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong (bad name, operator or value): fix it, do not retry.
    Invalid,
    /// The storage config is wrong (bad URL, missing option or credential).
    Config,
    /// The backend could not be reached or dropped the connection: retrying
    /// may help.
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// The backend refused the operation (constraint, permission, full).
    Backend,
}

impl ErrorKind {
    /// Its stable name in error bodies and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::Config => "config",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Backend => "backend",
        }
    }

    /// Whether trying again later can succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Timeout)
    }
}

/// A failed operation: its kind and a message that names what went wrong
/// (the attribute, the storage id and backend), never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    /// How it failed.
    pub kind: ErrorKind,
    /// For people.
    pub message: String,
}

impl StorageError {
    /// A request error.
    pub fn invalid(message: impl Into<String>) -> StorageError {
        StorageError {
            kind: ErrorKind::Invalid,
            message: message.into(),
        }
    }

    /// A config error.
    pub fn config(message: impl Into<String>) -> StorageError {
        StorageError {
            kind: ErrorKind::Config,
            message: message.into(),
        }
    }

    /// The backend is unreachable.
    pub fn unavailable(message: impl Into<String>) -> StorageError {
        StorageError {
            kind: ErrorKind::Unavailable,
            message: message.into(),
        }
    }

    /// The backend did not answer in time.
    pub fn timeout(message: impl Into<String>) -> StorageError {
        StorageError {
            kind: ErrorKind::Timeout,
            message: message.into(),
        }
    }

    /// The backend refused.
    pub fn backend(message: impl Into<String>) -> StorageError {
        StorageError {
            kind: ErrorKind::Backend,
            message: message.into(),
        }
    }

    /// Whether trying again later can succeed.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    /// The same error, its message prefixed with `context`.
    pub fn context(self, context: impl fmt::Display) -> StorageError {
        StorageError {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StorageError {}
