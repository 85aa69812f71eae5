//! `Connectors`: configs resolved here or already resolved elsewhere.

use chrono::Utc;
use mimir_core::{ConnectionSettings, PluginType, StorageConfig};
use mimir_storage::{Connectors, Secrets, Unobserved};
use serde_json::json;
use std::sync::Arc;

fn config(credential: &str) -> StorageConfig {
    StorageConfig {
        id: "s1".into(),
        project_id: "p".into(),
        plugin_type: PluginType::Filesystem,
        config: ConnectionSettings {
            connection_string: String::new(),
            credentials: json!({"password": credential})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            options: json!({"base_path": "x"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        },
        active: true,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_resolved_config_is_never_resolved_again() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let connectors = Connectors::new(
        Secrets::new(root.path().join("secrets")),
        root.path(),
        Arc::new(Unobserved),
    );
    // A password whose value happens to look like a reference.
    let resolved = config("pa${env:SURELY_NOT_SET_ANYWHERE_42}ss");
    let error = connectors.get(&resolved).await.err().map(|e| e.message);
    assert!(error.is_some_and(|m| m.contains("not set")));
    let storage = connectors.get_resolved(&resolved).await?;
    assert_eq!(storage.id(), "s1");
    let again = connectors.get_resolved(&resolved).await?;
    assert!(
        Arc::ptr_eq(&storage, &again),
        "an unchanged config reuses its connector"
    );
    let mut inactive = resolved.clone();
    inactive.active = false;
    inactive.updated_at = Utc::now();
    assert!(connectors.get_resolved(&inactive).await.is_err());
    Ok(())
}
