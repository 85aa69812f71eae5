//! API errors: each maps to a status, a stable code and a public message; the
//! internal cause of a 5xx is logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mimir_core::ValidationError;
use mimir_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer: `{"error": {"code", "message", "field"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    cause: Option<String>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            cause: None,
        }
    }

    /// 400 about one field.
    pub fn bad_field(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message).with_field(field)
    }

    /// 409 for a worker call about an attempt whose lease the worker does not hold.
    pub fn not_lease_holder(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "not_lease_holder", message)
    }

    /// 404 for something that does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    /// 500 whose cause is logged but not shown.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError {
            cause: Some(cause.to_string()),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the orchestrator log",
            )
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> ApiError {
        ApiError::bad_field(e.code, e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if e.is_storage_full() {
            return ApiError {
                cause: Some(e.to_string()),
                ..ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "the orchestrator's disk is full, so nothing was stored; \
                     writes succeed again once space is freed",
                )
            };
        }
        match e {
            StoreError::NotFound(id) => ApiError::not_found(format!("work task {id} not found")),
            StoreError::Transition { id, source } => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_transition",
                format!("work task {id} is already {}: {source}", source.from),
            ),
            StoreError::Refused { kind, reason, .. } => ApiError::new(
                StatusCode::CONFLICT,
                match kind {
                    "model" => "model_conflict",
                    _ => "conflict",
                },
                reason,
            ),
            StoreError::StaleAttempt { .. } => {
                ApiError::new(StatusCode::CONFLICT, "stale_attempt", e.to_string())
            }
            StoreError::NotLeaseHolder { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_lease_holder", e.to_string())
            }
            StoreError::Unavailable(_) => ApiError {
                cause: Some(e.to_string()),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the metadata store cannot be reached, so nothing was stored; retry shortly",
                )
            },
            StoreError::WriterGone => ApiError {
                cause: Some(e.to_string()),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    "the orchestrator is shutting down",
                )
            },
            other => ApiError::internal(other),
        }
    }
}

/// Every error answer's body: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inner object of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code for programs, e.g. `invalid_priority`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The JSON path of the field or parameter at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// The inner `{"code", "message", "field"}` object.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_string(),
            message: self.message.clone(),
            field: self.field.clone(),
        }
    }

    /// [`ApiError::detail`] as JSON, for answers that carry errors per item.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.detail()).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(code = self.code, %cause, "request failed");
        }
        let body = ErrorBody {
            error: self.detail(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}
