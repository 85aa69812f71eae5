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

/// The `q`-quantile of `values` as the dashboard defines it: the smallest
/// value with at least `q` of them at or below it.
fn exact_quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

/// Asserts `shown` is within the dashboard's stated ±4.5% of `exact`.
fn within_stated_error(what: &str, shown: f64, exact: f64) {
    assert!(
        (shown / exact - 1.0).abs() <= 0.045,
        "{what}: the page shows {shown} s, the exact value is {exact} s"
    );
}

/// The number of a `[number, text]` figure the page wrote.
fn figure(pair: &serde_json::Value) -> f64 {
    pair[0]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("not a figure: {pair}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_figures_match_a_workload_of_known_durations() {
    let orchestrator = Orchestrator::start(&["--max-workers", "2"]);
    let client = orchestrator.client();
    // Pipelines of known durations, and one that fails at once.
    let mut kinds = Vec::new();
    for (step, ms, runs) in [("nap50", 50, 10), ("nap200", 200, 10), ("nap2000", 2000, 1)] {
        let id = one_step(&client, step, "core.sleep", json!({ "ms": ms })).await;
        kinds.push((id, step, runs, json!({})));
    }
    let boom = one_step(&client, "boom", "core.fail", json!({"message": "no"})).await;
    kinds.push((boom, "boom", 3, json!({"max_retries": 0})));
    let mut submitted = Vec::new();
    for (pipeline, step, runs, body) in &kinds {
        for _ in 0..*runs {
            let path = format!("/api/pipelines/{pipeline}/execute");
            submitted.push((
                pipeline.clone(),
                *step,
                post_task(&client, &path, body.clone()).await,
            ));
        }
    }
    // The exact times, from what the workers reported and the store kept.
    let mut step_times: std::collections::HashMap<&str, Vec<f64>> = Default::default();
    let mut run_times = Vec::new();
    for (_, step, id) in &submitted {
        let task = wait_until_done(&client, *id, Duration::from_secs(60)).await;
        let ms = task
            .result
            .as_ref()
            .and_then(|r| r["steps"][0]["duration_ms"].as_f64());
        step_times
            .entry(step)
            .or_default()
            .push(ms.expect("the step's time") / 1000.0);
        let ran = task.completed_at.expect("ended") - task.started_at.expect("started");
        run_times.push(ran.num_microseconds().expect("short") as f64 / 1e6);
    }
    let sleep_times: Vec<f64> = ["nap50", "nap200", "nap2000"]
        .iter()
        .flat_map(|s| step_times[s].clone())
        .collect();
    // Each sleep took its time: never less, and more only by what a busy
    // machine adds (the figures below are checked against these times).
    for (step, ms) in [("nap50", 50.0), ("nap200", 200.0), ("nap2000", 2000.0)] {
        for t in &step_times[step] {
            assert!(
                *t >= ms / 1000.0 && *t < ms / 1000.0 + 1.0,
                "{step} took {t} s"
            );
        }
    }

    let browser = Browser::start(1400, 1000).await;
    let url = &orchestrator.url;

    // The page's duration format is the CLI's.
    let values = [
        0.0,
        4e-7,
        1.16e-5,
        8.5e-4,
        9.997e-4,
        0.001264351,
        0.051,
        0.15,
        1.264351,
        12.34,
        59.96,
        75.0,
        84.4,
        3599.6,
        7800.0,
    ];
    browser.client.goto(&format!("{url}/")).await.expect("open");
    browser
        .eval("(() => { import('/dashboard/format.js').then((m) => { window.fmtForTest = m; }); return true; })()")
        .await;
    browser.until("window.fmtForTest !== undefined").await;
    let shown = browser
        .eval(&format!(
            "{values:?}.map((v) => window.fmtForTest.seconds(v))"
        ))
        .await;
    let expected: Vec<String> = values
        .iter()
        .map(|v| mimir_core::duration_text::seconds_text(*v))
        .collect();
    assert_eq!(shown, json!(expected));

    // Pipelines: each pipeline's p50, p99 and mean from the recorded step
    // times, within the stated error (the mean exact), written as the CLI would.
    browser
        .client
        .goto(&format!("{url}/#/pipelines"))
        .await
        .expect("open pipelines");
    let read_rows = |panel: &str| {
        format!(
            "[...document.querySelectorAll('[data-panel={panel}] tbody tr')].map((tr) => ({{
               key: tr.cells[0].querySelector('[title]')?.title || tr.cells[0].innerText,
               plugin: tr.cells[1].innerText,
               runs: tr.cells[{runs}].innerText,
               figures: [...tr.querySelectorAll('[data-seconds]')].map((s) => [s.dataset.seconds, s.innerText]),
             }}))",
            runs = if panel == "steps" { 2 } else { 1 }
        )
    };
    browser
        .until("document.querySelectorAll('[data-panel=pipelines] tbody tr').length === 4 && document.body.innerText.includes('±4.5%')")
        .await;
    let rows = browser.eval(&read_rows("pipelines")).await;
    for (pipeline, step, runs, _) in &kinds {
        let row = rows
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["key"] == json!(pipeline)))
            .unwrap_or_else(|| panic!("no row for {step}: {rows}"));
        assert_eq!(row["runs"], json!(runs.to_string()), "{step}");
        let figures = row["figures"].as_array().expect("figures");
        let [p50, mean, p99] = [0, 1, 2].map(|i| {
            let value = figure(&figures[i]);
            assert_eq!(
                figures[i][1],
                json!(mimir_core::duration_text::seconds_text(value)),
                "{step}: the figure's text"
            );
            value
        });
        let times = &step_times[step];
        within_stated_error(&format!("{step} p50"), p50, exact_quantile(times, 0.5));
        within_stated_error(&format!("{step} p99"), p99, exact_quantile(times, 0.99));
        let exact_mean = times.iter().sum::<f64>() / times.len() as f64;
        assert!(
            (mean / exact_mean - 1.0).abs() < 1e-9,
            "{step} mean {mean} vs {exact_mean}"
        );
        let least = times.iter().copied().fold(f64::INFINITY, f64::min);
        let most = times.iter().copied().fold(0.0, f64::max);
        assert!(
            least <= p50 && p50 <= most && p99 <= most,
            "{step}: within the times seen"
        );
    }
    // Steps: each step's exact mean.
    let steps = browser.eval(&read_rows("steps")).await;
    for (step, times) in &step_times {
        let row = steps
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["key"] == json!(step)))
            .unwrap_or_else(|| panic!("no row for step {step}: {steps}"));
        assert_eq!(row["runs"], json!(times.len().to_string()), "{step}");
        let mean = figure(&row["figures"][0]);
        let exact_mean = times.iter().sum::<f64>() / times.len() as f64;
        assert!(
            (mean / exact_mean - 1.0).abs() < 1e-9,
            "step {step} mean {mean} vs {exact_mean}"
        );
    }
    // Plugins: core.sleep over all three sleeping pipelines; core.fail's errors.
    let plugins = browser.eval(&read_rows("plugins")).await;
    let sleep = plugins
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["key"] == json!("core.sleep")))
        .unwrap_or_else(|| panic!("no core.sleep row: {plugins}"));
    assert_eq!(sleep["runs"], json!("21"));
    let sleep_figures = sleep["figures"].as_array().expect("figures");
    let (p50, p99) = (figure(&sleep_figures[0]), figure(&sleep_figures[2]));
    within_stated_error("core.sleep p50", p50, exact_quantile(&sleep_times, 0.5));
    within_stated_error("core.sleep p99", p99, exact_quantile(&sleep_times, 0.99));
    let fail_errors = browser
        .eval("[...document.querySelectorAll('[data-panel=plugins] tbody tr')].find((tr) => tr.cells[0].innerText === 'core.fail')?.cells[5].innerText")
        .await;
    assert_eq!(fail_errors, json!("3"));
    browser.screenshot("pipelines-known-durations").await;
    no_console_errors(&browser, "the pipelines page").await;

    // A task's page: its step's time as recorded, in the one format.
    let (_, _, slow) = submitted
        .iter()
        .find(|(_, step, _)| *step == "nap2000")
        .expect("the slow task");
    browser
        .client
        .goto(&format!("{url}/#/task/{slow}"))
        .await
        .expect("open task");
    let step_time = browser
        .until(
            "[...document.querySelectorAll('section')].find((s) => s.querySelector('h2')?.innerText === 'Pipeline steps')
               ?.querySelector('tbody tr .bar-label')?.innerText",
        )
        .await;
    assert_eq!(
        step_time,
        json!(mimir_core::duration_text::seconds_text(
            step_times["nap2000"][0]
        ))
    );
    // Workers: every finished task counted once, on some worker.
    browser
        .client
        .goto(&format!("{url}/#/workers"))
        .await
        .expect("open workers");
    let finished = browser
        .until(
            "(() => { const rows = [...document.querySelectorAll('section')].find((s) => s.querySelector('h2')?.innerText.startsWith('Workers'))
                 ?.querySelectorAll('tbody tr') || [];
               const sum = (i) => [...rows].reduce((a, r) => a + Number(r.cells[i].innerText), 0);
               return rows.length > 0 && [sum(4), sum(5)]; })()",
        )
        .await;
    assert_eq!(finished, json!([21, 3]));

    // Overview: the last minute's run-time figures match the tasks' recorded
    // run times; the 2 s outlier leaves the bulk of the duration chart visible.
    browser
        .client
        .goto(&format!("{url}/#/overview"))
        .await
        .expect("open");
    browser
        .until("[...document.querySelectorAll('[data-chart] svg')].every(s => Number(s.dataset.points) > 0)")
        .await;
    let duration = browser
        .until("(() => { const b = [...document.querySelectorAll('[data-chart=duration] .now b')].map((b) => b.dataset.value);
                 return b.length === 2 && b.every((v) => v !== '') && b; })()")
        .await;
    let duration: Vec<f64> = serde_json::from_value::<Vec<String>>(duration)
        .expect("figures")
        .iter()
        .map(|v| v.parse().expect("a number"))
        .collect();
    within_stated_error(
        "task duration p50",
        duration[0],
        exact_quantile(&run_times, 0.5),
    );
    within_stated_error(
        "task duration p99",
        duration[1],
        exact_quantile(&run_times, 0.99),
    );
    // Waits and run times are drawn on a log scale.
    let scales = browser
        .eval("['wait', 'duration'].map((id) => document.querySelector(`[data-chart=${id}] svg`).dataset.scale)")
        .await;
    assert_eq!(scales, json!(["log", "log"]));
    // On that scale, a minute of 50 ms runs with one 84 s outlier keeps the
    // 50 ms line well above the axis (a linear axis puts it 0.06% above); a
    // time label at the chart's right edge is drawn whole.
    browser
        .eval("(() => { import('/dashboard/charts.js').then((m) => { window.chartsForTest = m; }); return true; })()")
        .await;
    browser.until("window.chartsForTest !== undefined").await;
    let drawn = browser
        .eval(
            "(() => {
               const to = 1699999200, from = to - 59;
               const t = [...Array(60).keys()].map((i) => from + i);
               const chart = new window.chartsForTest.LineChart({ title: 'test', unit: 'seconds', scale: 'log', series: [{ key: 'v', label: 'v' }] });
               document.body.append(chart.el);
               chart.setData(t, { v: t.map((x) => (x === to - 30 ? 84 : 0.05)) }, from, to);
               const svg = chart.svg;
               const axis = Number(svg.querySelector('line.axis').getAttribute('y1'));
               const heights = [...svg.querySelector('path.line').getAttribute('d').matchAll(/[ML]([0-9.]+),([0-9.]+)/g)]
                 .map((m) => (axis - Number(m[2])) / (axis - 10)).sort((a, b) => a - b);
               const labels = [...svg.querySelectorAll('text.time')].map((l) => l.getBBox());
               const last = labels[labels.length - 1];
               chart.el.remove();
               return { median: heights[Math.floor(heights.length / 2)], width: chart.width, lastEnd: last.x + last.width, labels: labels.length };
             })()",
        )
        .await;
    let median = drawn["median"].as_f64().expect("median");
    assert!(
        median > 0.1,
        "the bulk sits {median} of the height above the axis: {drawn}"
    );
    let (end, width) = (drawn["lastEnd"].as_f64(), drawn["width"].as_f64());
    assert!(
        end.zip(width)
            .is_some_and(|(end, width)| end <= width + 0.5 && end > width - 40.0),
        "the last time label, at the right edge, ends inside the chart: {drawn}"
    );
    // The status cards say what they count; the chart figures say their window.
    let text = browser.eval("document.body.innerText").await;
    let text = text.as_str().unwrap_or_default();
    assert!(
        text.contains("All tasks in the store, by status, now"),
        "{text}"
    );
    assert!(
        text.contains("chart figures over the last minute"),
        "{text}"
    );
    // Why the autoscaler wants the workers it wants.
    let scaling = browser
        .until("document.querySelector('.scaling')?.innerText.includes('raised at once') && document.querySelector('.scaling').innerText")
        .await;
    assert!(
        scaling
            .as_str()
            .is_some_and(|s| s.contains("Desired ") && s.contains(" → ")),
        "{scaling}"
    );
    let marks = browser
        .eval("document.querySelectorAll('[data-chart=workers] .mark title').length")
        .await;
    assert!(marks.as_u64().is_some_and(|n| n >= 1), "{marks}");
    // Active and desired workers: the same colours here and on Health.
    let colours = "Object.fromEntries([...[...document.querySelectorAll('.legend')].filter((l) => l.innerText.includes('desired'))[0]
                     .querySelectorAll('.key')].map((k) => [k.innerText, getComputedStyle(k, '::before').color]))";
    let overview_colours = browser.eval(colours).await;
    browser.screenshot("overview-known-durations").await;
    browser
        .client
        .goto(&format!("{url}/#/health"))
        .await
        .expect("open health");
    browser
        .until("document.querySelector('[data-panel=scaling-changes]')?.innerText.includes('raised at once')")
        .await;
    let health_colours = browser.eval(colours).await;
    assert_eq!(overview_colours, health_colours);
    assert_ne!(overview_colours["active"], overview_colours["desired"]);
    no_console_errors(&browser, "the overview and health pages").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_page_shows_its_empty_state_then_configs_and_operations() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let browser = Browser::start(1200, 900).await;
    browser
        .client
        .goto(&format!("{}/#/storage", orchestrator.url))
        .await
        .expect("open storage");
    browser
        .until("document.querySelector('nav a[aria-current=page]')?.dataset.section === 'storage'")
        .await;
    for (panel, text) in [
        ("configs", "No storage config yet"),
        (
            "operations",
            "No storage operation since the orchestrator started.",
        ),
        ("pools", "No connection pool is open"),
    ] {
        browser
            .until(&format!(
                "document.querySelector('[data-panel={panel}]')?.innerText.includes({text:?})"
            ))
            .await;
    }
    let counts = browser
        .eval("[...document.querySelectorAll('.stats dd')].slice(0, 3).map(d => d.innerText)")
        .await;
    assert_eq!(counts, json!(["0", "0", "0"]), "configs, up, down");
    browser.screenshot("storage-empty").await;

    // A config and a store through the API show up on the next poll: the
    // config with its project and backend, the store in the operations table.
    let client = orchestrator.client();
    let config: serde_json::Value = client
        .call(
            reqwest::Method::POST,
            "/api/storage/configs",
            Some(&json!({"project_id": "shop", "plugin_type": "filesystem",
                "config": {"options": {"base_path": "shop"}}})),
        )
        .await
        .expect("create a storage config");
    let id = config["id"].as_str().expect("id").to_string();
    let _: serde_json::Value = client
        .call(
            reqwest::Method::POST,
            "/api/storage/store",
            Some(&json!({"storage_id": id, "cir_data": {"version": "1.0",
                "data": [{"name": "a"}, {"name": "b"}]}})),
        )
        .await
        .expect("store");
    browser
        .until(&format!(
            "document.querySelector('[data-panel=configs] [data-storage-id={id:?}]') !== null"
        ))
        .await;
    browser
        .until("document.querySelector('[data-panel=operations]')?.innerText.includes('store')")
        .await;
    let row = browser
        .eval(&format!(
            "document.querySelector('[data-panel=configs] [data-storage-id={id:?}]').closest('tr').innerText"
        ))
        .await;
    let row = row.as_str().unwrap_or_default().to_string();
    assert!(row.contains("shop") && row.contains("filesystem"), "{row}");
    browser.screenshot("storage-in-use").await;
    no_console_errors(&browser, "the storage page").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_page_shows_a_trained_model_its_score_and_who_predicted() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let browser = Browser::start(1200, 900).await;
    browser
        .client
        .goto(&format!("{}/#/models", orchestrator.url))
        .await
        .expect("open models");
    browser
        .until("document.querySelector('nav a[aria-current=page]')?.dataset.section === 'models'")
        .await;
    for (panel, text) in [
        ("models", "No model yet"),
        ("inference", "No inference since the orchestrator started."),
        ("training", "No training has completed"),
    ] {
        browser
            .until(&format!(
                "document.querySelector('[data-panel={panel}]')?.innerText.includes({text:?})"
            ))
            .await;
    }
    browser.screenshot("models-empty").await;

    // A model trained on 200 labelled records and asked about 50 more.
    let client = orchestrator.client();
    let records: Vec<serde_json::Value> = (0..250)
        .map(|i| {
            let x = (i * 37 % 100) as f64 / 100.0;
            json!({"x": x, "y": 1.0 - x, "label": if x > 0.5 { "high" } else { "low" }})
        })
        .collect();
    let model: serde_json::Value = client
        .call(
            reqwest::Method::POST,
            "/api/ml-models",
            Some(
                &json!({"project_id": "page", "name": "page-model", "type": "decision_tree",
                "training_config": {"label_column": "label", "feature_columns": ["x", "y"]}}),
            ),
        )
        .await
        .expect("create a model");
    let id = model["id"].as_str().expect("id").to_string();
    let config: serde_json::Value = client
        .call(
            reqwest::Method::POST,
            "/api/storage/configs",
            Some(&json!({"project_id": "page", "plugin_type": "filesystem",
                "config": {"options": {"base_path": "page"}}})),
        )
        .await
        .expect("create a storage config");
    let storage = config["id"].as_str().expect("id").to_string();
    let _: serde_json::Value = client
        .call(
            reqwest::Method::POST,
            "/api/storage/store",
            Some(
                &json!({"storage_id": storage, "cir_data": {"version": "1.0",
                "data": records[..200]}}),
            ),
        )
        .await
        .expect("store");
    let training: serde_json::Value = client
        .call(
            reqwest::Method::POST,
            "/api/ml-models/train",
            Some(&json!({"model_id": id, "input_datasets": [storage]})),
        )
        .await
        .expect("train");
    let training = training["worktask_id"]
        .as_str()
        .expect("task id")
        .parse()
        .expect("uuid");
    let done =
        harness::pipelines::wait_until_done(&client, training, Duration::from_secs(120)).await;
    assert_eq!(
        done.status,
        mimir_core::WorkTaskStatus::Completed,
        "{done:?}"
    );
    let inference: serde_json::Value = client
        .call(
            reqwest::Method::POST,
            &format!("/api/ml-models/{id}/infer"),
            Some(&json!({"input": {"records": records[200..]}})),
        )
        .await
        .expect("infer");
    let inference = inference["worktask_id"]
        .as_str()
        .expect("task id")
        .parse()
        .expect("uuid");
    let done =
        harness::pipelines::wait_until_done(&client, inference, Duration::from_secs(120)).await;
    assert_eq!(
        done.status,
        mimir_core::WorkTaskStatus::Completed,
        "{done:?}"
    );

    browser
        .until(&format!(
            "document.querySelector('[data-panel=models] [data-model-id={id:?}]') !== null"
        ))
        .await;
    let row = browser
        .eval(&format!(
            "document.querySelector('[data-panel=models] [data-model-id={id:?}]').closest('tr').innerText"
        ))
        .await;
    let row = row.as_str().unwrap_or_default().to_string();
    assert!(
        row.contains("page-model")
            && row.contains("trained")
            && row.contains("accuracy")
            && row.contains("v1"),
        "{row}"
    );
    browser
        .until(&format!(
            "document.querySelector('[data-panel=spread] [data-worker={:?}]') !== null",
            done.worker_id
        ))
        .await;
    let spread = browser
        .eval("document.querySelector('[data-panel=spread]').innerText")
        .await;
    let spread = spread.as_str().unwrap_or_default().to_string();
    assert!(
        spread.contains("page-model") && spread.contains("50") && spread.contains("100"),
        "{spread}"
    );
    browser
        .until(
            "document.querySelector('[data-panel=training]')?.innerText.includes('decision_tree')",
        )
        .await;
    browser.screenshot("models-in-use").await;
    no_console_errors(&browser, "the models page").await;
    browser.quit().await;
}
