//! The page's static files, compiled into the binary: our own HTML, CSS and
//! JavaScript modules, no third-party code and no build step. Served with an
//! ETag so a reload revalidates in one round trip, and a content security
//! policy that allows nothing but this origin.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_str!(concat!("assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page loads.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("charts.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("prometheus.js", JS),
    asset!("pages/overview.js", JS),
    asset!("pages/tasks.js", JS),
    asset!("pages/task.js", JS),
    asset!("pages/workers.js", JS),
    asset!("pages/pipelines.js", JS),
    asset!("pages/schedules.js", JS),
    asset!("pages/health.js", JS),
    asset!("pages/storage.js", JS),
    asset!("pages/models.js", JS),
];

/// Only this origin: no inline script, no third-party anything.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One tag for the whole set: they change together, with the binary.
fn etag() -> &'static HeaderValue {
    static ETAG: OnceLock<HeaderValue> = OnceLock::new();
    ETAG.get_or_init(|| {
        let mut hasher = DefaultHasher::new();
        for asset in ASSETS {
            asset.path.hash(&mut hasher);
            asset.body.hash(&mut hasher);
        }
        HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
            .unwrap_or_else(|_| HeaderValue::from_static("\"mimir\""))
    })
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return crate::api::error::ApiError::not_found(format!("no dashboard file {path:?}"))
            .into_response();
    };
    let tag = etag();
    let common = [
        (header::ETAG, tag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
    ];
    if request.get(header::IF_NONE_MATCH) == Some(tag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, asset.content_type)],
        asset.body,
    )
        .into_response()
}

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /dashboard/{*path}`: its styles and scripts.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for line in asset.body.lines() {
                let Some(from) = line.split(" from \"").nth(1) else {
                    continue;
                };
                let target = from.split('"').next().unwrap_or_default();
                let base = asset.path.rsplit_once('/').map_or("", |(dir, _)| dir);
                let resolved = match target.strip_prefix("../") {
                    Some(rest) => rest.to_string(),
                    None => {
                        let rest = target.trim_start_matches("./");
                        if base.is_empty() {
                            rest.to_string()
                        } else {
                            format!("{base}/{rest}")
                        }
                    }
                };
                assert!(
                    ASSETS.iter().any(|a| a.path == resolved),
                    "{} imports {target:?}, which is not embedded",
                    asset.path
                );
            }
        }
    }
}
