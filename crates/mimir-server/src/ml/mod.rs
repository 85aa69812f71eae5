//! What the orchestrator does for ML models beyond the API: keeps their
//! artifacts ([`artifacts`]) and follows the ends of their tasks
//! ([`task_ends`]) to update the registry and the inference metrics.

pub mod artifacts;
pub mod task_ends;

pub use artifacts::{ArtifactError, ArtifactStore};
pub use task_ends::MlTaskEnds;

/// Defaults to 512 MiB: the largest model artifact accepted.
pub const DEFAULT_MAX_ARTIFACT_BYTES: usize = 512 * 1024 * 1024;
