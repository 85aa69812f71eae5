//! A typed client of the orchestrator's HTTP API.
//!
//! Errors keep the API's error body (`code`, `message`, `field`) so callers can
//! show users exactly what the orchestrator said.

use mimir_core::WorkTask;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
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
    #[error("cannot reach the orchestrator at {url}: {source}")]
    Transport {
        /// The URL tried.
        url: String,
        /// Why.
        source: reqwest::Error,
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

/// Filters of a listing; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Status name.
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

/// A client of one orchestrator.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    /// A client of the orchestrator at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        Client {
            base: base.trim_end_matches('/').to_string(),
            http,
            token: None,
        }
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
        let transport = |source| ClientError::Transport {
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(api_error(status, &bytes, &url));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
            url,
            message: e.to_string(),
        })
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
