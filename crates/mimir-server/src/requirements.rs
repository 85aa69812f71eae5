//! What a pipeline needs from its executions, cached so that checking a
//! submission costs no store round trip once its pipeline has been seen.
//!
//! A submission naming a pipeline is refused when the pipeline does not exist
//! or when it references `$.params.x` and the submission passes no `x`: such
//! a task could only fail, after its retries. The cache holds the parameter
//! names each existing pipeline reads; it is filled on first use, dropped for
//! a pipeline when it is replaced or deleted, and never holds an id that was
//! not found, so unknown ids cannot grow it.

use mimir_store::{Store, StoreError};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Defaults to 10,000: pipelines whose requirements are kept; past it the
/// cache starts over (a cold entry costs one store read).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// What one pipeline needs from a run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Needs {
    /// The `$.params.*` keys it reads.
    pub params: Vec<String>,
    /// Whether users may start it by hand (`trigger_config.allow_manual`).
    pub allow_manual: bool,
}

/// What each known pipeline needs.
#[derive(Debug)]
pub struct PipelineRequirements {
    cache: RwLock<HashMap<String, Arc<Needs>>>,
    capacity: usize,
    /// Bumped by every [`PipelineRequirements::forget`]: a definition read
    /// before a change is not cached after it.
    generation: AtomicU64,
}

impl Default for PipelineRequirements {
    fn default() -> Self {
        PipelineRequirements {
            cache: RwLock::default(),
            capacity: DEFAULT_CAPACITY,
            generation: AtomicU64::new(0),
        }
    }
}

impl PipelineRequirements {
    /// What pipeline `id` needs, or `None` when there is no such pipeline.
    pub async fn of(&self, store: &dyn Store, id: &str) -> Result<Option<Arc<Needs>>, StoreError> {
        if let Some(params) = self.cache.read().get(id) {
            return Ok(Some(params.clone()));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(pipeline) = store.get_pipeline(id).await? else {
            return Ok(None);
        };
        // Stored definitions were validated; one that no longer parses reads
        // nothing we can check, and fails at run time with the reason.
        let steps: Vec<mimir_pipeline::Step> = pipeline
            .steps
            .into_iter()
            .filter_map(|step| serde_json::from_value(step).ok())
            .collect();
        let params = Arc::new(Needs {
            params: mimir_pipeline::reference::required_params(&steps),
            allow_manual: pipeline.trigger_config.allow_manual,
        });
        let mut cache = self.cache.write();
        if self.generation.load(Ordering::Acquire) != generation {
            // A pipeline changed while this one was read: it may be this one.
            return Ok(Some(params));
        }
        if cache.len() >= self.capacity {
            cache.clear();
        }
        cache.insert(id.to_string(), params.clone());
        Ok(Some(params))
    }

    /// Drops what is known of pipeline `id` (it was replaced or deleted).
    pub fn forget(&self, id: &str) {
        let mut cache = self.cache.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        cache.remove(id);
    }
}
