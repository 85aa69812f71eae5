//! The `mysql` backend (MySQL or MariaDB): a table per entity type in the
//! database the URL names, reached through one bounded, lazily connecting
//! pool. [`super::sql`] holds the storage model and the SQL translation;
//! batches are one transaction of multi-row INSERTs, each under the
//! protocol's bind-parameter limit. DDL is not transactional on MySQL, so
//! `create_schema` replaces an empty table in steps.

use super::sql::{self, Bind, Catalog, Dialect, SCHEMAS_TABLE, Sql, ident};
use crate::{
    CommonOptions, Connector, EntitySchema, Name, PoolState, Query, Record, Selection,
    StorageError, StorageMetadata, all_capabilities,
};
use async_trait::async_trait;
use mimir_core::{ConnectionSettings, PluginType};
use serde_json::Value;
use sqlx_core::arguments::Arguments;
use sqlx_core::connection::ConnectOptions;
use sqlx_core::executor::Executor;
use sqlx_core::row::Row;
use sqlx_mysql::{MySql as My, MySqlArguments, MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use std::str::FromStr;
use std::sync::Arc;

const DIALECT: Dialect = Dialect::MySql;

/// Bind parameters one INSERT carries at most (the protocol allows 65,535).
const INSERT_PARAMETERS: usize = 30_000;

/// A MySQL/MariaDB connector.
pub struct Mysql {
    pool: MySqlPool,
    catalog: Catalog,
    max: u32,
}

/// Checks the URL without connecting.
pub fn check(settings: &ConnectionSettings) -> Result<(), StorageError> {
    connect_options(settings).map(|_| ())
}

fn connect_options(settings: &ConnectionSettings) -> Result<MySqlConnectOptions, StorageError> {
    let url = settings.connection_string.trim();
    let url = if let Some(rest) = url.strip_prefix("mariadb://") {
        format!("mysql://{rest}")
    } else if url.starts_with("mysql://") {
        url.to_string()
    } else {
        return Err(StorageError::config(
            "connection_string must be a mysql:// or mariadb:// URL",
        ));
    };
    // The parser's message may quote the URL, password included: not shown.
    let mut options = MySqlConnectOptions::from_str(&url)
        .map_err(|_| StorageError::config("connection_string is not a valid MySQL URL"))?;
    match options.get_database() {
        Some(database) if !database.is_empty() => {}
        _ => {
            return Err(StorageError::config(
                "connection_string must name a database (mysql://user@host:3306/database)",
            ));
        }
    }
    if let Some(password) = settings.credentials.get("password") {
        let Some(password) = password.as_str() else {
            return Err(StorageError::config(
                "credentials.password must be a string",
            ));
        };
        options = options.password(password);
    }
    Ok(options
        .charset("utf8mb4")
        .timezone(Some("+00:00".to_string()))
        .disable_statement_logging())
}

/// The server's error number, when it answered one.
fn number(error: &sqlx_core::Error) -> Option<u16> {
    match error {
        sqlx_core::Error::Database(db) => db
            .try_downcast_ref::<sqlx_mysql::MySqlDatabaseError>()
            .map(|e| e.number()),
        _ => None,
    }
}

/// The table does not exist yet: nothing stored.
fn is_missing(error: &sqlx_core::Error) -> bool {
    number(error) == Some(1146)
}

/// Maps a driver error: lost or refused connections are transient, bad
/// values are the request's, the rest the server's refusal.
pub fn map_error(error: sqlx_core::Error) -> StorageError {
    use sqlx_core::Error as E;
    match &error {
        E::Io(_)
        | E::Tls(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed
        | E::Protocol(_) => StorageError::unavailable(format!("mysql is unreachable: {error}")),
        E::Database(db) => {
            let number = number(&error).unwrap_or_default();
            let message = format!("mysql refused: {} ({number})", db.message());
            match number {
                1040 | 1053 | 1077 | 1152 | 1158..=1161 | 2002 | 2006 | 2013 => {
                    StorageError::unavailable(message)
                }
                1048 | 1264 | 1292 | 1366 | 1406 | 3140 | 4025 => StorageError::invalid(message),
                _ => StorageError::backend(message),
            }
        }
        _ => StorageError::backend(format!("mysql: {error}")),
    }
}

fn arguments(binds: Vec<Bind>) -> Result<MySqlArguments, StorageError> {
    let mut args = MySqlArguments::default();
    for bind in binds {
        let added = match bind {
            Bind::Text(s) => args.add(s),
            Bind::OptText(s) => args.add(s),
            Bind::Int(i) => args.add(i),
            Bind::Float(f) => args.add(f),
            Bind::Bool(b) => args.add(b),
            Bind::TextArray(_) => Err("arrays are PostgreSQL's".into()),
        };
        added.map_err(|e| StorageError::backend(format!("cannot bind a value: {e}")))?;
    }
    Ok(args)
}

impl Mysql {
    /// A connector for `settings`; connects on first use.
    pub fn open(
        settings: &ConnectionSettings,
        common: &CommonOptions,
    ) -> Result<Mysql, StorageError> {
        let options = connect_options(settings)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(common.max_connections)
            .min_connections(0)
            .acquire_timeout(common.connect_timeout)
            // A dead connection fails its operation (transient, retried by
            // `Storage`) instead of costing every operation a ping.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Mysql {
            pool,
            catalog: Catalog::default(),
            max: common.max_connections,
        })
    }

    /// The pool, for measuring the raw driver beside the connector.
    pub fn raw_pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// An entity type's quoted table name.
    pub fn table(&self, entity: &str) -> String {
        ident(DIALECT, entity)
    }

    async fn execute(&self, sql: Sql) -> Result<u64, sqlx_core::Error> {
        let args = arguments(sql.binds).map_err(|e| sqlx_core::Error::Protocol(e.message))?;
        let done = sqlx_core::query::query_with::<My, _>(&sql.text, args)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn simple(&self, statement: &str) -> Result<(), sqlx_core::Error> {
        self.pool.execute(statement).await.map(|_| ())
    }

    async fn ensure_json_table(&self, entity: &Name) -> Result<(), StorageError> {
        if self.catalog.has_table(entity) {
            return Ok(());
        }
        let statement = format!(
            "CREATE TABLE IF NOT EXISTS {} (`__seq` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             `__data` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL) ENGINE=InnoDB",
            self.table(entity.as_str())
        );
        self.simple(&statement).await.map_err(map_error)?;
        self.catalog.table_made(entity);
        Ok(())
    }

    /// The entity's definition, from the catalog or the schemas table.
    async fn schema_of(&self, entity: &Name) -> Result<Option<Arc<EntitySchema>>, StorageError> {
        if let Some(known) = self.catalog.schema(entity) {
            return Ok(known);
        }
        let schema = self.load_schema(entity).await?.map(Arc::new);
        self.catalog.remember(entity, schema.clone());
        Ok(schema)
    }

    async fn load_schema(&self, entity: &Name) -> Result<Option<EntitySchema>, StorageError> {
        let statement = format!(
            "SELECT definition FROM {} WHERE entity = ?",
            self.table(SCHEMAS_TABLE)
        );
        let row = sqlx_core::query::query::<My>(&statement)
            .bind(entity.as_str())
            .fetch_optional(&self.pool)
            .await;
        let text: Option<String> = match row {
            Ok(Some(row)) => Some(row.try_get(0).map_err(map_error)?),
            Ok(None) => None,
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(map_error(e)),
        };
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                StorageError::backend(format!("the definition of {entity} is damaged: {e}"))
            })
        })
        .transpose()
    }

    /// Maps a statement's failure, forgetting what the catalog knew of the
    /// entity (another process may have changed it).
    fn failed(&self, entity: &Name, error: sqlx_core::Error) -> StorageError {
        self.catalog.forget(entity);
        map_error(error)
    }

    fn insert_statements(
        &self,
        entity: &Name,
        schema: Option<&EntitySchema>,
        records: &[Record],
    ) -> Vec<Sql> {
        let table = self.table(entity.as_str());
        let columns: Vec<String> = match schema {
            None => vec!["`__data`".to_string()],
            Some(schema) => schema
                .attributes
                .iter()
                .map(|a| ident(DIALECT, a.name.as_str()))
                .collect(),
        };
        let row = format!("({})", vec!["?"; columns.len()].join(", "));
        let rows_per_statement = (INSERT_PARAMETERS / columns.len()).max(1);
        records
            .chunks(rows_per_statement)
            .map(|chunk| {
                let mut sql = Sql::new(DIALECT);
                sql.text = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
                sql.text.reserve(chunk.len() * (row.len() + 2));
                for (i, record) in chunk.iter().enumerate() {
                    if i > 0 {
                        sql.text.push_str(", ");
                    }
                    sql.text.push_str(&row);
                    match schema {
                        None => sql.binds.push(Bind::Text(sql::json_in(
                            DIALECT,
                            &Value::Object(record.clone()),
                        ))),
                        Some(schema) => {
                            for attribute in &schema.attributes {
                                let value =
                                    record.get(attribute.name.as_str()).unwrap_or(&Value::Null);
                                sql.binds
                                    .push(sql::mysql_bind(attribute.attribute_type, value));
                            }
                        }
                    }
                }
                sql
            })
            .collect()
    }

    async fn store_once(
        &self,
        entity: &Name,
        schema: Option<&EntitySchema>,
        records: &[Record],
    ) -> Result<(), sqlx_core::Error> {
        let statements = self.insert_statements(entity, schema, records);
        let mut tx = self.pool.begin().await?;
        for statement in statements {
            let args =
                arguments(statement.binds).map_err(|e| sqlx_core::Error::Protocol(e.message))?;
            sqlx_core::query::query_with::<My, _>(&statement.text, args)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    async fn table_has_records(&self, entity: &Name) -> Result<bool, StorageError> {
        let statement = format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            self.table(entity.as_str())
        );
        match sqlx_core::query::query::<My>(&statement)
            .fetch_one(&self.pool)
            .await
        {
            Ok(row) => row.try_get::<i64, _>(0).map(|n| n != 0).map_err(map_error),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(map_error(e)),
        }
    }
}

#[async_trait]
impl Connector for Mysql {
    fn plugin_type(&self) -> PluginType {
        PluginType::Mysql
    }

    async fn store(&self, entity: &Name, mut records: Vec<Record>) -> Result<u64, StorageError> {
        let schema = self.schema_of(entity).await?;
        if let Some(schema) = &schema {
            for (i, record) in records.iter_mut().enumerate() {
                schema
                    .normalize_record(record)
                    .map_err(|e| e.context(format!("record {i}")))?;
            }
        } else {
            self.ensure_json_table(entity).await?;
        }
        match self.store_once(entity, schema.as_deref(), &records).await {
            Ok(()) => Ok(records.len() as u64),
            Err(e) => Err(self.failed(entity, e)),
        }
    }

    async fn retrieve(&self, query: &Query) -> Result<Vec<Record>, StorageError> {
        let entity = &query.selection.entity_type;
        let schema = self.schema_of(entity).await?;
        let mut filters = query.selection.filters.clone();
        if let Some(schema) = &schema {
            schema.normalize_filters(&mut filters)?;
        }
        let schema = schema.as_deref();
        let mut sql = Sql::new(DIALECT);
        sql.push(&format!(
            "SELECT {} FROM {}",
            sql::select_list(DIALECT, schema),
            self.table(entity.as_str())
        ));
        sql::where_clause(&mut sql, schema, &filters)?;
        sql::order_clause(&mut sql, schema, &query.order_by);
        sql::page(&mut sql, query.limit, query.offset);
        let args = arguments(sql.binds)?;
        let rows = match sqlx_core::query::query_with::<My, _>(&sql.text, args)
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(self.failed(entity, e)),
        };
        let columns = schema.map_or(1, |s| s.attributes.len());
        rows.iter()
            .map(|row| {
                let texts = (0..columns)
                    .map(|i| row.try_get::<Option<String>, _>(i))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(map_error)?;
                sql::row_record(DIALECT, schema, texts)
            })
            .collect()
    }

    async fn update(&self, selection: &Selection, updates: &Record) -> Result<u64, StorageError> {
        let entity = &selection.entity_type;
        let schema = self.schema_of(entity).await?;
        let mut filters = selection.filters.clone();
        let mut updates = updates.clone();
        let mut sql = Sql::new(DIALECT);
        sql.push(&format!("UPDATE {} SET ", self.table(entity.as_str())));
        match &schema {
            None if updates.is_empty() => {
                sql.push("`__seq` = `__seq`");
            }
            None => {
                sql.push("`__data` = JSON_SET(`__data`");
                for (name, value) in &updates {
                    // Names are checked before they reach a connector.
                    let name = Name::new(name, "attribute")?;
                    sql.push(&format!(", '$.\"{name}\"', JSON_EXTRACT("))
                        .bind(Bind::Text(sql::json_in(DIALECT, value)))
                        .push(", '$')");
                }
                sql.push(")");
            }
            Some(schema) => {
                schema.normalize_filters(&mut filters)?;
                sql::normalize_update(schema, &mut updates)?;
                if updates.is_empty() {
                    sql.push("`__seq` = `__seq`");
                }
                for (i, (name, value)) in updates.iter().enumerate() {
                    let Some(attribute) = schema.attribute(name) else {
                        continue;
                    };
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.push(&format!("{} = ", ident(DIALECT, name)))
                        .bind(sql::mysql_bind(attribute.attribute_type, value));
                }
            }
        }
        sql::where_clause(&mut sql, schema.as_deref(), &filters)?;
        match self.execute(sql).await {
            Ok(n) => Ok(n),
            Err(e) if is_missing(&e) => Ok(0),
            Err(e) => Err(self.failed(entity, e)),
        }
    }

    async fn delete(&self, selection: &Selection) -> Result<u64, StorageError> {
        let entity = &selection.entity_type;
        let schema = self.schema_of(entity).await?;
        let mut filters = selection.filters.clone();
        if let Some(schema) = &schema {
            schema.normalize_filters(&mut filters)?;
        }
        let mut sql = Sql::new(DIALECT);
        sql.push(&format!("DELETE FROM {}", self.table(entity.as_str())));
        sql::where_clause(&mut sql, schema.as_deref(), &filters)?;
        match self.execute(sql).await {
            Ok(n) => Ok(n),
            Err(e) if is_missing(&e) => Ok(0),
            Err(e) => Err(self.failed(entity, e)),
        }
    }

    async fn create_schema(&self, schema: &EntitySchema) -> Result<(), StorageError> {
        schema.check()?;
        let entity = &schema.name;
        let schemas = self.table(SCHEMAS_TABLE);
        self.simple(&format!(
            "CREATE TABLE IF NOT EXISTS {schemas} (entity VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY, \
             definition LONGTEXT CHARACTER SET utf8mb4 NOT NULL) ENGINE=InnoDB"
        ))
        .await
        .map_err(map_error)?;
        self.catalog.forget(entity);
        let existing = self.load_schema(entity).await?;
        if existing.as_ref() == Some(schema) {
            self.catalog
                .remember(entity, Some(Arc::new(schema.clone())));
            return Ok(());
        }
        if self.table_has_records(entity).await? {
            return Err(StorageError::invalid(format!(
                "entity {entity} already has records{}; delete them before changing its definition",
                if existing.is_some() {
                    " and another definition"
                } else {
                    ""
                }
            )));
        }
        let table = self.table(entity.as_str());
        let mut columns = vec!["`__seq` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY".to_string()];
        for attribute in &schema.attributes {
            columns.push(format!(
                "{} {}",
                ident(DIALECT, attribute.name.as_str()),
                sql::column_type(DIALECT, attribute)
            ));
        }
        for attribute in schema.attributes.iter().filter(|a| a.indexed) {
            columns.push(format!(
                "INDEX ({})",
                ident(DIALECT, attribute.name.as_str())
            ));
        }
        let definition = serde_json::to_string(schema)
            .map_err(|e| StorageError::backend(format!("cannot encode the definition: {e}")))?;
        let result: Result<(), sqlx_core::Error> = async {
            self.simple(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
            self.simple(&format!(
                "CREATE TABLE {table} ({}) ENGINE=InnoDB",
                columns.join(", ")
            ))
            .await?;
            sqlx_core::query::query::<My>(&format!(
                "REPLACE INTO {schemas} (entity, definition) VALUES (?, ?)"
            ))
            .bind(entity.as_str())
            .bind(definition)
            .execute(&self.pool)
            .await
            .map(|_| ())
        }
        .await;
        result.map_err(|e| self.failed(entity, e))?;
        self.catalog
            .remember(entity, Some(Arc::new(schema.clone())));
        self.catalog.table_made(entity);
        Ok(())
    }

    async fn health(&self) -> Result<(), StorageError> {
        self.simple("SELECT 1").await.map_err(map_error)
    }

    async fn metadata(&self) -> Result<StorageMetadata, StorageError> {
        let row = sqlx_core::query::query::<My>("SELECT VERSION()")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        let version: String = row.try_get(0).map_err(map_error)?;
        Ok(StorageMetadata {
            storage_type: PluginType::Mysql,
            version,
            capabilities: all_capabilities(),
        })
    }

    fn pool(&self) -> Option<PoolState> {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle())
            .unwrap_or(size)
            .min(size);
        Some(PoolState {
            idle,
            in_use: size - idle,
            max: self.max,
        })
    }
}

impl std::fmt::Debug for Mysql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mysql").finish_non_exhaustive()
    }
}
