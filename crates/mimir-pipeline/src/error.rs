//! Why an action failed.

use mimir_core::ErrorClass;
use std::path::PathBuf;

/// Why an action failed; the engine records its text as the step's error.
///
/// Variants carry what a person needs to fix the pipeline: the parameter, the
/// file, the URL. Plugins outside this crate usually return
/// [`ActionError::Parameter`] for bad input and [`ActionError::Failed`] otherwise.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A parameter is missing, unknown, or has the wrong type or value.
    #[error("parameter \"{name}\" {message}")]
    Parameter {
        /// The parameter's name, e.g. `url`.
        name: String,
        /// What is wrong, phrased to follow the name ("is required").
        message: String,
    },
    /// A file could not be read or written.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `read` or `create the directory of`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file path resolves outside the file roots (`pipelines.fileRoots`).
    #[error("{}", outside_roots(path, resolved.as_deref(), roots))]
    OutsideRoots {
        /// The path as the step gave it.
        path: String,
        /// Where it leads once symlinks are followed, when that is what lies
        /// outside.
        resolved: Option<PathBuf>,
        /// The roots, absolute.
        roots: Vec<PathBuf>,
    },
    /// An HTTP request was not sent, or a redirect not followed, because
    /// the HTTP allow or deny list refuses where it leads.
    #[error("{method} {url}: refused: {reason}")]
    HttpRefused {
        /// The request method.
        method: String,
        /// The request URL, without any password.
        url: String,
        /// The host or address and the list entry that refused it.
        reason: String,
    },
    /// An HTTP request with `fail_on_status` got a 4xx or 5xx answer.
    #[error("{method} {url}: answered {status}: {body}")]
    HttpStatus {
        /// The request method.
        method: String,
        /// The request URL, without any password.
        url: String,
        /// The answer's status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// A file's content does not parse in the expected format.
    #[error("{} is not valid {format}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The format it was read as (`csv`, `json`, ...).
        format: &'static str,
        /// The parser's reason, with its position when known.
        message: String,
    },
    /// Data cannot be written in the requested format (e.g. CSV rows that are
    /// not objects).
    #[error("cannot write {format}: {message}")]
    Encode {
        /// The format asked for.
        format: &'static str,
        /// Why the data does not fit it.
        message: String,
    },
    /// An HTTP request failed before a response arrived (DNS, connection, TLS,
    /// body read). A response with any status is not an error.
    #[error("{method} {url}: {message}")]
    Http {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The client's reason.
        message: String,
    },
    /// An HTTP request got no complete response in time.
    #[error("{method} {url}: no response within {timeout_ms} ms")]
    Timeout {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The limit that was reached.
        timeout_ms: u64,
    },
    /// A jq program does not compile.
    #[error("jq program does not compile: {0}")]
    JqCompile(String),
    /// A jq program raised an error while running.
    #[error("jq program failed: {0}")]
    JqRuntime(String),
    /// The run was cancelled while the action was in progress.
    #[error("cancelled")]
    Cancelled,
    /// The action failed for its own reason (e.g. `core.fail`).
    #[error("{0}")]
    Failed(String),
    /// The action failed in a way running it again cannot fix (e.g.
    /// `core.fail` with `permanent: true`): the task fails without retries.
    #[error("{0}")]
    Permanent(String),
}

fn outside_roots(path: &str, resolved: Option<&std::path::Path>, roots: &[PathBuf]) -> String {
    if roots.is_empty() {
        return format!(
            "path \"{path}\" is refused: no file roots are configured (pipelines.fileRoots)"
        );
    }
    let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    let roots = roots.join(", ");
    match resolved {
        Some(real) => format!(
            "path \"{path}\" resolves to {}, outside the file roots ({roots})",
            real.display()
        ),
        None => format!("path \"{path}\" is outside the file roots ({roots})"),
    }
}

impl ActionError {
    /// A [`ActionError::Parameter`] error.
    pub fn parameter(name: &str, message: impl Into<String>) -> ActionError {
        ActionError::Parameter {
            name: name.to_string(),
            message: message.into(),
        }
    }

    /// A [`ActionError::Failed`] error.
    pub fn failed(message: impl Into<String>) -> ActionError {
        ActionError::Failed(message.into())
    }

    /// Whether retrying can help. Bad parameters, unparsable data, jq errors
    /// and what the confinement refuses fail the same way every time; network trouble, timeouts and a
    /// plugin's own [`ActionError::Failed`] may not. A missing file or one
    /// without permission is permanent; other I/O errors (a full disk) are not.
    pub fn class(&self) -> ErrorClass {
        match self {
            ActionError::Parameter { .. }
            | ActionError::Parse { .. }
            | ActionError::Encode { .. }
            | ActionError::JqCompile(_)
            | ActionError::JqRuntime(_)
            | ActionError::OutsideRoots { .. }
            | ActionError::HttpRefused { .. }
            | ActionError::Permanent(_) => ErrorClass::Permanent,
            // The server may answer differently later: a timeout, too many
            // requests, a server error. Any other 4xx will be the same.
            ActionError::HttpStatus { status, .. } => match status {
                408 | 429 | 500.. => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
            ActionError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::NotADirectory => ErrorClass::Permanent,
                _ => ErrorClass::Transient,
            },
            ActionError::Http { .. }
            | ActionError::Timeout { .. }
            | ActionError::Cancelled
            | ActionError::Failed(_) => ErrorClass::Transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_failed() {
        let e = ActionError::parameter("url", "is required");
        assert_eq!(e.to_string(), "parameter \"url\" is required");
        let e = ActionError::Timeout {
            method: "GET".into(),
            url: "http://127.0.0.1:1/x".into(),
            timeout_ms: 50,
        };
        assert_eq!(
            e.to_string(),
            "GET http://127.0.0.1:1/x: no response within 50 ms"
        );
        assert_eq!(ActionError::Cancelled.to_string(), "cancelled");
        let e = ActionError::OutsideRoots {
            path: "../x".into(),
            resolved: None,
            roots: vec!["/data/files".into(), "/srv".into()],
        };
        assert_eq!(
            e.to_string(),
            "path \"../x\" is outside the file roots (/data/files, /srv)"
        );
        let e = ActionError::OutsideRoots {
            path: "link".into(),
            resolved: Some("/etc/passwd".into()),
            roots: vec!["/data/files".into()],
        };
        assert_eq!(
            e.to_string(),
            "path \"link\" resolves to /etc/passwd, outside the file roots (/data/files)"
        );
    }
}
