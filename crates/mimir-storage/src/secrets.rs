//! Resolving credential references where the connector runs.
//!
//! A credential or connection string may hold `${env:NAME}` or
//! `${file:PATH}`. They are resolved only in the process that opens the
//! connection, so the secret never has to be stored or sent. Because a
//! config's author also chooses where the connection goes, a reference must
//! not reach this process's own secrets: `MIMIR_*` variables (the API and
//! worker tokens) are refused, and files must sit in the secrets directory
//! (`MIMIR_SECRETS_DIR`, defaults to `/run/secrets`, where Kubernetes and
//! Docker mount secrets).

use crate::StorageError;
use mimir_core::ConnectionSettings;
use serde_json::Value;
use std::path::{Component, Path, PathBuf};

/// The variable naming the directory `${file:…}` references are read from.
pub const SECRETS_DIR_ENV: &str = "MIMIR_SECRETS_DIR";

/// The secrets directory when [`SECRETS_DIR_ENV`] is not set.
pub const DEFAULT_SECRETS_DIR: &str = "/run/secrets";

/// The largest secret file read, in bytes.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Resolves references.
#[derive(Debug, Clone)]
pub struct Secrets {
    dir: PathBuf,
}

impl Default for Secrets {
    fn default() -> Secrets {
        Secrets::from_env()
    }
}

impl Secrets {
    /// Files from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Secrets {
        Secrets { dir: dir.into() }
    }

    /// Files from `MIMIR_SECRETS_DIR`, else `/run/secrets`.
    pub fn from_env() -> Secrets {
        let dir = std::env::var_os(SECRETS_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR));
        Secrets { dir }
    }

    /// The settings with every reference in the connection string and the
    /// credentials replaced by its value. Errors name the reference, never
    /// a value.
    pub fn resolve(
        &self,
        settings: &ConnectionSettings,
    ) -> Result<ConnectionSettings, StorageError> {
        let mut resolved = settings.clone();
        resolved.connection_string = self.resolve_text(&settings.connection_string)?;
        for (name, value) in resolved.credentials.iter_mut() {
            if let Value::String(text) = value {
                *text = self
                    .resolve_text(text)
                    .map_err(|e| e.context(format!("credential {name}")))?;
            }
        }
        Ok(resolved)
    }

    /// `text` with each `${env:…}` / `${file:…}` replaced.
    fn resolve_text(&self, text: &str) -> Result<String, StorageError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(StorageError::config("a ${ reference is not closed with }"));
            };
            let reference = &after[..end];
            out.push_str(&self.lookup(reference)?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn lookup(&self, reference: &str) -> Result<String, StorageError> {
        if let Some(name) = reference.strip_prefix("env:") {
            if name.starts_with("MIMIR_") {
                return Err(StorageError::config(format!(
                    "${{env:{name}}} is refused: MIMIR_ variables hold this process's own settings and tokens"
                )));
            }
            return std::env::var(name).map_err(|_| {
                StorageError::config(format!(
                    "${{env:{name}}} is not set where the connector runs"
                ))
            });
        }
        if let Some(path) = reference.strip_prefix("file:") {
            return self.read_file(path);
        }
        Err(StorageError::config(format!(
            "${{{reference}}} is not a reference: use ${{env:NAME}} or ${{file:PATH}}"
        )))
    }

    fn read_file(&self, path: &str) -> Result<String, StorageError> {
        let relative = Path::new(path);
        let relative = relative.strip_prefix(&self.dir).unwrap_or(relative);
        let plain = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !plain || relative.as_os_str().is_empty() {
            return Err(StorageError::config(format!(
                "${{file:{path}}} is refused: secret files are read from {} only",
                self.dir.display()
            )));
        }
        let full = self.dir.join(relative);
        // A link must not lead out of the directory.
        let inside = match (full.canonicalize(), self.dir.canonicalize()) {
            (Ok(file), Ok(dir)) => file.starts_with(dir),
            _ => false,
        };
        let too_big = std::fs::metadata(&full).is_ok_and(|m| m.len() > MAX_SECRET_BYTES);
        if !inside || too_big {
            return Err(StorageError::config(format!(
                "${{file:{path}}} cannot be read from {}",
                self.dir.display()
            )));
        }
        let text = std::fs::read_to_string(&full).map_err(|e| {
            StorageError::config(format!("${{file:{path}}} cannot be read: {}", e.kind()))
        })?;
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(connection_string: &str, password: &str) -> ConnectionSettings {
        ConnectionSettings {
            connection_string: connection_string.into(),
            credentials: json!({"password": password})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            options: Default::default(),
        }
    }

    #[test]
    fn resolves_files_in_the_secrets_dir_only() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("pg"), "s3cret\n")?;
        let outside = tempfile::NamedTempFile::new()?;
        std::fs::write(outside.path(), "nope")?;
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link"))?;
        let secrets = Secrets::new(dir.path());
        let resolved = secrets.resolve(&settings("postgres://u:${file:pg}@h/db", "${file:pg}"))?;
        assert_eq!(resolved.connection_string, "postgres://u:s3cret@h/db");
        assert_eq!(resolved.credentials["password"], json!("s3cret"));
        let absolute = format!("${{file:{}}}", dir.path().join("pg").display());
        assert!(secrets.resolve(&settings("", &absolute)).is_ok());
        for bad in [
            "${file:../pg}",
            "${file:/etc/passwd}",
            "${file:link}",
            "${file:}",
            "${nope:x}",
            "${env:x",
        ] {
            let error = secrets.resolve(&settings("", bad)).err();
            assert!(error.is_some(), "{bad} resolved");
            let message = error.map(|e| e.message).unwrap_or_default();
            assert!(!message.contains("nope\""), "{message}");
        }
        Ok(())
    }

    #[test]
    fn refuses_this_processs_own_variables() {
        let error = Secrets::new("/nonexistent")
            .resolve(&settings("", "${env:MIMIR_WORKER_TOKEN}"))
            .err()
            .map(|e| e.message);
        assert!(error.is_some_and(|m| m.contains("refused")));
        let unset = Secrets::new("/nonexistent")
            .resolve(&settings("", "${env:SURELY_NOT_SET_ANYWHERE_42}"))
            .err()
            .map(|e| e.message);
        assert!(unset.is_some_and(|m| m.contains("not set")));
    }
}
