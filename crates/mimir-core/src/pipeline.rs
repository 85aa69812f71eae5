//! Projects and pipeline definitions as stored and served.
//!
//! The store keeps a pipeline's steps as JSON; the pipeline engine owns their
//! meaning and validates them before they are stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a pipeline is for (the seed's three kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PipelineType {
    /// Brings data in.
    Ingestion,
    /// Transforms data.
    #[default]
    Processing,
    /// Sends data out.
    Output,
}

impl PipelineType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineType::Ingestion => "ingestion",
            PipelineType::Processing => "processing",
            PipelineType::Output => "output",
        }
    }
}

impl fmt::Display for PipelineType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PipelineType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ingestion" => Ok(PipelineType::Ingestion),
            "processing" => Ok(PipelineType::Processing),
            "output" => Ok(PipelineType::Output),
            _ => Err(format!(
                "unknown pipeline type {s:?}; expected ingestion, processing or output"
            )),
        }
    }
}

/// A pipeline: named, ordered plugin steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pipeline {
    /// Its id (a UUID).
    pub id: String,
    /// The project it belongs to.
    pub project_id: String,
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(rename = "type")]
    pub pipeline_type: PipelineType,
    /// What it does, for people.
    pub description: String,
    /// The steps, `{name, plugin, action, parameters, output}` each.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub steps: Vec<serde_json::Value>,
    /// The timeout of every step that sets no `timeout_ms` of its own, in
    /// milliseconds. Defaults to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_ms: Option<u64>,
    /// What may start it besides schedules.
    #[serde(default)]
    pub trigger_config: TriggerConfig,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// What may start a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TriggerConfig {
    /// Whether users may run it with `POST /api/pipelines/{id}/execute` or a
    /// task naming it; defaults to true.
    pub allow_manual: bool,
    /// Its webhook, `POST /api/pipelines/{id}/webhook`.
    pub webhook: WebhookTrigger,
    /// The schedules that fire it; served, never stored (schedules name
    /// their pipelines).
    pub schedule_ids: Vec<String>,
}

impl Default for TriggerConfig {
    fn default() -> TriggerConfig {
        TriggerConfig {
            allow_manual: true,
            webhook: WebhookTrigger::default(),
            schedule_ids: Vec::new(),
        }
    }
}

/// A pipeline's webhook trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct WebhookTrigger {
    /// Whether the webhook starts runs.
    pub enabled: bool,
    /// The HMAC-SHA256 key requests are signed with. Stored apart from the
    /// rest of the pipeline and never serialized: the API shows it once,
    /// when it makes one up.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub secret: Option<String>,
}

/// A project: a name and description for a `project_id` tasks and pipelines share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is, for people.
    pub description: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// A project as listed: every `project_id` tasks or pipelines use is one,
/// registered or not, with how much uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectListing {
    /// The project: for one never registered, an empty name and description
    /// and, as `created_at`, when a task or pipeline first used it.
    #[serde(flatten)]
    pub project: Project,
    /// Whether it was registered through `/api/projects`.
    pub registered: bool,
    /// Tasks of the project.
    pub tasks: u64,
    /// Pipelines of the project.
    pub pipelines: u64,
}
