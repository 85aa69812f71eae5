//! The built-in dashboard end to end, in a real headless Chromium: after a
//! known workload the overview's charts hold data points, the task filter
//! returns the expected rows, a failed task's page shows its error and every
//! attempt, every page renders without console errors, in light and dark and
//! in a narrow window; with an API token the page asks for it. Screenshots of
//! each page are saved under `target/tmp/dashboard/`.

mod harness;

use harness::Orchestrator;
use harness::browser::Browser;
use harness::pipelines::{one_step, post_task, wait_until_done};
use serde_json::json;
use std::time::Duration;

/// Fast retries keep the workload short.
const FAST_RETRIES: &str = "retry:\n  backoffBaseMs: 20\n  backoffCapMs: 50\n";

/// Fails the test with the messages when the page logged errors.
async fn no_console_errors(browser: &Browser, page: &str) {
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors on {page}: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_pages_show_a_known_workload() {
    let orchestrator = Orchestrator::start_with_config(FAST_RETRIES, &["--max-workers", "2"]);
    let client = orchestrator.client();
    // 12 executions that complete and 3 that fail after 2 retries each.
    let ok = one_step(&client, "nap", "core.sleep", json!({"ms": 20})).await;
    let bad = one_step(
        &client,
        "boom",
        "core.fail",
        json!({"message": "disk on fire"}),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(post_task(&client, &format!("/api/pipelines/{ok}/execute"), json!({})).await);
    }
    let mut failed = Vec::new();
    for _ in 0..3 {
        failed.push(
            post_task(
                &client,
                &format!("/api/pipelines/{bad}/execute"),
                json!({"max_retries": 2}),
            )
            .await,
        );
    }
    for id in ids.iter().chain(&failed) {
        wait_until_done(&client, *id, Duration::from_secs(60)).await;
    }

    let browser = Browser::start(1400, 1000).await;
    let url = &orchestrator.url;

    // Overview: every chart drew points, completions included, and the live
    // stream is connected.
    browser.client.goto(&format!("{url}/")).await.expect("open");
    browser
        .until("document.getElementById('live').dataset.state === 'live'")
        .await;
    browser
        .until("[...document.querySelectorAll('[data-chart] svg')].every(s => Number(s.dataset.points) > 0)")
        .await;
    // The completions line rises above the axis: some second saw completions.
    let highest = browser
        .until(
            "(() => { const svg = document.querySelector('[data-chart=outcomes] svg');
               const axis = Number(svg.querySelector('line.axis').getAttribute('y1'));
               const ys = (svg.querySelector('path.series-1').getAttribute('d').match(/,[0-9.]+/g) || [])
                 .map(v => Number(v.slice(1)));
               return ys.some(y => y < axis - 1); })()",
        )
        .await;
    assert_eq!(highest, json!(true));
    let ticks = browser
        .eval("[...document.querySelectorAll('[data-chart=duration] text.tick')].map(t => t.textContent).join(' ')")
        .await;
    assert!(
        ticks
            .as_str()
            .is_some_and(|t| t.contains(" s") || t.contains("ms")),
        "the duration axis carries its unit: {ticks}"
    );
    let completed = browser
        .until("document.querySelector('.stat.status-completed dd')?.innerText")
        .await;
    assert_eq!(completed, json!("12"));
    browser.screenshot("overview").await;
    // Dragging across a chart zooms every chart and offers a reset.
    browser
        .eval(
            "(() => { const svg = document.querySelector('[data-chart=queue] svg');
               const box = svg.getBoundingClientRect();
               const at = (x) => ({ clientX: box.left + x, clientY: box.top + 50, pointerId: 1, bubbles: true });
               svg.dispatchEvent(new PointerEvent('pointerdown', at(box.width * 0.6)));
               svg.dispatchEvent(new PointerEvent('pointermove', at(box.width * 0.99)));
               svg.dispatchEvent(new PointerEvent('pointerup', at(box.width * 0.99)));
               return true; })()",
        )
        .await;
    browser
        .until("!document.querySelector('button.reset').hidden && document.querySelector('.window-label').innerText.includes('–')")
        .await;
    browser.screenshot("overview-zoomed").await;
    browser
        .eval("(() => { document.querySelector('button.reset').click(); return true; })()")
        .await;
    browser
        .until("document.querySelector('button.reset').hidden")
        .await;
    no_console_errors(&browser, "the overview").await;

    // Tasks: the failed filter returns exactly the three failed tasks.
    browser
        .client
        .goto(&format!("{url}/#/tasks?status=failed"))
        .await
        .expect("open tasks");
    let rows = browser
        .until("document.querySelector('[data-rows]')?.dataset.rows")
        .await;
    assert_eq!(rows, json!("3"));
    let statuses = browser
        .eval("[...document.querySelectorAll('tbody .badge')].map(b => b.innerText)")
        .await;
    assert_eq!(statuses, json!(["failed", "failed", "failed"]));
    let select = browser
        .eval("document.querySelector('select[name=status]').value")
        .await;
    assert_eq!(select, json!("failed"), "the form shows the filter in use");
    browser.screenshot("tasks-failed").await;
    // A filter with no match says so.
    browser
        .client
        .goto(&format!("{url}/#/tasks?type=ml_training"))
        .await
        .expect("open tasks");
    browser
        .until("document.body.innerText.includes('No task matches these filters.')")
        .await;
    no_console_errors(&browser, "the task list").await;

    // A failed task: its error and all three attempts, each with the error.
    let id = failed[0];
    browser
        .client
        .goto(&format!("{url}/#/task/{id}"))
        .await
        .expect("open task");
    browser
        .until("document.querySelectorAll('tbody tr').length >= 3")
        .await;
    let error = browser
        .eval("document.querySelector('.panel.error').innerText")
        .await;
    assert!(
        error.as_str().is_some_and(|e| e.contains("disk on fire")),
        "{error}"
    );
    let attempts = browser
        .eval(
            "[...document.querySelectorAll('section')].find(s => s.querySelector('h2')?.innerText === 'Attempts')
               .querySelectorAll('tbody tr').length",
        )
        .await;
    assert_eq!(attempts, json!(3));
    let outcomes = browser
        .eval(
            "[...[...document.querySelectorAll('section')].find(s => s.querySelector('h2')?.innerText === 'Attempts')
               .querySelectorAll('tbody tr')].map(r => r.innerText.includes('failed') && r.innerText.includes('disk on fire'))",
        )
        .await;
    assert_eq!(outcomes, json!([true, true, true]));
    let steps = browser
        .eval("document.body.innerText.includes('core.fail')")
        .await;
    assert_eq!(steps, json!(true), "the failed step is listed");
    browser.screenshot("task-failed").await;
    no_console_errors(&browser, "a task page").await;

    // Workers, pipelines, health: each renders its data.
    browser
        .client
        .goto(&format!("{url}/#/workers"))
        .await
        .expect("open workers");
    browser
        .until("document.body.innerText.includes('Tasks per worker') && document.querySelectorAll('tbody tr').length > 0")
        .await;
    browser.screenshot("workers").await;
    browser
        .client
        .goto(&format!("{url}/#/pipelines"))
        .await
        .expect("open pipelines");
    browser
        .until("document.body.innerText.includes('core.sleep') && document.body.innerText.includes('core.fail')")
        .await;
    browser.screenshot("pipelines").await;
    browser
        .client
        .goto(&format!("{url}/#/health"))
        .await
        .expect("open health");
    browser
        .until("document.body.innerText.includes('/api/worktasks') && document.body.innerText.includes('Store latency')")
        .await;
    browser.screenshot("health").await;
    no_console_errors(&browser, "workers, pipelines and health").await;

    // Dark scheme and a narrow window: still readable, nothing wider than the screen.
    browser.color_scheme("dark").await;
    browser
        .client
        .goto(&format!("{url}/#/overview"))
        .await
        .expect("open");
    browser
        .until("[...document.querySelectorAll('[data-chart] svg')].every(s => Number(s.dataset.points) > 0)")
        .await;
    let background = browser
        .eval("getComputedStyle(document.body).backgroundColor")
        .await;
    assert_ne!(
        background,
        json!("rgb(246, 247, 249)"),
        "dark scheme applied"
    );
    browser.screenshot("overview-dark").await;
    browser
        .client
        .set_window_size(400, 900)
        .await
        .expect("resize");
    browser
        .client
        .goto(&format!("{url}/#/tasks"))
        .await
        .expect("open");
    browser.until("document.querySelector('[data-rows]')").await;
    let overflow = browser
        .eval("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(
        overflow,
        json!(0),
        "no sideways scrolling in a narrow window"
    );
    browser.screenshot("tasks-narrow-dark").await;
    no_console_errors(&browser, "the dark and narrow pages").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_token_the_dashboard_asks_for_it() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1", "--api-token", "s3cret"]);
    // Local workers still run pipelines (they read definitions with the
    // token they were given), and the worker protocol is not left open.
    let client = mimir_client::Client::new(&orchestrator.url).with_token(Some("s3cret".into()));
    let pipeline = one_step(&client, "nap", "core.sleep", json!({"ms": 1})).await;
    let id = post_task(
        &client,
        &format!("/api/pipelines/{pipeline}/execute"),
        json!({}),
    )
    .await;
    let task = wait_until_done(&client, id, Duration::from_secs(60)).await;
    assert_eq!(task.status.as_str(), "completed", "{task:?}");
    let open = reqwest::Client::new()
        .post(format!("{}/api/workers/register", orchestrator.url))
        .json(&json!({"hostname": "intruder"}))
        .send()
        .await
        .expect("register");
    assert_eq!(open.status(), 401, "the worker protocol needs a token too");
    let browser = Browser::start(1200, 900).await;
    browser
        .client
        .goto(&format!("{}/", orchestrator.url))
        .await
        .expect("open");
    browser
        .until("document.getElementById('token-dialog').open")
        .await;
    browser.screenshot("token-dialog").await;
    browser
        .eval("(() => { document.getElementById('token-input').value = 'wrong'; document.getElementById('token-form').requestSubmit(); return true; })()")
        .await;
    browser
        .until("document.getElementById('token-dialog').open && document.getElementById('token-error').innerText.includes('not accepted')")
        .await;
    browser
        .eval("(() => { document.getElementById('token-input').value = 's3cret'; document.getElementById('token-form').requestSubmit(); return true; })()")
        .await;
    browser
        .until("!document.getElementById('token-dialog').open && document.querySelector('[data-chart]') && document.getElementById('live').dataset.state === 'live'")
        .await;
    // 401s before signing in are expected console lines; nothing else is.
    let errors: Vec<String> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !e.contains("401"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    browser.quit().await;
}

/// The figure for a large store: with a million tasks stored (seeded by
/// `bench dashboard` through the API), how soon the overview paints and draws
/// its charts in a real browser. Run it with
/// `cargo test --release -p mimir-aip --test dashboard -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: seeds a million tasks (about a minute)"]
async fn first_paint_with_a_million_tasks() {
    let tasks = std::env::var("MIMIR_DASHBOARD_TASKS").unwrap_or_else(|_| "1000000".into());
    let orchestrator = Orchestrator::start(&["--max-workers", "0", "--log-level", "error"]);
    let bench = std::process::Command::new(harness::bin())
        .args([
            "bench",
            "dashboard",
            "--orchestrator",
            &orchestrator.url,
            "--tasks",
            &tasks,
        ])
        .output()
        .expect("run bench dashboard");
    assert!(
        bench.status.success(),
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    println!("{}", String::from_utf8_lossy(&bench.stdout));
    let browser = Browser::start(1400, 1000).await;
    for round in 0..5 {
        // A fresh load each round: navigate away, then to the overview.
        browser.client.goto("about:blank").await.expect("blank");
        browser
            .client
            .goto(&format!("{}/", orchestrator.url))
            .await
            .expect("open");
        let drawn = browser
            .until("performance.getEntriesByName('mimir:overview-drawn')[0]?.startTime")
            .await;
        let paint = browser
            .eval("performance.getEntriesByName('first-contentful-paint')[0]?.startTime")
            .await;
        let completed = browser
            .eval("document.querySelector('.stat.status-completed dd').innerText")
            .await;
        println!(
            "round {round}: first contentful paint {paint} ms, overview charts drawn {drawn} ms, completed shown {completed}"
        );
    }
    browser.quit().await;
}

/// A dashboard left open does not hold up a shutdown: its live stream ends and
/// the orchestrator exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_live_stream_ends_at_shutdown() {
    let mut orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let mut stream = reqwest::get(format!("{}/api/dashboard/stream", orchestrator.url))
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    // A second closes within a second or two and arrives as an event.
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("an event within 5 s")
        .expect("read");
    let text = String::from_utf8_lossy(first.as_deref().unwrap_or_default()).to_string();
    assert!(text.contains("event: second"), "{text}");
    let stopped = tokio::task::spawn_blocking(move || orchestrator.terminate());
    let status = tokio::time::timeout(Duration::from_secs(20), stopped)
        .await
        .expect("the orchestrator exits with a stream open")
        .expect("join");
    assert!(status.success(), "{status:?}");
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended");
}
