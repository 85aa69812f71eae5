//! HTTP serving shared by the orchestrator and workers.
//!
//! [`serve`] runs an axum router on a listener with the limits a public port
//! needs ([`Limits`]: a header-read timeout, an idle keep-alive timeout and a
//! connection cap that closes the longest-idle connection when reached) and,
//! when given a [`TlsServer`], over TLS (rustls with the ring provider) with
//! the certificate re-read when its files change and optional client
//! certificates.

mod connection;
mod limits;
mod server;
mod throttle;
pub mod tls;

pub use limits::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, Limits,
    raise_fd_limit,
};
pub use server::serve;
pub use tls::{
    ClientAuth, NoClientCertificate, PeerCertificate, TlsError, TlsServer, TlsSettings,
    check_trusted,
};
