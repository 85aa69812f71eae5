//! `GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API, generated
//! from the handlers' `#[utoipa::path]` attributes and the wire types' own
//! schemas (the work task, submission, pipeline and result types derive them).
//!
//! The errors every route can answer, whatever its handler does, come from
//! the layers in front of it and are added to every operation here:
//! 403 (a non-loopback `Host` on a loopback listener; another web site's
//! change), 500, and for the `/api` routes 401 (a token is configured and
//! missing) and 503 (shutting down); a `POST` or `PUT` can also meet 400
//! (malformed JSON), 413 (body over the limit), 415 (not
//! `Content-Type: application/json`) and 507 (the disk is full).
//!
//! The test `tests/openapi.rs` compares the document's operations with the
//! routes [`super::routes`] serves.

use super::error::{ApiError, ErrorBody, ErrorDetail};
use super::step_schema::{STEP_SCHEMA, step_schema};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::OpenApi;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder, Responses,
};

/// The document's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mimir AIP",
        description = "The orchestrator's HTTP API: work tasks, pipelines, projects, the worker \
            protocol, health and metrics. JSON everywhere; every error is a 4xx or 5xx status \
            with the body {\"error\": {\"code\", \"message\", \"field\"}}. With api.token set, the \
            user API needs `Authorization: Bearer <token>`; with a worker token, the worker \
            protocol needs that one."
    ),
    paths(
        super::health::health,
        super::health::ready,
        super::health::summary,
        metrics,
        serve,
        super::worktasks::submit,
        super::worktasks::submit_batch,
        super::worktasks::list,
        super::worktasks::queue_length,
        super::worktasks::high_priority,
        super::worktasks::get,
        super::worktasks::attempts,
        super::explain::explain,
        super::worktasks::cancel,
        super::worktasks::report,
        super::worktasks::progress,
        super::catalog::create_project,
        super::catalog::list_projects,
        super::catalog::get_project,
        super::catalog::delete_project,
        super::catalog::create_pipeline,
        super::catalog::list_pipelines,
        super::catalog::get_pipeline,
        super::catalog::update_pipeline,
        super::catalog::delete_pipeline,
        super::catalog::execute,
        super::webhooks::webhook,
        super::checkpoints::get,
        super::checkpoints::put,
        super::schedules::list,
        super::schedules::create,
        super::schedules::get,
        super::schedules::update,
        super::schedules::delete,
        super::schedules::pause,
        super::schedules::resume,
        super::schedules::run_now,
        super::plugins::list,
        super::workers::list,
        super::workers::register,
        super::workers::deregister,
        super::workers::lease,
        super::workers::heartbeat,
        super::workers::results,
        super::workers::release,
        super::storage::worker::configs,
        super::storage::configs::create,
        super::storage::configs::list,
        super::storage::configs::get,
        super::storage::configs::update,
        super::storage::configs::delete,
        super::storage::operations::store,
        super::storage::operations::retrieve,
        super::storage::operations::update,
        super::storage::operations::delete,
        super::storage::operations::schema,
        super::storage::operations::health,
        super::storage::operations::metadata,
        super::ml_models::models::create,
        super::ml_models::models::list,
        super::ml_models::models::get,
        super::ml_models::models::update,
        super::ml_models::models::delete,
        super::ml_models::train::train,
        super::ml_models::infer::infer,
        super::ml_models::import::import,
        super::ml_models::evaluate::evaluate,
        super::ml_models::artifacts::download,
        super::ml_models::versions::upload,
        dashboard_overview,
        dashboard_summary,
        dashboard_pipelines,
        dashboard_stream,
        dashboard_metrics,
        dashboard_storage,
        dashboard_models,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&LayerErrors, &Links, &Security, &OptionalBodies),
    tags(
        (name = "worktasks", description = "Submit, list, inspect and cancel work tasks"),
        (name = "pipelines", description = "Define and run pipelines; the plugins their steps use"),
        (name = "schedules", description = "Pipelines fired on a clock: cron, time zones, catch-up and overlap rules"),
        (name = "projects", description = "Names and descriptions for project ids"),
        (name = "workers", description = "The workers connected"),
        (name = "storage", description = "Storage configs and the CIR operations through their connectors"),
        (name = "ml models", description = "The model registry: train and run models on storage data, import ONNX, check quality"),
        (name = "worker protocol", description = "What workers call: register, lease, heartbeat, report"),
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "dashboard", description = "What the built-in dashboard reads"),
    )
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The document as JSON, as `/openapi.json` serves it: [`document`] with
/// the pipeline step schema built from the actions' tables
/// ([`super::step_schema`]) in place of a free-form object.
///
/// utoipa 5 writes a link's fields in snake case (`operation_id`) where
/// OpenAPI says `operationId`; they are renamed here so clients follow them.
pub fn document_json() -> serde_json::Value {
    let mut json = serde_json::to_value(document()).unwrap_or_default();
    let registry = mimir_pipeline::Registry::confined(&mimir_pipeline::Confinement::default())
        .unwrap_or_default()
        .with_storage();
    let schemas = &mut json["components"]["schemas"];
    schemas[STEP_SCHEMA] = step_schema(&registry);
    let step = serde_json::json!({ "$ref": format!("#/components/schemas/{STEP_SCHEMA}") });
    for holder in ["PipelineBody", "Pipeline"] {
        schemas[holder]["properties"]["steps"]["items"] = step.clone();
    }
    let paths = json.get_mut("paths").and_then(|p| p.as_object_mut());
    for item in paths.into_iter().flat_map(|p| p.values_mut()) {
        let operations = item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut());
        for operation in operations {
            let responses = operation
                .get_mut("responses")
                .and_then(|r| r.as_object_mut());
            for response in responses.into_iter().flat_map(|r| r.values_mut()) {
                let links = response.get_mut("links").and_then(|l| l.as_object_mut());
                for link in links.into_iter().flat_map(|l| l.values_mut()) {
                    let Some(link) = link.as_object_mut() else {
                        continue;
                    };
                    for (snake, camel) in [
                        ("operation_id", "operationId"),
                        ("operation_ref", "operationRef"),
                        ("request_body", "requestBody"),
                    ] {
                        if let Some(value) = link.remove(snake) {
                            link.insert(camel.to_string(), value);
                        }
                    }
                }
            }
        }
    }
    json
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "health",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn serve() -> Response {
    static JSON: OnceLock<Result<String, String>> = OnceLock::new();
    let json = JSON
        .get_or_init(|| serde_json::to_string_pretty(&document_json()).map_err(|e| e.to_string()));
    match json {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        Err(error) => ApiError::internal(format!("the OpenAPI document: {error}")).into_response(),
    }
}

/// Links from the operations that create things to those that use their
/// ids, so clients (and the contract fuzzing's stateful phase) can follow
/// them: `(path, method, status, link name, target operation id, parameter,
/// where the value is in the answer)`.
const LINKS: &[(&str, HttpMethod, &str, &str, &str, &str, &str)] = &[
    (
        "/api/worktasks",
        HttpMethod::Post,
        "201",
        "GetWorkTask",
        "get_worktask",
        "id",
        "$response.body#/worktask_id",
    ),
    (
        "/api/worktasks",
        HttpMethod::Post,
        "201",
        "GetAttempts",
        "attempts",
        "id",
        "$response.body#/worktask_id",
    ),
    (
        "/api/worktasks",
        HttpMethod::Post,
        "201",
        "ExplainWorkTask",
        "explain_worktask",
        "id",
        "$response.body#/worktask_id",
    ),
    (
        "/api/worktasks",
        HttpMethod::Post,
        "201",
        "CancelWorkTask",
        "cancel_worktask",
        "id",
        "$response.body#/worktask_id",
    ),
    (
        "/api/pipelines/{id}/execute",
        HttpMethod::Post,
        "201",
        "GetWorkTask",
        "get_worktask",
        "id",
        "$response.body#/worktask_id",
    ),
    (
        "/api/pipelines",
        HttpMethod::Post,
        "201",
        "GetPipeline",
        "get_pipeline",
        "id",
        "$response.body#/id",
    ),
    (
        "/api/pipelines",
        HttpMethod::Post,
        "201",
        "UpdatePipeline",
        "update_pipeline",
        "id",
        "$response.body#/id",
    ),
    (
        "/api/pipelines",
        HttpMethod::Post,
        "201",
        "ExecutePipeline",
        "execute",
        "id",
        "$response.body#/id",
    ),
    (
        "/api/pipelines",
        HttpMethod::Post,
        "201",
        "DeletePipeline",
        "delete_pipeline",
        "id",
        "$response.body#/id",
    ),
    (
        "/api/storage/configs",
        HttpMethod::Post,
        "201",
        "GetStorageConfig",
        "get_storage_config",
        "id",
        "$response.body#/id",
    ),
    (
        "/api/storage/configs",
        HttpMethod::Post,
        "201",
        "DeleteStorageConfig",
        "delete_storage_config",
        "id",
        "$response.body#/id",
    ),
    (
        "/api/projects",
        HttpMethod::Post,
        "201",
        "GetProject",
        "get_project",
        "id",
        "$response.body#/id",
    ),
    (
        "/api/projects",
        HttpMethod::Post,
        "201",
        "DeleteProject",
        "delete_project",
        "id",
        "$response.body#/id",
    ),
    (
        "/api/workers/register",
        HttpMethod::Post,
        "201",
        "Lease",
        "lease",
        "worker_id",
        "$response.body#/worker_id",
    ),
    (
        "/api/workers/register",
        HttpMethod::Post,
        "201",
        "Heartbeat",
        "heartbeat",
        "worker_id",
        "$response.body#/worker_id",
    ),
    (
        "/api/workers/register",
        HttpMethod::Post,
        "201",
        "Release",
        "release",
        "worker_id",
        "$response.body#/worker_id",
    ),
    (
        "/api/workers/register",
        HttpMethod::Post,
        "201",
        "Deregister",
        "deregister",
        "worker_id",
        "$response.body#/worker_id",
    ),
];

/// Marks the one optional body optional: an empty body executes a pipeline
/// with no parameters (utoipa would say so only by allowing `null`, which is
/// not a body the API takes).
struct OptionalBodies;

impl utoipa::Modify for OptionalBodies {
    fn modify(&self, openapi: &mut Document) {
        let execute = openapi
            .paths
            .paths
            .get_mut("/api/pipelines/{id}/execute")
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.request_body.as_mut());
        if let Some(body) = execute {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// Adds [`LINKS`].
struct Links;

impl utoipa::Modify for Links {
    fn modify(&self, openapi: &mut Document) {
        for (path, method, status, name, target, parameter, value) in LINKS {
            let operation = openapi
                .paths
                .paths
                .get_mut(*path)
                .and_then(|item| match method {
                    HttpMethod::Post => item.post.as_mut(),
                    _ => item.get.as_mut(),
                });
            let response = operation.and_then(|o| o.responses.responses.get_mut(*status));
            if let Some(RefOr::T(response)) = response {
                let link = LinkBuilder::new()
                    .operation_id(*target)
                    .parameter(*parameter, *value)
                    .build();
                response.links.insert((*name).to_string(), RefOr::T(link));
            }
        }
    }
}

/// The bearer tokens and credentials each operation takes. Each is needed
/// only when configured, so every requirement list starts with `{}` (none).
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let schemes = [
            (
                "apiToken",
                HttpAuthScheme::Bearer,
                "api.token (MIMIR_API_TOKEN): the user API, when set",
            ),
            (
                "workerToken",
                HttpAuthScheme::Bearer,
                "orchestrator.workerAuthToken: the worker protocol, when set (else the API token)",
            ),
            (
                "metricsToken",
                HttpAuthScheme::Bearer,
                "metrics.bearerToken: /metrics, when set",
            ),
            (
                "metricsBasic",
                HttpAuthScheme::Basic,
                "metrics.username and metrics.password: /metrics, when set",
            ),
        ];
        for (name, scheme, description) in schemes {
            let http = HttpBuilder::new()
                .scheme(scheme)
                .description(Some(description))
                .build();
            components.add_security_scheme(name, SecurityScheme::Http(http));
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let worker = operation
                    .tags
                    .as_ref()
                    .is_some_and(|tags| tags.iter().any(|t| t == "worker protocol"));
                let names: &[&str] = match path.as_str() {
                    "/health" | "/ready" | "/openapi.json" => &[],
                    "/metrics" => &["metricsToken", "metricsBasic"],
                    "/api/pipelines/{id}"
                        if operation.operation_id.as_deref() == Some("get_pipeline") =>
                    {
                        &["apiToken", "workerToken"]
                    }
                    _ if worker => &["workerToken"],
                    _ => &["apiToken"],
                };
                if names.is_empty() {
                    continue;
                }
                let mut requirements = vec![SecurityRequirement::default()];
                for name in names {
                    requirements.push(SecurityRequirement::new(*name, Vec::<String>::new()));
                }
                operation.security = Some(requirements);
            }
        }
    }
}

/// Adds the errors of the layers every route sits behind.
struct LayerErrors;

impl utoipa::Modify for LayerErrors {
    fn modify(&self, openapi: &mut Document) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/");
            let operations = [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
                (HttpMethod::Put, item.put.as_mut()),
                (HttpMethod::Delete, item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    add_layer_errors(operation, &method, api || path == "/metrics", api);
                }
            }
        }
    }
}

fn add_layer_errors(operation: &mut Operation, method: &HttpMethod, guarded: bool, api: bool) {
    let body = matches!(method, HttpMethod::Post | HttpMethod::Put);
    let mut add = |status: StatusCode, why: &str| {
        add_error(&mut operation.responses, status, why);
    };
    add(
        StatusCode::FORBIDDEN,
        "Refused: a Host that is not loopback on a loopback listener, another web site's change, or a missing client certificate",
    );
    add(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error; the cause is in the orchestrator's log",
    );
    if guarded {
        add(
            StatusCode::UNAUTHORIZED,
            "A token is configured and the request lacks it",
        );
    }
    if api {
        add(
            StatusCode::SERVICE_UNAVAILABLE,
            "The orchestrator is shutting down",
        );
    }
    if body {
        add(
            StatusCode::BAD_REQUEST,
            "The body is not a JSON object of the documented shape; the field names the culprit",
        );
        add(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The body is over the size limit",
        );
        add(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The body is not sent as Content-Type: application/json",
        );
        add(
            StatusCode::INSUFFICIENT_STORAGE,
            "The orchestrator's disk is full; nothing was stored",
        );
    }
}

/// Adds `status` answered with the error body, unless the operation already
/// documents that status.
fn add_error(responses: &mut Responses, status: StatusCode, why: &str) {
    let code = status.as_u16().to_string();
    if responses.responses.contains_key(&code) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(why)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
                .build(),
        )
        .build();
    responses.responses.insert(code, RefOr::T(response));
}

/// `GET /metrics`: served by [`crate::telemetry::scrape::metrics`].
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition; OpenMetrics when the Accept header asks for application/openmetrics-text", content(
            (String = "text/plain; version=0.0.4; charset=utf-8"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )),
        (status = 401, description = "metrics.bearerToken or metrics.username/password are set and the request lacks them", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn metrics() {}

/// `GET /api/dashboard/overview`: served by the dashboard.
#[utoipa::path(
    get,
    path = "/api/dashboard/overview",
    tag = "dashboard",
    params(("since" = Option<i64>, Query, description = "Unix time of the first second wanted; defaults to all that is kept")),
    responses(
        (status = 200, description = "Everything the overview draws first: the timeline, recent figures, queue length, task counts, the autoscaler's decision", body = Object),
        (status = 400, description = "A parameter refused", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn dashboard_overview() {}

/// `GET /api/dashboard/summary`: served by the dashboard.
#[utoipa::path(
    get,
    path = "/api/dashboard/summary",
    tag = "dashboard",
    params(
        ("from" = Option<i64>, Query, description = "Unix time the window starts; defaults to a minute before `to`"),
        ("to" = Option<i64>, Query, description = "Unix time the window ends; defaults to now"),
    ),
    responses(
        (status = 200, description = "Totals and quantiles of the window", body = Object),
        (status = 400, description = "A parameter refused", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn dashboard_summary() {}

/// `GET /api/dashboard/pipelines`: served by the dashboard.
#[utoipa::path(
    get,
    path = "/api/dashboard/pipelines",
    tag = "dashboard",
    responses(
        (status = 200, description = "Run times per pipeline, step and plugin action since start: runs, failures, p50 and p99 (within 4.5%), exact mean, min, max and total, in seconds", body = Object),
    )
)]
#[allow(dead_code)]
fn dashboard_pipelines() {}

/// `GET /api/dashboard/stream`: served by the dashboard.
#[utoipa::path(
    get,
    path = "/api/dashboard/stream",
    tag = "dashboard",
    responses(
        (status = 200, description = "Server-sent events: a `second` event each second, `resync` when the client fell behind", content_type = "text/event-stream", body = String),
    )
)]
#[allow(dead_code)]
fn dashboard_stream() {}

/// `GET /api/dashboard/metrics`: served by the dashboard.
#[utoipa::path(
    get,
    path = "/api/dashboard/metrics",
    tag = "dashboard",
    params(("family" = String, Query, description = "Comma-separated metric family names, each starting with mimir_")),
    responses(
        (status = 200, description = "Those families in Prometheus text", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 400, description = "A parameter refused", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn dashboard_metrics() {}

/// `GET /api/dashboard/storage`: served by the dashboard.
#[utoipa::path(
    get,
    path = "/api/dashboard/storage",
    tag = "dashboard",
    responses(
        (status = 200, description = "Storage connectors since start: operations, errors, records, retries and latency percentiles by backend and operation; pool connections per backend; each storage config's health", body = Object),
    )
)]
#[allow(dead_code)]
fn dashboard_storage() {}

/// `GET /api/dashboard/models`: served by the dashboard.
#[utoipa::path(
    get,
    path = "/api/dashboard/models",
    tag = "dashboard",
    responses(
        (status = 200, description = "Every model with its status, versions and latest scores; inference items (per worker), latency and outcomes per model and training durations per model type since start", body = Object),
    )
)]
#[allow(dead_code)]
fn dashboard_models() {}
