//! Domain types and pure rules of Mimir AIP.
//!
//! Nothing here does I/O: the work task model and its JSON contract, the status
//! machine, priorities, retry backoff and the in-memory queue order. The store and
//! the server build on these rules; the rules are property-tested here.

pub mod attempt;
pub mod autoscale;
pub mod duration_text;
pub mod error_class;
pub mod event;
pub mod explain;
pub mod label;
pub mod lifecycle;
pub mod ml_model;
pub mod per_type;
pub mod pipeline;
pub mod priority;
pub mod queue;
pub mod report;
pub mod retry;
pub mod schedule;
pub mod sizing;
pub mod status;
pub mod status_filter;
pub mod storage_config;
pub mod storage_operation;
pub mod submission;
pub mod task;

pub use attempt::{Attempt, AttemptEnd};
pub use duration_text::{duration_text, millis_text};
pub use error_class::ErrorClass;
pub use event::{TaskEvent, TaskEventKind};
pub use explain::{Reason, ReasonCode};
pub use label::{LABEL_MAX_LEN, LABEL_PATTERN, check_label, check_optional_label};
pub use ml_model::{
    MAX_VERSIONS, MlModel, ModelChange, ModelChangeRefused, ModelStatus, ModelType, ModelVersion,
    PerformanceMetrics, TrainingConfig, check_model_name,
};
pub use per_type::PerType;
pub use pipeline::{
    Pipeline, PipelineType, Project, ProjectListing, TriggerConfig, WebhookTrigger,
};
pub use priority::Priority;
pub use queue::{Aging, QueueEntry, QueueIndex};
pub use report::{AttemptOutcome, WorkTaskResult};
pub use retry::{RetryDecision, RetryPolicy};
pub use schedule::{Cadence, CatchUp, FireOutcome, Overlap, Schedule, ScheduleError};
pub use status::{InvalidTransition, WorkTaskStatus};
pub use status_filter::{STATUS_GROUPS, StatusFilter};
pub use storage_config::{ConnectionSettings, PluginType, REDACTED, StorageConfig};
pub use storage_operation::{
    Operation as StorageOperation, OperationEvent as StorageOperationEvent,
};
pub use submission::{Submission, ValidationError, memory_bytes};
pub use task::{DataAccess, ResourceRequirements, TaskSpec, WorkTask, WorkTaskType};
