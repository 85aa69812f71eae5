//! Errors as the API server answers them: a `Status` object with its HTTP code and reason.

use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use crate::resource::Kind;

/// A failed request, answered as a `Status` with `code` and `reason`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<StatusDetails>>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        Self {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, kind: &str, group: &str, name: &str) -> Self {
        self.details = Some(Box::new(StatusDetails {
            name: Some(name.to_owned()),
            group: Some(group.to_owned()),
            kind: Some(kind.to_owned()),
            ..StatusDetails::default()
        }));
        self
    }

    pub(crate) fn not_found(kind: Kind, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified()),
        )
        .with_details(kind.plural(), kind.group(), name)
    }

    pub(crate) fn already_exists(kind: Kind, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified()),
        )
        .with_details(kind.plural(), kind.group(), name)
    }

    /// 422 Invalid, naming the field as the API server's validation does.
    pub(crate) fn invalid(kind: Kind, name: &str, field: &str, message: &str) -> Self {
        let qualified = match kind.group() {
            "" => kind.kind().to_owned(),
            group => format!("{}.{group}", kind.kind()),
        };
        let mut error = Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {field}: {message}"),
        )
        .with_details(kind.kind(), kind.group(), name);
        if let Some(details) = error.details.as_mut() {
            details.causes = Some(vec![StatusCause {
                field: Some(field.to_owned()),
                message: Some(message.to_owned()),
                reason: Some("FieldValueInvalid".to_owned()),
            }]);
        }
        error
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message.into())
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message.into())
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_owned(),
        )
    }

    pub(crate) fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".to_owned(),
        )
    }

    pub(crate) fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "the request body is larger than 3 MiB".to_owned(),
        )
    }

    /// The `Status` object this error is answered with.
    pub(crate) fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code)),
            details: self.details.as_deref().cloned(),
            message: Some(self.message.clone()),
            reason: Some(self.reason.to_owned()),
            status: Some("Failure".to_owned()),
            ..Status::default()
        }
    }

    /// The JSON body of the answer.
    pub(crate) fn body(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&self.to_status()).expect("a Status serializes"))
    }
}

/// The `Status` a successful delete answers with.
pub(crate) fn delete_success(kind: Kind, name: &str, uid: &str) -> Bytes {
    let status = Status {
        details: Some(StatusDetails {
            name: Some(name.to_owned()),
            group: Some(kind.group().to_owned()),
            kind: Some(kind.plural().to_owned()),
            uid: Some(uid.to_owned()),
            ..StatusDetails::default()
        }),
        status: Some("Success".to_owned()),
        ..Status::default()
    };
    Bytes::from(serde_json::to_vec(&status).expect("a Status serializes"))
}
