//! The `filesystem` backend, the embedded default: one folder per entity
//! type under `options.base_path`, records as JSON lines in segment files.
//!
//! - Each store writes one new segment (`seg-<n>.ndjson`), so a batch is
//!   all-or-nothing: the file appears by an atomic rename once complete.
//! - Update and delete rewrite the segments they change, each by rename.
//! - Writers of an entity type take an advisory lock (`flock`) on its
//!   folder's `.lock`, so the orchestrator and workers writing one folder do
//!   not lose each other's changes; readers never wait.
//! - `base_path` is relative to the filesystem storage root (the
//!   orchestrator's `<data_dir>/storage` unless configured); a path that
//!   leaves the root is refused, so a config cannot reach other files.

use crate::{
    Connector, EntitySchema, Name, PoolState, Query, Record, Selection, StorageError,
    StorageMetadata, all_capabilities, matching, options,
};
use async_trait::async_trait;
use mimir_core::{ConnectionSettings, PluginType};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Component, Path, PathBuf};

/// The folder name of an entity type's definition.
const SCHEMA_FILE: &str = "_schema.json";

/// A store folder.
#[derive(Debug, Clone)]
pub struct Filesystem {
    base: PathBuf,
}

/// Checks `options.base_path` without touching the disk.
pub fn check(settings: &ConnectionSettings) -> Result<(), StorageError> {
    relative_base(settings).map(|_| ())
}

/// `options.base_path` as a plain relative path.
fn relative_base(settings: &ConnectionSettings) -> Result<PathBuf, StorageError> {
    let Some(base) = options::text(&settings.options, "base_path")? else {
        return Err(StorageError::config(
            "options.base_path is required: the folder, under the storage root, records are kept in",
        ));
    };
    let path = Path::new(base.trim_start_matches('/'));
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain || path.as_os_str().is_empty() {
        return Err(StorageError::config(format!(
            "options.base_path {base:?} must be a folder under the storage root, without .."
        )));
    }
    Ok(path.to_path_buf())
}

impl Filesystem {
    /// The folder `options.base_path` under `root`, created if missing.
    pub fn open(settings: &ConnectionSettings, root: &Path) -> Result<Filesystem, StorageError> {
        let base = root.join(relative_base(settings)?);
        fs::create_dir_all(&base)
            .map_err(|e| StorageError::config(format!("cannot create {}: {e}", base.display())))?;
        // A link inside the root must not lead out of it.
        let inside = match (base.canonicalize(), root.canonicalize()) {
            (Ok(base), Ok(root)) => base.starts_with(root),
            _ => false,
        };
        if !inside {
            return Err(StorageError::config(format!(
                "{} leaves the storage root {}",
                base.display(),
                root.display()
            )));
        }
        Ok(Filesystem { base })
    }

    fn folder(&self, entity: &Name) -> PathBuf {
        self.base.join(entity.as_str())
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Filesystem) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(this))
            .await
            .map_err(|e| StorageError::backend(format!("file operation stopped: {e}")))?
    }
}

/// Maps an I/O error: a vanished folder or full disk is the backend's
/// state, not the request's fault.
fn io_error(what: &str, path: &Path, error: std::io::Error) -> StorageError {
    let message = format!("{what} {}: {error}", path.display());
    match error.kind() {
        std::io::ErrorKind::NotFound
        | std::io::ErrorKind::PermissionDenied
        | std::io::ErrorKind::NotADirectory => StorageError::unavailable(message),
        _ => StorageError::backend(message),
    }
}

/// An entity folder's writer lock, released on drop.
struct Lock(#[allow(dead_code)] File);

fn lock(folder: &Path) -> Result<Lock, StorageError> {
    fs::create_dir_all(folder).map_err(|e| io_error("cannot create", folder, e))?;
    let path = folder.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("cannot open", &path, e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_error("cannot lock", &path, e.into()))?;
    Ok(Lock(file))
}

/// Segment files of a folder, in insertion order.
fn segments(folder: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("cannot list", folder, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot list", folder, e))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix("seg-"))
            .and_then(|n| n.strip_suffix(".ndjson"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            found.push((number, entry.path()));
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// A segment's records; a segment removed meanwhile holds none.
fn read_segment(path: &Path) -> Result<Vec<Record>, StorageError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("cannot read", path, e)),
    };
    let mut records = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| io_error("cannot read", path, e))?;
        if line.is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line).map_err(|e| {
            StorageError::backend(format!("{} holds a damaged record: {e}", path.display()))
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Writes `records` to `path` atomically (a temporary file, synced, renamed).
fn write_segment(path: &Path, records: &[Record]) -> Result<(), StorageError> {
    let temporary = path.with_extension("tmp");
    let mut buffer = Vec::with_capacity(records.len() * 64);
    for record in records {
        serde_json::to_writer(&mut buffer, record)
            .map_err(|e| StorageError::backend(format!("cannot encode a record: {e}")))?;
        buffer.push(b'\n');
    }
    let mut file = File::create(&temporary).map_err(|e| io_error("cannot write", &temporary, e))?;
    file.write_all(&buffer)
        .and_then(|()| file.sync_data())
        .map_err(|e| io_error("cannot write", &temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| io_error("cannot write", path, e))
}

fn read_schema(folder: &Path) -> Result<Option<EntitySchema>, StorageError> {
    let path = folder.join(SCHEMA_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StorageError::backend(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("cannot read", &path, e)),
    }
}

/// Applies the entity's schema to a selection's filters.
fn normalized(folder: &Path, selection: &Selection) -> Result<Selection, StorageError> {
    let mut selection = selection.clone();
    if let Some(schema) = read_schema(folder)? {
        schema.normalize_filters(&mut selection.filters)?;
    }
    Ok(selection)
}

/// Rewrites each segment through `change`, which answers how many of its
/// records it changed; unchanged segments are left alone.
fn rewrite(
    folder: &Path,
    mut change: impl FnMut(&mut Vec<Record>) -> Result<u64, StorageError>,
) -> Result<u64, StorageError> {
    let mut total = 0;
    for (_, path) in segments(folder)? {
        let mut records = read_segment(&path)?;
        let changed = change(&mut records)?;
        if changed == 0 {
            continue;
        }
        total += changed;
        if records.is_empty() {
            fs::remove_file(&path).map_err(|e| io_error("cannot remove", &path, e))?;
        } else {
            write_segment(&path, &records)?;
        }
    }
    Ok(total)
}

#[async_trait]
impl Connector for Filesystem {
    fn plugin_type(&self) -> PluginType {
        PluginType::Filesystem
    }

    async fn store(&self, entity: &Name, mut records: Vec<Record>) -> Result<u64, StorageError> {
        let folder = self.folder(entity);
        self.blocking(move |_| {
            let _lock = lock(&folder)?;
            if let Some(schema) = read_schema(&folder)? {
                for (i, record) in records.iter_mut().enumerate() {
                    schema
                        .normalize_record(record)
                        .map_err(|e| e.context(format!("record {i}")))?;
                }
            }
            let next = segments(&folder)?.last().map_or(0, |(n, _)| n + 1);
            write_segment(&folder.join(format!("seg-{next:016}.ndjson")), &records)?;
            Ok(records.len() as u64)
        })
        .await
    }

    async fn retrieve(&self, query: &Query) -> Result<Vec<Record>, StorageError> {
        let folder = self.folder(&query.selection.entity_type);
        let mut query = query.clone();
        self.blocking(move |_| {
            query.selection = normalized(&folder, &query.selection)?;
            // Stream segments so that an unordered page stops reading early.
            if query.order_by.is_empty() {
                let wanted = (query.offset + query.limit) as usize;
                let mut chosen = Vec::new();
                for (_, path) in segments(&folder)? {
                    for record in read_segment(&path)? {
                        if matching::matches(&record, &query.selection.filters) {
                            chosen.push(record);
                        }
                    }
                    if chosen.len() >= wanted {
                        break;
                    }
                }
                return Ok(matching::evaluate(chosen, &query));
            }
            let mut all = Vec::new();
            for (_, path) in segments(&folder)? {
                all.extend(read_segment(&path)?);
            }
            Ok(matching::evaluate(all, &query))
        })
        .await
    }

    async fn update(&self, selection: &Selection, updates: &Record) -> Result<u64, StorageError> {
        let folder = self.folder(&selection.entity_type);
        let selection = selection.clone();
        let updates = updates.clone();
        self.blocking(move |_| {
            let _lock = lock(&folder)?;
            let schema = read_schema(&folder)?;
            let selection = normalized(&folder, &selection)?;
            rewrite(&folder, |records| {
                let mut changed = 0;
                for record in records.iter_mut() {
                    if !matching::matches(record, &selection.filters) {
                        continue;
                    }
                    for (name, value) in &updates {
                        record.insert(name.clone(), value.clone());
                    }
                    if let Some(schema) = &schema {
                        schema.normalize_record(record)?;
                    }
                    changed += 1;
                }
                Ok(changed)
            })
        })
        .await
    }

    async fn delete(&self, selection: &Selection) -> Result<u64, StorageError> {
        let folder = self.folder(&selection.entity_type);
        let selection = selection.clone();
        self.blocking(move |_| {
            let _lock = lock(&folder)?;
            let selection = normalized(&folder, &selection)?;
            rewrite(&folder, |records| {
                let before = records.len();
                records.retain(|record| !matching::matches(record, &selection.filters));
                Ok((before - records.len()) as u64)
            })
        })
        .await
    }

    async fn create_schema(&self, schema: &EntitySchema) -> Result<(), StorageError> {
        let folder = self.folder(&schema.name);
        let schema = schema.clone();
        self.blocking(move |_| {
            let _lock = lock(&folder)?;
            let existing = read_schema(&folder)?;
            if existing.as_ref() == Some(&schema) {
                return Ok(());
            }
            if !segments(&folder)?.is_empty() {
                return Err(StorageError::invalid(format!(
                    "entity {} already has records{}; delete them before changing its definition",
                    schema.name,
                    if existing.is_some() {
                        " and another definition"
                    } else {
                        ""
                    }
                )));
            }
            let path = folder.join(SCHEMA_FILE);
            let temporary = folder.join("_schema.tmp");
            let bytes = serde_json::to_vec_pretty(&schema)
                .map_err(|e| StorageError::backend(format!("cannot encode the definition: {e}")))?;
            fs::write(&temporary, bytes)
                .and_then(|()| fs::rename(&temporary, &path))
                .map_err(|e| io_error("cannot write", &path, e))
        })
        .await
    }

    async fn health(&self) -> Result<(), StorageError> {
        self.blocking(|this| {
            let probe = this.base.join(".health");
            fs::write(&probe, b"ok")
                .and_then(|()| fs::remove_file(&probe))
                .map_err(|e| io_error("cannot write to", &this.base, e))
        })
        .await
    }

    async fn metadata(&self) -> Result<StorageMetadata, StorageError> {
        Ok(StorageMetadata {
            storage_type: PluginType::Filesystem,
            version: env!("CARGO_PKG_VERSION").to_string(),
            capabilities: all_capabilities(),
        })
    }

    fn pool(&self) -> Option<PoolState> {
        None
    }
}
