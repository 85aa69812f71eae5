//! Bearer tokens: the worker token guards the worker protocol, the API token
//! everything a user reads or changes (the dashboard's data included). Either
//! is off when not configured. Liveness, readiness, `/metrics` (which has its
//! own credentials) and the dashboard's static files stay open, so probes and
//! scrapers work and the dashboard can ask for the token.

use super::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The credentials of `headers`' `Authorization` when its scheme is
/// `scheme`: the one reading of that header for the API and `/metrics`.
/// The scheme is matched without regard to case (RFC 9110, 11.1) and the
/// credentials without the spaces around them.
pub(crate) fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, credentials) = value.trim_start().split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| credentials.trim())
        .filter(|c| !c.is_empty())
}

/// Whether `headers` carry `Authorization: Bearer <token>`.
pub(crate) fn presents(headers: &HeaderMap, token: &str) -> bool {
    credentials(headers, "Bearer")
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

fn refuse(message: &'static str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Refuses worker calls without the configured worker token; every change
/// from a web page of another origin (workers are programs, never pages, so
/// nothing is lost, and a page cannot register a worker and lease, and so
/// fail, the queue); and, where client certificates are optional
/// (`tls.clientAuth: optional`), calls from a client that presented none.
pub async fn require_worker_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !request.method().is_safe() && !same_origin(request.headers()) {
        return cross_origin(
            "changes from another web site's page are refused on the worker protocol",
        );
    }
    if request
        .extensions()
        .get::<mimir_http::NoClientCertificate>()
        .is_some()
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "client_certificate_required",
            "worker endpoints need a client certificate signed by tls.clientCaFile",
        )
        .into_response();
    }
    match &state.worker_token {
        Some(token) if !presents(request.headers(), token) => {
            refuse("worker endpoints need the worker token (Authorization: Bearer ...)")
        }
        _ => next.run(request).await,
    }
}

fn cross_origin(message: &'static str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "cross_origin", message).into_response()
}

/// Refuses calls without either token: what both users and workers read
/// (pipeline definitions, which workers fetch to run a pipeline).
pub async fn require_any_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let configured: Vec<&String> = [&state.api_token, &state.worker_token]
        .into_iter()
        .flatten()
        .collect();
    // Open only when no token is configured; else either one will do.
    let allowed =
        configured.is_empty() || configured.iter().any(|t| presents(request.headers(), t));
    if allowed {
        next.run(request).await
    } else {
        refuse("this endpoint needs the API token or the worker token (Authorization: Bearer ...)")
    }
}

/// Refuses user calls without the configured API token. Without one, the
/// API is open to whoever reaches the port, but not to other web sites: a
/// change whose `Origin` is not this server is refused, so a page in the
/// user's browser cannot submit or cancel tasks behind their back.
pub async fn require_api_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match &state.api_token {
        Some(token) if !presents(request.headers(), token) => refuse(
            "this endpoint needs the API token (Authorization: Bearer ...; the CLI's --token or MIMIR_TOKEN)",
        ),
        None if !request.method().is_safe() && !same_origin(request.headers()) => cross_origin(
            "changes from another web site's page are refused; set api.token to use the API from other origins",
        ),
        _ => next.run(request).await,
    }
}

/// Whether a request's `Origin`, when it has one, names the host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not from a browser page (curl, the CLI, workers): nothing to check.
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Compares secrets in time independent of where they differ and of their
/// lengths: the SHA-256 digests are compared, always all 32 bytes.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let digest = |bytes: &[u8]| ring::digest::digest(&ring::digest::SHA256, bytes);
    let (a, b) = (digest(a), digest(b));
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, credentials, presents};
    use axum::http::{HeaderMap, HeaderValue, header};

    fn authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn the_scheme_is_read_without_regard_to_case() {
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "bEaReR  s3cret ",
        ] {
            let headers = authorization(value);
            assert_eq!(credentials(&headers, "Bearer"), Some("s3cret"), "{value}");
            assert!(presents(&headers, "s3cret"), "{value}");
        }
        let basic = authorization("basic dTpw");
        assert_eq!(credentials(&basic, "Basic"), Some("dTpw"));
    }

    #[test]
    fn other_schemes_and_missing_credentials_are_not_credentials() {
        for value in [
            "Basic s3cret",
            "Bearers3cret",
            "Bearer",
            "Bearer   ",
            "s3cret",
        ] {
            let headers = authorization(value);
            assert_eq!(credentials(&headers, "Bearer"), None, "{value}");
            assert!(!presents(&headers, "s3cret"), "{value}");
        }
        assert_eq!(credentials(&HeaderMap::new(), "Bearer"), None);
        assert!(!presents(&authorization("Bearer wrong"), "s3cret"));
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cres"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret "));
        assert!(!constant_time_eq(b"", b"s3cret"));
    }
}
