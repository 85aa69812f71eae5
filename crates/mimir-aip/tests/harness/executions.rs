//! Counts the runs of each task outside the orchestrator: a pipeline whose
//! step calls `{base}/run/{n}` (`http.request`) makes one call per run, so
//! the calls are the executions, whatever the store says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Calls per task number.
#[derive(Clone, Default)]
pub struct Executions(Arc<Mutex<HashMap<u32, u32>>>);

impl Executions {
    /// Serves on a free loopback port; its base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let counts = self.0.clone();
        let app = axum::Router::new().route(
            "/run/{n}",
            axum::routing::post(move |axum::extract::Path(n): axum::extract::Path<u32>| {
                let counts = counts.clone();
                async move {
                    *counts.lock().expect("lock").entry(n).or_default() += 1;
                    "ok"
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        format!("http://{addr}")
    }

    /// Runs so far, by task number.
    pub fn counts(&self) -> HashMap<u32, u32> {
        self.0.lock().expect("lock").clone()
    }
}
