//! The `postgresql` backend: a table per entity type in one PostgreSQL
//! schema (`options.schema`, default `public`, created if missing), reached
//! through one bounded, lazily connecting pool. [`super::sql`] holds the
//! storage model and the SQL translation; batches are one transaction of
//! `INSERT … SELECT FROM UNNEST(…)` statements (one array parameter per
//! column, so a statement carries thousands of rows).

use super::sql::{self, Bind, Catalog, Dialect, SCHEMAS_TABLE, Sql, ident};
use crate::{
    CommonOptions, Connector, EntitySchema, Name, PoolState, Query, Record, Selection,
    StorageError, StorageMetadata, all_capabilities, options,
};
use async_trait::async_trait;
use mimir_core::{ConnectionSettings, PluginType};
use serde_json::Value;
use sqlx_core::arguments::Arguments;
use sqlx_core::connection::ConnectOptions;
use sqlx_core::executor::Executor;
use sqlx_core::row::Row;
use sqlx_postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, Postgres as Pg};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const DIALECT: Dialect = Dialect::Postgres;

/// Rows one INSERT carries.
const INSERT_ROWS: usize = 10_000;

/// A PostgreSQL connector.
pub struct Postgres {
    pool: PgPool,
    /// The schema's quoted name.
    namespace: String,
    /// The schema's name, unquoted.
    namespace_name: String,
    namespace_made: AtomicBool,
    catalog: Catalog,
    max: u32,
}

/// Checks the URL and options without connecting.
pub fn check(settings: &ConnectionSettings) -> Result<(), StorageError> {
    connect_options(settings)?;
    namespace(settings)?;
    Ok(())
}

fn connect_options(settings: &ConnectionSettings) -> Result<PgConnectOptions, StorageError> {
    let url = settings.connection_string.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StorageError::config(
            "connection_string must be a postgres:// or postgresql:// URL",
        ));
    }
    // The parser's message may quote the URL, password included: not shown.
    let mut options = PgConnectOptions::from_str(url)
        .map_err(|_| StorageError::config("connection_string is not a valid PostgreSQL URL"))?;
    if let Some(password) = settings.credentials.get("password") {
        let Some(password) = password.as_str() else {
            return Err(StorageError::config(
                "credentials.password must be a string",
            ));
        };
        options = options.password(password);
    }
    Ok(options
        .application_name("mimir-aip")
        .disable_statement_logging())
}

fn namespace(settings: &ConnectionSettings) -> Result<String, StorageError> {
    let name = options::text(&settings.options, "schema")?.unwrap_or("public");
    Name::new(name, "options.schema")
        .map(|n| n.to_string())
        .map_err(|e| StorageError::config(e.message))
}

/// PostgreSQL error codes this backend acts on.
fn code(error: &sqlx_core::Error) -> Option<String> {
    match error {
        sqlx_core::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The table (or schema) does not exist yet: nothing stored.
fn is_missing(error: &sqlx_core::Error) -> bool {
    matches!(code(error).as_deref(), Some("42P01" | "3F000"))
}

/// A concurrent `CREATE … IF NOT EXISTS` won the race.
fn is_created_meanwhile(error: &sqlx_core::Error) -> bool {
    matches!(
        code(error).as_deref(),
        Some("23505" | "42P07" | "42P06" | "42710")
    )
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
        | E::Protocol(_) => {
            StorageError::unavailable(format!("postgresql is unreachable: {error}"))
        }
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = format!("postgresql refused: {} ({code})", db.message());
            if code.starts_with("08") || code.starts_with("57P") || code == "53300" {
                StorageError::unavailable(message)
            } else if code.starts_with("22") || code == "23502" {
                StorageError::invalid(message)
            } else {
                StorageError::backend(message)
            }
        }
        _ => StorageError::backend(format!("postgresql: {error}")),
    }
}

fn arguments(binds: Vec<Bind>) -> Result<PgArguments, StorageError> {
    let mut args = PgArguments::default();
    for bind in binds {
        let added = match bind {
            Bind::Text(s) => args.add(s),
            Bind::OptText(s) => args.add(s),
            Bind::Int(i) => args.add(i),
            Bind::Float(f) => args.add(f),
            Bind::Bool(b) => args.add(b),
            Bind::TextArray(items) => args.add(items),
        };
        added.map_err(|e| StorageError::backend(format!("cannot bind a value: {e}")))?;
    }
    Ok(args)
}

impl Postgres {
    /// A connector for `settings`; connects on first use.
    pub fn open(
        settings: &ConnectionSettings,
        common: &CommonOptions,
    ) -> Result<Postgres, StorageError> {
        let options = connect_options(settings)?;
        let namespace_name = namespace(settings)?;
        let pool = PgPoolOptions::new()
            .max_connections(common.max_connections)
            .min_connections(0)
            .acquire_timeout(common.connect_timeout)
            // A dead connection fails its operation (transient, retried by
            // `Storage`) instead of costing every operation a ping.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Postgres {
            pool,
            namespace: ident(DIALECT, &namespace_name),
            namespace_name,
            namespace_made: AtomicBool::new(false),
            catalog: Catalog::default(),
            max: common.max_connections,
        })
    }

    /// The pool, for measuring the raw driver beside the connector.
    pub fn raw_pool(&self) -> &PgPool {
        &self.pool
    }

    /// An entity type's quoted table name.
    pub fn table(&self, entity: &str) -> String {
        format!("{}.{}", self.namespace, ident(DIALECT, entity))
    }

    async fn execute(&self, sql: Sql) -> Result<u64, sqlx_core::Error> {
        let args = arguments(sql.binds).map_err(|e| sqlx_core::Error::Protocol(e.message))?;
        let done = sqlx_core::query::query_with::<Pg, _>(&sql.text, args)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn simple(&self, statement: &str) -> Result<(), sqlx_core::Error> {
        self.pool.execute(statement).await.map(|_| ())
    }

    async fn ensure_namespace(&self) -> Result<(), StorageError> {
        if self.namespace_made.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self
            .simple(&format!("CREATE SCHEMA IF NOT EXISTS {}", self.namespace))
            .await
        {
            Ok(()) => {}
            Err(e) if is_created_meanwhile(&e) => {}
            Err(e) => return Err(map_error(e)),
        }
        self.namespace_made.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn ensure_json_table(&self, entity: &Name) -> Result<(), StorageError> {
        if self.catalog.has_table(entity) {
            return Ok(());
        }
        self.ensure_namespace().await?;
        let statement = format!(
            "CREATE TABLE IF NOT EXISTS {} (\"__seq\" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \"__data\" jsonb NOT NULL)",
            self.table(entity.as_str())
        );
        match self.simple(&statement).await {
            Ok(()) => {}
            Err(e) if is_created_meanwhile(&e) => {}
            Err(e) => return Err(map_error(e)),
        }
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
            "SELECT definition FROM {} WHERE entity = $1",
            self.table(SCHEMAS_TABLE)
        );
        let row = sqlx_core::query::query::<Pg>(&statement)
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
        records
            .chunks(INSERT_ROWS)
            .map(|chunk| {
                let mut sql = Sql::new(DIALECT);
                match schema {
                    None => {
                        let data: Vec<Option<String>> = chunk
                            .iter()
                            .map(|r| Some(sql::json_in(DIALECT, &Value::Object(r.clone()))))
                            .collect();
                        sql.push(&format!(
                            "INSERT INTO {table} (\"__data\") SELECT v0 FROM UNNEST("
                        ));
                        sql.bind(Bind::TextArray(data))
                            .push("::jsonb[]) WITH ORDINALITY AS u(v0, n) ORDER BY n");
                    }
                    Some(schema) => {
                        let columns: Vec<String> = schema
                            .attributes
                            .iter()
                            .map(|a| ident(DIALECT, a.name.as_str()))
                            .collect();
                        let values: Vec<String> =
                            (0..columns.len()).map(|i| format!("v{i}")).collect();
                        sql.push(&format!(
                            "INSERT INTO {table} ({}) SELECT {} FROM UNNEST(",
                            columns.join(", "),
                            values.join(", ")
                        ));
                        for (i, attribute) in schema.attributes.iter().enumerate() {
                            if i > 0 {
                                sql.push(", ");
                            }
                            let column: Vec<Option<String>> = chunk
                                .iter()
                                .map(|r| {
                                    r.get(attribute.name.as_str()).and_then(|v| {
                                        sql::typed_text(DIALECT, attribute.attribute_type, v)
                                    })
                                })
                                .collect();
                            sql.bind(Bind::TextArray(column)).push(&format!(
                                "::{}",
                                sql::pg_array_type(attribute.attribute_type)
                            ));
                        }
                        sql.push(&format!(
                            ") WITH ORDINALITY AS u({}, n) ORDER BY n",
                            values.join(", ")
                        ));
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
            sqlx_core::query::query_with::<Pg, _>(&statement.text, args)
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
        match sqlx_core::query::query::<Pg>(&statement)
            .fetch_one(&self.pool)
            .await
        {
            Ok(row) => row.try_get::<bool, _>(0).map_err(map_error),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(map_error(e)),
        }
    }
}

#[async_trait]
impl Connector for Postgres {
    fn plugin_type(&self) -> PluginType {
        PluginType::Postgresql
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
        let rows = match sqlx_core::query::query_with::<Pg, _>(&sql.text, args)
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
            None => {
                sql.push("\"__data\" = \"__data\" || ")
                    .bind(Bind::Text(sql::json_in(DIALECT, &Value::Object(updates))))
                    .push("::jsonb");
            }
            Some(schema) => {
                schema.normalize_filters(&mut filters)?;
                sql::normalize_update(schema, &mut updates)?;
                if updates.is_empty() {
                    sql.push("\"__seq\" = \"__seq\"");
                }
                for (i, (name, value)) in updates.iter().enumerate() {
                    let Some(attribute) = schema.attribute(name) else {
                        continue;
                    };
                    if i > 0 {
                        sql.push(", ");
                    }
                    let kind = attribute.attribute_type;
                    let cast = sql::pg_array_type(kind).trim_end_matches("[]");
                    sql.push(&format!("{} = ", ident(DIALECT, name)))
                        .bind(Bind::OptText(sql::typed_text(DIALECT, kind, value)))
                        .push(&format!("::{cast}"));
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
        self.ensure_namespace().await?;
        let schemas = self.table(SCHEMAS_TABLE);
        match self
            .simple(&format!(
                "CREATE TABLE IF NOT EXISTS {schemas} (entity text PRIMARY KEY, definition text NOT NULL)"
            ))
            .await
        {
            Ok(()) => {}
            Err(e) if is_created_meanwhile(&e) => {}
            Err(e) => return Err(map_error(e)),
        }
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
        let mut columns =
            vec!["\"__seq\" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY".to_string()];
        for attribute in &schema.attributes {
            columns.push(format!(
                "{} {}",
                ident(DIALECT, attribute.name.as_str()),
                sql::column_type(DIALECT, attribute)
            ));
        }
        let mut statements = vec![
            format!("DROP TABLE IF EXISTS {table}"),
            format!("CREATE TABLE {table} ({})", columns.join(", ")),
        ];
        for attribute in schema.attributes.iter().filter(|a| a.indexed) {
            statements.push(format!(
                "CREATE INDEX ON {table} ({})",
                ident(DIALECT, attribute.name.as_str())
            ));
        }
        let definition = serde_json::to_string(schema)
            .map_err(|e| StorageError::backend(format!("cannot encode the definition: {e}")))?;
        let result: Result<(), sqlx_core::Error> = async {
            let mut tx = self.pool.begin().await?;
            for statement in &statements {
                (&mut *tx).execute(statement.as_str()).await?;
            }
            sqlx_core::query::query::<Pg>(&format!(
                "INSERT INTO {schemas} (entity, definition) VALUES ($1, $2) \
                 ON CONFLICT (entity) DO UPDATE SET definition = EXCLUDED.definition"
            ))
            .bind(entity.as_str())
            .bind(definition)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
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
        let row = sqlx_core::query::query::<Pg>("SHOW server_version")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        let version: String = row.try_get(0).map_err(map_error)?;
        Ok(StorageMetadata {
            storage_type: PluginType::Postgresql,
            version: format!("PostgreSQL {version}"),
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

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("schema", &self.namespace_name)
            .finish_non_exhaustive()
    }
}
