//! A typed client of the orchestrator's HTTP API.
//!
//! Errors keep the API's error body (`code`, `message`, `field`) so callers can
//! show users exactly what the orchestrator said.

use mimir_core::WorkTask;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// Defaults to the local orchestrator.
pub const DEFAULT_ORCHESTRATOR_URL: &str = "http://127.0.0.1:8080";

/// What went wrong talking to the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The orchestrator answered with an error body.
    #[error("{status}: {message}{}", field.as_ref().map(|f| format!(" (field: {f})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// Stable error code.
        code: String,
        /// The orchestrator's sentence.
        message: String,
        /// The field at fault, if any.
        field: Option<String>,
    },
    /// The orchestrator could not be reached or answered nonsense.
    #[error("cannot reach the orchestrator at {url}: {reason}")]
    Transport {
        /// The URL tried.
        url: String,
        /// Why, down to the OS error (`tcp connect error: Connection
        /// refused (os error 111)`), without reqwest's own wrapping, which
        /// repeats the URL.
        reason: String,
    },
    /// TLS failed for a reason retrying will not cure: the orchestrator's
    /// certificate does not verify, or it refused this client's.
    #[error("TLS with the orchestrator at {url} failed: {message}")]
    Tls {
        /// The URL tried.
        url: String,
        /// The certificate problem and what to do about it.
        message: String,
    },
    /// A TLS option names a file that cannot be used.
    #[error("{option} {}: {message}", path.display())]
    TlsFile {
        /// The flag, e.g. `--ca-cert`.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from {url}: {message}")]
    Unexpected {
        /// The URL tried.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// One page of `GET /api/worktasks`.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskPage {
    /// The tasks, newest first.
    pub worktasks: Vec<WorkTask>,
    /// Cursor of the next page, if any.
    pub next_cursor: Option<String>,
    /// Tasks waiting to run.
    pub queue_length: u64,
}

/// The answer of `GET /api/worktasks/{id}/explain`: why a task has not
/// started.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Explanation {
    /// The task.
    pub worktask_id: Uuid,
    /// Its status now.
    pub status: mimir_core::WorkTaskStatus,
    /// Why it has not started, most telling first; a running or finished
    /// task has one reason saying so.
    pub reasons: Vec<ExplainedReason>,
}

/// One reason of an [`Explanation`].
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ExplainedReason {
    /// The stable snake_case code (`queue_position`, `retry_backoff`, ...);
    /// text, so codes added by a newer orchestrator still read.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The figures behind it (`tasks_ahead`, `until`, `limit`, ...).
    #[serde(flatten)]
    pub details: serde_json::Map<String, Value>,
}

/// Filters of a listing; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// A status, a group (`running`, `waiting`) or a comma list of them.
    pub status: Option<String>,
    /// Type name.
    pub task_type: Option<String>,
    /// Project id.
    pub project_id: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// Cursor from a previous page.
    pub cursor: Option<String>,
}

/// How a client verifies the orchestrator and proves who it is over HTTPS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM CA certificates the orchestrator's certificate must be signed by
    /// (`--ca-cert`, `MIMIR_CA_CERT`); `None` trusts the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (`--client-cert`, `MIMIR_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// Its PEM private key (`--client-key`, `MIMIR_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
}

/// A client of one orchestrator.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    /// A client of the orchestrator at `base` (e.g. `http://127.0.0.1:8080`),
    /// trusting the system's roots for `https`.
    pub fn new(base: &str) -> Client {
        let http = builder().build().unwrap_or_default();
        Client {
            base: base.trim_end_matches('/').to_string(),
            http,
            token: None,
        }
    }

    /// A client verifying the orchestrator and presenting a certificate as
    /// `tls` says; errors name the option and file at fault.
    pub fn with_tls(base: &str, tls: &TlsOptions) -> Result<Client, ClientError> {
        if tls == &TlsOptions::default() {
            return Ok(Client::new(base));
        }
        let read = |option: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| ClientError::TlsFile {
                option,
                path: path.clone(),
                message: format!("cannot read: {e}"),
            })
        };
        let mut builder = builder();
        if let Some(path) = &tls.ca_cert {
            let pem = read("--ca-cert", path)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certs| !certs.is_empty())
                .ok_or_else(|| ClientError::TlsFile {
                    option: "--ca-cert",
                    path: path.clone(),
                    message: "holds no PEM certificate".into(),
                })?;
            // Like curl's --cacert: this CA, not the system's roots.
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        match (&tls.client_cert, &tls.client_key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                let mut pem = read("--client-cert", cert)?;
                pem.push(b'\n');
                pem.extend(read("--client-key", key)?);
                let identity =
                    reqwest::Identity::from_pem(&pem).map_err(|e| ClientError::TlsFile {
                        option: "--client-cert",
                        path: cert.clone(),
                        message: format!("with --client-key {}: {}", key.display(), chain(&e)),
                    })?;
                builder = builder.identity(identity);
            }
            (Some(path), None) | (None, Some(path)) => {
                return Err(ClientError::TlsFile {
                    option: "--client-cert/--client-key",
                    path: path.clone(),
                    message: "a client certificate needs both --client-cert and --client-key"
                        .into(),
                });
            }
        }
        let http = builder.build().map_err(|e| ClientError::TlsFile {
            option: "--ca-cert",
            path: tls.ca_cert.clone().unwrap_or_default(),
            message: chain(&e),
        })?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            http,
            token: None,
        })
    }

    /// Sends `Authorization: Bearer TOKEN` with every request.
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// The orchestrator's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and decodes a JSON answer, or the API error.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let (url, bytes) = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
            url,
            message: e.to_string(),
        })
    }

    /// Sends a request and answers the raw bytes of a success (an artifact),
    /// or the API error.
    pub async fn call_bytes(
        &self,
        method: Method,
        path: &str,
    ) -> Result<bytes::Bytes, ClientError> {
        self.send(method, path, None).await.map(|(_, bytes)| bytes)
    }

    /// Sends a request whose success has no body (e.g. a `DELETE` answered
    /// 204), or the API error.
    pub async fn call_empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        self.send(method, path, None).await.map(drop)
    }

    /// Sends a request; the URL and body of a success, else the API error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(String, bytes::Bytes), ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        } else if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            // The orchestrator takes changes only as JSON, even without a body.
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let transport = |source: reqwest::Error| match tls_problem(&source) {
            Some(message) => ClientError::Tls {
                url: url.clone(),
                message,
            },
            None => ClientError::Transport {
                url: url.clone(),
                reason: transport_reason(&source),
            },
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(api_error(status, &bytes, &url));
        }
        Ok((url, bytes))
    }

    /// Submits one task (`POST /api/worktasks`).
    pub async fn submit(&self, submission: &Value) -> Result<WorkTask, ClientError> {
        self.call(Method::POST, "/api/worktasks", Some(submission))
            .await
    }

    /// Submits many tasks in one commit (`POST /api/worktasks/batch`).
    pub async fn submit_batch(&self, submissions: &[Value]) -> Result<Vec<WorkTask>, ClientError> {
        #[derive(Deserialize)]
        struct Batch {
            worktasks: Vec<WorkTask>,
        }
        let body = serde_json::json!({ "worktasks": submissions });
        let batch: Batch = self
            .call(Method::POST, "/api/worktasks/batch", Some(&body))
            .await?;
        Ok(batch.worktasks)
    }

    /// One task.
    pub async fn get(&self, id: Uuid) -> Result<WorkTask, ClientError> {
        self.call(Method::GET, &format!("/api/worktasks/{id}"), None)
            .await
    }

    /// A page of tasks.
    pub async fn list(&self, filter: &ListFilter) -> Result<TaskPage, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        let pairs = [
            ("status", &filter.status),
            ("type", &filter.task_type),
            ("project_id", &filter.project_id),
            ("cursor", &filter.cursor),
        ];
        for (key, value) in pairs {
            if let Some(value) = value {
                query.push((key, value.clone()));
            }
        }
        if let Some(limit) = filter.limit {
            query.push(("limit", limit.to_string()));
        }
        let encoded = encode_query(&query);
        self.call(Method::GET, &format!("/api/worktasks?{encoded}"), None)
            .await
    }

    /// Cancels a task.
    pub async fn cancel(&self, id: Uuid) -> Result<WorkTask, ClientError> {
        self.call(Method::POST, &format!("/api/worktasks/{id}/cancel"), None)
            .await
    }

    /// Why a task has not started (`GET /api/worktasks/{id}/explain`).
    pub async fn explain(&self, id: Uuid) -> Result<Explanation, ClientError> {
        self.call(Method::GET, &format!("/api/worktasks/{id}/explain"), None)
            .await
    }

    /// Tasks waiting to run.
    pub async fn queue_length(&self) -> Result<u64, ClientError> {
        let value: Value = self
            .call(Method::GET, "/api/worktasks/queue/length", None)
            .await?;
        value["queue_length"]
            .as_u64()
            .ok_or_else(|| ClientError::Unexpected {
                url: format!("{}/api/worktasks/queue/length", self.base),
                message: "no queue_length in the answer".into(),
            })
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
}

/// An error and its causes, `: `-separated (reqwest's own message leaves
/// out why, e.g. which certificate check failed).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let next = error.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = error.source();
    }
    text
}

/// Why a request failed, cause by cause, leaving out reqwest's layers (each
/// says "error sending request for url (...)") and hyper's "client error
/// (Connect)", which only repeat what the causes under them say.
fn transport_reason(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        let text = error.to_string();
        let wrapper = error.is::<reqwest::Error>() || text.starts_with("client error (");
        if !wrapper && !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        cause = error.source();
    }
    if parts.is_empty() {
        // Nothing under reqwest's own error: say what kind of failure it was.
        return if error.is_timeout() {
            "timed out".into()
        } else if error.is_decode() || error.is_body() {
            "the answer could not be read".into()
        } else {
            error.to_string()
        };
    }
    parts.join(": ")
}

/// The rustls error behind a failed request, if TLS failed.
fn rustls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error hides the error it wraps from source(), and may wrap
        // another io::Error.
        cause = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// What went wrong with TLS, and what to do, when retrying will not help.
fn tls_problem(error: &reqwest::Error) -> Option<String> {
    use rustls::{AlertDescription, Error};
    let tls = rustls_error(error)?;
    let advice = match tls {
        // openssl req -x509 makes CA certificates; webpki refuses one as a
        // server's own even when it is the trusted CA.
        Error::InvalidCertificate(_) if tls.to_string().contains("CaUsedAsEndEntity") => {
            "the orchestrator's certificate is a CA certificate, which cannot be a server's own; make one with basicConstraints CA:FALSE (openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE) or have a CA sign it"
        }
        Error::InvalidCertificate(_) => {
            "the orchestrator's certificate does not verify; pass the CA that signed it with --ca-cert (MIMIR_CA_CERT), and check that it names this host"
        }
        Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => {
            "the orchestrator refused this client's certificate or its absence; pass one signed by its tls.clientCaFile with --client-cert and --client-key"
        }
        _ => return None,
    };
    Some(format!("{tls} ({advice})"))
}

fn encode_query(pairs: &[(&str, String)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a constant URL parses");
    url.query_pairs_mut()
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    url.query().unwrap_or_default().to_string()
}

fn api_error(status: StatusCode, body: &[u8], url: &str) -> ClientError {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: String,
        message: String,
        field: Option<String>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { error }) => ClientError::Api {
            status,
            code: error.code,
            message: error.message,
            field: error.field,
        },
        Err(_) => ClientError::Unexpected {
            url: url.to_string(),
            message: format!(
                "{status}: {}",
                String::from_utf8_lossy(body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        },
    }
}
