//! `mimir-aip storage`: storage configs (a project's connections to
//! filesystem, PostgreSQL, MySQL, Redis or S3 storage) and the operations on
//! their records.
//!
//! Configs: `create`, `list`, `get`, `update`, `delete`. Records: `store`
//! (a CSV, JSON or NDJSON file, streamed in batches with a progress bar),
//! `retrieve`, `update-records`, `delete-records`; and `health`, `metadata`,
//! `schema`. Credentials given here are sent once and never shown again;
//! prefer references (`${env:NAME}`, `${file:NAME}`) resolved where the
//! connector runs, or `@FILE` to read a value from a local file instead of
//! the command line.

use super::pipeline::encode;
use super::record_file::{RecordFormat, RecordReader};
use super::{OutputFormat, Remote};
use crate::output;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mimir_client::Client;
use mimir_core::{PluginType, StorageConfig};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `storage` and its subcommands.
#[derive(Debug, Args)]
pub struct StorageArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: StorageCommand,
}

/// Settings of a config, as flags.
#[derive(Debug, Args)]
struct Settings {
    /// The connection URL (postgres://…, mysql://…, redis://…).
    #[arg(long)]
    connection_string: Option<String>,
    /// A credential, NAME=VALUE; VALUE may be ${env:VAR}, ${file:NAME} or @LOCAL_FILE. Repeatable.
    #[arg(long = "credential", value_name = "NAME=VALUE")]
    credentials: Vec<String>,
    /// An option, NAME=VALUE (VALUE read as JSON when it is JSON, else text): base_path, bucket, prefix, endpoint, max_connections, timeout_ms, …. Repeatable.
    #[arg(long = "option", value_name = "NAME=VALUE")]
    options: Vec<String>,
}

/// Which records, as flags.
#[derive(Debug, Args)]
struct Selecting {
    /// The entity type [default: default].
    #[arg(long)]
    entity: Option<String>,
    /// A filter, "ATTRIBUTE OPERATOR VALUE" (operators eq neq gt gte lt lte in like; VALUE read as JSON when it is JSON, e.g. 30, true, null, [1,2]). Repeatable; all must match.
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Create a storage config in a project.
    Create {
        /// The project.
        #[arg(long)]
        project: String,
        /// The backend: filesystem, postgresql, mysql, redis or s3.
        #[arg(long = "type")]
        plugin_type: String,
        #[command(flatten)]
        settings: Settings,
        /// Create it inactive (operations refused until activated).
        #[arg(long)]
        inactive: bool,
    },
    /// List storage configs (of one project, or all).
    List {
        /// Only this project's.
        #[arg(long)]
        project: Option<String>,
    },
    /// Show one storage config (credentials redacted).
    Get {
        /// Config id.
        id: String,
    },
    /// Change a config: flags given replace those settings, others are kept.
    Update {
        /// Config id.
        id: String,
        #[command(flatten)]
        settings: Settings,
        /// Activate (true) or deactivate (false).
        #[arg(long)]
        active: Option<bool>,
    },
    /// Delete a config (refused while a pipeline uses it).
    Delete {
        /// Config id.
        id: String,
    },
    /// Store records from a CSV, JSON or NDJSON file, in batches.
    Store {
        /// Config id.
        id: String,
        /// The file.
        #[arg(long)]
        file: PathBuf,
        /// Its format [default: from the file name].
        #[arg(long, value_enum)]
        format: Option<RecordFormat>,
        /// The entity type the records are [default: default].
        #[arg(long)]
        entity: Option<String>,
        /// Records per call; each batch is stored all or nothing.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch_size: u32,
        /// Keep CSV cells as text instead of reading numbers, booleans and nulls.
        #[arg(long)]
        strings: bool,
    },
    /// Retrieve records.
    Retrieve {
        /// Config id.
        id: String,
        #[command(flatten)]
        selecting: Selecting,
        /// Sort key, ATTRIBUTE or ATTRIBUTE:desc. Repeatable.
        #[arg(long = "order-by", value_name = "KEY")]
        order_by: Vec<String>,
        /// At most this many records (1 to 10000).
        #[arg(long)]
        limit: Option<u64>,
        /// Skip this many first.
        #[arg(long)]
        offset: Option<u64>,
    },
    /// Set attributes on the chosen records.
    UpdateRecords {
        /// Config id.
        id: String,
        #[command(flatten)]
        selecting: Selecting,
        /// ATTRIBUTE=VALUE to set (VALUE read as JSON when it is JSON). Repeatable.
        #[arg(long = "set", value_name = "ATTRIBUTE=VALUE", required = true)]
        set: Vec<String>,
        /// Change every record of the entity type (needed when there is no filter).
        #[arg(long)]
        all: bool,
    },
    /// Delete the chosen records.
    DeleteRecords {
        /// Config id.
        id: String,
        #[command(flatten)]
        selecting: Selecting,
        /// Delete every record of the entity type (needed when there is no filter).
        #[arg(long)]
        all: bool,
    },
    /// Check that the backend answers.
    Health {
        /// Config id.
        id: String,
    },
    /// The backend's type, version and capabilities.
    Metadata {
        /// Config id.
        id: String,
    },
    /// Create entity types from a definition file ({"entities": [{name, attributes: [{name, type, indexed, required}]}]}).
    Schema {
        /// Config id.
        id: String,
        /// The definition (JSON).
        #[arg(long)]
        file: PathBuf,
    },
}

/// Runs a `storage` subcommand.
pub async fn run(args: StorageArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    let format = args.remote.output;
    match args.command {
        StorageCommand::Create {
            project,
            plugin_type,
            settings,
            inactive,
        } => {
            if PluginType::parse(&plugin_type).is_none() {
                bail!(
                    "--type {plugin_type:?} is not a storage backend: use filesystem, postgresql, mysql, redis or s3"
                );
            }
            let body = json!({
                "project_id": project,
                "plugin_type": plugin_type,
                "config": settings.to_json(None)?,
                "active": !inactive,
            });
            let config: StorageConfig = client
                .call(Method::POST, "/api/storage/configs", Some(&body))
                .await?;
            print_config(&config, format)?;
        }
        StorageCommand::List { project } => {
            let path = match project {
                Some(project) => format!("/api/storage/configs?project_id={}", encode(&project)),
                None => "/api/storage/configs".to_string(),
            };
            let answer: Value = client.call(Method::GET, &path, None).await?;
            if format == OutputFormat::Json {
                return output::json(&answer).map(|()| ExitCode::SUCCESS);
            }
            let list = answer.get("configs").cloned().unwrap_or(answer);
            let configs: Vec<StorageConfig> = serde_json::from_value(list)
                .context("the orchestrator answered an unexpected config list")?;
            if configs.is_empty() {
                output::nothing("no storage configs");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
            t.set_header(["ID", "PROJECT", "TYPE", "ACTIVE", "WHERE", "UPDATED"]);
            for c in configs {
                t.add_row([
                    c.id.clone(),
                    c.project_id.clone(),
                    c.plugin_type.to_string(),
                    if c.active { "yes" } else { "no" }.to_string(),
                    location(&c),
                    c.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                ]);
            }
            println!("{t}");
        }
        StorageCommand::Get { id } => {
            let config = get_config(&client, &id).await?;
            print_config(&config, format)?;
        }
        StorageCommand::Update {
            id,
            settings,
            active,
        } => {
            let current = get_config(&client, &id).await?;
            let body = json!({
                "config": settings.to_json(Some(&current))?,
                "active": active.unwrap_or(current.active),
            });
            let config: StorageConfig = client
                .call(Method::PUT, &config_path(&id), Some(&body))
                .await?;
            print_config(&config, format)?;
        }
        StorageCommand::Delete { id } => {
            client.call_empty(Method::DELETE, &config_path(&id)).await?;
            match format {
                OutputFormat::Json => output::json(&json!({ "deleted": id }))?,
                OutputFormat::Table => println!("deleted storage config {id}"),
            }
        }
        StorageCommand::Store {
            id,
            file,
            format: file_format,
            entity,
            batch_size,
            strings,
        } => {
            let file_format = match file_format.or_else(|| RecordFormat::of(&file)) {
                Some(f) => f,
                None => bail!(
                    "cannot tell the format of {} from its name: pass --format csv|json|ndjson",
                    file.display()
                ),
            };
            return store_file(
                &client,
                &id,
                &file,
                file_format,
                entity,
                batch_size,
                strings,
                format,
            )
            .await;
        }
        StorageCommand::Retrieve {
            id,
            selecting,
            order_by,
            limit,
            offset,
        } => {
            let mut query = selecting.query()?;
            let mut keys = Vec::new();
            for key in order_by {
                let (attribute, direction) = match key.rsplit_once(':') {
                    Some((a, d)) if d == "asc" || d == "desc" => (a.to_string(), d),
                    Some((_, d)) => {
                        bail!("--order-by {key:?}: the direction {d:?} is not asc or desc")
                    }
                    None => (key, "asc"),
                };
                keys.push(json!({"attribute": attribute, "direction": direction}));
            }
            query.insert("order_by".into(), Value::Array(keys));
            if let Some(limit) = limit {
                query.insert("limit".into(), limit.into());
            }
            if let Some(offset) = offset {
                query.insert("offset".into(), offset.into());
            }
            let body = json!({"storage_id": id, "query": query});
            let documents: Vec<Value> = client
                .call(Method::POST, "/api/storage/retrieve", Some(&body))
                .await?;
            if format == OutputFormat::Json {
                return output::json(&documents).map(|()| ExitCode::SUCCESS);
            }
            print_records(&documents);
        }
        StorageCommand::UpdateRecords {
            id,
            selecting,
            set,
            all,
        } => {
            let mut updates = Map::new();
            for pair in set {
                let (name, value) = split_pair(&pair, "--set")?;
                updates.insert(name.to_string(), json_or_text(value));
            }
            let body = json!({"storage_id": id, "query": selecting.query()?, "updates": updates, "all": all});
            let result: Value = client
                .call(Method::POST, "/api/storage/update", Some(&body))
                .await?;
            print_result(&result, "updated", format)?;
        }
        StorageCommand::DeleteRecords { id, selecting, all } => {
            let body = json!({"storage_id": id, "query": selecting.query()?, "all": all});
            let result: Value = client
                .call(Method::POST, "/api/storage/delete", Some(&body))
                .await?;
            print_result(&result, "deleted", format)?;
        }
        StorageCommand::Health { id } => {
            let path = format!("/api/storage/health?config_id={}", encode(&id));
            let health: Value = client.call(Method::GET, &path, None).await?;
            let healthy = health["healthy"].as_bool() == Some(true);
            match format {
                OutputFormat::Json => output::json(&health)?,
                OutputFormat::Table if healthy => println!("storage {id}: healthy"),
                OutputFormat::Table => println!(
                    "storage {id}: unhealthy: {}",
                    health["error"].as_str().unwrap_or("no reason given")
                ),
            }
            return Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        StorageCommand::Metadata { id } => {
            let path = format!("/api/storage/metadata?config_id={}", encode(&id));
            let metadata: Value = client.call(Method::GET, &path, None).await?;
            match format {
                OutputFormat::Json => output::json(&metadata)?,
                OutputFormat::Table => {
                    println!(
                        "{} {}",
                        metadata["storage_type"].as_str().unwrap_or("?"),
                        metadata["version"].as_str().unwrap_or("?")
                    );
                    let capabilities: Vec<&str> = metadata["capabilities"]
                        .as_array()
                        .map(|c| c.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    println!("  capabilities: {}", capabilities.join(", "));
                }
            }
        }
        StorageCommand::Schema { id, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let definition: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", file.display()))?;
            let entities = match definition.get("entities") {
                Some(entities) => entities.clone(),
                None => json!([definition]),
            };
            let body = json!({"storage_id": id, "entities": entities});
            let result: Value = client
                .call(Method::POST, "/api/storage/schema", Some(&body))
                .await?;
            print_result(&result, "created", format)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn config_path(id: &str) -> String {
    format!("/api/storage/configs/{}", encode(id))
}

async fn get_config(client: &Client, id: &str) -> anyhow::Result<StorageConfig> {
    Ok(client.call(Method::GET, &config_path(id), None).await?)
}

impl Settings {
    /// The `config` object: the flags given over `current`'s (redacted)
    /// settings, which the server keeps as they were.
    fn to_json(&self, current: Option<&StorageConfig>) -> anyhow::Result<Value> {
        let mut connection_string = current
            .map(|c| c.config.connection_string.clone())
            .unwrap_or_default();
        let mut credentials = current
            .map(|c| c.config.credentials.clone())
            .unwrap_or_default();
        let mut options = current
            .map(|c| c.config.options.clone())
            .unwrap_or_default();
        if let Some(url) = &self.connection_string {
            connection_string = url.clone();
        }
        for pair in &self.credentials {
            let (name, value) = split_pair(pair, "--credential")?;
            let value = match value.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("--credential {name}: cannot read {path}"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                None => value.to_string(),
            };
            credentials.insert(name.to_string(), Value::String(value));
        }
        for pair in &self.options {
            let (name, value) = split_pair(pair, "--option")?;
            options.insert(name.to_string(), json_or_text(value));
        }
        Ok(json!({
            "connection_string": connection_string,
            "credentials": credentials,
            "options": options,
        }))
    }
}

impl Selecting {
    /// The CIRQuery's entity type and filters.
    fn query(&self) -> anyhow::Result<Map<String, Value>> {
        let mut filters = Vec::new();
        for text in &self.filters {
            filters.push(parse_filter(text)?);
        }
        let mut query = Map::new();
        if let Some(entity) = &self.entity {
            query.insert("entity_type".into(), entity.clone().into());
        }
        query.insert("filters".into(), Value::Array(filters));
        Ok(query)
    }
}

/// "age gt 30" → `{"attribute": "age", "operator": "gt", "value": 30}`.
fn parse_filter(text: &str) -> anyhow::Result<Value> {
    let mut parts = text.trim().splitn(3, char::is_whitespace);
    let (Some(attribute), Some(operator), Some(value)) = (parts.next(), parts.next(), parts.next())
    else {
        bail!("--filter {text:?} is not \"ATTRIBUTE OPERATOR VALUE\" (e.g. \"age gt 30\")");
    };
    Ok(json!({"attribute": attribute, "operator": operator, "value": json_or_text(value.trim())}))
}

fn split_pair<'a>(pair: &'a str, flag: &str) -> anyhow::Result<(&'a str, &'a str)> {
    match pair.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim(), value)),
        _ => bail!("{flag} {pair:?} is not NAME=VALUE"),
    }
}

/// `30` → 30, `true` → true, `"x"` → "x", `x` → "x".
fn json_or_text(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
}

/// Where a config's records live, without secrets.
fn location(config: &StorageConfig) -> String {
    let options = &config.config.options;
    let text = |name: &str| {
        options
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    match config.plugin_type {
        PluginType::Filesystem => text("base_path").to_string(),
        PluginType::S3 => format!("s3://{}/{}", text("bucket"), text("prefix")),
        _ => config.config.connection_string.clone(),
    }
}

fn print_config(config: &StorageConfig, format: OutputFormat) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        return output::json(config);
    }
    println!(
        "{} {} ({})",
        config.id,
        config.plugin_type,
        location(config)
    );
    println!("  project {}", config.project_id);
    println!("  active {}", if config.active { "yes" } else { "no" });
    for (name, value) in &config.config.options {
        println!("  option {name} = {value}");
    }
    for (name, value) in &config.config.credentials {
        println!(
            "  credential {name} = {}",
            value.as_str().unwrap_or("[redacted]")
        );
    }
    println!(
        "  updated {}",
        config.updated_at.format("%Y-%m-%d %H:%M:%S")
    );
    Ok(())
}

fn print_result(result: &Value, verb: &str, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => output::json(result),
        OutputFormat::Table => {
            println!(
                "{verb} {} records",
                result["affected_items"].as_u64().unwrap_or(0)
            );
            Ok(())
        }
    }
}

/// Prints retrieved records as a table: one row a record, a column per
/// attribute (in order of first appearance), non-text values as JSON.
fn print_records(documents: &[Value]) {
    if documents.is_empty() {
        output::nothing("no records");
        return;
    }
    let records: Vec<&Map<String, Value>> = documents
        .iter()
        .filter_map(|d| d.get("data").and_then(Value::as_object))
        .collect();
    let mut columns: Vec<&str> = Vec::new();
    for record in &records {
        for name in record.keys() {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(columns.iter().map(|c| c.to_uppercase()));
    for record in &records {
        t.add_row(columns.iter().map(|c| match record.get(*c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }));
    }
    println!("{t}");
    println!("{} records", records.len());
}

/// Streams a file into a storage in batches, with a progress bar on a
/// terminal. Batches are stored all or nothing; a failure says how many
/// records are already stored, so a rerun can skip them.
#[allow(clippy::too_many_arguments)]
async fn store_file(
    client: &Client,
    id: &str,
    file: &std::path::Path,
    file_format: RecordFormat,
    entity: Option<String>,
    batch_size: u32,
    strings: bool,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let read = Arc::new(AtomicU64::new(0));
    let mut reader = RecordReader::open(file, file_format, strings, read.clone())?;
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut stored = 0u64;
    let mut batches = 0u64;
    let mut source = json!({"type": "file", "uri": file.display().to_string(), "format": match file_format {
        RecordFormat::Csv => "csv",
        RecordFormat::Json | RecordFormat::Ndjson => "json",
    }});
    if let Some(entity) = &entity {
        source["parameters"] = json!({"entity_type": entity});
    }
    loop {
        let first = reader.records + 1;
        let batch = reader.batch(batch_size as usize)?;
        if batch.is_empty() {
            break;
        }
        let count = batch.len() as u64;
        let body = json!({
            "storage_id": id,
            "cir_data": {"version": "1.0", "source": source, "data": batch, "metadata": {"record_count": count}},
        });
        let result: Result<Value, _> = client
            .call(Method::POST, "/api/storage/store", Some(&body))
            .await;
        match result {
            Ok(answer) => {
                stored += answer["affected_items"].as_u64().unwrap_or(count);
                batches += 1;
            }
            Err(error) => {
                bar.abandon();
                bail!(
                    "records {first} to {} were not stored: {error}; {stored} records in {batches} batches before them are stored",
                    first + count - 1
                );
            }
        }
        bar.set_position(read.load(Ordering::Relaxed));
        bar.set_message(format!("{stored} records"));
    }
    bar.finish_and_clear();
    match format {
        OutputFormat::Json => output::json(&json!({"stored": stored, "batches": batches}))?,
        OutputFormat::Table => println!("stored {stored} records in {batches} batches"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_json_values_and_text() -> anyhow::Result<()> {
        assert_eq!(
            parse_filter("age gt 30")?,
            json!({"attribute": "age", "operator": "gt", "value": 30})
        );
        assert_eq!(
            parse_filter("name like Ann %")?,
            json!({"attribute": "name", "operator": "like", "value": "Ann %"})
        );
        assert_eq!(
            parse_filter("id in [1, 2]")?,
            json!({"attribute": "id", "operator": "in", "value": [1, 2]})
        );
        assert!(parse_filter("age gt").is_err());
        Ok(())
    }

    #[test]
    fn settings_keep_current_values_and_read_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "s3cret\n")?;
        let settings = Settings {
            connection_string: None,
            credentials: vec![
                format!("password=@{}", secret.display()),
                "token=${env:TOKEN}".into(),
            ],
            options: vec!["max_connections=4".into(), "base_path=data".into()],
        };
        let config = settings.to_json(None)?;
        assert_eq!(config["credentials"]["password"], json!("s3cret"));
        assert_eq!(config["credentials"]["token"], json!("${env:TOKEN}"));
        assert_eq!(
            config["options"],
            json!({"max_connections": 4, "base_path": "data"})
        );
        Ok(())
    }
}
