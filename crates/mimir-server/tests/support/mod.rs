//! Fixtures shared by the API test files.

use mimir_store::SqliteStore;
use serde_json::json;

/// The id of [`put_noop`]'s pipeline, which tasks name (a task must name a
/// pipeline that exists).
pub const NOOP: &str = "noop";

/// Stores a one-step pipeline of `project_id` that only logs.
pub async fn put_noop(store: &SqliteStore, project_id: &str) {
    let now = chrono::Utc::now();
    let noop = mimir_core::Pipeline {
        id: NOOP.into(),
        project_id: project_id.into(),
        name: "noop".into(),
        pipeline_type: mimir_core::PipelineType::Processing,
        description: String::new(),
        steps: vec![
            json!({"name": "log", "plugin": "core", "action": "log", "parameters": {"message": "hi"}}),
        ],
        created_at: now,
        updated_at: now,
        step_timeout_ms: None,
        trigger_config: Default::default(),
    };
    mimir_store::Store::put_pipeline(store, noop, true)
        .await
        .expect("noop pipeline");
}
