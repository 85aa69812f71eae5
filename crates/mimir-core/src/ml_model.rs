//! ML models in the registry: what a model is, how it is trained, how well
//! its versions score, and the rules of its status.
//!
//! A model is a name, a type and a training config; each training run adds
//! an immutable, checksummed version. Inference names a version or takes the
//! latest trained one. The artifact bytes live outside the metadata store
//! (the data dir, or an S3 storage config); a version records where, and the
//! checksum every reader verifies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use uuid::Uuid;

/// What kind of model it is: the algorithm trained, or an imported format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ModelType {
    /// A CART classification or regression tree.
    DecisionTree,
    /// Bagged trees with random feature subsets.
    RandomForest,
    /// Least-squares regression.
    LinearRegression,
    /// Binary or multinomial logistic classification.
    LogisticRegression,
    /// A small multi-layer perceptron.
    NeuralNetwork,
    /// K-means clustering (no label).
    Kmeans,
    /// A model imported as ONNX; it cannot be trained here.
    Onnx,
}

impl ModelType {
    /// Every model type, in the docs' order.
    pub const ALL: [ModelType; 7] = [
        ModelType::DecisionTree,
        ModelType::RandomForest,
        ModelType::LinearRegression,
        ModelType::LogisticRegression,
        ModelType::NeuralNetwork,
        ModelType::Kmeans,
        ModelType::Onnx,
    ];

    /// Its name in the API and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::DecisionTree => "decision_tree",
            ModelType::RandomForest => "random_forest",
            ModelType::LinearRegression => "linear_regression",
            ModelType::LogisticRegression => "logistic_regression",
            ModelType::NeuralNetwork => "neural_network",
            ModelType::Kmeans => "kmeans",
            ModelType::Onnx => "onnx",
        }
    }

    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<ModelType> {
        ModelType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether training it needs a label column.
    pub fn supervised(self) -> bool {
        !matches!(self, ModelType::Kmeans | ModelType::Onnx)
    }

    /// Whether it can be trained here (an imported model cannot).
    pub fn trainable(self) -> bool {
        self != ModelType::Onnx
    }
}

impl fmt::Display for ModelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a model is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// Registered, never trained.
    #[default]
    Draft,
    /// A training task is queued or running.
    Training,
    /// Its latest version is usable.
    Trained,
    /// Its last training failed (earlier versions stay usable).
    Failed,
    /// A quality check found its latest version scoring worse than when
    /// trained, beyond the threshold.
    Degraded,
    /// Kept for the record; refuses training and inference.
    Archived,
}

impl ModelStatus {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Draft => "draft",
            ModelStatus::Training => "training",
            ModelStatus::Trained => "trained",
            ModelStatus::Failed => "failed",
            ModelStatus::Degraded => "degraded",
            ModelStatus::Archived => "archived",
        }
    }

    /// The status named `name`, if any.
    pub fn parse(name: &str) -> Option<ModelStatus> {
        [
            ModelStatus::Draft,
            ModelStatus::Training,
            ModelStatus::Trained,
            ModelStatus::Failed,
            ModelStatus::Degraded,
            ModelStatus::Archived,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a model is trained. Unset fields take the defaults of
/// [`TrainingConfig::split`], [`TrainingConfig::seed`] and each learner (see
/// `mimir_ml::train`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Share of the records used for training (the rest is held out to
    /// evaluate), in (0, 1). Default 0.8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_test_split: Option<f64>,
    /// Seed of the split, sampling and initialisation: the same seed and data
    /// train the same model. Default 42.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
    /// Iterations (or epochs) of iterative learners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// Step size of gradient-based learners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// Mini-batch size of the neural network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Epochs without improvement before the network stops early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stopping_rounds: Option<u32>,
    /// Type-specific settings (`n_trees`, `max_depth`, `k`, `hidden_layers`,
    /// `missing_values`: `refuse` | `mean` | `zero`, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub hyperparameters: Map<String, Value>,
    /// The attribute to predict (supervised types).
    pub label_column: String,
    /// The attributes to learn from; empty = every attribute but the label
    /// and `id`.
    pub feature_columns: Vec<String>,
}

impl TrainingConfig {
    /// This config with `overrides`' set fields taking precedence.
    pub fn merged(&self, overrides: &TrainingConfig) -> TrainingConfig {
        let mut hyperparameters = self.hyperparameters.clone();
        for (k, v) in &overrides.hyperparameters {
            hyperparameters.insert(k.clone(), v.clone());
        }
        TrainingConfig {
            train_test_split: overrides.train_test_split.or(self.train_test_split),
            random_seed: overrides.random_seed.or(self.random_seed),
            max_iterations: overrides.max_iterations.or(self.max_iterations),
            learning_rate: overrides.learning_rate.or(self.learning_rate),
            batch_size: overrides.batch_size.or(self.batch_size),
            early_stopping_rounds: overrides
                .early_stopping_rounds
                .or(self.early_stopping_rounds),
            hyperparameters,
            label_column: if overrides.label_column.is_empty() {
                self.label_column.clone()
            } else {
                overrides.label_column.clone()
            },
            feature_columns: if overrides.feature_columns.is_empty() {
                self.feature_columns.clone()
            } else {
                overrides.feature_columns.clone()
            },
        }
    }

    /// The share used for training.
    pub fn split(&self) -> f64 {
        self.train_test_split.unwrap_or(0.8)
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.random_seed.unwrap_or(42)
    }

    /// Checks what can be checked without data; an error names the field
    /// (`training_config.…`).
    pub fn check(&self, model_type: ModelType) -> Result<(), String> {
        if let Some(split) = self.train_test_split
            && !(split > 0.0 && split < 1.0)
        {
            return Err(format!(
                "training_config.train_test_split must be between 0 and 1 (exclusive), not {split}"
            ));
        }
        if let Some(rate) = self.learning_rate
            && !(rate.is_finite() && rate > 0.0 && rate <= 10.0)
        {
            return Err(format!(
                "training_config.learning_rate must be in (0, 10], not {rate}"
            ));
        }
        if self.max_iterations == Some(0) {
            return Err("training_config.max_iterations must be at least 1".into());
        }
        if let Some(iterations) = self.max_iterations
            && iterations > 1_000_000
        {
            return Err("training_config.max_iterations may be at most 1000000".into());
        }
        if matches!(self.batch_size, Some(0)) {
            return Err("training_config.batch_size must be at least 1".into());
        }
        if model_type.supervised() && self.label_column.trim().is_empty() {
            return Err(format!(
                "training_config.label_column is required: a {model_type} learns to predict it"
            ));
        }
        if !self.label_column.is_empty() && self.feature_columns.contains(&self.label_column) {
            return Err(format!(
                "training_config.feature_columns must not include the label column {:?}",
                self.label_column
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for column in &self.feature_columns {
            if column.is_empty() || column.len() > 128 {
                return Err(
                    "training_config.feature_columns: names are 1 to 128 characters".into(),
                );
            }
            if !seen.insert(column) {
                return Err(format!(
                    "training_config.feature_columns names {column:?} twice"
                ));
            }
        }
        if self.feature_columns.len() > 10_000 {
            return Err("training_config.feature_columns may name at most 10000 columns".into());
        }
        Ok(())
    }
}

/// How well a version scores on held-out data. Classification fills
/// accuracy, precision, recall, f1 and the confusion matrix; regression rmse,
/// mae and r²; clustering none of them (its inertia is in `extra`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct PerformanceMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Macro-averaged over classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Macro-averaged over classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Macro-averaged over classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r2_score: Option<f64>,
    /// Rows are true classes, columns predicted ones, in `classes` order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub confusion_matrix: Vec<Vec<u64>>,
    /// The classes, in the confusion matrix's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Importance by feature column (sums to 1 when known).
    #[serde(skip_serializing_if = "Map::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub feature_importance: Map<String, Value>,
    /// Records in the training and held-out splits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_rows: Option<u64>,
    /// Other figures by name (e.g. `inertia`).
    #[serde(skip_serializing_if = "Map::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub extra: Map<String, Value>,
}

impl PerformanceMetrics {
    /// The headline figure and its name: accuracy for classifiers, r² for
    /// regressors; what a quality check compares.
    pub fn headline(&self) -> Option<(&'static str, f64)> {
        self.accuracy
            .map(|a| ("accuracy", a))
            .or(self.r2_score.map(|r| ("r2_score", r)))
    }

    /// The figures as `(name, value)` pairs, for the quality gauge.
    pub fn figures(&self) -> Vec<(&'static str, f64)> {
        [
            ("accuracy", self.accuracy),
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1_score", self.f1_score),
            ("rmse", self.rmse),
            ("mae", self.mae),
            ("r2_score", self.r2_score),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
    }
}

/// One immutable version of a model: an artifact and what it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelVersion {
    /// 1, 2, … in the order they were made.
    pub version: u32,
    /// `sha256:<hex>` of the artifact bytes; every reader verifies it.
    pub checksum: String,
    /// Artifact size in bytes.
    pub size_bytes: u64,
    /// Where the artifact is: `data` (the orchestrator's data dir) or the id
    /// of an S3 storage config.
    pub artifact_store: String,
    /// The features an input must have, in the order the model takes them.
    pub feature_columns: Vec<String>,
    /// The label it predicts ("" for clustering and imports).
    #[serde(default)]
    pub label_column: String,
    /// Held-out scores when trained.
    pub performance_metrics: PerformanceMetrics,
    /// The training config it was trained with (empty for imports).
    pub training_config: TrainingConfig,
    /// The task that trained it (none for imports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_task_id: Option<Uuid>,
    /// How long training took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_duration_ms: Option<u64>,
    pub created_at: DateTime<Utc>,
}

/// A model in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MlModel {
    pub id: String,
    pub project_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub model_type: ModelType,
    pub status: ModelStatus,
    /// Why the last training or quality check failed or degraded it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_reason: String,
    pub training_config: TrainingConfig,
    /// The latest version's scores (empty before the first training).
    pub performance_metrics: PerformanceMetrics,
    /// Every version, oldest first.
    pub versions: Vec<ModelVersion>,
    /// The task training it now, or that last trained it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_task_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl MlModel {
    /// The version `number`, or the latest when `None`.
    pub fn version(&self, number: Option<u32>) -> Option<&ModelVersion> {
        match number {
            Some(n) => self.versions.iter().find(|v| v.version == n),
            None => self.versions.last(),
        }
    }
}

/// A change of a model's status or versions, as the registry applies it:
/// the one place the status rules live, whatever the store.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelChange {
    /// A training task was submitted. Refused while another trains, or when
    /// the model is archived or imported.
    StartTraining { task_id: Uuid },
    /// The training task `task_id` never got going (its submission failed):
    /// back to the status before.
    AbandonTraining {
        task_id: Uuid,
        previous: ModelStatus,
    },
    /// A version was made. Its number is the next one; the model becomes
    /// `trained` with its scores.
    AddVersion { version: Box<ModelVersion> },
    /// Training by `task_id` failed for good. Ignored when another training
    /// has started since.
    TrainingFailed { task_id: Uuid, reason: String },
    /// A quality check scored the latest version `reason`-ably worse.
    Degrade { reason: String },
    /// A quality check found the latest version fine again.
    Restore,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelChangeRefused(pub String);

impl MlModel {
    /// Applies `change` at `at`, or refuses it and leaves the model as it was.
    pub fn apply(
        &mut self,
        change: ModelChange,
        at: DateTime<Utc>,
    ) -> Result<(), ModelChangeRefused> {
        match change {
            ModelChange::StartTraining { task_id } => {
                if !self.model_type.trainable() {
                    return Err(ModelChangeRefused(format!(
                        "model {} is an imported {} model: it cannot be trained here",
                        self.id, self.model_type
                    )));
                }
                match self.status {
                    ModelStatus::Training => {
                        return Err(ModelChangeRefused(format!(
                            "model {} is already training (task {})",
                            self.id,
                            self.training_task_id
                                .map(|t| t.to_string())
                                .unwrap_or_default()
                        )));
                    }
                    ModelStatus::Archived => {
                        return Err(ModelChangeRefused(format!(
                            "model {} is archived: it cannot be trained",
                            self.id
                        )));
                    }
                    _ => {}
                }
                self.status = ModelStatus::Training;
                self.status_reason.clear();
                self.training_task_id = Some(task_id);
            }
            ModelChange::AbandonTraining { task_id, previous } => {
                if self.training_task_id == Some(task_id) && self.status == ModelStatus::Training {
                    self.status = previous;
                }
            }
            ModelChange::AddVersion { version } => {
                let mut version = *version;
                if self.status == ModelStatus::Archived {
                    return Err(ModelChangeRefused(format!(
                        "model {} is archived: it takes no new version",
                        self.id
                    )));
                }
                if self.versions.len() >= MAX_VERSIONS {
                    return Err(ModelChangeRefused(format!(
                        "model {} has {MAX_VERSIONS} versions, the most a model keeps",
                        self.id
                    )));
                }
                version.version = self.versions.last().map_or(1, |v| v.version + 1);
                version.created_at = at;
                self.performance_metrics = version.performance_metrics.clone();
                self.status = ModelStatus::Trained;
                self.status_reason.clear();
                if version.training_task_id.is_some() {
                    self.training_task_id = version.training_task_id;
                }
                self.versions.push(version);
            }
            ModelChange::TrainingFailed { task_id, reason } => {
                if self.training_task_id != Some(task_id) || self.status != ModelStatus::Training {
                    return Ok(());
                }
                self.status = ModelStatus::Failed;
                self.status_reason = reason;
            }
            ModelChange::Degrade { reason } => {
                if !matches!(self.status, ModelStatus::Trained | ModelStatus::Degraded) {
                    return Err(ModelChangeRefused(format!(
                        "model {} is {}: only a trained model can degrade",
                        self.id, self.status
                    )));
                }
                self.status = ModelStatus::Degraded;
                self.status_reason = reason;
            }
            ModelChange::Restore => {
                if self.status == ModelStatus::Degraded {
                    self.status = ModelStatus::Trained;
                    self.status_reason.clear();
                }
            }
        }
        self.updated_at = at;
        Ok(())
    }
}

/// The most versions one model keeps.
pub const MAX_VERSIONS: usize = 10_000;

/// Checks a model name: 1 to 128 characters, no control characters.
pub fn check_model_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > 128 {
        return Err("name must be 1 to 128 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_types_round_trip_by_name() {
        for t in ModelType::ALL {
            assert_eq!(ModelType::parse(t.as_str()), Some(t));
            let json = serde_json::to_value(t).unwrap();
            assert_eq!(json, t.as_str());
        }
        assert_eq!(ModelType::parse("svm"), None);
    }

    #[test]
    fn overrides_win_and_hyperparameters_merge() {
        let mut base = TrainingConfig {
            label_column: "y".into(),
            random_seed: Some(1),
            ..Default::default()
        };
        base.hyperparameters.insert("n_trees".into(), 10.into());
        base.hyperparameters.insert("max_depth".into(), 5.into());
        let mut over = TrainingConfig {
            random_seed: Some(7),
            ..Default::default()
        };
        over.hyperparameters.insert("n_trees".into(), 100.into());
        let merged = base.merged(&over);
        assert_eq!(merged.seed(), 7);
        assert_eq!(merged.label_column, "y");
        assert_eq!(merged.hyperparameters["n_trees"], 100);
        assert_eq!(merged.hyperparameters["max_depth"], 5);
    }

    fn model() -> MlModel {
        let now = Utc::now();
        MlModel {
            id: "m".into(),
            project_id: "p".into(),
            name: "m".into(),
            model_type: ModelType::RandomForest,
            status: ModelStatus::Draft,
            status_reason: String::new(),
            training_config: TrainingConfig::default(),
            performance_metrics: PerformanceMetrics::default(),
            versions: Vec::new(),
            training_task_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn version() -> ModelVersion {
        ModelVersion {
            version: 0,
            checksum: "sha256:00".into(),
            size_bytes: 1,
            artifact_store: "data".into(),
            feature_columns: vec!["a".into()],
            label_column: "y".into(),
            performance_metrics: PerformanceMetrics {
                accuracy: Some(0.9),
                ..Default::default()
            },
            training_config: TrainingConfig::default(),
            training_task_id: None,
            training_duration_ms: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_second_training_is_refused_while_one_runs() {
        let mut m = model();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        m.apply(ModelChange::StartTraining { task_id: a }, Utc::now())
            .unwrap();
        let before = m.clone();
        assert!(
            m.apply(ModelChange::StartTraining { task_id: b }, Utc::now())
                .is_err()
        );
        assert_eq!(m, before);
    }

    #[test]
    fn versions_number_up_and_a_stale_failure_is_ignored() {
        let mut m = model();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        m.apply(ModelChange::StartTraining { task_id: a }, Utc::now())
            .unwrap();
        m.apply(
            ModelChange::AddVersion {
                version: Box::new(version()),
            },
            Utc::now(),
        )
        .unwrap();
        m.apply(ModelChange::StartTraining { task_id: b }, Utc::now())
            .unwrap();
        m.apply(
            ModelChange::AddVersion {
                version: Box::new(version()),
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            m.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(m.status, ModelStatus::Trained);
        assert_eq!(m.performance_metrics.accuracy, Some(0.9));
        m.apply(
            ModelChange::TrainingFailed {
                task_id: a,
                reason: "x".into(),
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(m.status, ModelStatus::Trained);
        m.apply(
            ModelChange::Degrade {
                reason: "accuracy fell".into(),
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(m.status, ModelStatus::Degraded);
        m.apply(ModelChange::Restore, Utc::now()).unwrap();
        assert_eq!(m.status, ModelStatus::Trained);
    }

    #[test]
    fn checks_name_the_field() {
        let config = TrainingConfig {
            train_test_split: Some(1.0),
            ..Default::default()
        };
        assert!(
            config
                .check(ModelType::Kmeans)
                .unwrap_err()
                .contains("train_test_split")
        );
        let config = TrainingConfig::default();
        assert!(
            config
                .check(ModelType::RandomForest)
                .unwrap_err()
                .contains("label_column")
        );
        assert!(config.check(ModelType::Kmeans).is_ok());
        let config = TrainingConfig {
            label_column: "y".into(),
            feature_columns: vec!["a".into(), "y".into()],
            ..Default::default()
        };
        assert!(
            config
                .check(ModelType::DecisionTree)
                .unwrap_err()
                .contains("label")
        );
    }
}
