//! Writes the stack into a directory, idempotently: a file is written when
//! missing, updated when it still holds what an earlier install wrote, left
//! alone when identical, and kept when the user changed it (unless forced).
//! Files an earlier install wrote that this version no longer ships are
//! removed if unchanged. The manifest records every file's hash.

use crate::MonitoringError;
use crate::agent::AgentSettings;
use crate::assets::{File, Settings, Target};
use crate::manifest::{Manifest, sha256};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Component, Path};

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It did not exist.
    Written,
    /// It held an earlier install's version, unchanged since.
    Updated,
    /// It already held this content.
    Unchanged,
    /// The user changed it; left alone (`--force` overwrites).
    Kept,
    /// The user changed it and `--force` overwrote it.
    Overwritten,
    /// An earlier install wrote it, this version does not ship it, and it was unchanged.
    Removed,
}

impl Status {
    /// A word for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Written => "written",
            Status::Updated => "updated",
            Status::Unchanged => "unchanged",
            Status::Kept => "kept",
            Status::Overwritten => "overwritten",
            Status::Removed => "removed",
        }
    }
}

/// One file's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Path inside the install directory.
    pub path: String,
    /// What happened.
    pub status: Status,
}

/// Installs the stack for `settings` into `dir`.
pub fn install(
    dir: &Path,
    settings: &Settings,
    force: bool,
) -> Result<Vec<Outcome>, MonitoringError> {
    let files = settings.files()?;
    let manifest = Manifest {
        version: env!("CARGO_PKG_VERSION").to_string(),
        orchestrator: Target::parse(&settings.orchestrator)?.url(),
        remote_write: None,
        files: Default::default(),
    };
    write_install(dir, &files, manifest, force)
}

/// Installs a Prometheus agent for `settings` into `dir`. Files of an
/// earlier full install there (rules, dashboards) go as any file this
/// install does not ship: removed when unchanged, kept when edited.
pub fn install_agent(
    dir: &Path,
    settings: &AgentSettings,
    force: bool,
) -> Result<Vec<Outcome>, MonitoringError> {
    let files = settings.files()?;
    let manifest = Manifest {
        version: env!("CARGO_PKG_VERSION").to_string(),
        orchestrator: String::new(),
        remote_write: Some(settings.remote_write.clone()),
        files: Default::default(),
    };
    write_install(dir, &files, manifest, force)
}

/// Writes `files` into `dir`, then `manifest` with their hashes.
fn write_install(
    dir: &Path,
    files: &[File],
    mut manifest: Manifest,
    force: bool,
) -> Result<Vec<Outcome>, MonitoringError> {
    std::fs::create_dir_all(dir).map_err(MonitoringError::io(dir))?;
    let old = Manifest::read(dir)?.unwrap_or_default();
    let mut outcomes = Vec::new();
    let mut shipped = BTreeSet::new();
    for file in files {
        shipped.insert(file.path.clone());
        let path = dir.join(&file.path);
        let hash = sha256(file.contents.as_bytes());
        let recorded = old.files.get(&file.path);
        let status = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Status::Written,
            Err(e) => return Err(MonitoringError::io(&path)(e)),
            Ok(current) => {
                let current = sha256(&current);
                if current == hash {
                    Status::Unchanged
                } else if recorded == Some(&current) {
                    Status::Updated
                } else if force {
                    Status::Overwritten
                } else {
                    Status::Kept
                }
            }
        };
        match status {
            Status::Written | Status::Updated | Status::Overwritten => {
                write_atomically(&path, file.contents.as_bytes(), file.secret)?;
                manifest.files.insert(file.path.clone(), hash);
            }
            Status::Unchanged => {
                manifest.files.insert(file.path.clone(), hash);
            }
            // Remember what we wrote, so the file is ours again if the user
            // reverts their change.
            Status::Kept | Status::Removed => {
                if let Some(recorded) = recorded {
                    manifest.files.insert(file.path.clone(), recorded.clone());
                }
            }
        }
        outcomes.push(Outcome {
            path: file.path.clone(),
            status,
        });
    }
    for (path, recorded) in &old.files {
        if shipped.contains(path) || !is_plain_relative(path) {
            continue;
        }
        let full = dir.join(path);
        match std::fs::read(&full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(MonitoringError::io(&full)(e)),
            Ok(current) if sha256(&current) == *recorded => {
                std::fs::remove_file(&full).map_err(MonitoringError::io(&full))?;
                outcomes.push(Outcome {
                    path: path.clone(),
                    status: Status::Removed,
                });
            }
            Ok(_) => {
                manifest.files.insert(path.clone(), recorded.clone());
                outcomes.push(Outcome {
                    path: path.clone(),
                    status: Status::Kept,
                });
            }
        }
    }
    manifest.write(dir)?;
    Ok(outcomes)
}

/// A manifest path that stays inside the directory.
fn is_plain_relative(path: &str) -> bool {
    let path = Path::new(path);
    path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written config; `secret` files are readable by their owner only.
pub(crate) fn write_atomically(
    path: &Path,
    contents: &[u8],
    secret: bool,
) -> Result<(), MonitoringError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        if secret {
            builder.mode(0o700);
        }
        builder
            .create(parent)
            .map_err(MonitoringError::io(parent))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        options.mode(0o600);
    }
    let result = options
        .open(&temporary)
        .and_then(|mut f| {
            f.write_all(contents)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(MonitoringError::io(path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::ScrapeAuth;
    use crate::manifest::MANIFEST_FILE;

    fn statuses(outcomes: &[Outcome]) -> Vec<(String, Status)> {
        outcomes
            .iter()
            .map(|o| (o.path.clone(), o.status))
            .collect()
    }

    fn status_of(outcomes: &[Outcome], path: &str) -> Status {
        outcomes
            .iter()
            .find(|o| o.path == path)
            .unwrap_or_else(|| panic!("no outcome for {path}: {outcomes:?}"))
            .status
    }

    #[test]
    fn a_second_install_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = Settings::new("http://127.0.0.1:8080");
        let first = install(dir.path(), &settings, false).expect("install");
        assert!(
            first.iter().all(|o| o.status == Status::Written),
            "{first:?}"
        );
        let second = install(dir.path(), &settings, false).expect("install");
        assert!(
            second.iter().all(|o| o.status == Status::Unchanged),
            "{:?}",
            statuses(&second)
        );
        assert!(dir.path().join(MANIFEST_FILE).exists());
    }

    #[test]
    fn user_changes_are_kept_unless_forced_and_own_files_follow_new_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = Settings::new("http://127.0.0.1:8080");
        install(dir.path(), &settings, false).expect("install");
        let alerts = dir.path().join("rules/mimir-alerts.rules.yml");
        std::fs::write(&alerts, "groups: []\n").expect("user edit");

        // A new target: prometheus.yml is ours and follows; the edit stays.
        settings.orchestrator = "http://10.0.0.5:9000".into();
        let outcomes = install(dir.path(), &settings, false).expect("install");
        assert_eq!(status_of(&outcomes, "prometheus.yml"), Status::Updated);
        assert_eq!(
            status_of(&outcomes, "rules/mimir-alerts.rules.yml"),
            Status::Kept
        );
        assert_eq!(
            std::fs::read_to_string(&alerts).expect("read"),
            "groups: []\n"
        );
        let prometheus = std::fs::read_to_string(dir.path().join("prometheus.yml")).expect("read");
        assert!(prometheus.contains("'10.0.0.5:9000'"));

        // Still kept on the next run, then overwritten with --force.
        let again = install(dir.path(), &settings, false).expect("install");
        assert_eq!(
            status_of(&again, "rules/mimir-alerts.rules.yml"),
            Status::Kept
        );
        let forced = install(dir.path(), &settings, true).expect("install");
        assert_eq!(
            status_of(&forced, "rules/mimir-alerts.rules.yml"),
            Status::Overwritten
        );
        assert_ne!(
            std::fs::read_to_string(&alerts).expect("read"),
            "groups: []\n"
        );
        let after = install(dir.path(), &settings, false).expect("install");
        assert!(after.iter().all(|o| o.status == Status::Unchanged));
    }

    #[test]
    fn a_file_the_user_had_before_any_install_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("prometheus.yml"), "# mine\n").expect("write");
        let outcomes =
            install(dir.path(), &Settings::new("http://127.0.0.1:8080"), false).expect("install");
        assert_eq!(status_of(&outcomes, "prometheus.yml"), Status::Kept);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("prometheus.yml")).expect("read"),
            "# mine\n"
        );
    }

    #[test]
    fn credentials_are_owner_only_and_removed_when_no_longer_needed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = Settings::new("http://127.0.0.1:8080");
        settings.auth = Some(ScrapeAuth::Bearer("s3cret".into()));
        install(dir.path(), &settings, false).expect("install");
        let token = dir.path().join(crate::assets::BEARER_TOKEN_FILE);
        let mode = std::fs::metadata(&token)
            .expect("token")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        settings.auth = None;
        let outcomes = install(dir.path(), &settings, false).expect("install");
        assert_eq!(
            status_of(&outcomes, crate::assets::BEARER_TOKEN_FILE),
            Status::Removed
        );
        assert!(!token.exists());
    }

    #[test]
    fn an_agent_install_replaces_a_full_one_and_writes_no_rules_or_dashboards() {
        let dir = tempfile::tempdir().expect("tempdir");
        install(dir.path(), &Settings::new("http://127.0.0.1:8080"), false).expect("install");
        let mut agent = AgentSettings::new("http://central:9090/api/v1/write");
        agent.targets = vec!["127.0.0.1:9465".into()];
        let outcomes = install_agent(dir.path(), &agent, false).expect("agent install");
        assert_eq!(status_of(&outcomes, "prometheus.yml"), Status::Updated);
        assert_eq!(
            status_of(&outcomes, "rules/mimir-alerts.rules.yml"),
            Status::Removed
        );
        assert_eq!(
            status_of(&outcomes, "grafana/dashboards/mimir-overview.json"),
            Status::Removed
        );
        assert!(
            !dir.path()
                .join("rules")
                .join("mimir-alerts.rules.yml")
                .exists()
        );
        let manifest = Manifest::read(dir.path()).expect("read").expect("manifest");
        assert_eq!(
            manifest.remote_write.as_deref(),
            Some("http://central:9090/api/v1/write")
        );
        let mut written: Vec<String> = manifest.files.keys().cloned().collect();
        written.sort();
        assert_eq!(written, ["prometheus.yml", "targets/workers.yml"]);

        // A fresh agent install writes only the agent's files.
        let fresh = tempfile::tempdir().expect("tempdir");
        let outcomes = install_agent(fresh.path(), &agent, false).expect("agent install");
        assert_eq!(
            statuses(&outcomes),
            [
                ("prometheus.yml".to_string(), Status::Written),
                ("targets/workers.yml".to_string(), Status::Written)
            ]
        );
        let again = install_agent(fresh.path(), &agent, false).expect("again");
        assert!(again.iter().all(|o| o.status == Status::Unchanged));
    }

    #[test]
    fn manifest_paths_outside_the_directory_are_ignored() {
        assert!(is_plain_relative("grafana/dashboards/x.json"));
        assert!(!is_plain_relative("../etc/passwd"));
        assert!(!is_plain_relative("/etc/passwd"));
    }
}
