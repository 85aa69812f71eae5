//! `http.request`: calls an HTTP endpoint.

use crate::confinement::{ConfinedResolver, ConfinementError, HttpPolicy, HttpRules, Refused};
use crate::params::{
    boolean, count, literals, reject_unknown, require, required_string, string, wrong_type,
};
use crate::{Action, ActionDoc, ActionError, ParamDoc, ParamType, RunContext};
use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

const DOC: ActionDoc = ActionDoc {
    summary: "Calls an HTTP endpoint the HTTP policy allows, following up to 10 redirects.",
    parameters: &[
        ParamDoc::optional("method", ParamType::String, Some("GET"), "The HTTP method."),
        ParamDoc::required("url", ParamType::String, "An http or https URL."),
        ParamDoc::optional(
            "headers",
            ParamType::Object,
            None,
            "Request headers, an object of strings.",
        ),
        ParamDoc::optional(
            "body",
            ParamType::Any,
            None,
            "A string is sent as is; another value as JSON (content-type: application/json unless headers set one).",
        ),
        ParamDoc::optional(
            "timeout_ms",
            ParamType::Integer,
            Some("30000"),
            "The longest the whole exchange may take, in milliseconds (more than 0).",
        ),
        ParamDoc::optional(
            "max_body_bytes",
            ParamType::Integer,
            Some("16777216 (16 MiB)"),
            "The largest response body read; a bigger one fails the step.",
        ),
        ParamDoc::optional(
            "fail_on_status",
            ParamType::Boolean,
            Some("false"),
            "Fail the step on a 4xx or 5xx answer (permanently for a 4xx but 408 and 429).",
        ),
    ],
    returns: "{status, headers, body}: header names lowercase, body parsed when the answer is JSON, else a string",
};

/// How long a request may take, headers to last body byte, unless
/// `timeout_ms` says otherwise: 30 s.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 30_000;

/// The largest response body read unless `max_body_bytes` says otherwise:
/// 16 MiB. A bigger body fails the step rather than filling memory.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// `http.request`: sends `method` (default GET) to `url` (http or https) with
/// `headers` (an object of strings) and `body`, and returns
/// `{status, headers, body}`.
///
/// A string `body` is sent as is; any other JSON value (except null, which
/// sends nothing) is sent as JSON with `content-type: application/json`
/// unless `headers` sets one. Response header names are lowercase (repeated
/// headers are joined with `, `); the response body is parsed when its
/// content type is JSON (`application/json` or `+json`) and valid, and is a
/// string otherwise. Any status, 4xx and 5xx included, is a result, not an
/// error, unless `fail_on_status` is true: then a 4xx or 5xx answer fails the
/// step, permanently for a 4xx (but 408 and 429) and transiently (retried)
/// for those and a 5xx. Connection failures, `timeout_ms` (default 30000, the whole
/// exchange) and bodies over `max_body_bytes` (default 16 MiB) are errors.
/// The run's `traceparent` is sent unless `headers` sets one.
///
/// Where a request may go is decided by the [`HttpPolicy`] the action was
/// built with, checked on the URL, on every address a host name resolves to
/// and on every redirect (at most 10); a refusal fails the step naming the
/// host or address and the entry that refused it (see
/// [`crate::confinement`]). Request headers are never part of the result,
/// and a password in the URL never appears in an error or a span.
#[derive(Debug)]
pub struct HttpRequest {
    client: Result<reqwest::Client, String>,
    rules: Arc<HttpRules>,
}

/// Most redirects followed, as reqwest's own default.
const MAX_REDIRECTS: usize = 10;

impl HttpRequest {
    /// The action under `policy`, with its own HTTP client (connection pool,
    /// rustls, no proxy, DNS answers filtered by the policy).
    pub fn new(policy: &HttpPolicy) -> Result<HttpRequest, ConfinementError> {
        let rules = Arc::new(HttpRules::new(policy)?);
        let redirect_rules = rules.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match redirect_rules.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => {
                    let hop = shown_url(attempt.url());
                    attempt.error(Refused(format!("redirect to {hop}: {refused}")))
                }
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("mimir-aip/", env!("CARGO_PKG_VERSION")))
            // Through a proxy, the address finally reached could not be checked.
            .no_proxy()
            .dns_resolver(Arc::new(ConfinedResolver::new(rules.clone())))
            .redirect(redirects)
            .build()
            // Kept, not panicked on: the error is reported by the steps that need HTTP.
            .map_err(|e| error_chain(&e));
        Ok(HttpRequest { client, rules })
    }
}

/// A request's parameters, checked.
struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Value>,
    timeout_ms: u64,
    max_body_bytes: u64,
    fail_on_status: bool,
}

fn method(params: &Map<String, Value>) -> Result<Method, ActionError> {
    let name = string(params, "method")?
        .unwrap_or("GET")
        .to_ascii_uppercase();
    Method::from_bytes(name.as_bytes())
        .map_err(|_| ActionError::parameter("method", format!("\"{name}\" is not an HTTP method")))
}

fn url(text: &str) -> Result<Url, ActionError> {
    let url = Url::parse(text)
        .map_err(|e| ActionError::parameter("url", format!("\"{text}\" is not a URL: {e}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(ActionError::parameter(
            "url",
            format!("must be an http or https URL, got scheme \"{other}\""),
        )),
    }
}

/// The `headers` parameter. At check time a value may still be a reference;
/// it is a string either way, and a valid header value.
fn headers(params: &Map<String, Value>) -> Result<HeaderMap, ActionError> {
    let mut map = HeaderMap::new();
    let Some(value) = params.get("headers") else {
        return Ok(map);
    };
    let Value::Object(headers) = value else {
        return Err(wrong_type("headers", "an object of strings", value));
    };
    for (name, value) in headers {
        let Value::String(text) = value else {
            return Err(ActionError::parameter(
                "headers",
                format!(
                    "header \"{name}\" must be a string, got {}",
                    crate::reference::kind(value)
                ),
            ));
        };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ActionError::parameter("headers", format!("\"{name}\" is not a header name"))
        })?;
        let value = HeaderValue::from_str(text).map_err(|_| {
            ActionError::parameter("headers", format!("header \"{name}\" has an invalid value"))
        })?;
        map.append(header, value);
    }
    Ok(map)
}

fn timeout_ms(params: &Map<String, Value>) -> Result<u64, ActionError> {
    match count(params, "timeout_ms")? {
        None => Ok(DEFAULT_HTTP_TIMEOUT_MS),
        Some(0) => Err(ActionError::parameter("timeout_ms", "must be more than 0")),
        Some(ms) => Ok(ms),
    }
}

impl Request {
    fn parse(mut params: Map<String, Value>) -> Result<Request, ActionError> {
        reject_unknown(&params, DOC.parameters)?;
        Ok(Request {
            method: method(&params)?,
            url: url(required_string(&params, "url")?)?,
            headers: headers(&params)?,
            timeout_ms: timeout_ms(&params)?,
            max_body_bytes: count(&params, "max_body_bytes")?.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            fail_on_status: boolean(&params, "fail_on_status")?.unwrap_or(false),
            body: params.remove("body").filter(|b| !b.is_null()),
        })
    }
}

#[async_trait]
impl Action for HttpRequest {
    fn plugin(&self) -> &'static str {
        "http"
    }

    fn action(&self) -> &'static str {
        "request"
    }

    fn doc(&self) -> &'static ActionDoc {
        &DOC
    }

    fn check(&self, params: &Map<String, Value>) -> Result<(), ActionError> {
        reject_unknown(params, DOC.parameters)?;
        require(params, "url")?;
        let literals = literals(params);
        method(&literals)?;
        if let Some(text) = string(&literals, "url")? {
            url(text)?;
        }
        headers(&literals)?;
        timeout_ms(&literals)?;
        count(&literals, "max_body_bytes")?;
        boolean(&literals, "fail_on_status")?;
        Ok(())
    }

    async fn run(
        &self,
        params: Map<String, Value>,
        run: &RunContext,
    ) -> Result<Value, ActionError> {
        let request = Request::parse(params)?;
        if let Err(refused) = self.rules.check_url(&request.url) {
            return Err(ActionError::HttpRefused {
                method: request.method.to_string(),
                url: shown_url(&request.url),
                reason: refused.0,
            });
        }
        let client = self.client.as_ref().map_err(|reason| ActionError::Http {
            method: request.method.to_string(),
            url: shown_url(&request.url),
            message: format!("no HTTP client: {reason}"),
        })?;
        // With tracing on, the call is a client span of its own and carries
        // that span's context; otherwise the run's context is passed on as is.
        let span = client_span(&request);
        let traceparent =
            mimir_telemetry::propagation::traceparent_of(&span).or_else(|| run.traceparent.clone());
        let call = send(client, request, traceparent.as_deref()).instrument(span);
        tokio::select! {
            result = call => result,
            () = run.cancel.cancelled() => Err(ActionError::Cancelled),
        }
    }
}

/// The client span of one request (none when tracing is off).
fn client_span(request: &Request) -> tracing::Span {
    if !mimir_telemetry::otel::enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "http request",
        otel.name = %format_args!("{} {}", request.method, request.url.host_str().unwrap_or_default()),
        otel.kind = "client",
        http.request.method = %request.method,
        url.full = %shown_url(&request.url),
    )
}

async fn send(
    client: &reqwest::Client,
    request: Request,
    traceparent: Option<&str>,
) -> Result<Value, ActionError> {
    let method = request.method.to_string();
    let url_text = shown_url(&request.url);
    let failed = |error: reqwest::Error| {
        if let Some(refused) = refusal(&error) {
            return ActionError::HttpRefused {
                method: method.clone(),
                url: url_text.clone(),
                reason: refused.0.clone(),
            };
        }
        // reqwest's text repeats the URL, password and all; ours names it once.
        let error = error.without_url();
        if error.is_timeout() {
            ActionError::Timeout {
                method: method.clone(),
                url: url_text.clone(),
                timeout_ms: request.timeout_ms,
            }
        } else {
            ActionError::Http {
                method: method.clone(),
                url: url_text.clone(),
                message: error_chain(&error),
            }
        }
    };
    let mut headers = request.headers;
    if let Some(traceparent) = traceparent
        && !headers.contains_key("traceparent")
        && let Ok(value) = HeaderValue::from_str(traceparent)
    {
        headers.insert("traceparent", value);
    }
    let mut builder = client
        .request(request.method.clone(), request.url.clone())
        .timeout(Duration::from_millis(request.timeout_ms));
    match request.body {
        None => {}
        Some(Value::String(text)) => builder = builder.body(text),
        Some(other) => {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            builder = builder.body(other.to_string());
        }
    }
    let mut response = builder.headers(headers).send().await.map_err(&failed)?;

    let status = response.status().as_u16();
    let mut response_headers = Map::new();
    for (name, value) in response.headers() {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match response_headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&text);
            }
            _ => {
                response_headers.insert(name.as_str().to_string(), Value::String(text));
            }
        }
    }
    let is_json = response_headers
        .get("content-type")
        .and_then(Value::as_str)
        .is_some_and(is_json_type);

    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(&failed)? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > request.max_body_bytes {
            return Err(ActionError::Http {
                method,
                url: url_text,
                message: format!(
                    "the response body is over {} bytes (max_body_bytes)",
                    request.max_body_bytes
                ),
            });
        }
    }
    let parsed = if is_json {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    let body = parsed.unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if request.fail_on_status && status >= 400 {
        return Err(ActionError::HttpStatus {
            method,
            url: url_text,
            status,
            body: excerpt(&body),
        });
    }
    Ok(json!({"status": status, "headers": response_headers, "body": body}))
}

/// The start of a response body, for an error message.
fn excerpt(body: &Value) -> String {
    let text = match body {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The policy's refusal behind a client error: the redirect policy's, or the
/// resolver's when a name resolved to denied addresses only.
fn refusal(error: &reqwest::Error) -> Option<&Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// `url` with any user name and password replaced by `***`, for errors,
/// spans and logs.
fn shown_url(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Only URLs that cannot have credentials refuse these, and those have none.
    let _ = shown.set_username("***");
    if url.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// `application/json`, `application/problem+json`, ... with any parameters.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// An error and its causes, `outer: inner: innermost`; reqwest's own message
/// alone rarely says what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn check_refuses_bad_urls_methods_headers_and_timeouts() {
        let action = HttpRequest::new(&HttpPolicy::default()).unwrap_or_else(|e| panic!("{e}"));
        let ok = params(json!({"url": "https://example.invalid/x", "method": "post",
                               "headers": {"x-a": "1", "x-b": "$.params.b"}, "timeout_ms": 10}));
        action.check(&ok).unwrap();
        action
            .check(&params(json!({"url": "$.params.url"})))
            .unwrap();
        for (bad, parameter) in [
            (json!({}), "url"),
            (json!({"url": "ftp://x/y"}), "url"),
            (json!({"url": "not a url"}), "url"),
            (json!({"url": "http://x", "method": "GE T"}), "method"),
            (json!({"url": "http://x", "headers": {"a": 1}}), "headers"),
            (json!({"url": "http://x", "headers": ["a"]}), "headers"),
            (json!({"url": "http://x", "timeout_ms": 0}), "timeout_ms"),
            (json!({"url": "http://x", "timeout": 5}), "timeout"),
        ] {
            match action.check(&params(bad.clone())) {
                Err(ActionError::Parameter { name, .. }) => assert_eq!(name, parameter, "{bad}"),
                other => panic!("{bad}: expected a parameter error, got {other:?}"),
            }
        }
    }

    #[test]
    fn credentials_in_urls_are_not_shown() {
        let url =
            Url::parse("https://user:s3cret@example.com/x?a=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown_url(&url), "https://***:***@example.com/x?a=1");
        let url = Url::parse("https://t0ken@example.com/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown_url(&url), "https://***@example.com/");
        let url = Url::parse("http://example.com/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown_url(&url), "http://example.com/");
    }

    #[test]
    fn json_content_types_are_recognized() {
        assert!(is_json_type("application/json"));
        assert!(is_json_type("Application/JSON; charset=utf-8"));
        assert!(is_json_type("application/problem+json"));
        assert!(!is_json_type("text/plain"));
        assert!(!is_json_type(""));
    }
}
