//! Storage connector errors as API answers: each kind a status and a stable
//! code, so clients can tell a request to fix from a backend to wait for.

use crate::api::error::ApiError;
use axum::http::StatusCode;
use mimir_storage::{ErrorKind, StorageError};

/// The answer for a failed storage operation. `field` names the part of the
/// request an `invalid` error is about (`query`, `cir_data`, …); the
/// message already names the storage id and backend, never a secret.
///
/// | kind | status | code |
/// | --- | --- | --- |
/// | invalid | 400 | `invalid_storage_request` |
/// | config | 400 | `invalid_storage_config` |
/// | unavailable | 503 | `storage_unavailable` |
/// | timeout | 504 | `storage_timeout` |
/// | backend | 502 | `storage_backend_error` |
pub fn storage_error(error: StorageError, field: &str) -> ApiError {
    let (status, code) = match error.kind {
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid_storage_request"),
        ErrorKind::Config => (StatusCode::BAD_REQUEST, "invalid_storage_config"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "storage_timeout"),
        ErrorKind::Backend => (StatusCode::BAD_GATEWAY, "storage_backend_error"),
    };
    let answer = ApiError::new(status, code, error.message.clone());
    match error.kind {
        ErrorKind::Invalid => answer.with_field(field),
        ErrorKind::Config => answer.with_field(config_field(&error.message)),
        _ => answer,
    }
}

/// The config key a config error names (`config.options.base_path`), or
/// `config` when it names none.
pub(super) fn config_field(message: &str) -> String {
    for key in ["options.", "credentials."] {
        if let Some(at) = message.find(key) {
            let rest = &message[at + key.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                return format!("config.{key}{name}");
            }
        }
    }
    if message.contains("connection_string") {
        return "config.connection_string".into();
    }
    "config".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_status_and_code() {
        for (error, status, code) in [
            (
                StorageError::invalid("x"),
                StatusCode::BAD_REQUEST,
                "invalid_storage_request",
            ),
            (
                StorageError::config("x"),
                StatusCode::BAD_REQUEST,
                "invalid_storage_config",
            ),
            (
                StorageError::unavailable("x"),
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
            ),
            (
                StorageError::timeout("x"),
                StatusCode::GATEWAY_TIMEOUT,
                "storage_timeout",
            ),
            (
                StorageError::backend("x"),
                StatusCode::BAD_GATEWAY,
                "storage_backend_error",
            ),
        ] {
            let answer = storage_error(error, "query");
            assert_eq!((answer.status(), answer.code()), (status, code));
        }
    }

    #[test]
    fn config_errors_name_the_key() {
        assert_eq!(
            config_field("options.base_path is required: the folder"),
            "config.options.base_path"
        );
        assert_eq!(
            config_field("storage s (s3): credentials.region is missing"),
            "config.credentials.region"
        );
        assert_eq!(
            config_field("connection_string must be a postgres:// URL"),
            "config.connection_string"
        );
        assert_eq!(config_field("the backend is not available"), "config");
    }
}
