//! The record of what `install` wrote: each file's SHA-256, so a later
//! install can tell a file it wrote (safe to update) from one the user
//! changed (kept unless forced).

use crate::MonitoringError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest's name inside the install directory.
pub const MANIFEST_FILE: &str = ".mimir-monitoring.json";

/// What an install recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The `mimir-aip` version that wrote the files.
    pub version: String,
    /// The orchestrator the stack scrapes, e.g. `http://127.0.0.1:8080`;
    /// empty for an agent install.
    pub orchestrator: String,
    /// For an agent install (`--agent`): where it remote-writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_write: Option<String>,
    /// Relative path to the SHA-256 (hex) of the content written there.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads the manifest of `dir`; `None` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>, MonitoringError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MonitoringError::io(&path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| MonitoringError::Manifest {
                path,
                message: e.to_string(),
            })
    }

    /// Writes it into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), MonitoringError> {
        let path = dir.join(MANIFEST_FILE);
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        crate::install::write_atomically(&path, text.as_bytes(), false)
    }
}

/// SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard() {
        assert_eq!(
            sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
