//! What one listener allows: how long a client may take to send a request's
//! headers, how long a keep-alive connection may sit idle, how many
//! connections are open at once.

use std::time::Duration;

/// Defaults to 10 s: a new connection (TLS handshake included) must deliver a
/// request's headers within this time, and so must a keep-alive connection
/// once the next request's first byte has arrived.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Defaults to 60 s: a keep-alive connection with no request for this long is
/// closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Defaults to 4096 connections at once, fewer when the process may not
/// open that many files (see [`Limits::connection_cap`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept for everything but client connections (the store,
/// worker pipes, log files) when the cap comes from the descriptor limit.
const RESERVED_FDS: u64 = 256;

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Most connections open at once; 0 means [`DEFAULT_MAX_CONNECTIONS`]
    /// bounded by the descriptor limit.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: 0,
        }
    }
}

impl Limits {
    /// The cap in force: `max_connections` when set, else the default,
    /// either way no more than the open-file limit leaves for clients (so the
    /// cap is reached, and idle connections closed, before `accept` fails).
    pub fn connection_cap(&self) -> usize {
        let wanted = if self.max_connections == 0 {
            DEFAULT_MAX_CONNECTIONS
        } else {
            self.max_connections
        };
        let files = fd_limit().saturating_sub(RESERVED_FDS).max(16);
        wanted.min(usize::try_from(files).unwrap_or(usize::MAX))
    }
}

/// The soft limit on open files.
fn fd_limit() -> u64 {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current.unwrap_or(u64::MAX)
}

/// Raises the soft open-file limit to the hard limit, as a server that holds
/// thousands of connections needs (many systems start processes at 1024).
/// Returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%error, "cannot raise the open-file limit");
        }
    }
    fd_limit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_never_exceeds_what_the_descriptor_limit_leaves() {
        let limits = Limits {
            max_connections: usize::MAX,
            ..Limits::default()
        };
        let files = fd_limit();
        assert!(limits.connection_cap() as u64 <= files.max(16 + RESERVED_FDS));
        let small = Limits {
            max_connections: 20,
            ..Limits::default()
        };
        assert_eq!(small.connection_cap(), 20);
    }
}
