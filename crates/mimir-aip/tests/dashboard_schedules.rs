//! The dashboard's Schedules page end to end, in a real headless Chromium:
//! with no schedule it says how to create one; a schedule firing every second
//! shows its cron, pipeline, next fire, last outcome and a link to its last
//! task; pause, run-now and resume work from the page and change what the API
//! answers; the fire figures count its fires. Screenshots go under
//! `target/tmp/dashboard/`.

mod harness;

use harness::Orchestrator;
use harness::browser::Browser;
use harness::pipelines::{one_step, wait_until_done};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Fails the test with the messages when the page logged errors.
async fn no_console_errors(browser: &Browser, page: &str) {
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors on {page}: {errors:#?}");
}

/// The schedule as the API answers it.
async fn schedule(client: &mimir_client::Client, id: &str) -> Value {
    let listed: Value = client
        .call(Method::GET, "/api/schedules", None)
        .await
        .expect("list schedules");
    listed["schedules"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("schedule {id} not listed: {listed}"))
}

/// The page's row of schedule `id`, as text.
fn row(id: &str) -> String {
    format!(
        "document.querySelector('[data-panel=schedules] [data-schedule-id={id:?}]')?.closest('tr')"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedules_page_lists_a_schedule_and_pauses_runs_and_resumes_it() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let client = orchestrator.client();
    let url = &orchestrator.url;
    let browser = Browser::start(1400, 1000).await;

    // Nothing yet: the page says how to make a schedule.
    browser
        .client
        .goto(&format!("{url}/#/schedules"))
        .await
        .expect("open schedules");
    browser
        .until(
            "document.querySelector('nav a[aria-current=page]')?.dataset.section === 'schedules'",
        )
        .await;
    browser
        .until("document.querySelector('[data-panel=schedules]')?.innerText.includes('mimir-aip schedule create')")
        .await;
    browser
        .until("document.querySelector('[data-panel=outcomes]')?.innerText.includes('No schedule has fired')")
        .await;
    browser.screenshot("schedules-empty").await;
    no_console_errors(&browser, "the empty schedules page").await;

    // A schedule that fires a short pipeline every second.
    let pipeline = one_step(&client, "nap", "core.sleep", json!({"ms": 1})).await;
    let created: Value = client
        .call(
            Method::POST,
            "/api/schedules",
            Some(
                &json!({"project_id": "e2e", "name": "every-second", "pipeline_id": pipeline,
                "cron": "* * * * * *", "timezone": "UTC", "overlap": "allow"}),
            ),
        )
        .await
        .expect("create a schedule");
    let id = created["id"].as_str().expect("schedule id").to_string();

    // Its row: name, pipeline, cron and zone, enabled, and once it fired its
    // outcome and a link to its last task.
    let row = row(&id);
    let text = browser
        .until(&format!(
            "(() => {{ const r = {row}; return r && r.querySelector('.badge.status-fired') && r.querySelector('a[data-task-id]') ? r.innerText : null; }})()"
        ))
        .await;
    let text = text.as_str().unwrap_or_default().to_string();
    for expected in [
        "every-second",
        "* * * * * *",
        "UTC",
        "enabled",
        "fired",
        "allow",
    ] {
        assert!(text.contains(expected), "{expected:?} in the row: {text}");
    }
    let pipeline_link = browser
        .eval(&format!(
            "{row}.querySelector('[data-pipeline-id]').dataset.pipelineId"
        ))
        .await;
    assert_eq!(pipeline_link, json!(pipeline));
    // The next fire is a second or so away, counted down on the page.
    browser
        .until(&format!(
            "/in \\d|now/.test({row}.querySelector('[data-relative]')?.innerText || '')"
        ))
        .await;
    // The fire figures count its fires (since start, in the first minute).
    browser
        .until("Number(document.querySelector('.stat.schedule-fires dd')?.innerText.replace(/\\D/g, '')) > 0")
        .await;
    browser
        .until("document.querySelector('[data-panel=by-schedule]')?.innerText.includes('every-second')")
        .await;
    browser.screenshot("schedules-firing").await;

    // The last task's link opens the task page.
    let task = browser
        .eval(&format!(
            "{row}.querySelector('a[data-task-id]').dataset.taskId"
        ))
        .await;
    let task = task.as_str().expect("task id").to_string();
    browser
        .eval(&format!(
            "(() => {{ {row}.querySelector('a[data-task-id]').click(); return true; }})()"
        ))
        .await;
    browser
        .until(&format!(
            "document.querySelector('h1')?.innerText.includes({task:?})"
        ))
        .await;
    browser
        .client
        .goto(&format!("{url}/#/schedules"))
        .await
        .expect("back to schedules");

    // Pause from the page: the API says so, and the row offers Resume.
    browser
        .until(&format!(
            "(() => {{ const b = {row}?.querySelector('[data-action=pause]'); if (b) b.click(); return Boolean(b); }})()"
        ))
        .await;
    browser
        .until(&format!(
            "{row}?.querySelector('.badge.status-paused') && {row}.querySelector('[data-action=resume]')"
        ))
        .await;
    assert_eq!(schedule(&client, &id).await["enabled"], json!(false));
    browser
        .until("document.querySelector('[data-notice]').innerText.includes('Paused every-second')")
        .await;

    // Run now while paused: a task is submitted and linked from the notice.
    browser
        .eval(&format!(
            "(() => {{ {row}.querySelector('[data-action=run-now]').click(); return true; }})()"
        ))
        .await;
    let started = browser
        .until("document.querySelector('[data-notice] a')?.getAttribute('href')")
        .await;
    let started = started
        .as_str()
        .and_then(|href| href.strip_prefix("#/task/"))
        .expect("a link to the task")
        .parse()
        .expect("a task id");
    let ran = wait_until_done(&client, started, Duration::from_secs(60)).await;
    assert_eq!(ran.status.as_str(), "completed", "{ran:?}");
    browser.screenshot("schedules-paused").await;

    // Resume: enabled again, firing again.
    browser
        .eval(&format!(
            "(() => {{ {row}.querySelector('[data-action=resume]').click(); return true; }})()"
        ))
        .await;
    browser
        .until(&format!(
            "{row}?.querySelector('.badge.status-enabled') && {row}.querySelector('[data-action=pause]')"
        ))
        .await;
    assert_eq!(schedule(&client, &id).await["enabled"], json!(true));
    no_console_errors(&browser, "the schedules page").await;
    browser.quit().await;
}
