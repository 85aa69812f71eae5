//! The measurements behind `mimir-aip bench storage`: a connector's figures
//! beside the database's own tools, in one run. They live here, beside the
//! backends, so they reach the SQL translation and the drivers directly.
//!
//! - Batch store of `--records` records (10 attributes, typed entity)
//!   through the connector, beside the same rows loaded from CSV by the
//!   real client (`psql \copy` for PostgreSQL, `mariadb … LOAD DATA LOCAL
//!   INFILE` for MySQL/MariaDB).
//! - Retrieve with an `eq` filter on an indexed attribute from
//!   `--retrieve-records` records: p50/p99 through the connector, through
//!   the `Storage` wrapper, and the raw driver running the very statement
//!   the connector sends (its overhead per operation).
//!
//! The connector comes from `backends::open`, so any backend (Redis too,
//! once built in) runs; one that is not available is skipped with its
//! message. Everything the run creates is removed at the end.

use crate::backends::{
    self,
    sql::{self, Dialect, Sql},
};
use crate::{
    CommonOptions, Connector, EntitySchema, Name, Query, QueryRequest, Record, Selection, Storage,
    Unobserved,
};
use mimir_core::{ConnectionSettings, PluginType};
use serde_json::{Value, json};
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// postgresql, mysql, redis or filesystem.
    pub backend: String,
    /// The database URL (not needed for filesystem).
    pub url: String,
    /// Records of the batch store.
    pub records: usize,
    /// Records the retrieve test queries (0 skips it).
    pub retrieve_records: usize,
    /// Timed retrieves per path.
    pub queries: usize,
}

/// A failed run, for people.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

macro_rules! say {
    ($out:expr, $($arg:tt)*) => { $out(format!($($arg)*)) };
}

macro_rules! bail {
    ($($arg:tt)*) => { return Err(format!($($arg)*).into()) };
}

/// Latencies of one path, in microseconds.
#[derive(Debug, Default)]
struct Latencies(Vec<u64>);

impl Latencies {
    fn record(&mut self, elapsed: Duration) {
        self.0.push(elapsed.as_micros().max(1) as u64);
    }

    fn quantile(&self, q: f64) -> u64 {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let i = ((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1);
        sorted.get(i).copied().unwrap_or(0)
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<u64>() as f64 / self.0.len().max(1) as f64
    }

    fn line(&self, name: &str) -> String {
        let ms = |us: u64| format!("{:.3} ms", us as f64 / 1000.0);
        format!(
            "{name:<28} n={:<6} p50 {:>10}  p90 {:>10}  p99 {:>10}  max {:>10}",
            self.0.len(),
            ms(self.quantile(0.5)),
            ms(self.quantile(0.9)),
            ms(self.quantile(0.99)),
            ms(self.quantile(1.0)),
        )
    }
}

/// The 10-attribute entity both tests use; `customer` is indexed.
fn schema(name: &str) -> Result<EntitySchema, BenchError> {
    Ok(serde_json::from_value(json!({
        "name": name,
        "attributes": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "customer", "type": "string", "indexed": true},
            {"name": "email", "type": "string"},
            {"name": "age", "type": "integer"},
            {"name": "score", "type": "number"},
            {"name": "active", "type": "boolean"},
            {"name": "city", "type": "string"},
            {"name": "created_at", "type": "timestamp"},
            {"name": "category", "type": "string"},
            {"name": "amount", "type": "number"}
        ]
    }))?)
}

const CITIES: [&str; 5] = ["Zürich", "Lyon", "Porto", "Oslo", "Kraków"];

/// Distinct `customer` values: each appears `records / CUSTOMERS` times.
const CUSTOMERS: usize = 100_000;

/// Record `i` (deterministic, so the CSV holds the very same rows).
fn row(i: usize) -> Record {
    let created = 1_767_225_600 + i as i64;
    let created = chrono::DateTime::from_timestamp(created, (i % 1000) as u32 * 1000)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let value = json!({
        "id": i,
        "customer": format!("c{:06}", i % CUSTOMERS),
        "email": format!("user{i}@example.com"),
        "age": 18 + i % 60,
        "score": (i % 1000) as f64 / 10.0 + 0.25,
        "active": !i.is_multiple_of(3),
        "city": CITIES[i % CITIES.len()],
        "created_at": created,
        "category": format!("cat{}", i % 17),
        "amount": (i % 10_000) as f64 * 1.5 + 0.5,
    });
    match value {
        Value::Object(record) => record,
        _ => Record::new(),
    }
}

/// Record `i` as a CSV line in the schema's column order.
fn csv_line(i: usize, dialect: Dialect) -> String {
    let r = row(i);
    let text = |k: &str| match &r[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let active = match (dialect, r["active"].as_bool()) {
        (Dialect::MySql, Some(true)) => "1".to_string(),
        (Dialect::MySql, _) => "0".to_string(),
        (Dialect::Postgres, b) => b.unwrap_or(false).to_string(),
    };
    let created = match dialect {
        Dialect::MySql => text("created_at")
            .trim_end_matches('Z')
            .replacen('T', " ", 1),
        Dialect::Postgres => text("created_at"),
    };
    format!(
        "{},{},{},{},{},{},{},{},{},{}\n",
        text("id"),
        text("customer"),
        text("email"),
        text("age"),
        text("score"),
        active,
        text("city"),
        created,
        text("category"),
        text("amount")
    )
}

fn name(text: &str) -> Result<Name, BenchError> {
    Ok(Name::new(text, "entity")?)
}

/// A backend's raw driver beside the connector.
enum Raw {
    Postgres(sqlx_postgres::PgPool, String),
    Mysql(sqlx_mysql::MySqlPool),
    None,
}

impl Raw {
    fn dialect(&self) -> Option<Dialect> {
        match self {
            Raw::Postgres(..) => Some(Dialect::Postgres),
            Raw::Mysql(_) => Some(Dialect::MySql),
            Raw::None => None,
        }
    }

    fn table(&self, entity: &str) -> String {
        match self {
            Raw::Postgres(_, schema) => format!(
                "{}.{}",
                sql::ident(Dialect::Postgres, schema),
                sql::ident(Dialect::Postgres, entity)
            ),
            _ => sql::ident(Dialect::MySql, entity),
        }
    }

    async fn execute(&self, statement: &str) -> Result<(), BenchError> {
        use sqlx_core::executor::Executor;
        match self {
            Raw::Postgres(pool, _) => pool.execute(statement).await.map(|_| ())?,
            Raw::Mysql(pool) => pool.execute(statement).await.map(|_| ())?,
            Raw::None => {}
        }
        Ok(())
    }

    /// Runs the statement the connector sends for an `eq` retrieve, rows
    /// decoded as the connector decodes them (text per column).
    async fn retrieve(&self, statement: &Sql, columns: usize) -> Result<usize, BenchError> {
        use sqlx_core::row::Row;
        let value = match statement.binds.first() {
            Some(sql::Bind::Text(v)) => v.clone(),
            _ => bail!("unexpected statement"),
        };
        let (limit, offset) = (1000_i64, 0_i64);
        let mut n = 0;
        match self {
            Raw::Postgres(pool, _) => {
                let rows = sqlx_core::query::query::<sqlx_postgres::Postgres>(&statement.text)
                    .bind(value)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(pool)
                    .await?;
                for row in &rows {
                    for i in 0..columns {
                        let _: Option<String> = row.try_get(i)?;
                    }
                    n += 1;
                }
            }
            Raw::Mysql(pool) => {
                let rows = sqlx_core::query::query::<sqlx_mysql::MySql>(&statement.text)
                    .bind(value)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(pool)
                    .await?;
                for row in &rows {
                    for i in 0..columns {
                        let _: Option<String> = row.try_get(i)?;
                    }
                    n += 1;
                }
            }
            Raw::None => {}
        }
        Ok(n)
    }
}

/// The parts of a `mysql://user:password@host:port/database` URL the
/// `mariadb` client takes as arguments.
struct MysqlUrl {
    user: String,
    password: Option<String>,
    host: String,
    port: u16,
    database: String,
}

impl MysqlUrl {
    fn parse(url: &str) -> Result<MysqlUrl, BenchError> {
        let rest = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or("the URL has no scheme")?;
        let (authority, database) = rest.split_once('/').ok_or("the URL names no database")?;
        let database = database.split('?').next().unwrap_or_default().to_string();
        let (credentials, address) = authority.rsplit_once('@').unwrap_or(("root", authority));
        let (user, password) = match credentials.split_once(':') {
            Some((user, password)) => (user.to_string(), Some(password.to_string())),
            None => (credentials.to_string(), None),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().map_err(|_| "bad port")?),
            None => (address.to_string(), 3306),
        };
        Ok(MysqlUrl {
            user,
            password,
            host,
            port,
            database,
        })
    }
}

/// Runs the measurements, each line of figures handed to `out`.
pub async fn run(
    args: BenchConfig,
    out: &mut (dyn FnMut(String) + Send),
) -> Result<(), BenchError> {
    let plugin: PluginType = serde_json::from_value(Value::String(args.backend.clone()))
        .map_err(|_| format!("unknown backend {:?}", args.backend))?;
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let run_id = &run_id[24..];
    // Filesystem records go to a folder of their own, removed at the end.
    let root = std::env::temp_dir().join(format!("mimir-bench-{run_id}"));
    std::fs::create_dir_all(&root)?;
    let mut options = serde_json::Map::new();
    options.insert("max_connections".into(), json!(4));
    options.insert("timeout_ms".into(), json!(600_000));
    options.insert("base_path".into(), json!("bench"));
    let pg_schema = format!("mimir_bench_{run_id}");
    if plugin == PluginType::Postgresql {
        options.insert("schema".into(), json!(pg_schema));
    }
    let settings = ConnectionSettings {
        connection_string: args.url.clone(),
        options,
        ..ConnectionSettings::default()
    };
    let common = CommonOptions::read(&settings.options)?;
    let connector = match backends::open(plugin, &settings, &common, &root).await {
        Ok(connector) => connector,
        Err(e) => {
            say!(out, "{plugin}: skipped: {e}");
            return Ok(());
        }
    };
    let raw = match plugin {
        PluginType::Postgresql => {
            let pool = sqlx_postgres::PgPoolOptions::new()
                .max_connections(common.max_connections)
                .test_before_acquire(false)
                .connect(&args.url)
                .await?;
            Raw::Postgres(pool, pg_schema)
        }
        PluginType::Mysql => Raw::Mysql(
            sqlx_mysql::MySqlPoolOptions::new()
                .max_connections(common.max_connections)
                .test_before_acquire(false)
                .connect(&args.url.replacen("mariadb://", "mysql://", 1))
                .await?,
        ),
        _ => Raw::None,
    };
    let store_entity = format!("bench_{run_id}_store");
    let copy_entity = format!("bench_{run_id}_copy");
    let lookup_entity = format!("bench_{run_id}_lookup");
    let outcome = scenario(
        &args,
        plugin,
        &connector,
        &raw,
        [&store_entity, &copy_entity, &lookup_entity],
        out,
    )
    .await;
    // Clean up whatever happened.
    match &raw {
        Raw::Postgres(_, schema) => {
            let _ = raw
                .execute(&format!(
                    "DROP SCHEMA IF EXISTS {} CASCADE",
                    sql::ident(Dialect::Postgres, schema)
                ))
                .await;
        }
        Raw::Mysql(_) => {
            for entity in [&store_entity, &copy_entity, &lookup_entity] {
                let _ = raw
                    .execute(&format!("DROP TABLE IF EXISTS {}", raw.table(entity)))
                    .await;
                let _ = raw
                    .execute(&format!(
                        "DELETE FROM {} WHERE entity = '{entity}'",
                        raw.table(sql::SCHEMAS_TABLE)
                    ))
                    .await;
            }
        }
        Raw::None => {
            for entity in [&store_entity, &lookup_entity] {
                let request: QueryRequest = serde_json::from_value(json!({"entity_type": entity}))?;
                if let Ok(all) = Selection::check(&request, true) {
                    let _ = connector.delete(&all).await;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    outcome
}

async fn scenario(
    args: &BenchConfig,
    plugin: PluginType,
    connector: &Arc<dyn Connector>,
    raw: &Raw,
    [store_entity, copy_entity, lookup_entity]: [&String; 3],
    out: &mut (dyn FnMut(String) + Send),
) -> Result<(), BenchError> {
    let store_schema = schema(store_entity)?;
    let schema_creation = connector.metadata().await?;
    say!(out, "backend {plugin} ({})", schema_creation.version);
    let typed = schema_creation
        .capabilities
        .iter()
        .any(|c| c == "schema_creation");
    if typed {
        connector.create_schema(&store_schema).await?;
    }

    // 1. Batch store.
    let records: Vec<Record> = (0..args.records).map(row).collect();
    let started = Instant::now();
    let stored = connector
        .store(&name(store_entity)?, records)
        .await
        .map_err(|e| e.context("store"))?;
    let store_took = started.elapsed();
    say!(
        out,
        "{:<34} {:>9} records in {:>8.3} s  {:>10.0} records/s",
        "store (connector, one batch)",
        stored,
        store_took.as_secs_f64(),
        stored as f64 / store_took.as_secs_f64()
    );
    if let Some(dialect) = raw.dialect() {
        connector.create_schema(&schema(copy_entity)?).await?;
        let csv = std::env::temp_dir().join(format!("{copy_entity}.csv"));
        {
            let mut file = std::io::BufWriter::new(std::fs::File::create(&csv)?);
            for i in 0..args.records {
                file.write_all(csv_line(i, dialect).as_bytes())?;
            }
            file.flush()?;
        }
        let loaded = load_with_client(args, raw, copy_entity, &csv).await;
        let _ = std::fs::remove_file(&csv);
        let (label, took) = loaded?;
        say!(
            out,
            "{:<34} {:>9} records in {:>8.3} s  {:>10.0} records/s  (connector {:.2}x its time)",
            label,
            args.records,
            took.as_secs_f64(),
            args.records as f64 / took.as_secs_f64(),
            store_took.as_secs_f64() / took.as_secs_f64()
        );
    }

    // 2. Indexed eq retrieve.
    if args.retrieve_records == 0 {
        return Ok(());
    }
    let lookup_schema = schema(lookup_entity)?;
    if typed {
        connector.create_schema(&lookup_schema).await?;
    }
    let entity = name(lookup_entity)?;
    let started = Instant::now();
    let chunk = 50_000;
    let mut filled = 0;
    while filled < args.retrieve_records {
        let end = (filled + chunk).min(args.retrieve_records);
        connector
            .store(&entity, (filled..end).map(row).collect())
            .await
            .map_err(|e| e.context("fill"))?;
        filled = end;
    }
    say!(
        out,
        "{:<34} {:>9} records in {:>8.3} s",
        "fill for retrieve (50k batches)",
        filled,
        started.elapsed().as_secs_f64()
    );
    if let Raw::Postgres(..) = raw {
        raw.execute(&format!("ANALYZE {}", raw.table(lookup_entity)))
            .await?;
    }
    let storage = Storage::new(
        "bench",
        connector.clone(),
        CommonOptions::read(&serde_json::Map::new())?,
        Arc::new(Unobserved),
    );
    let customers = CUSTOMERS.min(args.retrieve_records).max(1);
    let query_for = |i: usize| -> Result<Query, BenchError> {
        let request: QueryRequest = serde_json::from_value(json!({
            "entity_type": lookup_entity,
            "filters": [{"attribute": "customer", "operator": "eq",
                         "value": format!("c{:06}", (i * 7919) % customers)}]
        }))?;
        Ok(Query::check(&request)?)
    };
    let (mut through_connector, mut through_storage, mut through_raw) = (
        Latencies::default(),
        Latencies::default(),
        Latencies::default(),
    );
    let mut matched = 0;
    // Warm up caches and connections, then interleave the paths.
    for i in 0..50.min(args.queries) {
        connector.retrieve(&query_for(i)?).await?;
    }
    // Each query runs through the three paths, the one that goes first (and
    // meets the key's pages cold) taking turns, so no path pays the others'
    // cache misses.
    for i in 0..args.queries {
        let query = query_for(i)?;
        for turn in 0..3 {
            match (i + turn) % 3 {
                0 => {
                    let started = Instant::now();
                    let got = connector
                        .retrieve(&query)
                        .await
                        .map_err(|e| e.context("retrieve"))?;
                    through_connector.record(started.elapsed());
                    matched += got.len();
                }
                1 => {
                    let started = Instant::now();
                    storage
                        .retrieve(&query)
                        .await
                        .map_err(|e| e.context("retrieve"))?;
                    through_storage.record(started.elapsed());
                }
                _ => {
                    let Some(dialect) = raw.dialect() else {
                        continue;
                    };
                    let mut statement = Sql::new(dialect);
                    statement.push(&format!(
                        "SELECT {} FROM {}",
                        sql::select_list(dialect, Some(&lookup_schema)),
                        raw.table(lookup_entity)
                    ));
                    sql::where_clause(
                        &mut statement,
                        Some(&lookup_schema),
                        &query.selection.filters,
                    )?;
                    sql::order_clause(&mut statement, Some(&lookup_schema), &query.order_by);
                    sql::page(&mut statement, query.limit, query.offset);
                    let started = Instant::now();
                    raw.retrieve(&statement, lookup_schema.attributes.len())
                        .await?;
                    through_raw.record(started.elapsed());
                }
            }
        }
    }
    say!(
        out,
        "retrieve eq on an indexed attribute from {} records ({:.1} records per answer):",
        args.retrieve_records,
        matched as f64 / args.queries.max(1) as f64
    );
    say!(out, "  {}", through_connector.line("connector"));
    say!(out, "  {}", through_storage.line("Storage (wrapper)"));
    if raw.dialect().is_some() {
        say!(out, "  {}", through_raw.line("raw driver, same statement"));
        let overhead = |h: &Latencies, q: f64| {
            let raw = through_raw.quantile(q) as f64;
            (h.quantile(q) as f64 - raw) / raw * 100.0
        };
        say!(
            out,
            "  connector overhead vs raw driver: p50 {:+.1}%  p99 {:+.1}%  mean {:+.1}%",
            overhead(&through_connector, 0.5),
            overhead(&through_connector, 0.99),
            (through_connector.mean() - through_raw.mean()) / through_raw.mean() * 100.0
        );
    }
    Ok(())
}

/// Loads the CSV with the database's own client; answers what ran and how
/// long the process took (connecting included).
async fn load_with_client(
    args: &BenchConfig,
    raw: &Raw,
    entity: &str,
    csv: &std::path::Path,
) -> Result<(&'static str, Duration), BenchError> {
    let columns = "id, customer, email, age, score, active, city, created_at, category, amount";
    let path = csv.display().to_string();
    let mut command = match raw {
        Raw::Postgres(..) => {
            let mut command = tokio::process::Command::new("psql");
            command
                .arg(&args.url)
                .arg("-v")
                .arg("ON_ERROR_STOP=1")
                .arg("-c")
                .arg(format!(
                    "\\copy {} ({columns}) FROM '{path}' WITH (FORMAT csv)",
                    raw.table(entity)
                ));
            command
        }
        Raw::Mysql(_) => {
            let url = MysqlUrl::parse(&args.url)?;
            let mut command = tokio::process::Command::new("mariadb");
            command
                .arg("-h")
                .arg(&url.host)
                .arg("-P")
                .arg(url.port.to_string())
                .arg("-u")
                .arg(&url.user)
                .arg("--local-infile=1")
                .arg(&url.database)
                .arg("-e")
                .arg(format!(
                    "LOAD DATA LOCAL INFILE '{path}' INTO TABLE {} FIELDS TERMINATED BY ',' ({columns})",
                    raw.table(entity)
                ));
            if let Some(password) = &url.password {
                command.env("MYSQL_PWD", password);
            }
            command
        }
        Raw::None => bail!("no client for this backend"),
    };
    let label = match raw {
        Raw::Postgres(..) => "psql \\copy (CSV, same rows)",
        _ => "mariadb LOAD DATA LOCAL INFILE",
    };
    let started = Instant::now();
    let output = command
        .output()
        .await
        .map_err(|e| format!("running {label}: {e}"))?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "{label} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok((label, took))
}
