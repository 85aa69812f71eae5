//! A full disk under the store: 507 `storage_full`, `/ready` 503 with the
//! reason, and writes that resume by themselves once space is freed. The
//! disk is a real, small tmpfs; where mounting is not permitted the test says
//! so and passes without running.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mimir_server::{AppState, api};
use mimir_store::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use support::NOOP;
use tower::ServiceExt;

/// A tmpfs of a few MiB, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts one, or says why not and answers `None`.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallDisk { dir }),
            Ok(output) => {
                eprintln!(
                    "SKIPPED: cannot mount a {size} tmpfs to fill ({}); run as root to test a full disk",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(error) => {
                eprintln!("SKIPPED: cannot run mount ({error}); run as root to test a full disk");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk refuses more; returns it.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        for chunk in [64 * 1024, 4096, 512, 1] {
            let block = vec![7u8; chunk];
            while file.write_all(&block).is_ok() {}
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn send(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A submission large enough that each one grows the WAL.
fn bulky(n: usize) -> Value {
    json!({"type": "pipeline_execution", "project_id": "full", "task_spec": {
        "pipeline_id": NOOP, "parameters": {"n": n, "padding": "x".repeat(48 * 1024)}}})
}

async fn stored_tasks(app: &Router) -> usize {
    let (status, page) = send(app, "GET", "/api/worktasks?limit=1000", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["worktasks"].as_array().expect("worktasks").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_storage_full_and_not_ready_until_space_is_freed() {
    let Some(disk) = SmallDisk::mount("4m") else {
        return;
    };
    let store = SqliteStore::open(disk.path(), SqliteOptions::default()).expect("open");
    support::put_noop(&store, "full").await;
    let app = api::app(AppState::new(Arc::new(store)));
    let (status, _) = send(&app, "POST", "/api/worktasks", Some(bulky(0))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = send(&app, "GET", "/ready", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let filler = disk.fill();
    let mut accepted = 1;
    let refusal = loop {
        let (status, body) = send(&app, "POST", "/api/worktasks", Some(bulky(accepted))).await;
        if status != StatusCode::CREATED {
            break (status, body);
        }
        accepted += 1;
        assert!(accepted < 200, "a full disk kept accepting tasks");
    };
    assert_eq!(refusal.0, StatusCode::INSUFFICIENT_STORAGE, "{}", refusal.1);
    assert_eq!(refusal.1["error"]["code"], "storage_full", "{}", refusal.1);
    assert!(
        refusal.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("disk is full")),
        "{}",
        refusal.1
    );

    // Not ready while writes fail that way, and saying why.
    let (status, ready) = send(&app, "GET", "/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["checks"]["store"], "full", "{ready}");
    assert!(
        ready["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no space left")),
        "{ready}"
    );
    // Nothing of a refused write was stored, and reads still answer.
    let (status, body) = send(&app, "POST", "/api/worktasks", Some(bulky(999))).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(stored_tasks(&app).await, accepted);
    let (_, summary) = send(&app, "GET", "/api/metrics", None).await;
    assert_eq!(summary["queue"]["length"], accepted, "{summary}");

    // Space freed: ready again and writing, with no restart.
    std::fs::remove_file(filler).expect("free the space");
    let (status, ready) = send(&app, "GET", "/ready", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let (status, body) = send(&app, "POST", "/api/worktasks", Some(bulky(1000))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(stored_tasks(&app).await, accepted + 1);
}
