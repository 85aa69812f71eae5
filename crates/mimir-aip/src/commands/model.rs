//! `mimir-aip model`: the ML model registry.
//!
//! Models: `create`, `list`, `get`, `update`, `delete`, `versions`. Work:
//! `train` (an `ml_training` task over storage configs), `infer` (an
//! `ml_inference` task over a storage config's records or a local file of
//! records), `import` (an ONNX file), `evaluate` (re-score a version on fresh
//! labelled records; a drop beyond the threshold marks the model degraded).
//! `train` and `infer` take `--wait` to follow the task to its end, as
//! `task wait` does.

use super::pipeline::encode;
use super::record_file::{RecordFormat, RecordReader};
use super::task::{WaitArgs, wait_for};
use super::{OutputFormat, Remote};
use crate::output;
use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use mimir_client::Client;
use mimir_core::{MlModel, WorkTask};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Most records `infer --records` and `evaluate --records` send: the API's
/// limit for inline records.
const MAX_INLINE_RECORDS: usize = 10_000;

/// `model` and its subcommands.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: ModelCommand,
}

/// Training settings, as flags; each given one overrides the model's.
#[derive(Debug, Args)]
struct TrainingFlags {
    /// The attribute to predict (supervised types).
    #[arg(long)]
    label: Option<String>,
    /// The attributes to learn from, comma-separated [default: all but the label and id].
    #[arg(long, value_delimiter = ',')]
    feature: Vec<String>,
    /// Share of records used for training, in (0, 1) [default: 0.8].
    #[arg(long)]
    split: Option<f64>,
    /// Seed of the split and initialisation [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Iterations or epochs of iterative learners.
    #[arg(long)]
    max_iterations: Option<u32>,
    /// Step size of gradient-based learners.
    #[arg(long)]
    learning_rate: Option<f64>,
    /// A type-specific setting, NAME=VALUE (VALUE read as JSON when it is JSON): n_trees, max_depth, k, hidden_layers, missing_values, …. Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
}

impl TrainingFlags {
    /// The `training_config` object of the flags given.
    fn to_json(&self) -> anyhow::Result<Value> {
        let mut config = Map::new();
        if let Some(label) = &self.label {
            config.insert("label_column".into(), json!(label));
        }
        if !self.feature.is_empty() {
            config.insert("feature_columns".into(), json!(self.feature));
        }
        if let Some(split) = self.split {
            config.insert("train_test_split".into(), json!(split));
        }
        if let Some(seed) = self.seed {
            config.insert("random_seed".into(), json!(seed));
        }
        if let Some(n) = self.max_iterations {
            config.insert("max_iterations".into(), json!(n));
        }
        if let Some(rate) = self.learning_rate {
            config.insert("learning_rate".into(), json!(rate));
        }
        let mut hyperparameters = Map::new();
        for pair in &self.params {
            let Some((name, value)) = pair.split_once('=') else {
                bail!("--param {pair:?} is not NAME=VALUE");
            };
            let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
            hyperparameters.insert(name.trim().to_string(), value);
        }
        if !hyperparameters.is_empty() {
            config.insert("hyperparameters".into(), Value::Object(hyperparameters));
        }
        Ok(Value::Object(config))
    }
}

/// Where records come from, as flags.
#[derive(Debug, Args)]
struct InputFlags {
    /// A local CSV, JSON or NDJSON file of records (at most 10,000), sent inline.
    #[arg(long, conflicts_with = "storage")]
    records: Option<PathBuf>,
    /// A storage config of the model's project to read records from.
    #[arg(long)]
    storage: Option<String>,
    /// With --storage: a CIRQuery as JSON, e.g. '{"entity_type":"customers","filters":[…]}'.
    #[arg(long, requires = "storage")]
    query: Option<String>,
}

impl InputFlags {
    /// The `input` object.
    fn to_json(&self) -> anyhow::Result<Value> {
        match (&self.records, &self.storage) {
            (Some(path), None) => Ok(json!({"records": read_records(path)?})),
            (None, Some(storage)) => {
                let query = match &self.query {
                    Some(text) => serde_json::from_str(text)
                        .with_context(|| format!("--query {text:?} is not JSON"))?,
                    None => json!({}),
                };
                Ok(json!({"storage_id": storage, "query": query}))
            }
            _ => bail!("give the records: --records FILE, or --storage ID [--query JSON]"),
        }
    }
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Register a model (a draft until trained).
    Create {
        /// The project.
        #[arg(long)]
        project: String,
        /// Its name.
        #[arg(long)]
        name: String,
        /// decision_tree, random_forest, linear_regression, logistic_regression, neural_network or kmeans.
        #[arg(long = "type")]
        model_type: String,
        #[command(flatten)]
        training: TrainingFlags,
    },
    /// List models (of one project, or all).
    List {
        /// Only this project's.
        #[arg(long)]
        project: Option<String>,
    },
    /// Show one model.
    Get {
        /// Model id.
        id: String,
    },
    /// Rename a model or change its training config (flags given replace those settings).
    Update {
        /// Model id.
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        training: TrainingFlags,
    },
    /// Delete a model, its versions and their artifacts.
    Delete {
        /// Model id.
        id: String,
    },
    /// List a model's versions.
    Versions {
        /// Model id.
        id: String,
    },
    /// Train a model on records of storage configs.
    Train {
        /// Model id.
        id: String,
        /// A storage config to read from, comma-separated or repeated.
        #[arg(long = "storage", value_delimiter = ',', required = true)]
        storage: Vec<String>,
        /// A CIRQuery as JSON choosing the records.
        #[arg(long)]
        query: Option<String>,
        /// Most records read [default: 1000000].
        #[arg(long)]
        max_records: Option<u64>,
        /// 1..10 [default: 1].
        #[arg(long)]
        priority: Option<i64>,
        #[command(flatten)]
        training: TrainingFlags,
        /// Wait for the task to end; fails when it does not complete.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (0: wait forever).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// Run a model over records.
    Infer {
        /// Model id.
        id: String,
        #[command(flatten)]
        input: InputFlags,
        /// A storage config to write predictions to (needs --entity).
        #[arg(long, requires = "entity")]
        output_storage: Option<String>,
        /// The entity type predictions are stored as.
        #[arg(long, requires = "output_storage")]
        entity: Option<String>,
        /// The model version [default: the latest].
        #[arg(long = "model-version")]
        model_version: Option<u32>,
        /// Records per batch [default: 1000].
        #[arg(long)]
        batch_size: Option<u64>,
        /// 1..10 [default: 1].
        #[arg(long)]
        priority: Option<i64>,
        /// Wait for the task to end; fails when it does not complete.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (0: wait forever).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// Import an ONNX model (trained elsewhere) as a trained model.
    Import {
        /// The project.
        #[arg(long)]
        project: String,
        /// Its name.
        #[arg(long)]
        name: String,
        /// The .onnx file.
        #[arg(long)]
        file: PathBuf,
        /// The input attributes, comma-separated, in the order the model's input takes them.
        #[arg(long, value_delimiter = ',', required = true)]
        feature: Vec<String>,
    },
    /// Re-score a version on fresh labelled records; a drop beyond the threshold marks the model degraded.
    Evaluate {
        /// Model id.
        id: String,
        #[command(flatten)]
        input: InputFlags,
        /// The model version [default: the latest].
        #[arg(long = "model-version")]
        model_version: Option<u32>,
        /// The drop of accuracy (or r²) that degrades [default: 0.05].
        #[arg(long)]
        threshold: Option<f64>,
    },
}

/// Runs a `model` subcommand.
pub async fn run(args: ModelArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    let format = args.remote.output;
    match args.command {
        ModelCommand::Create {
            project,
            name,
            model_type,
            training,
        } => {
            let body = json!({"project_id": project, "name": name, "type": model_type,
                              "training_config": training.to_json()?});
            let model: MlModel = client
                .call(Method::POST, "/api/ml-models", Some(&body))
                .await?;
            print_model(&model, format)?;
        }
        ModelCommand::List { project } => {
            let path = match project {
                Some(project) => format!("/api/ml-models?project_id={}", encode(&project)),
                None => "/api/ml-models".to_string(),
            };
            let answer: Value = client.call(Method::GET, &path, None).await?;
            if format == OutputFormat::Json {
                return output::json(&answer).map(|()| ExitCode::SUCCESS);
            }
            let models: Vec<MlModel> =
                serde_json::from_value(answer.get("models").cloned().unwrap_or_default())
                    .context("the orchestrator answered an unexpected model list")?;
            if models.is_empty() {
                output::nothing("no models");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
            t.set_header([
                "ID", "PROJECT", "NAME", "TYPE", "STATUS", "VERSION", "QUALITY", "UPDATED",
            ]);
            for m in models {
                t.add_row([
                    m.id.clone(),
                    m.project_id.clone(),
                    m.name.clone(),
                    m.model_type.to_string(),
                    m.status.to_string(),
                    m.versions
                        .last()
                        .map_or("-".to_string(), |v| v.version.to_string()),
                    quality(&m),
                    m.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                ]);
            }
            println!("{t}");
        }
        ModelCommand::Get { id } => {
            let model = get_model(&client, &id).await?;
            print_model(&model, format)?;
        }
        ModelCommand::Update { id, name, training } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            let changes = training.to_json()?;
            if changes.as_object().is_some_and(|c| !c.is_empty()) {
                // The flags change the stored config; the rest of it stays.
                let current = get_model(&client, &id).await?;
                let mut config = serde_json::to_value(&current.training_config)?;
                if let (Some(config), Some(changes)) = (config.as_object_mut(), changes.as_object())
                {
                    for (k, v) in changes {
                        if k == "hyperparameters"
                            && let (Some(Value::Object(old)), Value::Object(new)) =
                                (config.get_mut(k), v)
                        {
                            old.extend(new.clone());
                            continue;
                        }
                        config.insert(k.clone(), v.clone());
                    }
                }
                body.insert("training_config".into(), config);
            }
            if body.is_empty() {
                bail!("nothing to change: give --name or a training flag");
            }
            let model: MlModel = client
                .call(Method::PUT, &model_path(&id), Some(&Value::Object(body)))
                .await?;
            print_model(&model, format)?;
        }
        ModelCommand::Delete { id } => {
            client.call_empty(Method::DELETE, &model_path(&id)).await?;
            match format {
                OutputFormat::Json => output::json(&json!({ "deleted": id }))?,
                OutputFormat::Table => println!("deleted model {id}"),
            }
        }
        ModelCommand::Versions { id } => {
            let model = get_model(&client, &id).await?;
            if format == OutputFormat::Json {
                return output::json(&json!({"versions": model.versions}))
                    .map(|()| ExitCode::SUCCESS);
            }
            if model.versions.is_empty() {
                output::nothing("no versions: train the model first");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
            t.set_header(["VERSION", "CREATED", "QUALITY", "SIZE", "TASK", "CHECKSUM"]);
            for v in &model.versions {
                t.add_row([
                    v.version.to_string(),
                    v.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    headline(&v.performance_metrics),
                    format!("{} B", v.size_bytes),
                    v.training_task_id
                        .map_or("import".to_string(), |t| t.to_string()),
                    v.checksum.clone(),
                ]);
            }
            println!("{t}");
        }
        ModelCommand::Train {
            id,
            storage,
            query,
            max_records,
            priority,
            training,
            wait,
            timeout,
        } => {
            let mut body = json!({"model_id": id, "input_datasets": storage,
                                  "training_config": training.to_json()?});
            if let Some(text) = query {
                body["query"] = serde_json::from_str(&text)
                    .with_context(|| format!("--query {text:?} is not JSON"))?;
            }
            if let Some(n) = max_records {
                body["max_records"] = json!(n);
            }
            if let Some(p) = priority {
                body["priority"] = json!(p);
            }
            let task: WorkTask = client
                .call(Method::POST, "/api/ml-models/train", Some(&body))
                .await?;
            return follow(&client, task, wait, timeout, format).await;
        }
        ModelCommand::Infer {
            id,
            input,
            output_storage,
            entity,
            model_version,
            batch_size,
            priority,
            wait,
            timeout,
        } => {
            let mut body = json!({"input": input.to_json()?});
            if let (Some(storage), Some(entity)) = (output_storage, entity) {
                body["output"] = json!({"storage_id": storage, "entity_type": entity});
            }
            if let Some(v) = model_version {
                body["version"] = json!(v);
            }
            if let Some(n) = batch_size {
                body["batch_size"] = json!(n);
            }
            if let Some(p) = priority {
                body["priority"] = json!(p);
            }
            let path = format!("{}/infer", model_path(&id));
            let task: WorkTask = client.call(Method::POST, &path, Some(&body)).await?;
            return follow(&client, task, wait, timeout, format).await;
        }
        ModelCommand::Import {
            project,
            name,
            file,
            feature,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let body = json!({"project_id": project, "name": name, "format": "onnx",
                              "feature_columns": feature,
                              "artifact_base64": base64::engine::general_purpose::STANDARD.encode(bytes)});
            let model: MlModel = client
                .call(Method::POST, "/api/ml-models/import", Some(&body))
                .await?;
            print_model(&model, format)?;
        }
        ModelCommand::Evaluate {
            id,
            input,
            model_version,
            threshold,
        } => {
            let mut body = json!({"input": input.to_json()?});
            if let Some(v) = model_version {
                body["version"] = json!(v);
            }
            if let Some(t) = threshold {
                body["threshold"] = json!(t);
            }
            let path = format!("{}/evaluate", model_path(&id));
            let answer: Value = client.call(Method::POST, &path, Some(&body)).await?;
            let degraded = answer["degraded"].as_bool() == Some(true);
            match format {
                OutputFormat::Json => output::json(&answer)?,
                OutputFormat::Table => println!(
                    "model {id} version {}: {} {:.4} (was {:.4}, drop {:.4}){}",
                    answer["version"],
                    answer["metric"].as_str().unwrap_or("?"),
                    answer["current"].as_f64().unwrap_or(f64::NAN),
                    answer["baseline"].as_f64().unwrap_or(f64::NAN),
                    answer["drop"].as_f64().unwrap_or(f64::NAN),
                    if degraded { ": DEGRADED" } else { "" }
                ),
            }
            return Ok(if degraded {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn model_path(id: &str) -> String {
    format!("/api/ml-models/{}", encode(id))
}

async fn get_model(client: &Client, id: &str) -> anyhow::Result<MlModel> {
    Ok(client.call(Method::GET, &model_path(id), None).await?)
}

/// Prints the task, or waits for it as `task wait` does.
async fn follow(
    client: &Client,
    task: WorkTask,
    wait: bool,
    timeout: u64,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    if !wait {
        output::task(&task, format)?;
        return Ok(ExitCode::SUCCESS);
    }
    let args = WaitArgs {
        id: task.worktask_id,
        timeout,
        interval_ms: 250,
    };
    wait_for(client, args, format).await
}

/// Records of a local file, at most the API's inline limit.
fn read_records(path: &Path) -> anyhow::Result<Vec<Value>> {
    let Some(format) = RecordFormat::of(path) else {
        bail!(
            "cannot tell the format of {} from its name: use .csv, .json or .ndjson",
            path.display()
        );
    };
    let mut reader = RecordReader::open(path, format, false, Default::default())?;
    let records = reader.batch(MAX_INLINE_RECORDS + 1)?;
    if records.len() > MAX_INLINE_RECORDS {
        bail!(
            "{} holds more than {MAX_INLINE_RECORDS} records: store them in a storage config and use --storage",
            path.display()
        );
    }
    if records.is_empty() {
        bail!("{} holds no records", path.display());
    }
    Ok(records)
}

/// The headline figure, e.g. `accuracy 0.912`.
fn headline(metrics: &mimir_core::PerformanceMetrics) -> String {
    metrics.headline().map_or("-".to_string(), |(name, value)| {
        format!("{name} {value:.3}")
    })
}

/// The latest version's headline figure.
fn quality(model: &MlModel) -> String {
    model
        .versions
        .last()
        .map_or("-".to_string(), |v| headline(&v.performance_metrics))
}

fn print_model(model: &MlModel, format: OutputFormat) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        return output::json(model);
    }
    println!("{} ({})", model.name, model.id);
    println!("  project:  {}", model.project_id);
    println!("  type:     {}", model.model_type);
    match model.status_reason.as_str() {
        "" => println!("  status:   {}", model.status),
        reason => println!("  status:   {} ({reason})", model.status),
    }
    let config = &model.training_config;
    if !config.label_column.is_empty() {
        println!("  label:    {}", config.label_column);
    }
    if !config.feature_columns.is_empty() {
        println!("  features: {}", config.feature_columns.join(", "));
    }
    match model.versions.last() {
        Some(v) => println!(
            "  latest:   version {} ({}), {}",
            v.version,
            headline(&v.performance_metrics),
            v.checksum
        ),
        None => println!("  latest:   no version yet"),
    }
    if let Some(task) = model.training_task_id {
        println!("  training task: {task}");
    }
    Ok(())
}
