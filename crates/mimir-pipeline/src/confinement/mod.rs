//! What pipeline steps may reach: the file roots of `file.read` and
//! `file.write`, and the hosts `http.request` may call.
//!
//! A [`Confinement`] is plain data (serde), so it can be written into a
//! configuration file or handed to another process; [`crate::Registry::confined`]
//! builds the built-in actions under it, and is the only way to get them.
//!
//! # Files
//!
//! A path is resolved against the first root when relative, then `.` and
//! `..` are applied and symlinks followed; the file it names must lie inside
//! one of the roots, or the step fails naming the path and the roots. Files
//! are opened without following a final symlink and, on Linux, checked again
//! through `/proc/self/fd` once open, so a symlink swapped in between the
//! check and the open is refused too.
//!
//! # HTTP
//!
//! `deny` and `allow` hold host names (`example.com`, or `*.example.com` for
//! its subdomains), IP addresses and CIDR blocks (`10.0.0.0/8`). A request is
//! refused when its host name or any address it would connect to matches
//! `deny`; when `allow` is not empty, the host name or the address must match
//! it too. Addresses are checked after DNS resolution, for every redirect
//! hop and for URLs with a literal IP, so neither a redirect nor a DNS answer
//! gets past the lists. Proxies from `HTTP(S)_PROXY` are not used: through a
//! proxy the address a request reaches could not be checked.

mod cidr;
mod file_roots;
mod http_policy;
mod resolver;

pub use cidr::Cidr;
pub use file_roots::FileRoots;
pub use http_policy::{DEFAULT_HTTP_DENY, HostRule, HttpPolicy, HttpRules, Refused};
pub(crate) use resolver::ConfinedResolver;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the built-in actions may reach.
///
/// Defaults to no file roots (every `file.read` and `file.write` is refused)
/// and [`HttpPolicy::default`] (any host but link-local and cloud metadata
/// addresses). The orchestrator and `mimir-aip worker` default the roots to
/// `files/` under the data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Confinement {
    /// Directories `file.read` and `file.write` work in; a relative step path
    /// is resolved against the first. Relative roots are taken from the
    /// current directory when the registry is built.
    pub file_roots: Vec<PathBuf>,
    /// Hosts `http.request` may call.
    pub http: HttpPolicy,
}

/// A [`Confinement`] that cannot be applied; the message names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfinementError {
    /// An allow or deny entry is not a host name, IP address or CIDR block.
    #[error("http.{list}[{index}]: {reason}")]
    HttpRule {
        /// `allow` or `deny`.
        list: &'static str,
        /// The entry's position in the list.
        index: usize,
        /// Why it does not parse.
        reason: String,
    },
    /// A file root cannot be made absolute (the current directory is gone).
    #[error("file_roots[{index}]: cannot resolve {}: {reason}", path.display())]
    FileRoot {
        /// The root's position in the list.
        index: usize,
        /// The root as given.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The HTTP client cannot be built (e.g. no TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

impl Confinement {
    /// Checks every entry, as [`crate::Registry::confined`] would.
    pub fn validate(&self) -> Result<(), ConfinementError> {
        FileRoots::new(&self.file_roots)?;
        HttpRules::new(&self.http)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_round_trips_through_json_for_another_process() {
        let confinement = Confinement {
            file_roots: vec![PathBuf::from("/srv/files")],
            http: HttpPolicy {
                allow: vec!["*.example.com".into()],
                deny: vec!["10.0.0.0/8".into()],
            },
        };
        let text = serde_json::to_string(&confinement).unwrap_or_default();
        let back: Confinement = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, confinement);
        // A missing field takes its default, so the deny list is not lost.
        let partial: Confinement =
            serde_json::from_str(r#"{"file_roots": ["/x"]}"#).unwrap_or_default();
        assert_eq!(partial.http, HttpPolicy::default());
    }

    #[test]
    fn bad_entries_are_named() {
        let confinement = Confinement {
            http: HttpPolicy {
                allow: vec![],
                deny: vec!["169.254.0.0/16".into(), "10.0.0.0/99".into()],
            },
            ..Confinement::default()
        };
        let error = confinement.validate().expect_err("bad prefix");
        assert!(error.to_string().starts_with("http.deny[1]:"), "{error}");
    }
}
