//! Request extractors whose refusals use the API error body and name the field.

use super::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// A JSON body. Malformed JSON, wrong types and unknown fields are 400 with the
/// JSON path of the culprit; a body over the limit is 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body is over the size limit",
                    )
                } else {
                    ApiError::new(rejection.status(), "bad_body", rejection.body_text())
                }
            })?;
        parse_json(&body).map(ApiJson)
    }
}

/// Parses a JSON object, naming the path of the first problem.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Every body is an object; serde would otherwise read a struct from an array.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "the request body is empty; send a JSON object",
            ));
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "the request body must be a JSON object",
            ));
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(path, &inner)
    })?;
    deserializer.end().map_err(|e| json_error(".".into(), &e))?;
    Ok(value)
}

fn json_error(path: String, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = error.to_string();
    let field = if path == "." { String::new() } else { path };
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("malformed JSON: {message}"),
        ),
        Category::Data if message.starts_with("unknown field") => {
            let name = message.split('`').nth(1).unwrap_or_default();
            let field = if field.is_empty() || field.ends_with(name) {
                field
            } else {
                format!("{field}.{name}")
            };
            let field = if field.is_empty() {
                name.to_string()
            } else {
                field
            };
            ApiError::bad_field("unknown_field", field, message)
        }
        Category::Data => ApiError::bad_field("invalid_value", field, message),
    }
}

/// Query parameters. Unknown parameters are refused, naming them, so a
/// misspelled filter never silently lists everything.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| {
                let message = e.to_string();
                let name = message.split('`').nth(1).unwrap_or_default().to_string();
                if message.starts_with("unknown field") {
                    ApiError::bad_field(
                        "unknown_parameter",
                        name.clone(),
                        format!("unknown query parameter {name:?}: {message}"),
                    )
                } else {
                    ApiError::bad_field("invalid_parameter", name, message)
                }
            })
    }
}
