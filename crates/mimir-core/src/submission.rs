//! A work task submission as it arrives on the wire, and its validation.
//!
//! Parsing (malformed JSON, unknown fields, wrong JSON types) is the caller's
//! concern; [`Submission::validate`] checks the values and fills the defaults, and
//! every refusal names the field so users can fix their request.

use crate::Priority;
use crate::task::{DataAccess, ResourceRequirements, TaskSpec, WorkTaskType};
use serde::Deserialize;

/// Largest `max_retries` a submission may ask for; more is a mistake, not a policy.
pub const MAX_RETRIES_LIMIT: i64 = 100;

/// Longest `task_spec.timeout_ms`: 30 days. A task meant to run longer
/// sets none.
pub const MAX_TIMEOUT_MS: u64 = 30 * 24 * 3600 * 1000;

/// Longest `project_id`, in bytes.
pub const PROJECT_ID_MAX_LEN: usize = crate::LABEL_MAX_LEN;

/// The body of `POST /api/worktasks`, and one entry of a batch.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// `pipeline_execution`, `ml_training` or `ml_inference`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::WorkTaskType, required = true))]
    pub task_type: Option<String>,
    /// 1..10; defaults to 1.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10))]
    pub priority: Option<i64>,
    /// Required: the project the task belongs to.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, required = true, min_length = 1, max_length = 256, pattern = r"^[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")
    )]
    pub project_id: Option<String>,
    /// What to run.
    pub task_spec: Option<TaskSpec>,
    /// Resources; each empty field takes the type's default.
    pub resource_requirements: Option<ResourceRequirements>,
    /// Data the task touches.
    pub data_access: Option<DataAccess>,
    /// Retries allowed; defaults by type (2 for `ml_training`, 3 otherwise).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub max_retries: Option<i64>,
}

/// A submission whose values were checked, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The kind of work.
    pub task_type: WorkTaskType,
    /// Its priority.
    pub priority: Priority,
    /// Its project.
    pub project_id: String,
    /// What to run.
    pub task_spec: TaskSpec,
    /// Resources, never empty.
    pub resource_requirements: ResourceRequirements,
    /// Data it touches.
    pub data_access: DataAccess,
    /// Retries allowed.
    pub max_retries: u32,
}

/// A refused value: which field, why, and a stable code for programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Stable snake_case code, e.g. `invalid_priority`.
    pub code: &'static str,
    /// The JSON path of the field, e.g. `priority` or `task_spec.parameters`.
    pub field: String,
    /// A sentence for people.
    pub message: String,
}

impl ValidationError {
    /// An error of `field`.
    pub fn new(code: &'static str, field: &str, message: impl Into<String>) -> ValidationError {
        ValidationError {
            code,
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The same error with its field placed under `prefix` (e.g. `worktasks[3]`).
    pub fn within(mut self, prefix: &str) -> ValidationError {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl Submission {
    /// Checks every value and fills defaults.
    pub fn validate(self) -> Result<NewTask, ValidationError> {
        let task_type = match self.task_type.as_deref() {
            None => {
                return Err(ValidationError::new(
                    "missing_field",
                    "type",
                    "type is required",
                ));
            }
            Some(name) => name
                .parse::<WorkTaskType>()
                .map_err(|message| ValidationError::new("invalid_type", "type", message))?,
        };
        let priority = match self.priority {
            None => Priority::default(),
            Some(value) => Priority::new(value).ok_or_else(|| {
                ValidationError::new(
                    "invalid_priority",
                    "priority",
                    format!("priority must be between 1 and 10, got {value}"),
                )
            })?,
        };
        let project_id = self.project_id.unwrap_or_default();
        crate::check_label("project_id", &project_id)?;
        let max_retries = match self.max_retries {
            None => task_type.default_max_retries(),
            Some(n) if (0..=MAX_RETRIES_LIMIT).contains(&n) => n as u32,
            Some(n) => {
                return Err(ValidationError::new(
                    "invalid_max_retries",
                    "max_retries",
                    format!("max_retries must be between 0 and {MAX_RETRIES_LIMIT}, got {n}"),
                ));
            }
        };
        let mut task_spec = self.task_spec.unwrap_or_default();
        if let Some(ms) = task_spec.timeout_ms
            && !(1..=MAX_TIMEOUT_MS).contains(&ms)
        {
            return Err(ValidationError::new(
                "invalid_value",
                "task_spec.timeout_ms",
                format!("task_spec.timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, got {ms}"),
            ));
        }
        // Every type runs a pipeline (ML tasks the one that trains or serves
        // their model): without one the task could only fail, after its retries.
        crate::check_label("task_spec.pipeline_id", &task_spec.pipeline_id).map_err(|e| {
            if e.code == "missing_field" {
                ValidationError::new(
                    "missing_field",
                    "task_spec.pipeline_id",
                    format!(
                        "a {task_type} task names the pipeline it runs in task_spec.pipeline_id"
                    ),
                )
            } else {
                e
            }
        })?;
        crate::check_optional_label("task_spec.model_id", &task_spec.model_id)?;
        crate::check_optional_label("task_spec.project_id", &task_spec.project_id)?;
        crate::check_optional_label("task_spec.preferred_cluster", &task_spec.preferred_cluster)?;
        if task_spec.project_id.is_empty() {
            task_spec.project_id = project_id.clone();
        }
        let defaults = task_type.default_resources();
        let mut resources = self.resource_requirements.unwrap_or_default();
        if resources.cpu.is_empty() {
            resources.cpu = defaults.cpu;
        } else if !is_cpu_quantity(&resources.cpu) {
            return Err(ValidationError::new(
                "invalid_quantity",
                "resource_requirements.cpu",
                format!(
                    "{:?} is not a CPU quantity such as \"500m\" or \"2\"",
                    resources.cpu
                ),
            ));
        }
        if resources.memory.is_empty() {
            resources.memory = defaults.memory;
        } else if !is_memory_quantity(&resources.memory) {
            return Err(ValidationError::new(
                "invalid_quantity",
                "resource_requirements.memory",
                format!(
                    "{:?} is not a memory quantity such as \"512Mi\" or \"2Gi\"",
                    resources.memory
                ),
            ));
        }
        Ok(NewTask {
            task_type,
            priority,
            project_id,
            task_spec,
            resource_requirements: resources,
            data_access: self.data_access.unwrap_or_default(),
            max_retries,
        })
    }
}

/// A positive decimal number, as Kubernetes quantities start.
fn split_number(s: &str) -> Option<(&str, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(end);
    let valid = !number.is_empty()
        && number.matches('.').count() <= 1
        && !number.starts_with('.')
        && !number.ends_with('.');
    valid.then_some((number, suffix))
}

fn is_cpu_quantity(s: &str) -> bool {
    cpu_millis(s).is_some()
}

/// The millicores a Kubernetes CPU quantity (`"500m"`, `"2"`, `"1.5"`)
/// stands for; `None` when it is not one.
pub fn cpu_millis(quantity: &str) -> Option<u64> {
    let (number, suffix) = split_number(quantity)?;
    let value: f64 = number.parse().ok()?;
    let millis = match suffix {
        "" => value * 1000.0,
        "m" => value,
        _ => return None,
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (millis.is_finite() && millis <= u64::MAX as f64).then_some(millis.round() as u64)
}

fn is_memory_quantity(s: &str) -> bool {
    memory_bytes(s).is_some()
}

/// The bytes a Kubernetes memory quantity (`"512Mi"`, `"2Gi"`, `"1.5G"`,
/// `"1000"`) stands for; `None` when it is not one.
pub fn memory_bytes(quantity: &str) -> Option<u64> {
    let (number, suffix) = split_number(quantity)?;
    let unit: u64 = match suffix {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let bytes = value * unit as f64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (bytes.is_finite() && bytes <= u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(json: &str) -> Submission {
        serde_json::from_str(json).expect("test JSON parses")
    }

    #[test]
    fn the_seed_example_is_accepted_with_defaults() {
        let task = submission(
            r#"{"type":"pipeline_execution","project_id":"p1","priority":10,"max_retries":3,"task_spec":{"pipeline_id":"etl"}}"#,
        )
        .validate()
        .expect("valid");
        assert_eq!(task.priority.get(), 10);
        assert_eq!(task.max_retries, 3);
        assert_eq!(task.task_spec.project_id, "p1");
        assert_eq!(task.resource_requirements.cpu, "500m");
        assert_eq!(task.resource_requirements.memory, "1Gi");
    }

    #[test]
    fn defaults_follow_the_type() {
        let task = submission(
            r#"{"type":"ml_training","project_id":"p","task_spec":{"pipeline_id":"t"}}"#,
        )
        .validate()
        .expect("valid");
        assert_eq!(task.priority.get(), 1);
        assert_eq!(task.max_retries, 2);
        assert_eq!(task.resource_requirements.memory, "8Gi");
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases = [
            (r#"{"project_id":"p"}"#, "type", "missing_field"),
            (
                r#"{"type":"nope","project_id":"p"}"#,
                "type",
                "invalid_type",
            ),
            (
                r#"{"type":"ml_inference","project_id":"p","priority":0}"#,
                "priority",
                "invalid_priority",
            ),
            (
                r#"{"type":"ml_inference","project_id":"p","priority":11}"#,
                "priority",
                "invalid_priority",
            ),
            (r#"{"type":"ml_inference"}"#, "project_id", "missing_field"),
            (
                r#"{"type":"pipeline_execution","project_id":"p"}"#,
                "task_spec.pipeline_id",
                "missing_field",
            ),
            (
                r#"{"type":"ml_training","project_id":"p","task_spec":{"model_id":"m"}}"#,
                "task_spec.pipeline_id",
                "missing_field",
            ),
            (
                r#"{"type":"ml_inference","project_id":"p\u001b[2J"}"#,
                "project_id",
                "invalid_value",
            ),
            (
                r#"{"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"a\nb"}}"#,
                "task_spec.pipeline_id",
                "invalid_value",
            ),
            (
                r#"{"type":"ml_inference","project_id":"  "}"#,
                "project_id",
                "missing_field",
            ),
            (
                r#"{"type":"ml_inference","project_id":"p","max_retries":-1}"#,
                "max_retries",
                "invalid_max_retries",
            ),
            (
                r#"{"type":"ml_inference","project_id":"p","max_retries":1000000}"#,
                "max_retries",
                "invalid_max_retries",
            ),
            (
                r#"{"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"i"},"resource_requirements":{"cpu":"lots"}}"#,
                "resource_requirements.cpu",
                "invalid_quantity",
            ),
            (
                r#"{"type":"ml_inference","project_id":"p","task_spec":{"pipeline_id":"i"},"resource_requirements":{"memory":"1.Gi"}}"#,
                "resource_requirements.memory",
                "invalid_quantity",
            ),
        ];
        for (json, field, code) in cases {
            let err = submission(json).validate().expect_err(json);
            assert_eq!((err.field.as_str(), err.code), (field, code), "{json}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_parsing() {
        let err = serde_json::from_str::<Submission>(r#"{"type":"ml_training","prority":3}"#)
            .expect_err("misspelled field");
        assert!(err.to_string().contains("prority"), "{err}");
    }

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "0.5", "2.25"] {
            assert!(is_cpu_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "1.2.3", ".5", "5Gi", "-1"] {
            assert!(!is_cpu_quantity(bad), "{bad}");
        }
        for ok in ["1Gi", "512Mi", "1000", "1.5G"] {
            assert!(is_memory_quantity(ok), "{ok}");
        }
        assert_eq!(memory_bytes("1Gi"), Some(1 << 30));
        assert_eq!(memory_bytes("512Mi"), Some(512 << 20));
        assert_eq!(memory_bytes("1.5G"), Some(1_500_000_000));
        assert_eq!(memory_bytes("1000"), Some(1000));
        assert_eq!(memory_bytes("1GB"), None);
        for bad in ["Gi", "1GB", "1 Gi"] {
            assert!(!is_memory_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn batch_prefixes_the_field() {
        let err = ValidationError::new("invalid_priority", "priority", "x").within("worktasks[3]");
        assert_eq!(err.field, "worktasks[3].priority");
    }
}
