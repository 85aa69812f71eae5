//! The `redis` backend: records as JSON strings under one key each, in
//! insertion order by a sorted set.
//!
//! Keys of an entity type, under `options.prefix` (default `mimir`):
//! - `{prefix}:{entity}:r:{seq}` a record, `seq` from `INCRBY` on
//!   `{prefix}:{entity}:seq`;
//! - `{prefix}:{entity}:ids` the sorted set of `seq`s (score = `seq`), the
//!   insertion order;
//! - `{prefix}:{entity}:schema` the entity's definition, if created;
//! - `{prefix}:{entity}:version` bumped by every update and delete.
//!
//! A store is one `MULTI`/`EXEC` pipeline, so a batch lands whole or not at
//! all. Update and delete read, match in [`matching`] (the one definition of
//! the operators) and write back with a Lua script that applies the change
//! only if `version` is unchanged since the read, else read again: two
//! writers never lose each other's changes, and readers never wait.
//!
//! The pool holds up to `max_connections` multiplexed connections
//! ([`ConnectionManager`]s), each opened on first use and reopened by itself
//! after a failure; every command is bounded by the connect and operation
//! timeouts, so a server that went away fails fast.

use crate::{
    CommonOptions, Connector, EntitySchema, Name, PoolState, Query, Record, Selection,
    StorageError, StorageMetadata, all_capabilities, matching, options,
};
use async_trait::async_trait;
use mimir_core::{ConnectionSettings, PluginType};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// The key prefix unless `options.prefix` says.
pub const DEFAULT_PREFIX: &str = "mimir";

/// Records read by one `MGET`.
const READ_CHUNK: usize = 1000;

/// Records written by one `MSET` or `ZADD` of a store's transaction.
const WRITE_CHUNK: usize = 5000;

/// Reads and writes an update or delete tries before giving up to other
/// writers (the storage wrapper retries the whole operation after that).
const ATTEMPTS: u32 = 8;

/// Sets records (KEYS[2..]) to ARGV[2..] if the version (KEYS[1]) is still
/// ARGV[1]; answers 1, or 0 when another writer came first.
const UPDATE_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1]) or ''
if v ~= ARGV[1] then return 0 end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('SET', KEYS[i], ARGV[i]) end
end
redis.call('INCR', KEYS[1])
return 1
";

/// Deletes records (KEYS[3..]) and their seqs (ARGV[2..]) from the order set
/// (KEYS[2]) if the version (KEYS[1]) is still ARGV[1]; answers 1 or 0.
const DELETE_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1]) or ''
if v ~= ARGV[1] then return 0 end
for i = 3, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[2], ARGV[i - 1])
end
redis.call('INCR', KEYS[1])
return 1
";

/// Sets the definition (KEYS[1]) to ARGV[1] unless the entity has records
/// (KEYS[2]) under another one: 1 set or same, -1 records under another
/// definition, -2 records without one.
const SCHEMA_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return 1 end
if redis.call('ZCARD', KEYS[2]) > 0 then
  if current then return -1 else return -2 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// A Redis server, reached through a bounded pool.
pub struct Redis {
    prefix: String,
    pool: Pool,
}

/// Checks the URL and `options.prefix` without connecting.
pub fn check(settings: &ConnectionSettings) -> Result<(), StorageError> {
    connection_info(settings)?;
    prefix(settings)?;
    Ok(())
}

/// The connection settings: the URL, with `credentials.password` (and
/// `credentials.username`) when given. Errors never repeat the URL, which
/// may hold a password.
fn connection_info(settings: &ConnectionSettings) -> Result<redis::ConnectionInfo, StorageError> {
    let url = settings.connection_string.trim();
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(StorageError::config(
            "connection_string must be a redis:// URL (redis://host:port/db)",
        ));
    }
    let info = url.into_connection_info().map_err(|_| {
        StorageError::config("connection_string is not a valid redis:// URL (redis://host:port/db)")
    })?;
    let mut redis_settings = info.redis_settings().clone();
    for (name, value) in &settings.credentials {
        let Some(text) = value.as_str() else {
            return Err(StorageError::config(format!(
                "credentials.{name} must be a string"
            )));
        };
        redis_settings = match name.as_str() {
            "password" => redis_settings.set_password(text),
            "username" => redis_settings.set_username(text),
            other => {
                return Err(StorageError::config(format!(
                    "credentials.{other} is not used by redis: give password (and username)"
                )));
            }
        };
    }
    Ok(info.set_redis_settings(redis_settings))
}

/// `options.prefix`: printable ASCII without spaces or glob characters, so
/// that keys stay readable and a prefix never matches another's keys.
fn prefix(settings: &ConnectionSettings) -> Result<String, StorageError> {
    let prefix = options::text(&settings.options, "prefix")?.unwrap_or(DEFAULT_PREFIX);
    let valid = !prefix.is_empty()
        && prefix.len() <= 200
        && prefix
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '*' | '?' | '[' | ']' | '\\'));
    if !valid {
        return Err(StorageError::config(format!(
            "options.prefix {prefix:?} must be 1 to 200 printable ASCII characters without spaces, *, ?, [, ] or \\"
        )));
    }
    Ok(prefix.to_string())
}

impl Redis {
    /// A connector for `settings`; connections open on first use, so this
    /// answers at once.
    pub fn open(
        settings: &ConnectionSettings,
        common: &CommonOptions,
    ) -> Result<Redis, StorageError> {
        let info = connection_info(settings)?;
        let prefix = prefix(settings)?;
        let client = redis::Client::open(info).map_err(|e| {
            StorageError::config(format!("cannot use the redis settings: {:?}", e.kind()))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(common.connect_timeout))
            .set_response_timeout(Some(common.timeout))
            // One quick reconnect; the storage wrapper retries with backoff.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let mut slots = Vec::with_capacity(common.max_connections as usize);
        for _ in 0..common.max_connections {
            let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                .map_err(|e| {
                StorageError::config(format!("cannot set up redis connections: {:?}", e.kind()))
            })?;
            slots.push(Slot {
                manager,
                in_flight: AtomicU32::new(0),
                opened: AtomicBool::new(false),
            });
        }
        Ok(Redis {
            prefix,
            pool: Pool {
                slots: Arc::new(slots),
            },
        })
    }

    fn key(&self, entity: &Name, part: &str) -> String {
        format!("{}:{}:{part}", self.prefix, entity)
    }

    fn record_key(&self, entity: &Name, seq: &str) -> String {
        format!("{}:{}:r:{seq}", self.prefix, entity)
    }

    /// The entity's definition and the seqs of its records, in order (a
    /// page of them when `range` says).
    async fn schema_and_ids(
        &self,
        entity: &Name,
        range: Option<(u64, u64)>,
    ) -> Result<(Option<EntitySchema>, Vec<String>), StorageError> {
        let (start, stop) = match range {
            Some((offset, limit)) => {
                let stop = offset.saturating_add(limit).min(i64::MAX as u64) as i64;
                (offset.min(i64::MAX as u64) as i64, stop - 1)
            }
            None => (0, -1),
        };
        let mut conn = self.pool.take();
        let (schema, ids): (Option<String>, Vec<String>) = redis::pipe()
            .get(self.key(entity, "schema"))
            .zrange(self.key(entity, "ids"), start as isize, stop as isize)
            .query_async(&mut *conn)
            .await
            .map_err(error)?;
        Ok((parse_schema(schema)?, ids))
    }

    /// Records of `ids` (skipping ones deleted meanwhile), with their seqs.
    async fn read(
        &self,
        entity: &Name,
        ids: &[String],
    ) -> Result<Vec<(String, Record)>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.record_key(entity, id)).collect();
        let mut conn = self.pool.take();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut *conn)
            .await
            .map_err(error)?;
        let mut records = Vec::with_capacity(values.len());
        for (id, value) in ids.iter().zip(values) {
            if let Some(text) = value {
                records.push((id.clone(), decode(entity, id, &text)?));
            }
        }
        Ok(records)
    }

    /// The records a selection chooses, with their seqs, and the version
    /// they were read at.
    async fn chosen(
        &self,
        selection: &Selection,
    ) -> Result<(Option<EntitySchema>, String, Vec<(String, Record)>), StorageError> {
        let entity = &selection.entity_type;
        let mut conn = self.pool.take();
        let (schema, version, ids): (Option<String>, Option<String>, Vec<String>) = redis::pipe()
            .get(self.key(entity, "schema"))
            .get(self.key(entity, "version"))
            .zrange(self.key(entity, "ids"), 0, -1)
            .query_async(&mut *conn)
            .await
            .map_err(error)?;
        drop(conn);
        let schema = parse_schema(schema)?;
        let mut selection = selection.clone();
        if let Some(schema) = &schema {
            schema.normalize_filters(&mut selection.filters)?;
        }
        let mut chosen = Vec::new();
        for chunk in ids.chunks(READ_CHUNK) {
            for (id, record) in self.read(entity, chunk).await? {
                if matching::matches(&record, &selection.filters) {
                    chosen.push((id, record));
                }
            }
        }
        Ok((schema, version.unwrap_or_default(), chosen))
    }
}

/// Maps a Redis error: a lost or refused connection, a timeout or a busy
/// server is transient; a refused login is the config's fault.
fn error(e: RedisError) -> StorageError {
    use redis::{ErrorKind, ServerErrorKind};
    let message = format!("redis: {e}");
    if e.is_timeout() {
        return StorageError::timeout(message);
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        return StorageError::unavailable(message);
    }
    match e.kind() {
        ErrorKind::AuthenticationFailed => StorageError::config(message),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading | ServerErrorKind::TryAgain | ServerErrorKind::MasterDown,
        ) => StorageError::unavailable(message),
        ErrorKind::Server(ServerErrorKind::NoPerm) => StorageError::config(message),
        _ if e.code() == Some("NOAUTH") || e.code() == Some("WRONGPASS") => {
            StorageError::config(message)
        }
        _ => StorageError::backend(message),
    }
}

fn parse_schema(text: Option<String>) -> Result<Option<EntitySchema>, StorageError> {
    text.map(|text| {
        serde_json::from_str(&text)
            .map_err(|e| StorageError::backend(format!("the stored definition is damaged: {e}")))
    })
    .transpose()
}

fn decode(entity: &Name, id: &str, text: &str) -> Result<Record, StorageError> {
    serde_json::from_str(text)
        .map_err(|e| StorageError::backend(format!("record {entity}:{id} is damaged: {e}")))
}

fn encode(record: &Record) -> Result<String, StorageError> {
    serde_json::to_string(record)
        .map_err(|e| StorageError::backend(format!("cannot encode a record: {e}")))
}

fn conflict(what: &str) -> StorageError {
    StorageError::unavailable(format!(
        "the {what} lost to other writers {ATTEMPTS} times in a row; try again"
    ))
}

#[async_trait]
impl Connector for Redis {
    fn plugin_type(&self) -> PluginType {
        PluginType::Redis
    }

    async fn store(&self, entity: &Name, mut records: Vec<Record>) -> Result<u64, StorageError> {
        if records.is_empty() {
            return Ok(0);
        }
        let count = records.len() as u64;
        let mut conn = self.pool.take();
        let schema: Option<String> = redis::cmd("GET")
            .arg(self.key(entity, "schema"))
            .query_async(&mut *conn)
            .await
            .map_err(error)?;
        if let Some(schema) = parse_schema(schema)? {
            for (i, record) in records.iter_mut().enumerate() {
                schema
                    .normalize_record(record)
                    .map_err(|e| e.context(format!("record {i}")))?;
            }
        }
        let encoded = records.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        drop(records);
        // Seqs are taken before the transaction: a failed one leaves a gap,
        // never a duplicate.
        let last: u64 = redis::cmd("INCRBY")
            .arg(self.key(entity, "seq"))
            .arg(count)
            .query_async(&mut *conn)
            .await
            .map_err(error)?;
        let first = last + 1 - count;
        let ids_key = self.key(entity, "ids");
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (c, chunk) in encoded.chunks(WRITE_CHUNK).enumerate() {
            let base = first + (c * WRITE_CHUNK) as u64;
            let mut mset = redis::cmd("MSET");
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&ids_key);
            for (i, text) in chunk.iter().enumerate() {
                let seq = base + i as u64;
                mset.arg(self.record_key(entity, &seq.to_string()))
                    .arg(text);
                zadd.arg(seq).arg(seq);
            }
            pipe.add_command(mset).ignore();
            pipe.add_command(zadd).ignore();
        }
        let () = pipe.query_async(&mut *conn).await.map_err(error)?;
        Ok(count)
    }

    async fn retrieve(&self, query: &Query) -> Result<Vec<Record>, StorageError> {
        let entity = &query.selection.entity_type;
        let plain = query.selection.filters.is_empty() && query.order_by.is_empty();
        let range = plain.then_some((query.offset, query.limit));
        let (schema, ids) = self.schema_and_ids(entity, range).await?;
        if plain {
            let records = self.read(entity, &ids).await?;
            return Ok(records.into_iter().map(|(_, record)| record).collect());
        }
        let mut query = query.clone();
        if let Some(schema) = &schema {
            schema.normalize_filters(&mut query.selection.filters)?;
        }
        // An unordered page stops reading once it has enough records.
        let wanted = if query.order_by.is_empty() {
            (query.offset + query.limit) as usize
        } else {
            usize::MAX
        };
        let mut chosen = Vec::new();
        for chunk in ids.chunks(READ_CHUNK) {
            for (_, record) in self.read(entity, chunk).await? {
                if matching::matches(&record, &query.selection.filters) {
                    chosen.push(record);
                }
            }
            if chosen.len() >= wanted {
                break;
            }
        }
        Ok(matching::evaluate(chosen, &query))
    }

    async fn update(&self, selection: &Selection, updates: &Record) -> Result<u64, StorageError> {
        let entity = &selection.entity_type;
        for _ in 0..ATTEMPTS {
            let (schema, version, chosen) = self.chosen(selection).await?;
            if chosen.is_empty() {
                return Ok(0);
            }
            let mut script = redis::cmd("EVAL");
            script.arg(UPDATE_SCRIPT).arg(chosen.len() + 1);
            script.arg(self.key(entity, "version"));
            let mut values = Vec::with_capacity(chosen.len());
            for (id, mut record) in chosen {
                for (name, value) in updates {
                    record.insert(name.clone(), value.clone());
                }
                if let Some(schema) = &schema {
                    schema.normalize_record(&mut record)?;
                }
                script.arg(self.record_key(entity, &id));
                values.push(encode(&record)?);
            }
            script.arg(&version).arg(&values);
            let mut conn = self.pool.take();
            let applied: i64 = script.query_async(&mut *conn).await.map_err(error)?;
            if applied == 1 {
                return Ok(values.len() as u64);
            }
        }
        Err(conflict("update"))
    }

    async fn delete(&self, selection: &Selection) -> Result<u64, StorageError> {
        let entity = &selection.entity_type;
        for _ in 0..ATTEMPTS {
            let (_, version, chosen) = self.chosen(selection).await?;
            if chosen.is_empty() {
                return Ok(0);
            }
            let mut script = redis::cmd("EVAL");
            script.arg(DELETE_SCRIPT).arg(chosen.len() + 2);
            script
                .arg(self.key(entity, "version"))
                .arg(self.key(entity, "ids"));
            for (id, _) in &chosen {
                script.arg(self.record_key(entity, id));
            }
            script.arg(&version);
            for (id, _) in &chosen {
                script.arg(id);
            }
            let mut conn = self.pool.take();
            let applied: i64 = script.query_async(&mut *conn).await.map_err(error)?;
            if applied == 1 {
                return Ok(chosen.len() as u64);
            }
        }
        Err(conflict("delete"))
    }

    async fn create_schema(&self, schema: &EntitySchema) -> Result<(), StorageError> {
        let entity = &schema.name;
        let text = serde_json::to_string(schema)
            .map_err(|e| StorageError::backend(format!("cannot encode the definition: {e}")))?;
        let mut conn = self.pool.take();
        let outcome: i64 = redis::cmd("EVAL")
            .arg(SCHEMA_SCRIPT)
            .arg(2)
            .arg(self.key(entity, "schema"))
            .arg(self.key(entity, "ids"))
            .arg(text)
            .query_async(&mut *conn)
            .await
            .map_err(error)?;
        match outcome {
            1 => Ok(()),
            other => Err(StorageError::invalid(format!(
                "entity {entity} already has records{}; delete them before changing its definition",
                if other == -1 {
                    " and another definition"
                } else {
                    ""
                }
            ))),
        }
    }

    async fn health(&self) -> Result<(), StorageError> {
        let mut conn = self.pool.take();
        let _: String = redis::cmd("PING")
            .query_async(&mut *conn)
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn metadata(&self) -> Result<StorageMetadata, StorageError> {
        let mut conn = self.pool.take();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut *conn)
            .await
            .map_err(error)?;
        let version = info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .map_or_else(|| "unknown".to_string(), |v| v.trim().to_string());
        Ok(StorageMetadata {
            storage_type: PluginType::Redis,
            version,
            capabilities: all_capabilities(),
        })
    }

    fn pool(&self) -> Option<PoolState> {
        Some(self.pool.state())
    }
}

/// A multiplexed connection of the pool and the operations running on it.
struct Slot {
    manager: ConnectionManager,
    in_flight: AtomicU32,
    opened: AtomicBool,
}

/// Up to `max_connections` connections, each opened on first use; an
/// operation takes the least busy one.
struct Pool {
    slots: Arc<Vec<Slot>>,
}

impl Pool {
    fn take(&self) -> Lease {
        let index = self
            .slots
            .iter()
            .enumerate()
            .min_by_key(|(i, slot)| (slot.in_flight.load(Ordering::Relaxed), *i))
            .map_or(0, |(i, _)| i);
        let slot = &self.slots[index];
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        slot.opened.store(true, Ordering::Relaxed);
        Lease {
            manager: slot.manager.clone(),
            slots: self.slots.clone(),
            index,
        }
    }

    fn state(&self) -> PoolState {
        let mut state = PoolState {
            max: self.slots.len() as u32,
            ..PoolState::default()
        };
        for slot in self.slots.iter() {
            if slot.in_flight.load(Ordering::Relaxed) > 0 {
                state.in_use += 1;
            } else if slot.opened.load(Ordering::Relaxed) {
                state.idle += 1;
            }
        }
        state
    }
}

/// A connection taken for one operation; released on drop.
struct Lease {
    manager: ConnectionManager,
    slots: Arc<Vec<Slot>>,
    index: usize,
}

impl std::ops::Deref for Lease {
    type Target = ConnectionManager;
    fn deref(&self) -> &ConnectionManager {
        &self.manager
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut ConnectionManager {
        &mut self.manager
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slots[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(url: &str, options: serde_json::Value) -> ConnectionSettings {
        ConnectionSettings {
            connection_string: url.into(),
            options: options.as_object().cloned().unwrap_or_default(),
            ..ConnectionSettings::default()
        }
    }

    #[test]
    fn checks_urls_and_prefixes_without_leaking_passwords() {
        assert!(check(&settings("redis://127.0.0.1:6379/0", json!({}))).is_ok());
        assert!(
            check(&settings(
                "redis://:pw@127.0.0.1/2",
                json!({"prefix": "app:x"})
            ))
            .is_ok()
        );
        let bad = check(&settings("http://user:s3cret@host", json!({}))).err();
        assert!(bad.is_some_and(|e| !e.message.contains("s3cret")));
        let bad = check(&settings("redis://:s3cret@host:notaport", json!({}))).err();
        assert!(bad.is_some_and(|e| !e.message.contains("s3cret")));
        for prefix in ["", "a b", "x*", "a?", "[x]"] {
            let error = check(&settings("redis://h", json!({"prefix": prefix}))).err();
            assert!(
                error.is_some_and(|e| e.message.contains("options.prefix")),
                "{prefix:?}"
            );
        }
        let mut with_number = settings("redis://h", json!({}));
        with_number.credentials.insert("password".into(), json!(5));
        assert!(check(&with_number).is_err());
    }
}
