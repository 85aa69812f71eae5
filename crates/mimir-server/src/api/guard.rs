//! Checks every request passes before it reaches a handler, and the shape of
//! every error that leaves.
//!
//! - Bound to a loopback address, the server answers only requests whose
//!   `Host` names a loopback host (`localhost`, `127.x.x.x`, `[::1]`, any
//!   port): a page whose DNS name is rebound to 127.0.0.1 cannot reach it.
//! - A `POST`, `PUT` or `PATCH` must say `Content-Type: application/json`.
//!   Browsers send `text/plain` and form types cross-origin without asking,
//!   so this refuses every request a web page could forge without a preflight.
//!   [`require_json`] runs on each route (see [`super::routes::Routes`]),
//!   after routing, so a method a path does not serve is 405 whatever its
//!   content type; no handler runs without passing it.
//! - An error answer that is not already the JSON error body (a path that does
//!   not decode, a body over the limit, anything axum refuses by itself) is
//!   rewritten into it, so clients parse every error the same way.

use super::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;

/// Longest error text kept when an error is rewritten into the JSON body.
const MAX_ERROR_TEXT: usize = 64 * 1024;

/// The guard: host, then the JSON error shape.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.loopback_only && !loopback_host(request.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            "this server listens on a loopback address and answers only requests for localhost, 127.0.0.1 or [::1]",
        )
        .into_response();
    }
    json_errors(next.run(request).await).await
}

/// Refuses a `POST`, `PUT` or `PATCH` that is not `Content-Type: application/json`.
pub async fn require_json(request: Request, next: Next) -> Response {
    if takes_body(request.method()) && !is_json(request.headers()) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the request body as JSON with Content-Type: application/json",
        )
        .into_response();
    }
    next.run(request).await
}

fn takes_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// Whether `Content-Type` is `application/json`, parameters (a charset) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Whether the `Host` header names a loopback host. A request without one
/// (HTTP/1.0, in-process callers) came from no browser and passes.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    is_loopback_name(host)
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_name(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6] or [v6]:port
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if !(after.is_empty() || port(after.strip_prefix(':'))) {
            return false;
        }
        return inside.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    } else {
        match host.rsplit_once(':') {
            Some((name, p)) if port(Some(p)) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn port(text: Option<&str>) -> bool {
    text.is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

/// Rewrites an error answer that is not JSON into the JSON error body.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json_body = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json_body {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, message) = describe(status, text);
    // Keep the original headers (`Allow`, `WWW-Authenticate`), not its body.
    let body = ApiError::new(status, code, message)
        .into_response()
        .into_body();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, body)
}

/// The stable code and a message for an error axum or a layer answered.
fn describe(status: StatusCode, text: String) -> (&'static str, String) {
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_value",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "the request body is over the size limit".to_string()
    } else if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string()
    } else {
        text.chars().take(500).collect()
    };
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_and_without_ports() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:80",
            "127.3.2.1:65535",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1",
            "[::2]:80",
            "[::1]x",
            "localhost:",
            "localhost:99999",
            "0.0.0.0:8080",
            "",
        ] {
            assert!(!is_loopback_name(bad), "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().expect("header"));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("application/jsonp"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
