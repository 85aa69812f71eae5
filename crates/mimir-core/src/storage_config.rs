//! A storage config: how a project reaches one storage backend (the seeds'
//! storage plugins), and the rules that keep its secrets out of answers.
//!
//! Credentials are stored as given and never leave the orchestrator except
//! to a worker that runs a connector. A credential may be a reference,
//! `${env:NAME}` or `${file:PATH}`, resolved where the connector runs, so the
//! secret itself never has to reach the orchestrator at all.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// What stands in for a secret in every answer.
pub const REDACTED: &str = "[redacted]";

/// The storage backends a config can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PluginType {
    /// Files under `options.base_path`: the embedded default.
    Filesystem,
    /// A PostgreSQL database (`postgres://…`).
    Postgresql,
    /// A MySQL or MariaDB database (`mysql://…`).
    Mysql,
    /// A Redis server (`redis://…`).
    Redis,
    /// An S3 bucket (AWS S3, MinIO or any S3-compatible server).
    S3,
}

impl PluginType {
    /// Every plugin type, in the order the docs list them.
    pub const ALL: [PluginType; 5] = [
        PluginType::Filesystem,
        PluginType::Postgresql,
        PluginType::Mysql,
        PluginType::Redis,
        PluginType::S3,
    ];

    /// Its name in configs, APIs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginType::Filesystem => "filesystem",
            PluginType::Postgresql => "postgresql",
            PluginType::Mysql => "mysql",
            PluginType::Redis => "redis",
            PluginType::S3 => "s3",
        }
    }

    /// The plugin type named `name`, if any.
    pub fn parse(name: &str) -> Option<PluginType> {
        PluginType::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for PluginType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to reach the backend. Its `Debug` shows the credentials' names and
/// the connection string's password redacted, so a config logged by mistake
/// leaks nothing, even after its references were resolved.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    /// A URL for database backends (`postgres://…`, `mysql://…`,
    /// `redis://…`); a password in it is a credential and is redacted.
    #[serde(default)]
    pub connection_string: String,
    /// Secrets by name (`password`, `access_key_id`, `secret_access_key`,
    /// `region`, …): strings or `${env:NAME}` / `${file:PATH}` references.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credentials: Map<String, Value>,
    /// Backend options (`base_path`, `bucket`, `prefix`, `endpoint`,
    /// `max_connections`, `timeout_ms`, …).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub options: Map<String, Value>,
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials: Vec<&String> = self.credentials.keys().collect();
        f.debug_struct("ConnectionSettings")
            .field(
                "connection_string",
                &redact_url_password(&self.connection_string),
            )
            .field("credentials", &credentials)
            .field("options", &self.options)
            .finish()
    }
}

/// A project's storage config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageConfig {
    /// Its id (a UUID).
    pub id: String,
    /// The project it belongs to.
    pub project_id: String,
    /// The backend.
    pub plugin_type: PluginType,
    /// How to reach it.
    pub config: ConnectionSettings,
    /// Inactive configs refuse operations but keep their settings.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl StorageConfig {
    /// The config as answers show it: every credential value and the password
    /// of the connection string replaced by [`REDACTED`]. References
    /// (`${env:NAME}`) are not secrets and are shown, so users can see where
    /// a secret comes from.
    pub fn redacted(&self) -> StorageConfig {
        let mut shown = self.clone();
        for value in shown.config.credentials.values_mut() {
            let is_reference = value.as_str().is_some_and(is_reference);
            if !is_reference {
                *value = Value::String(REDACTED.into());
            }
        }
        shown.config.connection_string = redact_url_password(&self.config.connection_string);
        shown
    }

    /// Applies an update's settings, keeping each stored secret the update
    /// leaves out or sends back as [`REDACTED`] (a client that read the
    /// config and changed one option sends the redacted values back); a
    /// credential set to null is removed.
    pub fn keep_secrets(&self, mut update: ConnectionSettings) -> ConnectionSettings {
        for (name, value) in self.config.credentials.iter() {
            let keep = match update.credentials.get(name) {
                None => true,
                Some(Value::String(s)) => s == REDACTED,
                Some(_) => false,
            };
            if keep {
                update.credentials.insert(name.clone(), value.clone());
            }
        }
        update.credentials.retain(|_, value| !value.is_null());
        if update.connection_string.contains(REDACTED)
            && redact_url_password(&self.config.connection_string) == update.connection_string
        {
            update.connection_string = self.config.connection_string.clone();
        }
        update
    }
}

/// True for `${env:NAME}` and `${file:PATH}`.
pub fn is_reference(value: &str) -> bool {
    (value.starts_with("${env:") || value.starts_with("${file:")) && value.ends_with('}')
}

/// `scheme://user:secret@host/…` → `scheme://user:[redacted]@host/…`; a
/// password given as a reference is kept. Strings that are not URLs with a
/// password come back unchanged.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    let password = &userinfo[colon + 1..];
    if password.is_empty() || is_reference(password) {
        return url.to_string();
    }
    format!(
        "{}{}:{}{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        REDACTED,
        &url[scheme_end + 3 + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> StorageConfig {
        StorageConfig {
            id: "s1".into(),
            project_id: "p".into(),
            plugin_type: PluginType::Postgresql,
            config: ConnectionSettings {
                connection_string: "postgres://app:hunter2@db:5432/x?sslmode=require".into(),
                credentials: json!({"password": "hunter2", "token": "${env:TOKEN}"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                options: Map::new(),
            },
            active: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn redaction_hides_secrets_and_shows_references() {
        let shown = config().redacted();
        let text = serde_json::to_string(&shown).unwrap_or_default();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(shown.config.credentials["token"], json!("${env:TOKEN}"));
        assert_eq!(
            shown.config.connection_string,
            "postgres://app:[redacted]@db:5432/x?sslmode=require"
        );
    }

    #[test]
    fn debug_output_names_credentials_without_their_values() {
        let text = format!("{:?}", config());
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("password") && text.contains("[redacted]"),
            "{text}"
        );
    }

    #[test]
    fn urls_without_passwords_are_unchanged() {
        for url in [
            "postgres://app@db/x",
            "redis://127.0.0.1:6379/0",
            "mysql://root:@127.0.0.1:3306/test",
            "postgres://u:${env:PW}@db/x",
            "not a url",
            "redis://h/x?a=b@c",
        ] {
            assert_eq!(redact_url_password(url), url);
        }
        assert_eq!(
            redact_url_password("redis://:s3cret@h:6379"),
            "redis://:[redacted]@h:6379"
        );
    }

    #[test]
    fn updates_keep_secrets_they_send_back_redacted_or_leave_out() {
        let stored = config();
        let mut update = stored.redacted().config;
        update.credentials.remove("token");
        update.options.insert("timeout_ms".into(), json!(500));
        let kept = stored.keep_secrets(update);
        assert_eq!(kept.credentials["password"], json!("hunter2"));
        assert_eq!(kept.credentials["token"], json!("${env:TOKEN}"));
        assert_eq!(kept.connection_string, stored.config.connection_string);
        let mut replaced = stored.redacted().config;
        replaced.credentials.insert("password".into(), json!("new"));
        replaced.connection_string = "postgres://app:new@db/x".into();
        let kept = stored.keep_secrets(replaced);
        assert_eq!(kept.credentials["password"], json!("new"));
        assert_eq!(kept.connection_string, "postgres://app:new@db/x");
    }

    #[test]
    fn plugin_types_round_trip_by_name() {
        for plugin in PluginType::ALL {
            assert_eq!(PluginType::parse(plugin.as_str()), Some(plugin));
            assert_eq!(
                serde_json::to_value(plugin).ok(),
                Some(json!(plugin.as_str()))
            );
        }
        assert_eq!(PluginType::parse("sqlite"), None);
    }
}
