//! Model artifacts in the orchestrator's data dir:
//! `<data_dir>/models/<model_id>/<sha256-hex>.model`.
//!
//! Named by checksum, so a version's file never changes and two versions with
//! the same bytes share one. A write goes to a temp file, is synced, then
//! renamed into place (and the directory synced), so a crash leaves either
//! the whole file or none; a read verifies the checksum, so a file damaged on
//! disk is refused rather than served.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where artifacts are kept.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

/// Why an artifact could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The file system refused.
    #[error("artifact {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The version's artifact is not there.
    #[error("artifact {0} not found")]
    Missing(String),
    /// The bytes on disk do not match the recorded checksum.
    #[error("artifact {path} is damaged: its checksum is {found}, not {expected}")]
    Damaged {
        /// The file.
        path: String,
        /// The checksum recorded.
        expected: String,
        /// The checksum of the bytes read.
        found: String,
    },
    /// A checksum that is not `sha256:<64 hex digits>`.
    #[error("checksum {0:?} is not sha256:<hex>")]
    BadChecksum(String),
}

/// `<hex>` of `sha256:<hex>`, refused unless it is 64 lowercase hex digits
/// (it becomes a file name).
fn hex_of(checksum: &str) -> Result<&str, ArtifactError> {
    checksum
        .strip_prefix("sha256:")
        .filter(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
        .ok_or_else(|| ArtifactError::BadChecksum(checksum.to_string()))
}

/// A model id as a directory name: ids are UUIDs, but a stored id is still
/// checked, so none can name a path outside the store.
fn dir_name(model_id: &str) -> Result<&str, ArtifactError> {
    let safe = !model_id.is_empty()
        && model_id.len() <= 128
        && model_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if safe {
        Ok(model_id)
    } else {
        Err(ArtifactError::Missing(model_id.to_string()))
    }
}

impl ArtifactStore {
    /// Artifacts under `<data_dir>/models`.
    pub fn new(data_dir: &Path) -> ArtifactStore {
        ArtifactStore {
            root: data_dir.join("models"),
        }
    }

    fn dir(&self, model_id: &str) -> Result<PathBuf, ArtifactError> {
        Ok(self.root.join(dir_name(model_id)?))
    }

    /// The file of a version's artifact.
    pub fn path(&self, model_id: &str, checksum: &str) -> Result<PathBuf, ArtifactError> {
        Ok(self
            .dir(model_id)?
            .join(format!("{}.model", hex_of(checksum)?)))
    }

    /// Writes `bytes` as the artifact of `model_id`; its checksum, which
    /// names the file.
    pub async fn write(&self, model_id: &str, bytes: Vec<u8>) -> Result<String, ArtifactError> {
        let checksum = mimir_ml::checksum(&bytes);
        let path = self.path(model_id, &checksum)?;
        tokio::task::spawn_blocking(move || write_file(&path, &bytes))
            .await
            .map_err(|e| ArtifactError::Io {
                path: model_id.to_string(),
                source: std::io::Error::other(e.to_string()),
            })??;
        Ok(checksum)
    }

    /// Reads the artifact with `checksum`, verifying it.
    pub async fn read(&self, model_id: &str, checksum: &str) -> Result<Vec<u8>, ArtifactError> {
        let path = self.path(model_id, checksum)?;
        let expected = checksum.to_string();
        tokio::task::spawn_blocking(move || {
            let shown = path.display().to_string();
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ArtifactError::Missing(shown));
                }
                Err(source) => {
                    return Err(ArtifactError::Io {
                        path: shown,
                        source,
                    });
                }
            };
            let found = mimir_ml::checksum(&bytes);
            if found != expected {
                return Err(ArtifactError::Damaged {
                    path: shown,
                    expected,
                    found,
                });
            }
            Ok(bytes)
        })
        .await
        .map_err(|e| ArtifactError::Io {
            path: model_id.to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    /// Removes every artifact of `model_id` (none is fine).
    pub async fn remove_model(&self, model_id: &str) -> Result<(), ArtifactError> {
        let dir = self.dir(model_id)?;
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ArtifactError::Io {
                path: dir.display().to_string(),
                source,
            }),
        })
        .await
        .map_err(|e| ArtifactError::Io {
            path: model_id.to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let io = |source| ArtifactError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| io(std::io::Error::other("no parent")))?;
    std::fs::create_dir_all(dir).map_err(io)?;
    // Unique per write, so two uploads of one artifact never share a temp file.
    let temp = dir.join(format!(".{}.tmp", uuid::Uuid::now_v7()));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_read_back_verified_and_go_with_their_model() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let checksum = store.write("m1", b"model bytes".to_vec()).await.unwrap();
        assert_eq!(checksum, mimir_ml::checksum(b"model bytes"));
        let path = store.path("m1", &checksum).unwrap();
        assert!(path.starts_with(dir.path().join("models").join("m1")));
        assert_eq!(store.read("m1", &checksum).await.unwrap(), b"model bytes");
        std::fs::write(&path, b"model bytez").unwrap();
        assert!(matches!(
            store.read("m1", &checksum).await,
            Err(ArtifactError::Damaged { .. })
        ));
        store.remove_model("m1").await.unwrap();
        assert!(!dir.path().join("models").join("m1").exists());
        assert!(matches!(
            store.read("m1", &checksum).await,
            Err(ArtifactError::Missing(_))
        ));
    }

    #[test]
    fn ids_and_checksums_cannot_name_other_paths() {
        let store = ArtifactStore::new(Path::new("/data"));
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(store.path("../etc", &good).is_err());
        assert!(store.path("m", "sha256:../../x").is_err());
        assert!(store.path("m", &format!("md5:{}", "a".repeat(64))).is_err());
    }
}
