//! The task and queue CLI against a real orchestrator process.

mod harness;

use harness::{Orchestrator, cli_in, stderr_failed, stdout_ok};
use serde_json::Value;

/// Writes a pipeline definition into the orchestrator's directory and runs
/// `pipeline create -f` on it.
fn create_from_file(
    orchestrator: &Orchestrator,
    name: &str,
    text: &str,
    extra: &[&str],
) -> std::process::Output {
    let file = orchestrator.dir.path().join(name);
    std::fs::write(&file, text).expect("write the definition");
    let path = file.to_str().expect("utf-8").to_string();
    orchestrator.cli(&[&["pipeline", "create", "-f", path.as_str()], extra].concat())
}

fn json(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout_ok(output)).expect("JSON output")
}

/// Creates a one-step pipeline whose log line reads `$.params.<param>`; its id.
fn pipeline_reading(orchestrator: &Orchestrator, param: &str) -> String {
    let text = format!(
        "project_id: p\nname: train\nsteps:\n  - {{name: say, plugin: core, action: log, parameters: {{message: \"$.params.{param}\"}}}}\n"
    );
    let created = json(&create_from_file(
        orchestrator,
        &format!("reads-{param}.yaml"),
        &text,
        &["-o", "json"],
    ));
    created["id"].as_str().expect("id").to_string()
}

#[test]
fn submit_get_list_cancel_and_wait() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let pipeline = pipeline_reading(&orchestrator, "epochs");
    let submitted = json(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_training",
        "--project",
        "vision",
        "--priority",
        "7",
        "--pipeline",
        &pipeline,
        "--model",
        "resnet",
        "--param",
        "epochs=3",
        "--param",
        "name=run-a",
        "-o",
        "json",
    ]));
    assert_eq!(submitted["status"], "queued");
    assert_eq!(submitted["priority"], 7);
    assert_eq!(submitted["task_spec"]["model_id"], "resnet");
    assert_eq!(
        submitted["task_spec"]["parameters"],
        serde_json::json!({"epochs": 3, "name": "run-a"})
    );
    let id = submitted["worktask_id"].as_str().expect("id").to_string();

    let file = orchestrator.dir.path().join("task.json");
    std::fs::write(
        &file,
        format!(r#"{{"type":"pipeline_execution","project_id":"etl","priority":10,"task_spec":{{"pipeline_id":"{pipeline}","parameters":{{"epochs":1}}}}}}"#),
    )
    .expect("write");
    let from_file = json(&orchestrator.cli(&[
        "task",
        "submit",
        "-f",
        file.to_str().expect("utf-8"),
        "-o",
        "json",
    ]));
    assert_eq!(from_file["priority"], 10);

    let table = stdout_ok(&orchestrator.cli(&["task", "get", &id]));
    assert!(
        table.contains("ml_training") && table.contains("queued") && table.contains("vision"),
        "{table}"
    );

    let listed = json(&orchestrator.cli(&["task", "list", "--project", "vision", "-o", "json"]));
    assert_eq!(listed["worktasks"].as_array().map(Vec::len), Some(1));
    let table = stdout_ok(&orchestrator.cli(&["task", "list"]));
    assert!(
        table.contains(&id) && table.contains("pipeline_execution"),
        "{table}"
    );

    assert_eq!(
        stdout_ok(&orchestrator.cli(&["queue", "length"])).trim(),
        "2"
    );
    assert_eq!(
        json(&orchestrator.cli(&["queue", "length", "-o", "json"]))["queue_length"],
        2
    );

    let cancelled = json(&orchestrator.cli(&["task", "cancel", &id, "-o", "json"]));
    assert_eq!(cancelled["status"], "cancelled");
    // wait ends at once on a finished task, and fails because it did not complete.
    let waited = orchestrator.cli(&["task", "wait", &id]);
    assert!(!waited.status.success());
    assert!(String::from_utf8_lossy(&waited.stdout).contains("cancelled"));
    // A queued task that never runs (no workers): wait gives up after its timeout.
    let other = from_file["worktask_id"].as_str().expect("id");
    let timed_out = orchestrator.cli(&["task", "wait", other, "--timeout", "1"]);
    assert!(stderr_failed(&timed_out).contains("still queued"));
}

#[test]
fn bad_input_gets_a_message_naming_the_problem() {
    let orchestrator = Orchestrator::start(&["--max-workers", "0"]);
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_cooking",
        "--project",
        "p",
        "--pipeline",
        "any",
    ]));
    assert!(
        stderr.contains("type") && stderr.contains("ml_cooking"),
        "{stderr}"
    );
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_training",
        "--project",
        "p",
        "--priority",
        "12",
        "--pipeline",
        "any",
    ]));
    assert!(stderr.contains("priority"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["task", "submit", "--type", "ml_training"]));
    assert!(stderr.contains("--project"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_training",
        "--project",
        "p",
    ]));
    assert!(stderr.contains("--pipeline"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "ml_training",
        "--project",
        "p",
        "--pipeline",
        "0191d1a4-0000-7000-8000-00000000beef",
    ]));
    assert!(
        stderr.contains("0191d1a4-0000-7000-8000-00000000beef")
            && stderr.contains("task_spec.pipeline_id"),
        "{stderr}"
    );
    let pipeline = pipeline_reading(&orchestrator, "url");
    let stderr = stderr_failed(&orchestrator.cli(&[
        "task",
        "submit",
        "--type",
        "pipeline_execution",
        "--project",
        "p",
        "--pipeline",
        &pipeline,
    ]));
    assert!(stderr.contains("task_spec.parameters.url"), "{stderr}");
    let stderr =
        stderr_failed(&orchestrator.cli(&["task", "get", "0191d1a4-0000-7000-8000-000000000000"]));
    assert!(stderr.contains("not found"), "{stderr}");
    let stderr = stderr_failed(&orchestrator.cli(&["task", "get", "nope"]));
    assert!(stderr.contains("nope"), "{stderr}");
    assert_eq!(
        stdout_ok(&orchestrator.cli(&["queue", "length"])).trim(),
        "0",
        "nothing stored"
    );
}

#[test]
fn an_unreachable_orchestrator_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{}", harness::free_port());
    let stderr = stderr_failed(&cli_in(
        dir.path(),
        &["queue", "length", "--orchestrator", &url],
    ));
    assert!(stderr.contains(&url), "{stderr}");
}

#[test]
fn pipeline_create_list_get_and_run_with_follow() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let greet = "project_id: p1\nname: greet\ntype: processing\nsteps:\n  - {name: say, plugin: core, action: log, parameters: {message: \"$.params.who\"}}\n  - {name: shout, plugin: transform, action: jq, parameters: {program: \".who | ascii_upcase\", input: \"$.params\"}}\n";
    let created = json(&create_from_file(
        &orchestrator,
        "greet.yaml",
        greet,
        &["-o", "json"],
    ));
    let id = created["id"].as_str().expect("id").to_string();
    let listed = stdout_ok(&orchestrator.cli(&["pipeline", "list", "--project", "p1"]));
    assert!(listed.contains(&id) && listed.contains("greet"), "{listed}");
    let shown = stdout_ok(&orchestrator.cli(&["pipeline", "get", &id]));
    assert!(
        shown.contains("say core.log") && shown.contains("shout transform.jq"),
        "{shown}"
    );
    let run = orchestrator.cli(&["pipeline", "run", &id, "--param", "who=ada", "--follow"]);
    let out = stdout_ok(&run);
    assert!(out.contains("completed"), "{out}");
    assert!(
        out.contains("shout") && out.contains("transform.jq"),
        "{out}"
    );
    let bad = "project_id: p1\nname: bad\nsteps:\n  - {name: a, plugin: core, action: nap}\n";
    let stderr = stderr_failed(&create_from_file(&orchestrator, "bad.yaml", bad, &[]));
    assert!(
        stderr.contains("nap") && stderr.contains("steps[0]"),
        "{stderr}"
    );
}

#[test]
fn follow_shows_steps_while_a_long_pipeline_runs() {
    let orchestrator = Orchestrator::start(&["--max-workers", "1"]);
    let steps = r#"[{"name":"first","plugin":"core","action":"sleep","parameters":{"ms":400}},
                    {"name":"second","plugin":"core","action":"sleep","parameters":{"ms":800}}]"#;
    let slow = format!(r#"{{"project_id":"p","name":"slow","steps":{steps}}}"#);
    let created = json(&create_from_file(
        &orchestrator,
        "slow.json",
        &slow,
        &["-o", "json"],
    ));
    let id = created["id"].as_str().expect("id");
    let run = orchestrator.cli(&["pipeline", "run", id, "--follow"]);
    stdout_ok(&run);
    let progress = String::from_utf8_lossy(&run.stderr);
    assert!(
        progress.contains("step first core.sleep completed"),
        "live step progress: {progress}"
    );
    assert!(progress.contains("executing"), "{progress}");
}
