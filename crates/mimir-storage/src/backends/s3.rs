//! The `s3` backend: AWS S3 or any S3-compatible server (MinIO, Ceph,
//! moto), with records as JSON lines in segment objects, as the filesystem
//! backend keeps them in files.
//!
//! - Objects of an entity type live under `{prefix}/{entity}/`: segments
//!   `seg-{n:016}.ndjson` in insertion order, and `_schema.json`.
//! - Each store writes one new segment with a create-only put
//!   (`If-None-Match: *`), so a batch appears whole or not at all and two
//!   writers never overwrite each other: the loser takes the next number.
//! - Update and delete rewrite the segments they change with a put
//!   conditional on the segment's ETag (`If-Match`); a segment changed
//!   meanwhile is read and changed again. A segment emptied this way is
//!   then removed: no writer adds records to an existing segment, so the
//!   removal loses nothing.
//! - object_store's own retries are off (the storage wrapper retries with
//!   backoff) and its timeouts come from the config's options; concurrent
//!   requests per config are bounded by `max_connections`.
//!
//! The server must support conditional writes (AWS S3 does since 2024, as do
//! MinIO and moto).

use crate::{
    CommonOptions, Connector, EntitySchema, Name, PoolState, Query, Record, Selection,
    StorageError, StorageMetadata, all_capabilities, matching, options,
};
use async_trait::async_trait;
use mimir_core::{ConnectionSettings, PluginType};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion,
};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The object name of an entity type's definition.
const SCHEMA_OBJECT: &str = "_schema.json";

/// The region unless `credentials.region` says.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Times a store takes the next segment number after losing one to
/// another writer, and a rewrite re-reads a segment changed meanwhile.
const ATTEMPTS: u32 = 16;

/// A bucket (and a prefix in it).
pub struct S3 {
    store: AmazonS3,
    prefix: String,
    permits: Semaphore,
    max: u32,
    peak: AtomicU32,
}

/// The settings the backend reads, checked.
struct Settings {
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    path_style: bool,
    allow_http: bool,
    region: String,
    keys: Option<(String, String)>,
}

/// Checks the options and credentials without connecting.
pub fn check(settings: &ConnectionSettings) -> Result<(), StorageError> {
    read(settings).map(|_| ())
}

fn flag(settings: &ConnectionSettings, name: &str) -> Result<Option<bool>, StorageError> {
    match settings.options.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(StorageError::config(format!(
            "options.{name} must be true or false, not {other}"
        ))),
    }
}

fn read(settings: &ConnectionSettings) -> Result<Settings, StorageError> {
    let Some(bucket) = options::text(&settings.options, "bucket")? else {
        return Err(StorageError::config(
            "options.bucket is required: the S3 bucket records are kept in",
        ));
    };
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return Err(StorageError::config(format!(
            "options.bucket {bucket:?} is not a valid bucket name: 3 to 63 lowercase letters, digits, - or ."
        )));
    }
    let prefix = options::text(&settings.options, "prefix")?
        .unwrap_or("")
        .trim_matches('/');
    let prefix_ok = prefix.len() <= 512
        && prefix.split('/').all(|part| {
            prefix.is_empty()
                || (!part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        });
    if !prefix_ok {
        return Err(StorageError::config(format!(
            "options.prefix {prefix:?} must be /-separated parts of letters, digits, -, _ or . (no . or .. parts)"
        )));
    }
    let endpoint = options::text(&settings.options, "endpoint")?.map(str::to_string);
    let allow_http = flag(settings, "allow_http")?.unwrap_or(false);
    if let Some(endpoint) = &endpoint {
        let http = endpoint.starts_with("http://");
        if !http && !endpoint.starts_with("https://") {
            return Err(StorageError::config(format!(
                "options.endpoint {endpoint:?} must be an http:// or https:// URL"
            )));
        }
        if http && !allow_http {
            return Err(StorageError::config(
                "options.endpoint is plain http://: set options.allow_http to true to allow that",
            ));
        }
    }
    let path_style = flag(settings, "path_style")?.unwrap_or(endpoint.is_some());
    let mut region = DEFAULT_REGION.to_string();
    let mut key_id = None;
    let mut secret = None;
    for (name, value) in &settings.credentials {
        let Some(text) = value.as_str() else {
            return Err(StorageError::config(format!(
                "credentials.{name} must be a string"
            )));
        };
        match name.as_str() {
            "region" => region = text.to_string(),
            "access_key_id" => key_id = Some(text.to_string()),
            "secret_access_key" => secret = Some(text.to_string()),
            other => {
                return Err(StorageError::config(format!(
                    "credentials.{other} is not used by s3: give region, access_key_id and secret_access_key"
                )));
            }
        }
    }
    let keys = match (key_id, secret) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        _ => {
            return Err(StorageError::config(
                "credentials.access_key_id and credentials.secret_access_key go together: give both or neither",
            ));
        }
    };
    Ok(Settings {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        endpoint,
        path_style,
        allow_http,
        region,
        keys,
    })
}

impl S3 {
    /// A connector for `settings`; nothing is sent until the first
    /// operation.
    pub fn open(settings: &ConnectionSettings, common: &CommonOptions) -> Result<S3, StorageError> {
        let s = read(settings)?;
        // object_store's HTTP client uses rustls's process-wide provider:
        // ring, as every other TLS client here (one set by someone else stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientOptions::new()
            .with_timeout(common.timeout)
            .with_connect_timeout(common.connect_timeout)
            .with_pool_max_idle_per_host(common.max_connections as usize)
            .with_allow_http(s.allow_http);
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 0,
            retry_timeout: common.timeout,
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(&s.region)
            .with_allow_http(s.allow_http)
            .with_virtual_hosted_style_request(!s.path_style)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(client)
            .with_retry(retry);
        if let Some(endpoint) = &s.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some((id, secret)) = &s.keys {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        // The builder's messages name options, never their values.
        let store = builder
            .build()
            .map_err(|e| StorageError::config(format!("cannot use the s3 settings: {e}")))?;
        Ok(S3 {
            store,
            prefix: s.prefix,
            permits: Semaphore::new(common.max_connections as usize),
            max: common.max_connections,
            peak: AtomicU32::new(0),
        })
    }

    fn folder(&self, entity: &Name) -> Path {
        if self.prefix.is_empty() {
            Path::from(entity.as_str())
        } else {
            Path::from(format!("{}/{}", self.prefix, entity))
        }
    }

    fn segment(&self, entity: &Name, number: u64) -> Path {
        self.folder(entity).join(format!("seg-{number:016}.ndjson"))
    }

    /// One request's share of the pool.
    async fn permit(&self) -> Result<SemaphorePermit<'_>, StorageError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StorageError::unavailable("the s3 connector is closed"))?;
        let in_use = self.max - self.permits.available_permits() as u32;
        self.peak.fetch_max(in_use, Ordering::Relaxed);
        Ok(permit)
    }

    /// Segment numbers of an entity type, in insertion order.
    async fn segments(&self, entity: &Name) -> Result<Vec<u64>, StorageError> {
        let _permit = self.permit().await?;
        let listed = self
            .store
            .list_with_delimiter(Some(&self.folder(entity)))
            .await
            .map_err(error)?;
        let mut numbers: Vec<u64> = listed
            .objects
            .iter()
            .filter_map(|meta| {
                meta.location
                    .filename()
                    .and_then(|n| n.strip_prefix("seg-"))
                    .and_then(|n| n.strip_suffix(".ndjson"))
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// A segment's records and ETag; a segment removed meanwhile holds none.
    async fn read_segment(
        &self,
        entity: &Name,
        number: u64,
    ) -> Result<(Vec<Record>, UpdateVersion), StorageError> {
        let path = self.segment(entity, number);
        let _permit = self.permit().await?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Ok((
                    Vec::new(),
                    UpdateVersion {
                        e_tag: None,
                        version: None,
                    },
                ));
            }
            Err(e) => return Err(error(e)),
        };
        let version = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        let bytes = result.bytes().await.map_err(error)?;
        let mut records = Vec::new();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record: Record = serde_json::from_slice(line).map_err(|e| {
                StorageError::backend(format!("{path} holds a damaged record: {e}"))
            })?;
            records.push(record);
        }
        Ok((records, version))
    }

    async fn read_schema(&self, entity: &Name) -> Result<Option<EntitySchema>, StorageError> {
        let path = self.folder(entity).join(SCHEMA_OBJECT);
        let _permit = self.permit().await?;
        let bytes = match self.store.get(&path).await {
            Ok(result) => result.bytes().await.map_err(error)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(error(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StorageError::backend(format!("{path} is damaged: {e}")))
    }

    async fn put(
        &self,
        path: &Path,
        body: Vec<u8>,
        mode: PutMode,
    ) -> Result<(), object_store::Error> {
        let _permit = self
            .permit()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: e.message.into(),
            })?;
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.store
            .put_opts(path, PutPayload::from(body), options)
            .await
            .map(|_| ())
    }

    /// Rewrites each segment through `change`, which answers how many of
    /// its records it changed; a segment changed by another writer
    /// meanwhile is read and changed again.
    async fn rewrite(
        &self,
        entity: &Name,
        change: impl Fn(&mut Vec<Record>) -> Result<u64, StorageError>,
    ) -> Result<u64, StorageError> {
        let mut total = 0;
        for number in self.segments(entity).await? {
            let path = self.segment(entity, number);
            let mut attempts = 0;
            loop {
                attempts += 1;
                let (mut records, version) = self.read_segment(entity, number).await?;
                if version.e_tag.is_none() && records.is_empty() {
                    break; // removed meanwhile
                }
                let changed = change(&mut records)?;
                if changed == 0 {
                    break;
                }
                let body = encode(&records)?;
                match self.put(&path, body, PutMode::Update(version)).await {
                    Ok(()) => {}
                    // AWS answers 409 to concurrent If-Match puts, where
                    // others answer 412: either way another writer came first.
                    Err(
                        object_store::Error::Precondition { .. }
                        | object_store::Error::NotModified { .. }
                        | object_store::Error::AlreadyExists { .. },
                    ) if attempts < ATTEMPTS => continue,
                    Err(e) => return Err(error(e)),
                }
                total += changed;
                if records.is_empty() {
                    let _permit = self.permit().await?;
                    match self.store.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(error(e)),
                    }
                }
                break;
            }
        }
        Ok(total)
    }
}

fn encode(records: &[Record]) -> Result<Vec<u8>, StorageError> {
    let mut buffer = Vec::with_capacity(records.len() * 64);
    for record in records {
        serde_json::to_writer(&mut buffer, record)
            .map_err(|e| StorageError::backend(format!("cannot encode a record: {e}")))?;
        buffer.push(b'\n');
    }
    Ok(buffer)
}

/// Maps an object_store error: no connection, a timeout, a 5xx or
/// throttling is transient; refused credentials are the config's fault.
/// Messages name the request, never a credential (they travel in headers).
fn error(e: object_store::Error) -> StorageError {
    let message = format!("s3: {e}");
    match &e {
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => {
            return StorageError::config(message);
        }
        object_store::Error::NotFound { .. } => return StorageError::backend(message),
        _ => {}
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(current) = source {
        if let Some(http) = current.downcast_ref::<HttpError>() {
            return match http.kind() {
                HttpErrorKind::Timeout => StorageError::timeout(message),
                // A body that does not decode is the server's answer; every
                // other transport failure (connect, reset, a request cut
                // short, one the client cannot classify) may pass.
                HttpErrorKind::Decode => StorageError::backend(message),
                _ => StorageError::unavailable(message),
            };
        }
        source = current.source();
    }
    let throttled = [
        "SlowDown",
        "Throttl",
        "RequestLimitExceeded",
        "TooManyRequests",
    ]
    .iter()
    .any(|word| message.contains(word));
    // object_store sometimes folds the transport error into its message.
    let transport = ["error sending request", "connection", "Connection"]
        .iter()
        .any(|word| message.contains(word));
    match status(&message) {
        Some(code) if code >= 500 || code == 429 => StorageError::unavailable(message),
        _ if throttled => StorageError::unavailable(message),
        None if transport => StorageError::unavailable(message),
        Some(400 | 401 | 403)
            if message.contains("InvalidAccessKeyId")
                || message.contains("SignatureDoesNotMatch") =>
        {
            StorageError::config(message)
        }
        _ => StorageError::backend(message),
    }
}

/// The HTTP status an object_store error message reports.
fn status(message: &str) -> Option<u16> {
    let at = message.find("status code: ")? + "status code: ".len();
    message.get(at..at + 3)?.parse().ok()
}

#[async_trait]
impl Connector for S3 {
    fn plugin_type(&self) -> PluginType {
        PluginType::S3
    }

    async fn store(&self, entity: &Name, mut records: Vec<Record>) -> Result<u64, StorageError> {
        if records.is_empty() {
            return Ok(0);
        }
        if let Some(schema) = self.read_schema(entity).await? {
            for (i, record) in records.iter_mut().enumerate() {
                schema
                    .normalize_record(record)
                    .map_err(|e| e.context(format!("record {i}")))?;
            }
        }
        let body = encode(&records)?;
        let mut next = self.segments(entity).await?.last().map_or(0, |n| n + 1);
        for _ in 0..ATTEMPTS {
            match self
                .put(&self.segment(entity, next), body.clone(), PutMode::Create)
                .await
            {
                Ok(()) => return Ok(records.len() as u64),
                Err(object_store::Error::AlreadyExists { .. }) => next += 1,
                Err(e) => return Err(error(e)),
            }
        }
        Err(StorageError::unavailable(format!(
            "the store lost the next segment number to other writers {ATTEMPTS} times; try again"
        )))
    }

    async fn retrieve(&self, query: &Query) -> Result<Vec<Record>, StorageError> {
        let entity = &query.selection.entity_type;
        let mut query = query.clone();
        if let Some(schema) = self.read_schema(entity).await? {
            schema.normalize_filters(&mut query.selection.filters)?;
        }
        // An unordered page stops reading once it has enough records.
        let wanted = if query.order_by.is_empty() {
            (query.offset + query.limit) as usize
        } else {
            usize::MAX
        };
        let mut chosen = Vec::new();
        for number in self.segments(entity).await? {
            let (records, _) = self.read_segment(entity, number).await?;
            chosen.extend(
                records
                    .into_iter()
                    .filter(|r| matching::matches(r, &query.selection.filters)),
            );
            if chosen.len() >= wanted {
                break;
            }
        }
        Ok(matching::evaluate(chosen, &query))
    }

    async fn update(&self, selection: &Selection, updates: &Record) -> Result<u64, StorageError> {
        let entity = &selection.entity_type;
        let schema = self.read_schema(entity).await?;
        let mut selection = selection.clone();
        if let Some(schema) = &schema {
            schema.normalize_filters(&mut selection.filters)?;
        }
        self.rewrite(entity, |records| {
            let mut changed = 0;
            for record in records.iter_mut() {
                if !matching::matches(record, &selection.filters) {
                    continue;
                }
                for (name, value) in updates {
                    record.insert(name.clone(), value.clone());
                }
                if let Some(schema) = &schema {
                    schema.normalize_record(record)?;
                }
                changed += 1;
            }
            Ok(changed)
        })
        .await
    }

    async fn delete(&self, selection: &Selection) -> Result<u64, StorageError> {
        let entity = &selection.entity_type;
        let mut selection = selection.clone();
        if let Some(schema) = self.read_schema(entity).await? {
            schema.normalize_filters(&mut selection.filters)?;
        }
        self.rewrite(entity, |records| {
            let before = records.len();
            records.retain(|record| !matching::matches(record, &selection.filters));
            Ok((before - records.len()) as u64)
        })
        .await
    }

    async fn create_schema(&self, schema: &EntitySchema) -> Result<(), StorageError> {
        let entity = &schema.name;
        let existing = self.read_schema(entity).await?;
        if existing.as_ref() == Some(schema) {
            return Ok(());
        }
        if !self.segments(entity).await?.is_empty() {
            return Err(StorageError::invalid(format!(
                "entity {entity} already has records{}; delete them before changing its definition",
                if existing.is_some() {
                    " and another definition"
                } else {
                    ""
                }
            )));
        }
        let body = serde_json::to_vec_pretty(schema)
            .map_err(|e| StorageError::backend(format!("cannot encode the definition: {e}")))?;
        self.put(
            &self.folder(entity).join(SCHEMA_OBJECT),
            body,
            PutMode::Overwrite,
        )
        .await
        .map_err(error)
    }

    async fn health(&self) -> Result<(), StorageError> {
        // Listing the prefix proves the bucket answers and the keys work.
        let _permit = self.permit().await?;
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        self.store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map(|_| ())
            .map_err(error)
    }

    async fn metadata(&self) -> Result<StorageMetadata, StorageError> {
        Ok(StorageMetadata {
            storage_type: PluginType::S3,
            version: "s3".to_string(),
            capabilities: all_capabilities(),
        })
    }

    fn pool(&self) -> Option<PoolState> {
        let in_use = self.max - self.permits.available_permits() as u32;
        let opened = self.peak.load(Ordering::Relaxed).max(in_use);
        Some(PoolState {
            idle: opened - in_use,
            in_use,
            max: self.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(options: Value, credentials: Value) -> ConnectionSettings {
        ConnectionSettings {
            options: options.as_object().cloned().unwrap_or_default(),
            credentials: credentials.as_object().cloned().unwrap_or_default(),
            ..ConnectionSettings::default()
        }
    }

    #[test]
    fn checks_options_and_credentials_by_name() {
        let ok = settings(
            json!({"bucket": "data-1", "prefix": "a/b", "endpoint": "http://127.0.0.1:9000", "allow_http": true}),
            json!({"region": "eu-west-1", "access_key_id": "AKIA", "secret_access_key": "s3cret"}),
        );
        assert!(check(&ok).is_ok());
        for (options, credentials, says) in [
            (json!({}), json!({}), "options.bucket is required"),
            (json!({"bucket": "Bad_Name"}), json!({}), "options.bucket"),
            (
                json!({"bucket": "ok-b", "prefix": "a/../b"}),
                json!({}),
                "options.prefix",
            ),
            (
                json!({"bucket": "ok-b", "endpoint": "ftp://x"}),
                json!({}),
                "options.endpoint",
            ),
            (
                json!({"bucket": "ok-b", "endpoint": "http://x"}),
                json!({}),
                "allow_http",
            ),
            (
                json!({"bucket": "ok-b", "path_style": "yes"}),
                json!({}),
                "options.path_style",
            ),
            (
                json!({"bucket": "ok-b"}),
                json!({"secret_access_key": "s3cret"}),
                "go together",
            ),
            (
                json!({"bucket": "ok-b"}),
                json!({"token": "s3cret"}),
                "credentials.token",
            ),
        ] {
            let error = check(&settings(options.clone(), credentials)).err();
            assert!(
                error
                    .as_ref()
                    .is_some_and(|e| e.message.contains(says) && !e.message.contains("s3cret")),
                "{options}: {error:?}"
            );
        }
    }

    #[test]
    fn reads_statuses_from_messages() {
        assert_eq!(
            status("Server returned non-2xx status code: 503 Service Unavailable: "),
            Some(503)
        );
        assert_eq!(status("no status here"), None);
    }
}
