//! How a pipeline's trigger config is stored: `allow_manual` and whether
//! the webhook is enabled, as JSON; the webhook secret in a column of its
//! own; never the schedule ids (schedules name their pipelines).

use mimir_core::{TriggerConfig, WebhookTrigger};
use serde::{Deserialize, Serialize};

/// The stored JSON of a trigger config.
#[derive(Serialize, Deserialize)]
struct Stored {
    allow_manual: bool,
    webhook: StoredWebhook,
}

#[derive(Serialize, Deserialize)]
struct StoredWebhook {
    enabled: bool,
}

/// The `trigger_config` column of `config`.
pub(crate) fn to_column(config: &TriggerConfig) -> String {
    let stored = Stored {
        allow_manual: config.allow_manual,
        webhook: StoredWebhook {
            enabled: config.webhook.enabled,
        },
    };
    // Two booleans always serialize.
    serde_json::to_string(&stored).unwrap_or_default()
}

/// The trigger config of a `trigger_config` column and the stored secret.
pub(crate) fn from_column(
    text: &str,
    secret: Option<String>,
) -> Result<TriggerConfig, serde_json::Error> {
    let stored: Stored = serde_json::from_str(text)?;
    Ok(TriggerConfig {
        allow_manual: stored.allow_manual,
        webhook: WebhookTrigger {
            enabled: stored.webhook.enabled,
            secret,
        },
        schedule_ids: Vec::new(),
    })
}

/// Why a pipeline cannot be deleted while `schedules` fire it.
pub(crate) fn fired_by(pipeline_id: &str, schedules: &[String]) -> crate::StoreError {
    crate::StoreError::Refused {
        kind: "pipeline",
        id: pipeline_id.to_string(),
        reason: format!(
            "pipeline {pipeline_id} is fired by schedule(s) {}: delete them or change their pipelines first",
            schedules.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_keeps_the_flags_and_drops_the_secret_and_schedule_ids() {
        let config = TriggerConfig {
            allow_manual: false,
            webhook: WebhookTrigger {
                enabled: true,
                secret: Some("k".into()),
            },
            schedule_ids: vec!["s".into()],
        };
        let text = to_column(&config);
        assert_eq!(text, r#"{"allow_manual":false,"webhook":{"enabled":true}}"#);
        let read = from_column(&text, Some("k".into())).expect("read");
        assert_eq!(
            read,
            TriggerConfig {
                schedule_ids: Vec::new(),
                ..config
            }
        );
    }

    #[test]
    fn the_migration_default_reads_as_the_default_config() {
        let read = from_column(r#"{"allow_manual":true,"webhook":{"enabled":false}}"#, None)
            .expect("read");
        assert_eq!(read, TriggerConfig::default());
    }
}
